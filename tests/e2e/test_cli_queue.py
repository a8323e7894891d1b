"""`postern queue list|show|flush|hold|release|delete` and delivery
retries: a message whose Maildir cannot be written stays queued, is listed
and shown, and the retry delivers it once the Maildir is fixed; remote mail
deferred for an hour is delivered at once by flush or release (SIGUSR1 to
posternd), not at all while held, and never after delete."""
import fcntl
import json
import os
import signal
import socket
import threading
import time
import uuid

import pytest

import pstlib
from pstlib import queue_cli, queue_ids, wait_until


def block_maildir(d, user):
    """Makes <mail_root>/<user> a plain file (root ignores permissions, so a
    file where a directory must be is what makes delivery fail)."""
    os.makedirs(d.mail_root, exist_ok=True)
    path = os.path.join(d.mail_root, user)
    with open(path, "w") as f:
        f.write("not a Maildir\n")
    return path


def send(d, rcpts, sender="sender@remote.test"):
    s = "q" + uuid.uuid4().hex[:16]
    c = d.connect()
    c.ehlo()
    qid = c.transaction(sender, rcpts, f"Subject: {s}\n\nqueued\n").queue_id
    c.quit()
    return s, qid


def test_undeliverable_message_stays_in_queue_and_is_listed(daemon):
    d = daemon(timeouts={"retry": 1})
    block_maildir(d, "bob")
    s, qid = send(d, ["bob@example.test"])
    time.sleep(1.5)  # at least one failed attempt
    assert qid in queue_ids(d.spool)


def test_queue_show_shows_envelope(daemon):
    d = daemon(timeouts={"retry": 1})
    block_maildir(d, "bob")
    s, qid = send(d, ["bob@example.test"], sender="envelope-sender@remote.test")
    time.sleep(1.5)
    p = queue_cli("show", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert qid in p.stdout
    assert "envelope-sender@remote.test" in p.stdout
    assert "bob@example.test" in p.stdout


def test_queue_show_unknown_id_fails(daemon):
    d = daemon()
    p = queue_cli("show", "0" * 24, spool=d.spool)
    assert p.returncode != 0
    assert p.stderr.strip()


def test_queue_list_empty_queue(daemon):
    d = daemon()
    assert queue_ids(d.spool) == []
    p = queue_cli("list", spool=d.spool)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    p = queue_cli("list", "--json", spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []


def test_retry_delivers_after_fix(daemon):
    d = daemon(timeouts={"retry": 1})
    blocker = block_maildir(d, "bob")
    s, qid = send(d, ["bob@example.test"])
    time.sleep(1.5)
    assert qid in queue_ids(d.spool)
    assert d.maildir("bob").count(s) == 0
    os.unlink(blocker)
    d.maildir("bob").wait(1, match=s, timeout=15)
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")


def test_delivered_recipient_is_not_delivered_again_on_retry(daemon):
    d = daemon(timeouts={"retry": 1})
    blocker = block_maildir(d, "bob")
    s, qid = send(d, ["alice@example.test", "bob@example.test"])
    d.maildir("alice").wait(1, match=s)
    time.sleep(2.5)  # several retries for bob
    assert qid in queue_ids(d.spool)
    p = queue_cli("show", qid, spool=d.spool)
    assert "bob@example.test" in p.stdout
    os.unlink(blocker)
    d.maildir("bob").wait(1, match=s, timeout=15)
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")
    assert d.maildir("alice").count(s) == 1


# ---------------------------------------------------------------- flush, hold, release, delete
#
# Remote delivery to an smtp-sink of the rig: each test has its own domain
# whose MX is an address of the rig where the sink is not started yet, so
# the first attempt fails (connection refused) and, with retry_initial and
# retry_max at 3600 s, only `postern queue flush`/`release` (SIGUSR1) can
# bring the next attempt within the test. Mail is submitted on a local
# (unix socket) listener: that session is the peer's uid, so it may relay.

# one per test: a sink, once started, answers for its domain until the
# module's rig stops
DOMAINS = ("qflush.test", "qbyid.test", "qhold.test", "qdelete.test", "qstopped.test",
           "qbusy.test", "qdsn.test")


@pytest.fixture(scope="module")
def mx(rig):
    """An address of the rig for each domain (nothing listens there until
    a test starts its sink) and the zone whose MX records point there."""
    addrs = {dom: rig.address() for dom in DOMAINS}
    lines = []
    for dom, addr in addrs.items():
        sub = dom[:-len(".test")]
        lines += [f"{sub} MX 10 mx.{sub}", f"mx.{sub} A {addr}"]
    rig.zone("test", "\n".join(lines) + "\n")
    return {"rig": rig, "addrs": addrs}


class LocalClient(pstlib.Client):
    """pstlib.Client over the daemon's unix socket (local submission)."""

    def __init__(self, path, timeout=20.0):
        self.timeout = timeout
        self.buf = b""
        self.transcript = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)


def start_daemon(d, timeout=10.0):
    """Starts d and waits for its TCP listeners and its unix socket
    (Daemon.wait_ready knows TCP listeners only)."""
    d.start(wait=False)
    deadline = time.monotonic() + timeout
    for ln in d.conf["listeners"]:
        while True:
            if d.proc.poll() is not None:
                raise AssertionError(f"posternd exited {d.proc.returncode}:\n{d.stderr()}")
            try:
                if ln.get("mode") == "local":
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(2)
                    s.connect(ln["path"])
                else:
                    s = socket.create_connection((ln["address"], ln["port"]), timeout=0.5)
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"posternd not ready after {timeout}s:\n{d.stderr()}")
                time.sleep(0.05)
                continue
            d._probe_close(s, False)
            break
    d.ready = True
    return d


