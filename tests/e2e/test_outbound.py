"""Sending mail end to end: a user submits over 587 with AUTH (swaks and a
raw client), posternd signs the message and delivers it through the MX
records of the rig's DNS to real peers on 127.0.0.x:25 (Postfix with a
certificate of the rig's CA, smtp-sink with chosen failures), retrying and
bouncing (RFC 3464 DSNs back in the sender's Maildir) as the issue asks."""
import email
import email.policy
import os
import re
import subprocess
import time
import uuid

import pytest

import pstlib

PASSWORD = "correct horse battery staple"


def postern(*args, stdin=b""):
    p = subprocess.run([pstlib.postern_bin(), *args], input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def uid():
    return "out-" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def world(rig, tmp_path_factory):
    """The peers, their MX records, and signing keys for example.test."""
    d = tmp_path_factory.mktemp("outbound")
    keys = {}
    for sel, typ in (("r1", "rsa"), ("e1", "ed25519")):
        path = str(d / f"{sel}.pem")
        rc, out, err = postern("dkim", "keygen", "-d", "example.test", "-s", sel, "-t", typ, "-o",
                               path)
        assert rc == 0, err
        line = out.decode().strip()
        keys[sel] = (path, "".join(line.split("(", 1)[1].rsplit(")", 1)[0].split('"')[1::2]))
    pf = rig.postfix("mx.dest.test", tls="valid")
    notls = rig.postfix("mx.plain.test", tls=None)
    second = rig.postfix("mx2.backup.test", tls="valid")
    dead = rig.address()  # nothing listens there
    hard = rig.sink("mx.hard.test", hard=["RCPT"], hard_reply="550 5.1.1 No such user here")
    slow_addr = rig.address()

    def txt(r):
        return " ".join(f'"{r[i:i + 200]}"' for i in range(0, len(r), 200))

    zone = f"""
dest MX 10 mx.dest
mx.dest A {pf.address}
plain MX 10 mx.plain
mx.plain A {notls.address}
backup MX 10 mx1.backup
backup MX 20 mx2.backup
mx1.backup A {dead}
mx2.backup A {second.address}
hard MX 10 mx.hard
mx.hard A {hard.address}
soft MX 10 mx.soft
mx.soft A {slow_addr}
nullmx MX 0 .
noaddr TXT "this domain exists, without MX or address records"
down MX 10 mx.down
mx.down A {dead}
r1._domainkey.example TXT {txt(keys["r1"][1])}
e1._domainkey.example TXT {txt(keys["e1"][1])}
"""
    rig.zone("test", zone)
    return {"rig": rig, "keys": keys, "pf": pf, "notls": notls, "second": second,
            "hard": hard, "slow_addr": slow_addr, "dir": d}


@pytest.fixture
def sender(daemon, world, tmp_path):
    """A daemon with a submission listener, the user alice, DKIM keys,
    the rig's DNS and CA, and short retry times."""
    def make(**over):
        users = str(tmp_path / "users")
        rc, _, err = postern("user", "add", "alice", "--address", "alice@example.test",
                             "--users", users, stdin=(PASSWORD + "\n").encode())
        assert rc == 0 or "exists" in err, err
        conf = {
            "listeners": [
                {"address": "127.0.0.1", "port": pstlib.free_port(), "mode": "smtp",
                 "starttls": True},
                {"address": "127.0.0.1", "port": pstlib.free_port(), "mode": "submission"},
            ],
            "submission": {"users": users},
            "dns": {"server": str(world["rig"].resolver), "timeout": 2},
            "dkim": {"sign": [
                {"domain": "example.test", "selector": "r1", "key": world["keys"]["r1"][0]},
                {"domain": "example.test", "selector": "e1", "key": world["keys"]["e1"][0]}]},
            "delivery": {"ca_file": world["rig"].cafile, "retry_initial": 1, "retry_max": 2,
                         "connect_timeout": 3, "command_timeout": 10},
        }
        return daemon(**pstlib.merge(conf, over))
    return make


def starttls(d):
    c = d.connect("submission")
    c.ehlo("laptop.test")
    assert c.cmd("STARTTLS").code == 220
    c.starttls(pstlib.client_tls_context())
    return c


def submit(d, rcpts, subject, sender_addr="alice@example.test", body="Hello from postern.\r\n",
           extra=""):
    c = starttls(d)
    ehlo = c.ehlo("laptop.test")
    assert "250-AUTH PLAIN LOGIN" in ehlo.lines or "250 AUTH PLAIN LOGIN" in ehlo.lines, ehlo
    import base64
    token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    r = c.cmd(f"AUTH PLAIN {token}", timeout=20)
    assert r.code == 235, r
    msg = (f"From: Alice <{sender_addr}>\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
           f"{extra}\r\n{body}")
    r = c.transaction(sender_addr, rcpts, msg.encode())
    c.quit()
    return r


def dsn_of(d, user, match, timeout=20):
    (raw,) = d.maildir(user).wait(1, match=match.encode(), timeout=timeout)
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_submission_signs_and_delivers_over_starttls(sender, world):
    d = sender()
    s = uid()
    r = submit(d, ["bob@dest.test"], s)
    assert r.code == 250, r
    pf = world["pf"]
    (raw,) = pf.wait(1, match=s, timeout=30)
    # Postfix saw STARTTLS (its Received: says ESMTPS with the cipher)
    assert re.search(rb"with ESMTPS", raw), raw[:2000]
    # the signatures verify with dkimpy against the rig's DNS
    import dkim
    import dns.resolver
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [world["rig"].resolver.host]
    res.port = world["rig"].resolver.port

    def dnsfunc(name, timeout=5):
        a = res.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in a)
    text = raw.split(b"\n", 1)[1] if raw.startswith(b"Return-Path") else raw
    msg = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    sigs = msg.count(b"\r\nDKIM-Signature:") + msg.startswith(b"DKIM-Signature:")
    assert sigs == 2, msg[:3000]
    d_ = dkim.DKIM(msg)
    assert all(d_.verify(idx=i, dnsfunc=dnsfunc) for i in range(sigs)), msg[:3000]
    assert b"Message-ID: <" in msg and b"Date: " in msg  # added at submission
    line = d.wait_log(r"delivery \S+: to=<bob@dest\.test> relay=mx\.dest\.test\.\[[0-9.]+\]:25 "
                      r"tls=TLSv1\.[23]/\S+ verified=yes policy=opportunistic status=sent", 10)
    assert line


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_submission(sender, world, mech):
    d = sender()
    s = uid()
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(d.port("submission")),
                        "--tls", "--auth", mech, "--auth-user", "alice", "--auth-password",
                        PASSWORD, "--from", "alice@example.test", "--to", "carol@dest.test",
                        "--header", f"Subject: {s}", "--body", "Sent by swaks.\n",
                        "--timeout", "20"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    world["pf"].wait(1, match=s, timeout=30)


