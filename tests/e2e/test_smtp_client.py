"""The SMTP client (lib/core/smtpc + lib/io/smtp_client) against real
servers, through tests/interop/smtpc_driver (one delivery, one line of
JSON): smtp-sink with failure injection, Postfix peers of the rig with
each certificate variant and without STARTTLS, and small hand-written
servers (Python socket/ssl) that misbehave: they talk before we send,
never end a multi-line reply, drip it, send a huge EHLO reply, fail TLS
halfway or stay silent. Every bad server must end in a defined error with
a reason, within the timeout."""
import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

import pstlib

DRIVER = os.path.join(pstlib.build_dir(), "tests", "interop", "smtpc_driver")
TIMEOUT_MS = 2000


def message(tmp_path, subject, body=b"Hello.\r\n", extra=b""):
    p = tmp_path / f"msg-{uuid.uuid4().hex[:8]}.eml"
    p.write_bytes(b"From: sender@client.test\r\nTo: rcpt@example.test\r\nSubject: "
                  + subject.encode() + b"\r\n" + extra + b"\r\n" + body)
    return str(p)


def deliver(msg, *args, host=None, port=None, unix=None, rcpts=("alice@example.test",),
            sender="sender@client.test", timeout_ms=TIMEOUT_MS, limit=30):
    argv = [DRIVER, "--from", sender, "--msg", msg, "--ehlo", "client.test",
            "--timeout-ms", str(timeout_ms), "--connect-timeout-ms", str(timeout_ms)]
    if unix:
        argv += ["--unix", unix]
    else:
        argv += ["--host", host, "--port", str(port)]
    for r in rcpts:
        argv += ["--to", r]
    argv += list(args)
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, timeout=limit)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    res = json.loads(p.stdout)
    res["wall"] = elapsed
    return res


def to_peer(peer, msg, *args, **kw):
    return deliver(msg, *args, host=peer.endpoint.host, port=peer.endpoint.port, **kw)


# ------------------------------------------------------------ smtp-sink

def test_sink_delivers_two_recipients_with_dsn_and_dot_stuffing(rig, tmp_path):
    s = rig.sink("sink-ok.smtpc.test")
    m = message(tmp_path, "smtpc-sink", body=b".leading dot\r\n..two\r\nlast line")
    # --notify/--orcpt apply to the last --to (bob)
    r = to_peer(s, m, "--notify", "SUCCESS,FAILURE", "--orcpt", "rfc822;bob@example.test",
                "--ret", "HDRS", "--envid", "Q1", rcpts=("alice@example.test", "bob@example.test"))
    assert r["status"] == "ok" and r["code"] == 250, r
    assert r["stage"] == "after end of data"
    assert [x["status"] for x in r["rcpts"]] == ["ok", "ok"]
    assert r["ext"]["pipelining"] and r["ext"]["dsn"]
    (raw,) = s.wait(1, match="smtpc-sink")
    assert s.envelope(raw) == ("sender@client.test", ["alice@example.test", "bob@example.test"])
    head, body = raw.split(b"\n\n", 1)
    assert b"X-Mail-Args: <sender@client.test> RET=HDRS ENVID=Q1" in head
    assert b"X-Rcpt-Args: <alice@example.test>\n" in head
    assert (b"X-Rcpt-Args: <bob@example.test> NOTIFY=SUCCESS,FAILURE "
            b"ORCPT=rfc822;bob@example.test\n") in head
    # smtp-sink unstuffs: what it stored is the message as queued, with the
    # last line ended
    assert body.replace(b"\r\n", b"\n").startswith(b".leading dot\n..two\nlast line\n")


def test_sink_rcpt_refused_partly_and_wholly(rig, tmp_path):
    s = rig.sink("sink-rcpt.smtpc.test", hard=["RCPT"], hard_reply="550 5.1.1 No such user")
    r = to_peer(s, message(tmp_path, "smtpc-rcpt"), rcpts=("a@example.test", "b@example.test"))
    assert r["status"] == "perm" and r["stage"] == "after RCPT TO", r
    for x in r["rcpts"]:
        assert (x["status"], x["code"], x["enh"]) == ("perm", 550, "5.1.1"), x
        assert x["text"] == "550 5.1.1 No such user" and x["stage"] == "after RCPT TO"
    assert s.messages() == []


