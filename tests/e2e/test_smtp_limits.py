"""Every limit of posternd from the first byte: each gets its exact reply,
and the session (or the daemon) goes on as it should."""
import time
import uuid

from pstlib import HOSTNAME, Client, dot_stuff, free_port, message

H = HOSTNAME


def one_listener():
    return [{"address": "127.0.0.1", "port": free_port(), "mode": "smtp", "starttls": False}]


def uid():
    return "l" + uuid.uuid4().hex[:16]


# -- line length (bytes including CRLF)

def test_line_of_exactly_line_length_is_accepted(daemon):
    d = daemon(limits={"line_length": 1036})
    c = d.connect()
    line = "NOOP " + "x" * (1036 - 2 - 5)
    assert len(line) + 2 == 1036
    assert c.cmd(line).line == "250 2.0.0 Ok"


def test_line_one_byte_too_long(daemon):
    d = daemon(limits={"line_length": 1036})
    c = d.connect()
    line = "NOOP " + "x" * (1037 - 2 - 5)
    assert c.cmd(line).line == "500 5.5.2 Line too long"


def test_very_long_line_gets_one_reply_and_session_goes_on(daemon):
    d = daemon(limits={"line_length": 1036})
    c = d.connect()
    c.ehlo()
    c.send("MAIL FROM:<" + "a" * 5000 + "@remote.test>\r\n")
    assert c.reply().line == "500 5.5.2 Line too long"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    assert c.silence(0.3) == b""


def test_endless_line_gets_one_reply(daemon):
    # 200 KB without CRLF: refused either at once or at the line's end, once
    d = daemon(limits={"line_length": 1036})
    c = d.connect()
    c.send("NOOP " + "x" * 200000)
    try:
        r = c.reply(timeout=1)
    except AssertionError:
        c.send(b"\r\n")
        r = c.reply()
    else:
        c.send(b"\r\n")
    assert r.line == "500 5.5.2 Line too long"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_bare_lf_in_command_line(mta):
    c = mta.connect()
    c.send(b"NOOP\n")
    assert c.reply().line == "500 5.5.2 Bare LF in command line"


# -- bad commands

def test_too_many_bad_commands_closes_with_421(daemon):
    d = daemon(limits={"bad_commands": 3})
    c = d.connect()
    for _ in range(3):
        assert c.cmd("FROB").line == "500 5.5.2 Command unrecognized"
    # the fourth goes past the limit: it gets the 421 in place of the 500,
    # and the server closes
    c.send(b"FROB\r\n")
    got = c.reply().line
    assert got == f"421 4.7.0 {H} Too many errors, closing connection", got
    assert c.closed(5)


def test_good_commands_do_not_count_as_bad(daemon):
    d = daemon(limits={"bad_commands": 3})
    c = d.connect()
    for _ in range(2):
        assert c.cmd("FROB").code == 500
        for _ in range(5):
            assert c.cmd("NOOP").code == 250
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


# -- recipients per message

def test_recipient_limit(daemon):
    d = daemon(limits={"recipients": 3})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    for rc in ("alice@example.test", "bob@example.test", "alice@localhost"):
        assert c.cmd(f"RCPT TO:<{rc}>").line == "250 2.1.5 Ok"
    assert c.cmd("RCPT TO:<bob@localhost>").line == "452 4.5.3 Too many recipients"
    assert c.cmd("DATA").code == 354
    s = uid()
    c.send(dot_stuff(message(s)) + b".\r\n")
    assert c.reply().queue_id
    d.maildir("alice").wait(2, match=s)
    d.maildir("bob").wait(1, match=s)
    time.sleep(0.3)
    assert d.maildir("bob").count(s) == 1


def test_recipient_limit_is_per_transaction(daemon):
    d = daemon(limits={"recipients": 1})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    assert c.cmd("RCPT TO:<bob@example.test>").line == "452 4.5.3 Too many recipients"
    assert c.cmd("RSET").code == 250
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<bob@example.test>").line == "250 2.1.5 Ok"


# -- message size

def test_size_parameter_above_limit(daemon):
    d = daemon(limits={"message_size": 10000})
    c = d.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test> SIZE=10001").line == \
        "552 5.3.4 Message size exceeds fixed limit"


def test_size_parameter_at_limit(daemon):
    d = daemon(limits={"message_size": 10000})
    c = d.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test> SIZE=10000").line == "250 2.1.0 Ok"


def test_data_above_limit(daemon):
    d = daemon(limits={"message_size": 10000})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    s = uid()
    body = ("y" * 70 + "\n") * 300  # ~21 KB
    c.send(dot_stuff(message(s, body=body)) + b".\r\n")
    assert c.reply().line == "552 5.3.4 Message size exceeds fixed limit"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    # the session can still send a message that fits
    s2 = uid()
    c.transaction("sender@remote.test", ["alice@example.test"], message(s2))
    d.maildir("alice").wait(1, match=s2)
    assert d.maildir("alice").count(s) == 0


def test_data_just_under_limit(daemon):
    d = daemon(limits={"message_size": 10000})
    c = d.connect()
    c.ehlo()
    s = uid()
    body = ("z" * 70 + "\n") * 100  # ~7 KB
    c.transaction("sender@remote.test", ["alice@example.test"], message(s, body=body))
    d.maildir("alice").wait(1, match=s)


def test_bdat_above_limit(daemon):
    d = daemon(limits={"message_size": 10000})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    data = dot_stuff(message(s, body=("y" * 70 + "\n") * 300))
    c.send(f"BDAT {len(data)} LAST\r\n".encode() + data)
    assert c.reply().line == "552 5.3.4 Message size exceeds fixed limit"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    time.sleep(0.3)
    assert d.maildir("alice").count(s) == 0