def test_auth_before_starttls_is_refused(sender):
    d = sender()
    c = d.connect("submission")
    ehlo = c.ehlo("laptop.test")
    assert not any("AUTH" in ln for ln in ehlo.lines), ehlo
    r = c.cmd("AUTH PLAIN AGFsaWNlAHg=")
    assert r.line.startswith("538 5.7.11"), r
    r = c.cmd("MAIL FROM:<alice@example.test>")
    assert r.line.startswith("530 5.7.0"), r
    c.quit()


def test_wrong_password_and_rate_limit(sender):
    d = sender(submission={"auth_max_failures": 2, "auth_window": 600})
    import base64
    c = starttls(d)
    c.ehlo()
    bad = base64.b64encode(b"\0alice\0Wr0ngPassw0rd!").decode()
    assert c.cmd(f"AUTH PLAIN {bad}", timeout=20).line.startswith("535 5.7.8")
    assert c.cmd(f"AUTH PLAIN {bad}", timeout=20).line.startswith("535 5.7.8")
    good = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    r = c.cmd(f"AUTH PLAIN {good}", timeout=20)
    assert r.line.startswith("454 4.7.0"), r  # blocked now, even with the right password
    assert PASSWORD not in d.stderr() and "Wr0ngPassw0rd!" not in d.stderr()


