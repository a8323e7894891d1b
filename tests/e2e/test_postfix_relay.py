"""Postfix as a real sending MTA: a private Postfix instance relays to
posternd with smtp_tls_security_level = encrypt (STARTTLS mandatory)."""
import re
import smtplib
import time
import uuid

import pytest

from pstlib import header_block


def relay_to(postfix, mta, **main):
    settings = {
        "relayhost": f"[127.0.0.1]:{mta.port()}",
        "smtp_tls_security_level": "encrypt",
        "smtp_tls_loglevel": "1",
        "smtp_helo_name": "relay.test",
    }
    settings.update(main)
    return postfix(main=settings).start()


def inject(pf, s, to="alice@example.test", body="Relayed by Postfix.\r\n"):
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test", timeout=10) as c:
        refused = c.sendmail("sender@relay.test", [to],
                             f"From: sender@relay.test\r\nTo: {to}\r\nSubject: {s}\r\n"
                             f"Message-ID: <{s}@relay.test>\r\n\r\n{body}")
        assert refused == {}


def wait_delivered(mta, pf, user, s, timeout=30):
    try:
        return mta.maildir(user).wait(1, match=s, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- postfix log:\n{pf.logtext()[-4000:]}"
                             f"\n--- posternd stderr:\n{mta.stderr()[-4000:]}") from None


def test_postfix_relays_over_starttls(mta, postfix):
    pf = relay_to(postfix, mta)
    s = "p" + uuid.uuid4().hex[:16]
    inject(pf, s)
    (raw,) = wait_delivered(mta, pf, "alice", s)
    heads = header_block(raw)
    received = [h for h in heads if h.startswith("Received: ")]
    # ours is first (newest), and says the relay used TLS
    assert "relay.test" in received[0] and "with ESMTPS" in received[0], received[0]
    assert re.search(r"Received: from [^\n]*client\.test", "\n".join(received[1:])), received
    assert heads[0] == "Return-Path: <sender@relay.test>"
    assert re.search(r"Trusted TLS connection established|TLS connection established to",
                     pf.logtext()), pf.logtext()[-2000:]


def test_postfix_relays_several_messages_and_recipients(mta, postfix):
    pf = relay_to(postfix, mta)
    subjects = ["p" + uuid.uuid4().hex[:16] for _ in range(5)]
    for s in subjects:
        inject(pf, s, to="alice@example.test")
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test", timeout=10) as c:
        c.sendmail("sender@relay.test", ["alice@example.test", "bob@localhost"],
                   "Subject: both-" + subjects[0] + "\r\n\r\nfor two\r\n")
    for s in subjects:
        wait_delivered(mta, pf, "alice", s)
    wait_delivered(mta, pf, "bob", "both-" + subjects[0])
    for s in subjects:
        assert mta.maildir("alice").count(s + "@relay.test") == 1


def test_postfix_bounces_unknown_user(mta, postfix):
    # posternd's 550 at RCPT reaches Postfix as a permanent failure
    pf = relay_to(postfix, mta)
    s = "p" + uuid.uuid4().hex[:16]
    inject(pf, s, to="nosuch@example.test")
    deadline = time.monotonic() + 30
    while "550 5.1.1 User unknown" not in pf.logtext():
        if time.monotonic() > deadline:
            pytest.fail(f"no 550 in the Postfix log:\n{pf.logtext()[-3000:]}")
        time.sleep(0.2)


def test_postfix_dot_lines_survive_the_relay(mta, postfix):
    pf = relay_to(postfix, mta)
    s = "p" + uuid.uuid4().hex[:16]
    inject(pf, s, body="line\r\n..two dots\r\n...\r\n.x\r\nend\r\n")
    (raw,) = wait_delivered(mta, pf, "alice", s)
    # smtplib stuffed, Postfix unstuffed and re-stuffed, posternd unstuffed
    assert raw.split(b"\n\n", 1)[1] == b"line\n..two dots\n...\n.x\nend\n"
