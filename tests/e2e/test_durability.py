"""Durability: a 250 after the data means the message survives kill -9.

Several client threads send as fast as they can; the daemon is killed
with SIGKILL mid-stream; a new daemon on the same spool and mail_root must
deliver every acknowledged message (at least once)."""
import os
import re
import socket
import threading
import time
import uuid

from pstlib import Client, ProtocolError, dot_stuff, queue_ids

THREADS = 6
RUN_BEFORE_KILL = 1.5


def sender(port, tag, acked, sent, stop):
    """One client: a session with as many transactions as it can get in."""
    n = 0
    while not stop.is_set():
        c = None
        try:
            c = Client(port, timeout=5)
            c.greeting()
            c.ehlo()
            while not stop.is_set():
                mid = f"{tag}-{n}-{uuid.uuid4().hex[:8]}"
                n += 1
                sent.append(mid)
                c.send(b"MAIL FROM:<load@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                       b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
                rs = c.replies(4)
                if [r.code for r in rs] != [250, 250, 250, 354]:
                    break
                body = (f"From: <load@remote.test>\nSubject: {mid}\nMessage-ID: <{mid}@load.test>\n\n"
                        + "durability test line\n" * 20)
                c.send(dot_stuff(body) + b".\r\n")
                r = c.reply()
                if r.queue_id:
                    acked.append(mid)  # only now is the message ours to keep
        except (ProtocolError, OSError, socket.timeout):
            # the daemon died under us: whatever was not acked is not owed
            time.sleep(0.05)
        finally:
            if c:
                c.close()


def delivered_ids(maildir):
    ids = []
    for m in maildir.messages():
        ids += re.findall(rb"Message-ID: <([^@>]+)@load\.test>", m)
    return [i.decode() for i in ids]


def test_kill9_loses_no_acknowledged_message(daemon, capsys):
    check_kill9(daemon(), capsys, "durability")


def test_kill9_again_during_recovery(daemon, capsys):
    # the restarted daemon is killed again while it delivers the backlog
    check_kill9(daemon(), capsys, "durability (killed twice)", kill_during_recovery=True)


def check_kill9(d, capsys, label, kill_during_recovery=False):
    acked, sent, stop = [], [], threading.Event()
    threads = [threading.Thread(target=sender, args=(d.port(), f"t{i}", acked, sent, stop),
                                daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(RUN_BEFORE_KILL)
    d.kill()  # SIGKILL while the clients are mid-transaction
    acked_at_kill = len(acked)
    stop.set()
    for t in threads:
        t.join(10)
    assert acked, f"no message was acknowledged before the kill:\n{d.stderr()[-3000:]}"
    d.start()
    if kill_during_recovery:
        time.sleep(0.05)
        d.kill()
        d.start()
    # wait for the queue to drain and every acknowledged message to arrive
    deadline = time.monotonic() + 60
    want = set(acked)
    while True:
        got = {u: delivered_ids(d.maildir(u)) for u in ("alice", "bob")}
        missing = {u: want - set(got[u]) for u in got}
        try:
            queued = queue_ids(d.spool)
        except (AssertionError, OSError) as e:
            queued = None  # the CLI failed: judged at the end
            cli_error = str(e)
        if not queued and not any(missing.values()):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    dups = {u: len(got[u]) - len(set(got[u])) for u in got}
    extra = {u: len(set(got[u]) - set(sent)) for u in got}
    with capsys.disabled():  # shown in every run, not only on failure
        print(f"\n{label}: sent {len(sent)}, acked {len(acked)} (at kill {acked_at_kill}), "
              f"delivered alice {len(set(got['alice']))} bob {len(set(got['bob']))}, "
              f"duplicates alice {dups['alice']} bob {dups['bob']}, "
              f"delivered but not acked alice {len(set(got['alice']) - want)}, "
              f"still queued {'?' if queued is None else len(queued)}")
    assert not missing["alice"] and not missing["bob"], \
        f"acknowledged but lost: alice {sorted(missing['alice'])[:10]} bob {sorted(missing['bob'])[:10]}"
    assert extra == {"alice": 0, "bob": 0}, "delivered messages that were never sent"
    assert queued is not None, f"postern queue list failed: {cli_error}"
    assert queued == [], f"queue not empty after recovery: {queued[:10]}"


def test_restart_after_kill9_delivers_queued_message(daemon, tmp_path):
    # a message acknowledged while its Maildir was unwritable stays queued;
    # after kill -9 and a restart it is still delivered
    d = daemon(timeouts={"retry": 1})
    os.makedirs(d.mail_root, exist_ok=True)
    blocker = os.path.join(d.mail_root, "bob")
    with open(blocker, "w") as f:
        f.write("not a Maildir\n")
    c = d.connect()
    c.ehlo()
    mid = "k" + uuid.uuid4().hex[:12]
    c.transaction("sender@remote.test", ["bob@example.test"],
                  f"Subject: {mid}\nMessage-ID: <{mid}@load.test>\n\nqueued\n")
    c.close()
    time.sleep(0.5)
    d.kill()
    os.unlink(blocker)
    d.start()
    d.maildir("bob").wait(1, match=mid, timeout=15)