def test_no_open_relay(sender):
    d = sender()
    # unauthenticated on port 25: relaying refused
    c = d.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
    r = c.cmd("RCPT TO:<victim@dest.test>")
    assert r.line.startswith("554 5.7.1"), r
    c.quit()
    # authenticated, but with someone else's address
    import base64
    c = starttls(d)
    c.ehlo()
    token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    assert c.cmd(f"AUTH PLAIN {token}", timeout=20).code == 235
    r = c.cmd("MAIL FROM:<ceo@bank.test>")
    assert r.line.startswith("553 5.7.1"), r
    c.quit()


def test_peer_without_starttls_gets_plaintext(sender, world):
    d = sender()
    s = uid()
    assert submit(d, ["dave@plain.test"], s).code == 250
    world["notls"].wait(1, match=s, timeout=30)
    assert d.wait_log(r"to=<dave@plain\.test> relay=mx\.plain\.test\.\[[0-9.]+\]:25 tls=none "
                      r"verified=no policy=opportunistic status=sent", 10)


def test_first_mx_down_second_up(sender, world):
    d = sender()
    s = uid()
    assert submit(d, ["erin@backup.test"], s).code == 250
    world["second"].wait(1, match=s, timeout=30)
    assert d.wait_log(r"to=<erin@backup\.test> relay=mx1\.backup\.test\.\[[0-9.]+\]:25 .*"
                      r"status=deferred", 10)


def test_5xx_bounces_with_a_dsn(sender, world):
    d = sender()
    s = uid()
    assert submit(d, ["nobody@hard.test"], s).code == 250
    m = dsn_of(d, "alice", s)
    assert m.get_content_type() == "multipart/report", m
    assert m.get_param("report-type") == "delivery-status"
    assert m["From"].addresses[0].username == "MAILER-DAEMON"
    ds = [p for p in m.walk() if p.get_content_type() == "message/delivery-status"][0]
    text = ds.as_string()
    assert re.search(r"Final-Recipient: rfc822; ?nobody@hard\.test", text), text
    assert "Action: failed" in text and "Status: 5.1.1" in text, text
    assert "550 5.1.1 No such user here" in text, text
    # the bounce itself came from <> (Return-Path of the DSN in alice's Maildir)
    (raw,) = d.maildir("alice").wait(1, match=s.encode())
    assert raw.startswith(b"Return-Path: <>"), raw[:200]


def test_null_mx_and_missing_domain_bounce_at_once(sender):
    d = sender()
    s1, s2, s3 = uid(), uid(), uid()
    assert submit(d, ["x@nullmx.test"], s1).code == 250
    assert submit(d, ["x@no-such-domain.test"], s2).code == 250
    assert submit(d, ["x@noaddr.test"], s3).code == 250
    t1 = dsn_of(d, "alice", s1).as_string()
    assert "Status: 5.1.10" in t1, t1
    t2 = dsn_of(d, "alice", s2).as_string()
    assert "Status: 5.1.2" in t2, t2
    # no MX and no address: the implicit MX is unusable (RFC 5321 5.1)
    t3 = dsn_of(d, "alice", s3).as_string()
    assert "Action: failed" in t3 and "Status: 5.4.4" in t3, t3


