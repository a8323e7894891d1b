"""Delivery status notifications judged by an independent parser.

tests/interop/dsn_dump writes a DSN made by pst_dsn_generate (lib/core/dsn);
Python's email package parses it back. Checked: the multipart/report
structure (RFC 6522), the message/delivery-status groups and fields
(RFC 3464 2.2, 2.3), the returned message or headers (RFC 3461 6.2), no
parser defects, and that text smuggled in through a diagnostic or a
recipient never becomes a header field.
"""
import email
import email.policy
import os
import subprocess

import pytest

import pstlib

ORIGINAL = (b"From: Alice <alice@example.org>\r\n"
            b"To: bob@example.net\r\n"
            b"Subject: lunch\r\n"
            b"Message-ID: <m1@example.org>\r\n"
            b"\r\n"
            b"BODY-MARKER let us meet at noon\r\n")


def dsn_dump_bin():
    return os.path.join(pstlib.build_dir(), "tests", "interop", "dsn_dump")


@pytest.fixture
def original(tmp_path):
    p = tmp_path / "orig.eml"
    p.write_bytes(ORIGINAL)
    return str(p)


def dump(*args, check=True):
    exe = dsn_dump_bin()
    if not os.path.exists(exe):
        pytest.skip(f"{exe} not built")
    r = subprocess.run([exe, *args], capture_output=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def parse(raw):
    msg = email.message_from_bytes(raw)
    for part in msg.walk():
        assert part.defects == [], (part.get_content_type(), part.defects)
    return msg


def field(m, name):
    """A field's value unfolded (RFC 5322 2.2.3: remove the CRLFs)."""
    v = m[name]
    return None if v is None else v.replace("\r\n", "").replace("\n", "")


def groups(msg):
    """The message/delivery-status part's groups: per-message, per-recipient..."""
    parts = msg.get_payload()
    ds = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(ds) == 1
    return ds[0].get_payload()


def test_failed_full(original):
    raw = dump("-e", "QQ+2B314", "-i", original,
               "-R", "bob@example.net", "-s", "5.1.1", "-m", "mx.example.net",
               "-g", "550-5.1.1 The account does not exist\\n550 5.1.1 Try again never",
               "-O", "rfc822;Bob+2Bx@example.net").stdout
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"] == '"Mail Delivery System" <MAILER-DAEMON@mx.example.org>'
    assert msg["To"] == "<alice@example.org>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"].startswith("<dsn.") and msg["Message-ID"].endswith("@mx.example.org>")
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"]
    human = parts[0].get_payload(decode=True).decode("ascii")
    assert "<bob@example.net>: delivery failed permanently" in human
    assert "The account does not exist" in human

    g = groups(msg)
    assert len(g) == 2
    assert g[0]["Reporting-MTA"] == "dns; mx.example.org"
    assert g[0]["Original-Envelope-Id"] == "QQ+314"
    assert g[0]["Arrival-Date"] == "Sat, 28 Nov 2026 21:06:40 +0000"
    r = g[1]
    assert r["Final-Recipient"] == "rfc822; bob@example.net"
    assert r["Original-Recipient"] == "rfc822; Bob+x@example.net"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx.example.net"
    assert field(r, "Diagnostic-Code") == (
        "smtp; 550-5.1.1 The account does not exist 550 5.1.1 Try again never")
    assert r["Last-Attempt-Date"] == "Sat, 28 Nov 2026 22:58:28 +0000"
    assert r["Will-Retry-Until"] is None

    inner = parts[2].get_payload()
    assert len(inner) == 1
    assert inner[0]["Subject"] == "lunch"
    assert "BODY-MARKER" in inner[0].get_payload()

    # the modern policy reads the same addresses
    modern = email.message_from_bytes(raw, policy=email.policy.default)
    assert modern["To"].addresses[0].addr_spec == "alice@example.org"
    assert modern["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.org"


def test_ret_hdrs_has_no_body(original):
    raw = dump("-r", "hdrs", "-i", original, "-R", "bob@example.net", "-s", "5.2.2").stdout
    msg = parse(raw)
    parts = msg.get_payload()
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"BODY-MARKER" not in raw
    assert "Subject: lunch" in parts[2].get_payload()
    assert groups(msg)[0]["Original-Envelope-Id"] is None


def test_over_the_cap_returns_headers(original):
    raw = dump("-r", "full", "-x", "100", "-i", original, "-R", "bob@example.net").stdout
    msg = parse(raw)
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"
    assert b"BODY-MARKER" not in raw


def test_delayed(original):
    raw = dump("-D", "-i", original, "-R", "bob@example.net", "-a", "delayed",
               "-s", "4.4.1", "-g", "421 4.4.1 busy").stdout
    msg = parse(raw)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    r = groups(msg)[1]
    assert r["Action"] == "delayed"
    assert r["Status"] == "4.4.1"
    assert r["Will-Retry-Until"] == "Thu, 03 Dec 2026 22:58:33 +0000"
    # nothing failed: headers only (RFC 3461 6.2)
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"


def test_success_and_never(original):
    raw = dump("-i", original,
               "-R", "bob@example.net", "-a", "delivered", "-s", "2.0.0", "-N", "SUCCESS",
               "-R", "carol@example.net", "-a", "failed", "-N", "NEVER").stdout
    msg = parse(raw)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    g = groups(msg)
    assert len(g) == 2  # carol asked for NEVER
    assert g[1]["Action"] == "delivered"
    assert b"carol" not in raw


def test_injection_is_neutralised(original):
    raw = dump("-i", original,
               "-R", "bob@example.net",
               "-g", "550 no\\nX-Injected: yes\\n\\nContent-Type: text/html\\n\\n<b>x</b>",
               "-m", "mx.example.net").stdout
    msg = parse(raw)
    assert msg["X-Injected"] is None
    parts = msg.get_payload()
    assert len(parts) == 3
    for part in msg.walk():
        assert part["X-Injected"] is None
        assert part.get_content_type() != "text/html"
    r = groups(msg)[1]
    assert set(r.keys()) == {"Final-Recipient", "Action", "Status", "Remote-MTA",
                             "Diagnostic-Code", "Last-Attempt-Date"}
    assert field(r, "Diagnostic-Code") == (
        "smtp; 550 no X-Injected: yes Content-Type: text/html <b>x</b>")


def test_utf8_recipient(original):
    raw = dump("-i", original, "-R", "j\u00f6ran@example.net".encode(), "-s", "5.1.1").stdout
    msg = parse(raw)
    r = groups(msg)[1]
    assert r["Final-Recipient"] == "utf-8; j\\x{F6}ran@example.net"
    human = msg.get_payload()[0]
    assert human.get_content_charset() == "utf-8"
    assert "<j\u00f6ran@example.net>" in human.get_payload(decode=True).decode("utf-8")


def test_null_sender_gets_no_dsn(original):
    r = dump("-f", "", "-i", original, "-R", "bob@example.net", check=False)
    assert r.returncode == 1
    assert r.stdout == b""
