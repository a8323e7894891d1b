"""SMTP smuggling (CVE-2023-51764 family): only <CRLF>.<CRLF> ends DATA.

Each variant embeds a fake end of data followed by a whole smuggled
transaction. posternd must treat all of it as data: the smuggled commands
are never answered, the real end gets one 554 5.6.0 (bare CR/LF refused),
and nothing is delivered. In normalize mode exactly one message arrives.
"""
import time
import uuid

import pytest

from pstlib import body_of

VARIANTS = {
    "lf_dot_lf": b"\n.\n",
    "cr_dot_cr": b"\r.\r",
    "lf_dot_crlf": b"\n.\r\n",
    "crlf_dot_lf": b"\r\n.\n",
    "crlf_dot_cr": b"\r\n.\r",
}
BARE = "554 5.6.0 Bare CR or LF in message data"


def uid():
    return "s" + uuid.uuid4().hex[:16]


def smuggled_payload(variant, outer, inner):
    """The message text of an attacker: a short message, the fake end, and
    a complete second transaction for bob ending with the real end."""
    return (f"From: <attacker@remote.test>\r\nSubject: {outer}\r\n\r\nfirst message".encode()
            + variant
            + b"MAIL FROM:<admin@example.test>\r\n"
            + b"RCPT TO:<bob@example.test>\r\n"
            + b"DATA\r\n"
            + f"From: <admin@example.test>\r\nSubject: {inner}\r\n\r\nsmuggled\r\n".encode()
            + b".\r\n")


def open_data(d, rcpt="alice@example.test"):
    c = d.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<attacker@remote.test>").line == "250 2.1.0 Ok"
    assert c.cmd(f"RCPT TO:<{rcpt}>").line == "250 2.1.5 Ok"
    assert c.cmd("DATA").code == 354
    return c


def control_message(d, c):
    """Sends a clean message on the same session and waits for it: once it
    is delivered, anything queued before it would have been too."""
    s = uid()
    c.transaction("sender@remote.test", ["alice@example.test"],
                  f"Subject: {s}\n\ncontrol\n")
    d.maildir("alice").wait(1, match=s)
    return s


@pytest.mark.parametrize("name", list(VARIANTS))
def test_smuggling_refused(mta, name):
    outer, inner = uid(), uid()
    c = open_data(mta)
    c.send(smuggled_payload(VARIANTS[name], outer, inner))
    assert c.reply().line == BARE
    # the smuggled MAIL/RCPT/DATA were data, so nothing else is pending
    assert c.silence(0.5) == b""
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    control_message(mta, c)
    for user in ("alice", "bob"):
        assert mta.maildir(user).count(outer) == 0
        assert mta.maildir(user).count(inner) == 0


@pytest.mark.parametrize("name", list(VARIANTS))
def test_smuggling_with_bdat_like_tail_refused(mta, name):
    # the smuggled part pipelines a whole session end as well
    outer = uid()
    c = open_data(mta)
    c.send(f"Subject: {outer}\r\n\r\nx".encode() + VARIANTS[name]
           + b"RSET\r\nNOOP\r\nQUIT\r\n.\r\n")
    assert c.reply().line == BARE
    assert c.silence(0.5) == b""
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_bare_lf_alone_in_body_refused(mta):
    s = uid()
    c = open_data(mta)
    c.send(f"Subject: {s}\r\n\r\nline one\nline two\r\n.\r\n".encode())
    assert c.reply().line == BARE
    control_message(mta, c)
    assert mta.maildir("alice").count(s) == 0


def test_bare_cr_alone_in_body_refused(mta):
    s = uid()
    c = open_data(mta)
    c.send(f"Subject: {s}\r\n\r\nline one\rline two\r\n.\r\n".encode())
    assert c.reply().line == BARE
    control_message(mta, c)
    assert mta.maildir("alice").count(s) == 0


