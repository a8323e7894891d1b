"""STARTTLS (RFC 3207) and implicit TLS, with Python's ssl as the client."""
import ssl
import time
import uuid
import warnings

import pytest

from pstlib import HOSTNAME, Client, client_tls_context, free_port, header_block, message

H = HOSTNAME
EHLO_TLS = [f"250-{H}", "250-PIPELINING", "250-SIZE 26214400", "250-8BITMIME",
            "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250 DSN"]


def uid():
    return "x" + uuid.uuid4().hex[:16]


def upgraded(d, cert):
    c = d.connect()
    c.ehlo()
    assert c.cmd("STARTTLS").line == "220 2.0.0 Ready to start TLS"
    c.starttls(client_tls_context(cert[0]))
    return c


def test_starttls_upgrade_verifies_our_certificate(mta, cert):
    c = upgraded(mta, cert)
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert c.sock.getpeercert()["subject"] == ((("commonName", H),),)


def test_ehlo_after_starttls_no_longer_offers_it(mta, cert):
    c = upgraded(mta, cert)
    assert c.cmd("EHLO client.test").lines == EHLO_TLS


def test_transaction_over_starttls_marked_esmtps(mta, cert):
    c = upgraded(mta, cert)
    c.ehlo()
    s = uid()
    c.transaction("sender@remote.test", ["alice@example.test"], message(s))
    assert c.quit().line == "221 2.0.0 Bye"
    (raw,) = mta.maildir("alice").wait(1, match=s)
    recv = [h for h in header_block(raw) if h.startswith("Received: ")][0]
    assert "with ESMTPS" in recv, recv


def test_starttls_injection_rset_is_not_answered(mta, cert):
    c = mta.connect()
    c.ehlo()
    c.send(b"STARTTLS\r\nRSET\r\n")
    assert c.reply().lines == ["220 2.0.0 Ready to start TLS"]
    c.starttls(client_tls_context(cert[0]))  # fails on plaintext after the 220
    # the injected RSET must not be answered inside TLS either
    assert c.silence(1.0) == b""
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    assert c.silence(0.3) == b""