@pytest.mark.parametrize("kind,cmd,status,code,stage", [
    ("soft", "MAIL", "temp", 450, "after MAIL FROM"),
    ("hard", "MAIL", "perm", 500, "after MAIL FROM"),
    ("hard", "DATA", "perm", 500, "after DATA"),
    ("soft", ".", "temp", 450, "after end of data"),
    ("hard", ".", "perm", 500, "after end of data"),
    ("reply421", "EHLO", "temp", 421, "after EHLO"),
    ("reply421", "RCPT", "temp", 421, "after RCPT TO"),
    ("reply421", "CONNECT", "temp", 421, "in the greeting"),
])
def test_sink_failure_at_each_stage(rig, tmp_path, kind, cmd, status, code, stage):
    s = rig.sink(f"sink-{kind}-{len(cmd)}.smtpc.test", **{kind: [cmd]})
    r = to_peer(s, message(tmp_path, "smtpc-fail"))
    assert (r["status"], r["code"], r["stage"]) == (status, code, stage), r
    assert r["from_server"] and r["text"].startswith(str(code))
    assert r["rcpts"][0]["status"] == status


def test_sink_disconnect_is_a_temporary_failure(rig, tmp_path):
    s = rig.sink("sink-drop.smtpc.test", disconnect=["RCPT"])
    r = to_peer(s, message(tmp_path, "smtpc-drop"))
    assert r["status"] == "temp" and r["code"] == 0 and r["enh"] == "4.4.2", r
    assert r["text"] == "connection closed by the server"
    assert r["stage"] in ("after RCPT TO", "after MAIL FROM")
    assert r["host_failure"]


def test_connection_refused(tmp_path):
    port = pstlib.free_port()
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=port)
    assert (r["status"], r["stage"], r["enh"]) == ("temp", "connection", "4.4.1"), r
    assert "Connection refused" in r["text"] and r["host_failure"]
    assert r["rcpts"][0]["status"] == "temp"


def test_connect_timeout(tmp_path):
    # a listener whose accept queue is full: the kernel drops our SYN
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(f)
        time.sleep(0.2)
        r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=port, timeout_ms=1000)
    finally:
        for f in fillers:
            f.close()
        lst.close()
    assert (r["status"], r["stage"], r["enh"]) == ("temp", "connection", "4.4.1"), r
    assert r["text"] == f"connect to 127.0.0.1:{port}: timed out"
    assert r["wall"] < 3


def test_large_message_streams_unchanged(rig, tmp_path):
    # 3 MB of lines, every 7th starting with dots, sent in 64 KiB pieces
    lines = []
    for i in range(60000):
        lead = b"." * (i % 3 + 1) if i % 7 == 0 else b""
        lines.append(lead + b"line %06d " % i + b"x" * (i % 50))
    body = b"\r\n".join(lines) + b"\r\n"
    s = rig.sink("sink-big.smtpc.test")
    r = to_peer(s, message(tmp_path, "smtpc-big-stream", body=body))
    assert r["status"] == "ok", r
    (raw,) = s.wait(1, match="smtpc-big-stream", timeout=20)
    got = raw.split(b"\n\n", 1)[1].replace(b"\r\n", b"\n")
    assert got.startswith(body.replace(b"\r\n", b"\n"))


# ------------------------------------------------------------ Postfix peers

@pytest.fixture(scope="module")
def peers(rig):
    return {kind: rig.postfix(f"mx-{kind}.smtpc.test", tls=None if kind == "none" else kind)
            for kind in ("valid", "expired", "wrong-name", "self-signed", "none")}


@pytest.mark.parametrize("ctx", ["per-attempt", "shared"])
def test_postfix_starttls_verified(rig, peers, tmp_path, ctx):
    p = peers["valid"]
    subj = f"smtpc-valid-{ctx}"
    r = to_peer(p, message(tmp_path, subj), "--mx-name", p.hostname, "--ca",
                rig.cafile, "--verify", "--tls", "required",
                *(["--shared-ctx"] if ctx == "shared" else []))
    assert r["status"] == "ok", r
    t = r["tls"]
    assert t["used"] and t["verified"] and t["failure"] == "" and t["verify_error"] == "", t
    assert t["version"] in ("TLSv1.2", "TLSv1.3") and t["cipher"]
    (msg,) = p.wait(1, match=subj, rcpt="alice@example.test")
    assert b"with ESMTPS" in msg