def test_4xx_then_recovery(sender, world):
    """The MX first answers 450 at RCPT; the same address later accepts:
    the retry (1 s here) delivers."""
    rig = world["rig"]
    soft = rig.sink("mx.soft.test", address=world["slow_addr"], soft=["RCPT"],
                    soft_reply="450 4.2.0 Mailbox busy, try later")
    d = sender()
    s = uid()
    assert submit(d, ["frank@soft.test"], s).code == 250
    assert d.wait_log(r"to=<frank@soft\.test> .*status=deferred \(450 4\.2\.0", 15)
    soft.stop()
    good = rig.sink("mx.soft.test", address=world["slow_addr"])
    good.wait(1, match=s, timeout=30)
    assert d.maildir("alice").count(s.encode()) == 0  # no bounce, no delay notice yet
    good.stop()


def test_queue_lifetime_expires_into_a_bounce(sender):
    d = sender(delivery={"ca_file": None, "retry_initial": 1, "retry_max": 1, "lifetime": 3,
                         "connect_timeout": 1, "command_timeout": 5})
    s = uid()
    assert submit(d, ["gina@down.test"], s).code == 250
    text = dsn_of(d, "alice", s, timeout=30).as_string()
    assert "Action: failed" in text and "Status: 4.4.7" in text, text
    assert d.wait_log(r"to=<gina@down\.test> status=expired", 5)


def test_kill_during_delivery_loses_nothing(sender, world, rig):
    """kill -9 while deliveries run; after a restart every message reaches
    the peer (at least once)."""
    sink = rig.sink("mx.crash.test", delay={"DATA": 1})
    rig.zone("crash.test", f"@ MX 10 mx\nmx A {sink.address}\n")
    d = sender()
    subjects = [uid() for _ in range(12)]
    for s in subjects:
        assert submit(d, ["h@crash.test"], s).code == 250
    time.sleep(1.5)
    d.kill()
    d.start()
    deadline = time.monotonic() + 60
    while True:
        got = b"".join(sink.messages())
        missing = [s for s in subjects if s.encode() not in got]
        if not missing:
            break
        assert time.monotonic() < deadline, f"never delivered: {missing}"
        time.sleep(0.3)


def authed(d):
    import base64
    c = starttls(d)
    c.ehlo("laptop.test")
    token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    assert c.cmd(f"AUTH PLAIN {token}", timeout=20).code == 235
    return c


def raw_transaction(c, mail, rcpts, data):
    assert c.cmd(mail).code == 250
    for r in rcpts:
        rr = c.cmd(r)
        assert rr.code == 250, rr
    assert c.cmd("DATA").code == 354
    c.send(pstlib.dot_stuff(data) + b".\r\n")
    return c.reply(timeout=20)


def test_dsn_notify_success_and_never(sender, world, rig):
    """NOTIFY=SUCCESS to a next hop without DSN gets a "relayed" notice;
    NOTIFY=NEVER on a recipient that bounces gets none (RFC 3461 5.2)."""
    nodsn = rig.sink("mx.nodsn.test", extra=["-N"])
    rig.zone("nodsn.test", f"@ MX 10 mx\nmx A {nodsn.address}\n")
    d = sender()
    c = authed(d)
    s = uid()
    r = raw_transaction(c, "MAIL FROM:<alice@example.test> RET=HDRS ENVID=QQ314159",
                        ["RCPT TO:<ok@nodsn.test> NOTIFY=SUCCESS ORCPT=rfc822;ok@nodsn.test",
                         "RCPT TO:<nobody@hard.test> NOTIFY=NEVER"],
                        f"From: alice@example.test\r\nSubject: {s}\r\n\r\nbody\r\n".encode())
    assert r.code == 250, r
    c.quit()
    nodsn.wait(1, match=s, timeout=30)
    m = dsn_of(d, "alice", s)
    text = m.as_string()
    assert "Action: relayed" in text and "Original-Envelope-Id: QQ314159" in text, text
    assert re.search(r"Original-Recipient: rfc822; ?ok@nodsn\.test", text), text
    assert "nobody@hard.test" not in text, text  # NEVER: not reported
    assert "text/rfc822-headers" in text  # RET=HDRS
    assert d.wait_log(r"to=<nobody@hard\.test> .*status=bounced", 10)
    time.sleep(1)
    assert d.maildir("alice").count(s.encode()) == 1  # only the success notice