def test_starttls_injection_commands_are_discarded(mta, cert):
    c = mta.connect()
    c.ehlo()
    c.send(b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@remote.test>\r\n")
    assert c.reply().lines == ["220 2.0.0 Ready to start TLS"]
    c.starttls(client_tls_context(cert[0]))
    assert c.silence(1.0) == b""
    # had the injected EHLO been executed, MAIL would be 250 or "already specified"
    assert c.cmd("MAIL FROM:<sender@remote.test>").line == "503 5.5.1 Send HELO/EHLO first"


def test_state_reset_after_starttls_needs_ehlo_again(mta, cert):
    c = upgraded(mta, cert)
    assert c.cmd("MAIL FROM:<sender@remote.test>").line == "503 5.5.1 Send HELO/EHLO first"
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test>").line == "250 2.1.0 Ok"


def test_transaction_before_starttls_is_forgotten(mta, cert):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test>").code == 250
    assert c.cmd("STARTTLS").code == 220
    c.starttls(client_tls_context(cert[0]))
    c.ehlo()
    assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL command"


def test_second_starttls_refused(mta, cert):
    c = upgraded(mta, cert)
    c.ehlo()
    assert c.cmd("STARTTLS").line == "503 5.5.1 TLS already active"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_starttls_before_ehlo(mta, cert):
    # RFC 3207 does not require EHLO first; either way, the answer is exact
    c = mta.connect()
    r = c.cmd("STARTTLS")
    assert r.line in ("220 2.0.0 Ready to start TLS", "503 5.5.1 Send HELO/EHLO first")


def test_starttls_with_parameter_is_a_syntax_error(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("STARTTLS now").line.startswith("501 5.5.4 ")


def test_failed_handshake_does_not_kill_the_daemon(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.send(b"this is not a TLS ClientHello\r\n" * 4)
    assert c.closed(5)
    d2 = mta.connect()
    assert d2.cmd("NOOP").code == 250


def test_tls_below_1_2_refused(mta):
    ctx = client_tls_context()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    c = mta.connect()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    with pytest.raises(ssl.SSLError) as e:
        c.starttls(ctx)
    # the server refused the version (not our client failing to offer one)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value), e.value


# -- implicit TLS

def test_implicit_tls_greeting(mta, cert):
    c = Client(mta.port("tls"), tls_context=client_tls_context(cert[0]))
    assert c.greeting().lines == [f"220 {H} ESMTP postern"]


def test_implicit_tls_ehlo_has_no_starttls(mta):
    c = mta.connect("tls")
    assert c.cmd("EHLO client.test").lines == EHLO_TLS


def test_implicit_tls_starttls_refused(mta):
    c = mta.connect("tls")
    c.ehlo()
    assert c.cmd("STARTTLS").line == "503 5.5.1 TLS already active"


def test_implicit_tls_transaction(mta):
    c = mta.connect("tls")
    c.ehlo()
    s = uid()
    c.transaction("sender@remote.test", ["bob@example.test"], message(s, to="bob@example.test"))
    c.quit()
    (raw,) = mta.maildir("bob").wait(1, match=s)
    recv = [h for h in header_block(raw) if h.startswith("Received: ")][0]
    assert "with ESMTPS" in recv, recv


def test_plaintext_on_implicit_tls_port_is_dropped(mta):
    c = Client(mta.port("tls"))
    c.send(b"EHLO client.test\r\n")
    assert c.closed(mta.conf["timeouts"]["tls_handshake"] + 2)
    assert mta.connect().cmd("NOOP").code == 250


# -- no certificate

def test_starttls_without_certificate(daemon):
    d = daemon(tls=False, listeners=[{"address": "127.0.0.1", "port": free_port(),
                                      "mode": "smtp", "starttls": False}])
    c = d.connect()
    ehlo = c.cmd("EHLO client.test")
    assert not any("STARTTLS" in l for l in ehlo.lines)
    assert c.cmd("STARTTLS").line == "454 4.7.0 TLS not available"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_generated_certificate(daemon, tmp_path):
    cert, key = str(tmp_path / "gen-cert.pem"), str(tmp_path / "gen-key.pem")
    d = daemon(tls={"certificate": cert, "key": key, "generate": True})
    c = d.connect()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.starttls(client_tls_context())
    c.ehlo()
    assert c.cmd("NOOP").code == 250


# -- handshake timeout

def test_implicit_tls_handshake_timeout(daemon):
    d = daemon(timeouts={"tls_handshake": 2})
    c = Client(d.port("tls"))
    t0 = time.monotonic()
    assert c.closed(6)
    assert time.monotonic() - t0 >= 1.5


def test_starttls_handshake_timeout(daemon):
    d = daemon(timeouts={"tls_handshake": 2})
    c = d.connect()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    t0 = time.monotonic()
    assert c.closed(6)
    assert time.monotonic() - t0 >= 1.5


def test_pipelined_end_of_data_and_quit_over_tls(mta, cert):
    # what Postfix's smtp client does: ".\r\nQUIT\r\n" in one write
    c = upgraded(mta, cert)
    c.ehlo()
    s = uid()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    from pstlib import dot_stuff
    c.send(dot_stuff(message(s)) + b".\r\nQUIT\r\n")
    assert c.reply().queue_id
    assert c.reply().line == "221 2.0.0 Bye"
    mta.maildir("alice").wait(1, match=s)


def test_quit_over_tls_gets_221(mta, cert):
    c = upgraded(mta, cert)
    assert c.cmd("QUIT").line == "221 2.0.0 Bye"
    assert c.closed(5)


def test_quit_over_implicit_tls_gets_221(mta):
    c = mta.connect("tls")
    assert c.cmd("QUIT").line == "221 2.0.0 Bye"
