"""`postern queue list|show` and local delivery retries: a message whose
Maildir cannot be written stays queued, is listed and shown, and the retry
delivers it once the Maildir is fixed."""
import os
import time
import uuid

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