def test_bdat_chunks_adding_up_above_limit(daemon):
    d = daemon(limits={"message_size": 10000})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    chunk = b"x" * 78 + b"\r\n"
    replies = []
    for _ in range(2):  # 8000 bytes per chunk
        c.send(f"BDAT {len(chunk) * 80}\r\n".encode() + chunk * 80)
        replies.append(c.reply().line)
    c.send(b"BDAT 0 LAST\r\n")
    replies.append(c.reply().line)
    assert "552 5.3.4 Message size exceeds fixed limit" in replies, replies
    assert not any("queued as" in r for r in replies), replies
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


# -- timeouts

def test_command_timeout(daemon):
    d = daemon(timeouts={"command": 2})
    c = d.connect()
    t0 = time.monotonic()
    r = c.reply(timeout=6)
    waited = time.monotonic() - t0
    assert r.line == f"421 4.4.2 {H} Timeout, closing connection"
    assert 1.5 <= waited <= 5, waited
    assert c.closed(3)


def test_command_timeout_restarts_with_each_command(daemon):
    d = daemon(timeouts={"command": 2})
    c = d.connect()
    for _ in range(3):
        time.sleep(1)
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_data_timeout(daemon):
    d = daemon(timeouts={"command": 30, "data": 2})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: slow\r\n")
    r = c.reply(timeout=6)
    assert r.line == f"421 4.4.2 {H} Timeout, closing connection"
    assert c.closed(3)


# -- sessions

def test_session_limit(daemon):
    d = daemon(listeners=one_listener(), limits={"sessions": 2})
    a = d.connect()
    b = d.connect()
    c = d.connect(greet=False)
    assert c.reply().line == f"421 4.7.0 {H} Too many connections, try again later"
    assert c.closed(3)
    assert a.cmd("NOOP").code == 250 and b.cmd("NOOP").code == 250


def connect_eventually(d, timeout=3.0):
    """The daemon frees a slot when it has seen the close: retry a while."""
    deadline = time.monotonic() + timeout
    while True:
        c = d.connect(greet=False)
        r = c.reply()
        if r.code == 220 or time.monotonic() > deadline:
            return r
        c.close()
        time.sleep(0.1)


def test_session_limit_frees_slot_on_quit(daemon):
    d = daemon(listeners=one_listener(), limits={"sessions": 2})
    a = d.connect()
    d.connect()
    a.quit()
    assert connect_eventually(d).line == f"220 {H} ESMTP postern"


def test_per_ip_limit(daemon):
    d = daemon(listeners=one_listener(), limits={"sessions": 100, "sessions_per_ip": 2})
    d.connect()
    d.connect()
    c = d.connect(greet=False)
    assert c.reply().line == f"421 4.7.0 {H} Too many connections from your address"
    assert c.closed(3)


def test_per_ip_limit_does_not_affect_other_addresses(daemon):
    d = daemon(listeners=one_listener(), limits={"sessions": 100, "sessions_per_ip": 2})
    d.connect()
    d.connect()
    c = d.connect(source="127.0.0.2")
    assert c.cmd("NOOP").code == 250


def test_many_connections_then_limit_recovers(daemon):
    d = daemon(listeners=one_listener(), limits={"sessions": 5, "sessions_per_ip": 5})
    cs = [d.connect() for _ in range(5)]
    extra = Client(d.port())
    assert extra.reply().code == 421
    for c in cs:
        c.close()
    assert connect_eventually(d).line == f"220 {H} ESMTP postern"


# -- bad input never kills the session or the daemon

def test_nul_in_command_is_refused(mta):
    c = mta.connect()
    r = c.cmd("NOOP\x00x")
    assert r.code in (500, 501), r
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_binary_garbage_gets_500(mta):
    c = mta.connect()
    c.send(bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
    assert c.reply().code == 500
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_disconnect_in_the_middle_of_a_command(mta):
    c = mta.connect()
    c.send(b"MAIL FROM:<half")
    c.close()
    d = mta.connect()
    assert d.cmd("NOOP").line == "250 2.0.0 Ok"


def test_invalid_utf8_address_refused(mta):
    c = mta.connect()
    c.ehlo()
    c.send(b"MAIL FROM:<\xff\xfe@remote.test> SMTPUTF8\r\n")
    assert c.reply().line.startswith("501 5.1.7 ")


def test_every_way_a_session_ends_frees_its_slot(daemon, cert):
    from pstlib import client_tls_context
    d = daemon(limits={"sessions": 2, "sessions_per_ip": 2, "bad_commands": 1})

    def ends():
        c = d.connect()
        c.quit()  # QUIT
        c = d.connect()
        c.close()  # abrupt close
        c = Client(d.port("tls"))
        c.send(b"not TLS\r\n" * 3)  # failed implicit TLS handshake
        c.closed(3)
        c.close()
        c = d.connect()
        c.cmd("FROB")
        c.send(b"FROB\r\n")  # past bad_commands: 421 and close
        c.closed(3)
        c.close()
        c = d.connect()
        c.ehlo()
        c.cmd("STARTTLS")
        c.close()  # gone before the handshake
        c = d.connect()
        c.ehlo()
        c.cmd("STARTTLS")
        c.starttls(client_tls_context())
        c.close()  # gone after the handshake, without QUIT

    for _ in range(3):
        ends()
    # two sessions fit again
    a = connect_eventually(d)
    assert a.line == f"220 {H} ESMTP postern", a
    b = Client(d.port())
    assert b.reply().line == f"220 {H} ESMTP postern"