@pytest.mark.parametrize("kind,failure,text", [
    ("expired", "certificate-expired", "certificate has expired"),
    ("wrong-name", "certificate-host-mismatch", "hostname mismatch"),
    ("self-signed", "certificate-not-trusted", "self-signed certificate"),
])
def test_postfix_unverified_certificate(rig, peers, tmp_path, kind, failure, text):
    p = peers[kind]
    subj = f"smtpc-{kind}"
    # opportunistic: recorded, delivered anyway
    r = to_peer(p, message(tmp_path, subj), "--mx-name", p.hostname, "--ca", rig.cafile)
    assert r["status"] == "ok", r
    t = r["tls"]
    assert t["used"] and not t["verified"] and t["failure"] == failure, t
    assert t["verify_error"] == text, t
    p.wait(1, match=subj)
    # verification demanded: a temporary failure, nothing sent
    r = to_peer(p, message(tmp_path, subj + "-enforce"), "--mx-name", p.hostname, "--ca",
                rig.cafile, "--verify", "--tls", "required")
    assert (r["status"], r["enh"], r["stage"]) == ("temp", "4.7.5", "in the TLS handshake"), r
    assert text in r["text"] and not r["retry_plaintext"] and r["host_failure"]
    time.sleep(0.5)
    assert p.messages() and not any(subj.encode() + b"-enforce" in m for m in p.messages())


def test_postfix_system_store_does_not_trust_the_rig_ca(peers, tmp_path):
    p = peers["valid"]
    r = to_peer(p, message(tmp_path, "smtpc-system-store"), "--mx-name", p.hostname)
    assert r["status"] == "ok", r
    assert r["tls"]["used"] and not r["tls"]["verified"]
    assert r["tls"]["failure"] == "certificate-not-trusted"


def test_postfix_without_starttls(rig, peers, tmp_path):
    p = peers["none"]
    r = to_peer(p, message(tmp_path, "smtpc-plain"), "--mx-name", p.hostname)
    assert r["status"] == "ok", r
    assert not r["tls"]["used"] and r["tls"]["failure"] == "starttls-not-supported"
    p.wait(1, match="smtpc-plain", rcpt="alice@example.test")
    r = to_peer(p, message(tmp_path, "smtpc-plain-required"), "--tls", "required")
    assert (r["status"], r["enh"], r["stage"]) == ("temp", "4.7.10", "after EHLO"), r
    assert r["text"] == "TLS is required and the server does not offer STARTTLS"
    assert r["tls"]["failure"] == "starttls-not-supported"


def test_postfix_one_recipient_refused(rig, tmp_path):
    p = rig.postfix("mx-refuse.smtpc.test", tls=None, main={
        "smtpd_recipient_restrictions":
            "check_recipient_access inline:{{nobody@example.test=550 5.1.1 no such user}}, "
            "permit"})
    r = to_peer(p, message(tmp_path, "smtpc-partial"),
                rcpts=("alice@example.test", "nobody@example.test", "bob@example.test"))
    assert r["status"] == "ok", r
    assert r["ext"]["pipelining"]
    got = [(x["status"], x["code"], x["enh"], x["stage"]) for x in r["rcpts"]]
    assert got == [("ok", 250, "2.0.0", "after end of data"),
                   ("perm", 550, "5.1.1", "after RCPT TO"),
                   ("ok", 250, "2.0.0", "after end of data")], r
    assert "no such user" in r["rcpts"][1]["text"]
    p.wait(1, match="smtpc-partial", rcpt="alice@example.test")
    p.wait(1, match="smtpc-partial", rcpt="bob@example.test")
    assert p.messages("nobody@example.test") == []


def test_postfix_size_limit_and_smtputf8(rig, tmp_path):
    p = rig.postfix("mx-small.smtpc.test", tls=None,
                    main={"message_size_limit": "2000", "smtputf8_enable": "no"})
    r = to_peer(p, message(tmp_path, "smtpc-big", body=b"x" * 5000 + b"\r\n"))
    assert (r["status"], r["code"], r["enh"]) == ("perm", 552, "5.3.4"), r
    assert r["stage"] == "before MAIL FROM" and not r["from_server"]
    r = to_peer(p, message(tmp_path, "smtpc-utf8"), rcpts=("j\u00f6rg@example.test",))
    assert (r["status"], r["enh"], r["stage"]) == ("perm", "5.6.7", "before MAIL FROM"), r
    assert "SMTPUTF8" in r["text"]


# ------------------------------------------------------------ hand-written servers