def test_bare_lf_in_headers_refused(mta):
    s = uid()
    c = open_data(mta)
    c.send(f"Subject: {s}\nX-Other: 1\r\n\r\nbody\r\n.\r\n".encode())
    assert c.reply().line == BARE


def test_refusal_resets_the_transaction(mta):
    c = open_data(mta)
    c.send(b"Subject: x\r\n\r\na\nb\r\n.\r\n")
    assert c.reply().line == BARE
    assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL command"


def test_crlf_split_across_writes_is_not_bare(mta):
    # CR at the end of one TCP segment and LF at the start of the next
    s = uid()
    c = open_data(mta)
    c.send(f"Subject: {s}\r\n\r\nline one\r".encode())
    time.sleep(0.2)
    c.send(b"\nline two\r")
    time.sleep(0.2)
    c.send(b"\n.\r")
    time.sleep(0.2)
    c.send(b"\n")
    assert c.reply().queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"line one\nline two\n"


def test_end_of_data_split_across_writes(mta):
    s = uid()
    c = open_data(mta)
    c.send(f"Subject: {s}\r\n\r\nbody\r\n".encode())
    time.sleep(0.2)
    c.send(b".")
    time.sleep(0.2)
    c.send(b"\r\n")
    assert c.reply().queue_id
    mta.maildir("alice").wait(1, match=s)


# -- dot-unstuffing (RFC 5321 4.5.2)

def test_dot_unstuffing_is_exact(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    s = uid()
    head = f"Subject: {s}\r\n\r\n".encode()
    # raw wire lines, already stuffed by the "client"
    # a body line "." can only travel as ".."; a lone "." ends the data
    wire = [b"..x", b"..", b"...", b".y", b"x.", b" .", b"a..b", b"end"]
    c.send(head + b"".join(l + b"\r\n" for l in wire) + b".\r\n")
    assert c.reply().queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw).split(b"\n")[:-1] == [b".x", b".", b"..", b"y", b"x.", b" .", b"a..b",
                                             b"end"]


# -- normalize mode

@pytest.mark.parametrize("name", list(VARIANTS))
def test_normalize_mode_delivers_one_message(daemon, name):
    d = daemon(limits={"bare_eol": "normalize"})
    outer, inner = uid(), uid()
    c = open_data(d)
    c.send(smuggled_payload(VARIANTS[name], outer, inner))
    assert c.reply().queue_id
    assert c.silence(0.5) == b""
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    control_message(d, c)
    msgs = d.maildir("alice").wait(1, match=outer)
    assert len(msgs) == 1
    # the smuggled transaction is text inside alice's message, not mail to bob
    assert inner.encode() in msgs[0]
    assert d.maildir("bob").count(inner) == 0
    assert b"\r" not in msgs[0]


def test_normalize_mode_turns_bare_lf_into_line_end(daemon):
    d = daemon(limits={"bare_eol": "normalize"})
    s = uid()
    c = open_data(d)
    c.send(f"Subject: {s}\r\n\r\none\ntwo\r\nthree\n\r\n.\r\n".encode())
    assert c.reply().queue_id
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"one\ntwo\nthree\n\n"


def test_normalize_mode_turns_bare_cr_into_line_end(daemon):
    d = daemon(limits={"bare_eol": "normalize"})
    s = uid()
    c = open_data(d)
    c.send(f"Subject: {s}\r\n\r\none\rtwo\r\n.\r\n".encode())
    assert c.reply().queue_id
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"one\ntwo\n"


def test_normalize_mode_bare_lf_dot_lf_is_not_end_of_data(daemon):
    d = daemon(limits={"bare_eol": "normalize"})
    s = uid()
    c = open_data(d)
    c.send(f"Subject: {s}\r\n\r\nbefore\n.\nafter\r\n".encode())
    # no reply yet: the data is still open
    assert c.silence(0.5) == b""
    c.send(b".\r\n")
    assert c.reply().queue_id
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert b"before\n" in raw and b"after\n" in raw