@pytest.fixture
def relay(daemon, mx, tmp_path):
    """A daemon delivering remote mail through the rig's DNS to port 25 of
    the MX addresses (or the sink's port), retries an hour apart."""
    def make(port=25):
        sock = str(tmp_path / "local.sock")
        d = daemon(start=False, listeners=[
            {"address": "127.0.0.1", "port": pstlib.free_port(), "mode": "smtp",
             "starttls": False},
            {"mode": "local", "path": sock}],
            dns={"server": str(mx["rig"].resolver), "timeout": 2},
            delivery={"port": port, "retry_initial": 3600, "retry_max": 3600,
                      "connect_timeout": 3, "command_timeout": 10})
        d.local_path = sock
        return start_daemon(d)
    return make


def sink_for(mx, dom):
    """The smtp-sink that will answer as the MX of dom, not started."""
    return mx["rig"].sink(f"mx.{dom}", address=mx["addrs"][dom], start=False)


def submit(d, rcpt, sender="someone@example.test"):
    s = "q" + uuid.uuid4().hex[:16]
    c = LocalClient(d.local_path)
    d.clients.append(c)
    assert c.greeting().code == 220
    c.ehlo("localhost")
    r = c.transaction(sender, [rcpt], pstlib.message(s, sender=sender, to=rcpt))
    c.quit()
    return s, r.queue_id


def list_line(d, qid):
    p = queue_cli("list", spool=d.spool)
    assert p.returncode == 0, p.stderr
    for line in p.stdout.splitlines():
        if line.startswith(qid + " "):
            return line
    return None


def wait_failed_attempt(d, qid):
    """Waits until the first attempt failed and was written back."""
    wait_until(lambda: "attempts=1 " in (list_line(d, qid) or ""), 30,
               what=f"a failed first attempt of {qid}")
    return list_line(d, qid)