def test_delay_warning(sender):
    d = sender(delivery={"retry_initial": 1, "retry_max": 1, "lifetime": 60, "delay_warning": 2,
                         "connect_timeout": 1})
    s = uid()
    assert submit(d, ["ian@down.test"], s).code == 250
    text = dsn_of(d, "alice", s, timeout=20).as_string()
    assert "Action: delayed" in text and "Will-Retry-Until:" in text, text
    assert "Delayed Mail" in text, text


def test_smtputf8_message_to_a_server_without_it_bounces(sender, rig):
    old = rig.sink("mx.old.test", extra=["-e"])  # no ESMTP at all: HELO only
    rig.zone("old.test", f"@ MX 10 mx\nmx A {old.address}\n")
    d = sender()
    c = authed(d)
    s = uid()
    r = raw_transaction(c, "MAIL FROM:<alice@example.test> SMTPUTF8",
                        ["RCPT TO:<jörg@old.test>"],
                        f"From: alice@example.test\r\nSubject: {s}\r\n\r\nbody\r\n".encode())
    assert r.code == 250, r
    c.quit()
    text = dsn_of(d, "alice", s).as_string()
    assert "Action: failed" in text and "5.6.7" in text, text
    assert old.messages() == []


def test_relay_host(sender, rig, world):
    smarthost = rig.sink("smarthost.test")
    d = sender(delivery={"relayhost": f"[{smarthost.address}]:{smarthost.port}",
                         "relay_tls": "may"})
    s = uid()
    assert submit(d, ["kim@dest.test"], s).code == 250
    (raw,) = smarthost.wait(1, match=s, timeout=30)
    # not through dest.test's own MX
    assert not any(s.encode() in m for m in world["pf"].messages())
    assert d.wait_log(r"to=<kim@dest\.test> relay=\[" + re.escape(smarthost.address) +
                      r"\]\[[0-9.]+\]:\d+ .*policy=opportunistic status=sent", 10)


def test_dsn_parameters_passed_on(sender, rig):
    """To a next hop that offers DSN the parameters travel on unchanged
    (RFC 3461 5.2.1), and no success notice comes from us."""
    hop = rig.sink("mx.hop.test")
    rig.zone("hop.test", f"@ MX 10 mx\nmx A {hop.address}\n")
    d = sender()
    c = authed(d)
    s = uid()
    r = raw_transaction(c, "MAIL FROM:<alice@example.test> RET=FULL ENVID=ABC+2B1",
                        ["RCPT TO:<lee@hop.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;lee@hop.test"],
                        f"From: alice@example.test\r\nSubject: {s}\r\n\r\nbody\r\n".encode())
    assert r.code == 250, r
    c.quit()
    (raw,) = hop.wait(1, match=s, timeout=30)
    head = raw.split(b"\n\n", 1)[0].decode()
    assert re.search(r"X-Mail-Args: .*RET=FULL.*ENVID=ABC\+2B1", head), head
    assert re.search(r"X-Rcpt-Args: .*NOTIFY=SUCCESS,FAILURE.*ORCPT=rfc822;lee@hop\.test", head), head
    time.sleep(1.5)
    assert d.maildir("alice").count(s.encode()) == 0