class Server:
    """One-connection-at-a-time TCP (or unix) server running handler(conn)
    on a thread; every socket is closed at stop()."""

    def __init__(self, handler, unix=None, family=socket.AF_INET):
        self.handler = handler
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix)
        else:
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.conns = []
        self.errors = []
        self.log = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            c.settimeout(10)
            self.conns.append(c)
            try:
                self.handler(self, c)
            except (OSError, ssl.SSLError):
                pass
            except Exception as e:  # noqa: BLE001  (reported by stop())
                self.errors.append(repr(e))
            finally:
                try:
                    c.close()
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(15)
        self.sock.close()
        assert not self.errors, self.errors


@pytest.fixture
def server():
    made = []

    def make(handler, **kw):
        s = Server(handler, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def readline(c, buf=bytearray()):
    """One CRLF line from c (buffer kept per connection by the caller)."""
    data = b""
    while not data.endswith(b"\n"):
        ch = c.recv(1)
        if not ch:
            raise OSError("closed")
        data += ch
    return data


def serve_session(srv, c, ehlo=b"250-bad.test\r\n250 PIPELINING\r\n", after_dot=b"250 ok\r\n",
                  greet=True):
    """A minimal honest SMTP server: greeting, EHLO, a pipelined
    transaction, QUIT. Records the commands in srv.log."""
    if greet:
        c.sendall(b"220 bad.test ESMTP\r\n")
    while True:
        line = readline(c)
        srv.log.append(line)
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            c.sendall(ehlo)
        elif cmd == b"DATA":
            c.sendall(b"354 go\r\n")
            body = b""
            while not body.endswith(b"\r\n.\r\n"):
                body += c.recv(65536)
            srv.log.append(body)
            c.sendall(after_dot)
        elif cmd == b"QUIT":
            c.sendall(b"221 bye\r\n")
            return
        else:
            c.sendall(b"250 ok\r\n")


def test_unix_socket_delivery(server, tmp_path):
    path = str(tmp_path / "smtp.sock")
    s = server(serve_session, unix=path)
    r = deliver(message(tmp_path, "smtpc-unix", body=b"a\r\n.\r\n"), unix=path)
    assert r["status"] == "ok" and r["peer"] == path, r
    assert s.log[-2].endswith(b"a\r\n..\r\n.\r\n")


def test_ipv6_delivery(server, tmp_path):
    s = server(serve_session, family=socket.AF_INET6)
    r = deliver(message(tmp_path, "smtpc-v6"), host="::1", port=s.port)
    assert r["status"] == "ok" and r["peer"] == f"[::1]:{s.port}", r
    assert s.log[0] == b"EHLO client.test\r\n"


def test_talks_before_we_send(server, tmp_path):
    def h(srv, c):
        # the greeting and an unasked answer to the EHLO to come
        c.sendall(b"220 bad.test\r\n250-bad.test\r\n250 PIPELINING\r\n")
        time.sleep(3)
    server_ = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=server_.port)
    assert (r["status"], r["enh"]) == ("temp", "4.5.0"), r
    assert r["text"].startswith("protocol error: server sent data when no reply was due: "
                                "'250-bad.test"), r
    assert r["wall"] < 2.5 and r["host_failure"]


def test_talks_before_the_greeting(server, tmp_path):
    def h(srv, c):
        c.sendall(b"hello there\r\n220 bad.test\r\n")
        time.sleep(3)
    s = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port)
    assert (r["status"], r["stage"]) == ("temp", "in the greeting"), r
    assert r["text"] == "protocol error: malformed reply line: 'hello there'"


def test_endless_multiline_reply(server, tmp_path):
    def h(srv, c):
        c.sendall(b"220 bad.test\r\n")
        readline(c)
        for i in range(100000):
            c.sendall(b"250-still going %d\r\n" % i)
    s = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port)
    assert (r["status"], r["stage"]) == ("temp", "after EHLO"), r
    assert r["text"].startswith("protocol error: reply has too many lines: '250-still going 200'")
    assert r["wall"] < 2.5


def test_dripping_multiline_reply_times_out(server, tmp_path):
    def h(srv, c):
        c.sendall(b"220 bad.test\r\n")
        readline(c)
        for i in range(100):
            c.sendall(b"250-slow %d\r\n" % i)
            time.sleep(0.2)
    s = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port, timeout_ms=1500)
    assert (r["status"], r["enh"], r["stage"]) == ("temp", "4.4.2", "after EHLO"), r
    assert r["text"] == "timeout (1500 ms) waiting for the reply after EHLO"
    assert 1.4 < r["wall"] < 3.5