def test_flush_delivers_a_deferred_message_at_once(relay, mx):
    d = relay()
    sink = sink_for(mx, "qflush.test")
    s, qid = submit(d, "rcpt@qflush.test")
    line = wait_failed_attempt(d, qid)
    # the next attempt is an hour away
    assert " rcpts=1 pending=1 delivered=0 failed=0 attempts=1 next=20" in line, line
    assert not line.endswith(" held"), line
    p = queue_cli("show", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert "<rcpt@qflush.test> pending" in p.stdout
    assert "last reply: " in p.stdout, p.stdout
    assert "held:         no" in p.stdout
    assert "auth user:    root" in p.stdout, p.stdout

    sink.start()
    t0 = time.monotonic()
    p = queue_cli("flush", spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert "1 message due now" in p.stdout, p.stdout
    assert f"posternd (pid {d.pid()}) told to try the queue now" in p.stdout, p.stdout
    (raw,) = sink.wait(1, match=s, timeout=20)
    assert time.monotonic() - t0 < 20
    assert sink.envelope(raw) == ("someone@example.test", ["rcpt@qflush.test"])
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")


def test_flush_by_id(relay, mx):
    d = relay()
    sink = sink_for(mx, "qbyid.test")
    s, qid = submit(d, "rcpt@qbyid.test")
    wait_failed_attempt(d, qid)
    sink.start()
    p = queue_cli("flush", qid.lower(), spool=d.spool)  # ids are hex: either case
    assert p.returncode == 0, p.stderr
    assert f"{qid}: due now" in p.stdout
    sink.wait(1, match=s, timeout=20)
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")


def test_hold_keeps_a_message_from_flush_until_release(relay, mx):
    d = relay()
    sink = sink_for(mx, "qhold.test")
    s, qid = submit(d, "rcpt@qhold.test")
    wait_failed_attempt(d, qid)

    p = queue_cli("hold", qid, spool=d.spool)
    assert (p.returncode, p.stdout) == (0, f"{qid}: on hold\n"), p.stderr
    assert list_line(d, qid).endswith(" held")
    p = queue_cli("hold", qid, spool=d.spool)
    assert (p.returncode, p.stdout) == (0, f"{qid}: already on hold\n"), p.stderr
    show = queue_cli("show", qid, spool=d.spool).stdout
    assert "held:         yes" in show, show

    sink.start()
    since = len(d.stderr())
    p = queue_cli("flush", spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert "0 messages due now; 1 on hold, left alone" in p.stdout, p.stdout
    p = queue_cli("flush", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert "is on hold: not flushed" in p.stderr
    # make the daemon look at it: an attempt that sees the hold leaves it
    os.kill(d.pid(), signal.SIGUSR1)
    d.wait_log(rf"delivery {qid}: on hold", timeout=15, since=since)
    time.sleep(1)
    assert sink.messages() == []
    assert qid in queue_ids(d.spool)

    p = queue_cli("release", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert f"{qid}: released\n" in p.stdout
    assert f"posternd (pid {d.pid()}) told to try it now" in p.stdout
    sink.wait(1, match=s, timeout=20)
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")
    assert len(sink.messages()) == 1


def test_delete_drops_a_message_without_delivery(relay, mx):
    d = relay()
    sink = sink_for(mx, "qdelete.test")
    s, qid = submit(d, "rcpt@qdelete.test")
    wait_failed_attempt(d, qid)
    sink.start()
    p = queue_cli("delete", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert "deleted (not delivered, no bounce sent)" in p.stdout
    assert queue_ids(d.spool) == []
    assert os.listdir(os.path.join(d.spool, "queue")) == []
    p = queue_cli("flush", spool=d.spool)
    assert (p.returncode, p.stdout) == (0, "0 messages due now\n"), p.stderr
    os.kill(d.pid(), signal.SIGUSR1)  # a scan finds nothing to send
    time.sleep(2)
    assert sink.messages() == []
    # and no bounce to the (local) sender either
    assert queue_ids(d.spool) == []
    p = queue_cli("delete", qid, spool=d.spool)
    assert p.returncode == 1
    assert "not in the queue" in p.stderr


def test_release_while_the_daemon_is_stopped(relay, mx):
    d = relay()
    sink = sink_for(mx, "qstopped.test")
    s, qid = submit(d, "rcpt@qstopped.test")
    wait_failed_attempt(d, qid)
    assert queue_cli("hold", qid, spool=d.spool).returncode == 0
    assert d.stop() == 0
    p = queue_cli("release", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert "posternd not running: the message is delivered at its next start" in p.stdout
    assert list_line(d, qid).endswith(" next=now"), list_line(d, qid)
    sink.start()
    start_daemon(d)
    sink.wait(1, match=s, timeout=20)
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")


def test_change_waits_for_the_message_lock(relay, mx):
    """A delivery attempt holds flock on queue/ID.msg; the tool waits for it
    a few seconds, then gives up with 75 and changes nothing."""
    d = relay()
    s, qid = submit(d, "rcpt@qbusy.test")
    wait_failed_attempt(d, qid)
    with open(os.path.join(d.spool, "queue", qid + ".msg"), "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        t0 = time.monotonic()
        p = queue_cli("hold", qid, spool=d.spool, timeout=30)
        waited = time.monotonic() - t0
        assert p.returncode == 75, (p.returncode, p.stdout, p.stderr)
        assert "being delivered right now" in p.stderr
        assert 4 <= waited < 20, waited
        assert not list_line(d, qid).endswith(" held")
        # released within the wait: the change goes through
        threading.Timer(1.0, lambda: fcntl.flock(f, fcntl.LOCK_UN)).start()
        p = queue_cli("hold", qid, spool=d.spool, timeout=30)
        assert (p.returncode, p.stdout) == (0, f"{qid}: on hold\n"), p.stderr
    assert list_line(d, qid).endswith(" held")
    # an envelope that no longer decodes: shown as an error, still deletable
    with open(os.path.join(d.spool, "queue", qid + ".env"), "w") as f:
        f.write("{")
    p = queue_cli("show", qid, spool=d.spool)
    assert p.returncode == 2 and qid in p.stderr, (p.returncode, p.stderr)
    p = queue_cli("hold", qid, spool=d.spool)
    assert p.returncode == 2 and qid in p.stderr, (p.returncode, p.stderr)
    p = queue_cli("delete", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    assert os.listdir(os.path.join(d.spool, "queue")) == []


@pytest.mark.parametrize("sub", ["show", "flush", "hold", "release", "delete"])
def test_unknown_and_bad_ids(daemon, sub):
    d = daemon()
    missing = "0006176339D93000" "0001" "3F2A"
    p = queue_cli(sub, missing, spool=d.spool)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert f"{missing}: not in the queue" in p.stderr
    assert p.stdout == ""
    for bad in ("123", "G" * 24, "0" * 25, "../../etc/passwd"):
        p = queue_cli(sub, bad, spool=d.spool)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
        assert "is not a queue id" in p.stderr
    p = queue_cli(sub, missing, "extra", spool=d.spool)
    assert p.returncode == 2
    assert "too many arguments" in p.stderr


def test_missing_arguments_and_spool(daemon, tmp_path):
    for sub in ("show", "hold", "release", "delete"):
        p = queue_cli(sub, spool=str(tmp_path))
        assert p.returncode == 2 and "missing argument" in p.stderr, (sub, p.stderr)
    for args in (("flush",), ("hold", "0" * 24), ("list",)):
        p = queue_cli(*args, spool=str(tmp_path / "nowhere"))
        assert p.returncode == 2 and "no spool there" in p.stderr, (args, p.stderr)
    assert not os.path.exists(tmp_path / "nowhere")  # created nothing


def test_flush_and_release_of_local_mail(daemon):
    """Local delivery retries (a Maildir that cannot be written): hold,
    release with the daemon running, delivered once the Maildir is fixed."""
    d = daemon(timeouts={"retry": 1})
    blocker = block_maildir(d, "bob")
    s, qid = send(d, ["bob@example.test"])
    wait_until(lambda: "attempts=" in (list_line(d, qid) or "") and
               "attempts=0 " not in list_line(d, qid), 15, what="a failed attempt")
    assert queue_cli("hold", qid, spool=d.spool).returncode == 0
    os.unlink(blocker)
    time.sleep(2.5)  # retries would have delivered it
    assert d.maildir("bob").count(s) == 0
    p = queue_cli("release", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    d.maildir("bob").wait(1, match=s, timeout=15)
    wait_until(lambda: qid not in queue_ids(d.spool), 10, what=f"{qid} leaving the queue")


def test_show_dsn_fields_text_and_json(relay, mx):
    """RET, ENVID, NOTIFY and ORCPT given at submission, a local recipient
    delivered and a remote one deferred: show and list, as text and JSON."""
    d = relay()
    c = LocalClient(d.local_path)
    d.clients.append(c)
    c.greeting()
    c.ehlo("localhost")
    assert c.cmd("MAIL FROM:<dsn@example.test> RET=HDRS ENVID=env+2Bid").code == 250
    assert c.cmd("RCPT TO:<far@qdsn.test> NOTIFY=SUCCESS,DELAY "
                 "ORCPT=rfc822;far@qdsn.test").code == 250
    assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(pstlib.dot_stuff(pstlib.message("dsnfields", to="far@qdsn.test")) + b".\r\n")
    r = c.reply()
    qid = r.queue_id
    assert qid, r
    c.quit()
    wait_until(lambda: "attempts=1 " in (list_line(d, qid) or ""), 30, what="a failed attempt")

    line = list_line(d, qid)
    assert " <dsn@example.test> rcpts=2 pending=1 delivered=1 failed=0 attempts=1 " in line, line
    p = queue_cli("show", qid, spool=d.spool)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "dsn ret:      hdrs\n" in out, out
    assert "dsn envid:    env+2Bid\n" in out, out
    assert "<far@qdsn.test> pending notify=SUCCESS,DELAY orcpt=rfc822;far@qdsn.test\n" in out, out
    assert "<alice@example.test> delivered user alice\n" in out, out
    assert "    last reply: delivered to Maildir\n" in out, out
    assert "Subject: dsnfields" in out

    p = queue_cli("show", qid, "--json", spool=d.spool)
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["id"] == qid
    assert env["sender"] == "dsn@example.test"
    assert (env["ret"], env["envid"], env["hold"], env["warned"]) == ("hdrs", "env+2Bid", False,
                                                                     False)
    assert env["auth_user"] == "root" and env["client_addr"] is None  # queue.h: NULL for a local submission
    assert (env["rcpts"], env["pending"], env["delivered"], env["failed"]) == (2, 1, 1, 0)
    assert env["attempts"] == 1 and env["next_attempt"] > time.time() + 3000
    far, alice = env["recipients"]
    assert far["addr"] == "far@qdsn.test" and far["state"] == "pending"
    assert far["notify"] == ["SUCCESS", "DELAY"] and far["orcpt"] == "rfc822;far@qdsn.test"
    assert far["user"] is None and far["last_reply"]
    assert alice == {"addr": "alice@example.test", "user": "alice", "state": "delivered",
                     "last_reply": "delivered to Maildir", "notify": [], "orcpt": None}

    assert queue_cli("hold", qid, spool=d.spool).returncode == 0
    p = queue_cli("list", "--json", spool=d.spool)
    assert p.returncode == 0, p.stderr
    (summary,) = json.loads(p.stdout)
    assert summary == {k: env[k] for k in summary if k != "hold"} | {"hold": True}
    assert set(summary) == {"id", "arrival", "size", "sender", "rcpts", "pending", "delivered",
                            "failed", "attempts", "next_attempt", "hold"}
    p = queue_cli("hold", qid, "--json", spool=d.spool)
    assert p.returncode == 2 and "--json is for list and show" in p.stderr