def test_misbehaving_server_is_a_deferral_with_a_reason(sender, rig):
    """A peer that answers garbage and one that stops halfway through the
    greeting: the attempt ends within the timeouts as a deferral with the
    reason in the log; the message stays queued, nothing crashes."""
    import socket
    import threading
    addr = rig.address()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, 25))
    srv.listen(16)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        n = 0
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            n += 1
            try:
                if n % 2:
                    c.sendall(b"hello there, this is not SMTP\r\n")
                else:
                    c.sendall(b"220-mx.bad.test half a greeting")  # and silence
                    time.sleep(4)
            except OSError:
                pass
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rig.zone("bad.test", f"@ MX 10 mx\nmx A {addr}\n")
        d = sender(delivery={"retry_initial": 1, "retry_max": 1, "connect_timeout": 2,
                             "command_timeout": 2})
        s = uid()
        assert submit(d, ["x@bad.test"], s).code == 250
        assert d.wait_log(r"to=<x@bad\.test> relay=mx\.bad\.test\.\[[0-9.]+\]:25 .*"
                          r"status=deferred \(\S.*", 15)
        assert d.wait_log(r"to=<x@bad\.test> .*status=deferred .*(timed out|timeout)", 20)
        assert d.running()
        assert d.maildir("alice").count(s.encode()) == 0  # no bounce for a 4xx-like failure
    finally:
        stop.set()
        t.join(5)
        srv.close()


DOVECOT_CONF = """base_dir = {d}/run
state_dir = {d}/state
protocols =
log_path = {d}/dovecot.log
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"""


@pytest.fixture
def sasl_smarthost(rig):
    """A Postfix that relays only for AUTH users, checked by Dovecot's SASL
    service (both from Debian), with a certificate of the rig's CA."""
    import pathlib
    import shutil
    import tempfile
    # smtpd runs as postfix: the socket's directories must be searchable
    d = pathlib.Path(tempfile.mkdtemp(prefix="postern-dovecot-"))
    os.chmod(d, 0o755)
    (d / "run").mkdir(parents=True)
    (d / "state").mkdir()
    (d / "passwd").write_text("relayuser:{PLAIN}relay-s3cret\n")
    (d / "dovecot.conf").write_text(DOVECOT_CONF.format(d=d))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(d / "dovecot.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = d / "run" / "auth-client"
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (d / "dovecot.log").read_text() if (d / "dovecot.log").exists() else "no log"
            time.sleep(0.05)
        pf = rig.postfix("smarthost-auth.test", tls="valid", main={
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": str(sock),
            "smtpd_tls_auth_only": "yes",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
            "mynetworks": "",
        })
        yield pf
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def test_relay_host_with_auth(sender, sasl_smarthost, tmp_path):
    """delivery.relayhost with STARTTLS required and verified, and AUTH
    with the password from a file, against a real SASL-enabled Postfix."""
    pw = tmp_path / "relay-password"
    pw.write_text("relay-s3cret\n")
    d = sender(delivery={"relayhost": f"[{sasl_smarthost.address}]:{sasl_smarthost.port}",
                         "relay_tls": "starttls", "relay_user": "relayuser",
                         "relay_password_file": str(pw)})
    s = uid()
    assert submit(d, ["mia@far.test"], s).code == 250
    sasl_smarthost.wait(1, match=s, timeout=30)
    assert re.search(r"sasl_method=(PLAIN|LOGIN), sasl_username=relayuser",
                     sasl_smarthost.logtext()), sasl_smarthost.logtext()[-3000:]
    assert d.wait_log(r"to=<mia@far\.test> relay=\[[0-9.]+\]\[[0-9.]+\]:\d+ tls=TLSv1\.[23]/\S+ "
                      r"verified=yes policy=relay-starttls status=sent", 10)
    assert "relay-s3cret" not in d.stderr()


def test_relay_host_refuses_wrong_password(sender, sasl_smarthost, tmp_path):
    pw = tmp_path / "relay-password"
    pw.write_text("not-the-password\n")
    d = sender(delivery={"relayhost": f"[{sasl_smarthost.address}]:{sasl_smarthost.port}",
                         "relay_tls": "starttls", "relay_user": "relayuser",
                         "relay_password_file": str(pw), "retry_initial": 3600,
                         "retry_max": 3600})
    s = uid()
    assert submit(d, ["ned@far.test"], s).code == 250
    assert d.wait_log(r"to=<ned@far\.test> .*status=deferred \(.*535", 15)
    assert not any(s.encode() in m for m in sasl_smarthost.messages())
    assert "not-the-password" not in d.stderr()