@pytest.mark.parametrize("shape,reason", [
    ("one long line", "reply line longer than 4096 octets"),
    ("many lines", "reply has too many lines"),
    ("many octets", "reply longer than 65536 octets"),
])
def test_huge_ehlo_reply(server, tmp_path, shape, reason):
    if shape == "one long line":
        reply = b"250-bad.test\r\n250 " + b"X" * 200000 + b"\r\n"
    elif shape == "many lines":
        reply = b"250-bad.test\r\n" + b"250-KEYWORD\r\n" * 5000 + b"250 END\r\n"
    else:
        reply = b"250-bad.test\r\n" + (b"250-" + b"Y" * 4000 + b"\r\n") * 30 + b"250 END\r\n"

    def h(srv, c):
        c.sendall(b"220 bad.test\r\n")
        readline(c)
        try:
            c.sendall(reply)
        except OSError:
            pass
        time.sleep(1)
    s = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port)
    assert (r["status"], r["enh"], r["stage"]) == ("temp", "4.5.0", "after EHLO"), r
    assert reason in r["text"], r
    assert r["wall"] < 2.5


def test_silent_server_greeting_timeout(server, tmp_path):
    def h(srv, c):
        time.sleep(4)
    s = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port, timeout_ms=1000)
    assert (r["status"], r["stage"]) == ("temp", "in the greeting"), r
    assert r["text"] == "timeout (1 s) waiting for the reply in the greeting"
    assert 0.9 < r["wall"] < 3


def test_no_reply_after_data(server, tmp_path):
    def h(srv, c):
        serve_session(srv, c, after_dot=b"")
    s = server(h)
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port, timeout_ms=1000)
    assert (r["status"], r["stage"]) == ("temp", "after end of data"), r
    assert r["rcpts"][0]["status"] == "temp"


def data_then(action):
    """Greets, takes EHLO and the pipelined group, answers 354, then
    action(c): the message is never read."""
    def h(srv, c):
        c.sendall(b"220 bad.test\r\n")
        readline(c)
        c.sendall(b"250-bad.test\r\n250 PIPELINING\r\n")
        for _ in range(3):
            readline(c)
        c.sendall(b"250 ok\r\n250 ok\r\n354 go\r\n")
        action(c)
    return h


BIG = b"".join(b"line %07d with some text to fill the socket buffers\r\n" % i
               for i in range(200000))


def test_server_stops_reading_the_message(server, tmp_path):
    s = server(data_then(lambda c: time.sleep(5)))
    r = deliver(message(tmp_path, "x", body=BIG), host="127.0.0.1", port=s.port,
                timeout_ms=1000)
    assert (r["status"], r["enh"], r["stage"]) == ("temp", "4.4.2", "while sending data"), r
    assert r["text"] == "timeout while writing"
    assert r["wall"] < 4


def test_server_closes_during_the_message(server, tmp_path):
    # a write to the closed connection fails with EPIPE, not SIGPIPE
    def close(c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    s = server(data_then(close))
    r = deliver(message(tmp_path, "x", body=BIG), host="127.0.0.1", port=s.port)
    assert (r["status"], r["stage"]) == ("temp", "while sending data"), r
    assert r["text"].startswith("write failed: "), r


def test_tls_server_closes_during_the_message(server, server_ctx, rig, tmp_path):
    def h(srv, c):
        t = server_ctx.wrap_socket(c, server_side=True)
        data_then(lambda x: x.close())(srv, t)
    s = server(h)
    r = deliver(message(tmp_path, "x", body=BIG), "--implicit-tls", "--ca", rig.cafile,
                host="127.0.0.1", port=s.port)
    assert (r["status"], r["stage"]) == ("temp", "while sending data"), r
    assert r["text"].startswith("TLS write failed: "), r


def starttls_server(ctx, after):
    """Offers STARTTLS, answers 220, then after(srv, c) does the rest."""
    def h(srv, c):
        c.sendall(b"220 bad.test\r\n")
        readline(c)
        c.sendall(b"250-bad.test\r\n250 STARTTLS\r\n")
        line = readline(c)
        assert line.upper() == b"STARTTLS\r\n", line
        c.sendall(b"220 2.0.0 go ahead\r\n")
        after(srv, c)
    return h


def test_tls_fails_halfway_garbage(server, tmp_path):
    def after(srv, c):
        c.recv(65536)  # the ClientHello
        c.sendall(b"\x16\x03\x03\x00\x05garbage and then some")
        time.sleep(0.5)
    s = server(starttls_server(None, after))
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port)
    assert (r["status"], r["enh"], r["stage"]) == ("temp", "4.7.5", "in the TLS handshake"), r
    assert r["text"].startswith("TLS handshake failed: TLS handshake")
    assert r["retry_plaintext"] and r["tls"]["handshake_failed"] and r["host_failure"]
    assert r["tls"]["failure"] == "validation-failure"


def test_tls_fails_halfway_close(server, tmp_path):
    def after(srv, c):
        c.recv(65536)
        c.shutdown(socket.SHUT_RDWR)
    s = server(starttls_server(None, after))
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port)
    assert (r["status"], r["stage"]) == ("temp", "in the TLS handshake"), r
    assert r["retry_plaintext"]
    assert r["wall"] < 2.5


def test_tls_handshake_stalls(server, tmp_path):
    def after(srv, c):
        c.recv(65536)
        time.sleep(4)
    s = server(starttls_server(None, after))
    r = deliver(message(tmp_path, "x"), host="127.0.0.1", port=s.port, timeout_ms=1000)
    assert (r["status"], r["stage"]) == ("temp", "in the TLS handshake"), r
    assert r["text"] == "TLS handshake failed: TLS handshake: timeout"
    assert r["wall"] < 3


@pytest.fixture(scope="module")
def server_ctx(rig):
    cert = rig.cert("bad.smtpc.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.chain if os.path.exists(cert.chain) else cert.cert, cert.key)
    ctx.sni_seen = []
    ctx.sni_callback = lambda sock, name, c: ctx.sni_seen.append(name)
    return ctx


def test_plaintext_injected_after_starttls_is_ignored(server, server_ctx, rig, tmp_path):
    def h(srv, c):
        c.sendall(b"220 bad.test\r\n")
        readline(c)
        c.sendall(b"250-bad.test\r\n250 STARTTLS\r\n")
        readline(c)
        # the 220 and a forged EHLO reply in one segment
        c.sendall(b"220 go\r\n250-forged\r\n250 AUTH PLAIN\r\n")
        t = server_ctx.wrap_socket(c, server_side=True)
        serve_session(srv, t, ehlo=b"250-bad.test\r\n250 PIPELINING\r\n", greet=False)
    s = server(h)
    r = deliver(message(tmp_path, "smtpc-inject"), "--ca", rig.cafile, "--mx-name",
                "bad.smtpc.test", host="127.0.0.1", port=s.port)
    # dropped unread, never taken as the EHLO reply
    assert r["status"] == "ok", r
    assert r["discarded"] == len(b"250-forged\r\n250 AUTH PLAIN\r\n")
    assert r["tls"]["used"] and r["tls"]["verified"] and not r["ext"]["auth"]
    # the server logs what came over TLS: EHLO again, then the mail
    assert [x[:4] for x in s.log[:2]] == [b"EHLO", b"MAIL"]


def test_implicit_tls_and_auth_plain(server, server_ctx, rig, tmp_path):
    seen = {}

    def h(srv, c):
        t = server_ctx.wrap_socket(c, server_side=True)
        t.sendall(b"220 bad.test\r\n")
        readline(t)
        t.sendall(b"250-bad.test\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n")
        line = readline(t)
        seen["auth"] = line
        t.sendall(b"235 2.7.0 ok\r\n")
        serve_session_rest(srv, t)

    def serve_session_rest(srv, t):
        while True:
            line = readline(t)
            srv.log.append(line)
            if line.startswith(b"DATA"):
                t.sendall(b"354 go\r\n")
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    body += t.recv(65536)
                t.sendall(b"250 2.0.0 ok\r\n")
            elif line.startswith(b"QUIT"):
                t.sendall(b"221 bye\r\n")
                return
            else:
                t.sendall(b"250 ok\r\n")
    s = server(h)
    r = deliver(message(tmp_path, "smtpc-465"), "--implicit-tls", "--ca", rig.cafile,
                "--mx-name", "bad.smtpc.test", "--verify", "--user", "joe", "--pass", "s3cr\u00eat",
                host="127.0.0.1", port=s.port)
    assert r["status"] == "ok" and r["auth"], r
    assert r["tls"]["used"] and r["tls"]["verified"]
    kind, b64 = seen["auth"].split()[1:3]
    assert kind == b"PLAIN"
    assert base64.b64decode(b64) == b"\0joe\0" + "s3cr\u00eat".encode()
    # SNI carries the MX name (RFC 6066 3)
    assert server_ctx.sni_seen[-1] == "bad.smtpc.test"
