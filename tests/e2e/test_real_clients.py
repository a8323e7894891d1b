"""Real SMTP clients as judges: swaks, Python's smtplib, openssl s_client.
Each must get a message into the Maildir."""
import select
import smtplib
import subprocess
import tempfile
import time
import uuid

from pstlib import HOSTNAME, client_tls_context, header_block


def uid():
    return "r" + uuid.uuid4().hex[:16]


def swaks(d, *extra, to="alice@example.test", port=None, subject=None):
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port or d.port()),
                        "--helo", "client.test", "--from", "sender@remote.test", "--to", to,
                        "--header", f"Subject: {subject}", "--body", "Sent by swaks.\n",
                        "--timeout", "10", *extra],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"swaks exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def received_line(raw):
    return [h for h in header_block(raw) if h.startswith("Received: ")][0]


def test_swaks_plain(mta):
    s = uid()
    out = swaks(mta, subject=s)
    assert "queued as" in out
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert b"Sent by swaks." in raw


def test_swaks_starttls(mta):
    s = uid()
    out = swaks(mta, "--tls", subject=s)
    assert "STARTTLS" in out
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert "with ESMTPS" in received_line(raw)


def test_swaks_implicit_tls(mta):
    s = uid()
    swaks(mta, "--tlsc", port=mta.port("tls"), subject=s)
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert "with ESMTPS" in received_line(raw)


def test_swaks_pipelining(mta):
    s = uid()
    swaks(mta, "--pipeline", subject=s)
    mta.maildir("alice").wait(1, match=s)


def test_swaks_8bit_body(mta):
    s = uid()
    swaks(mta, "--body", "Gr\u00fc\u00dfe\n", subject=s)
    mta.maildir("alice").wait(1, match=s)


def ca_only(cert):
    """smtplib passes the address it connects to (127.0.0.1) as the TLS
    server name: verify the chain against our CA, not the name."""
    ctx = client_tls_context(cert[0])
    ctx.check_hostname = False
    return ctx


def _msg(s):
    return (f"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: {s}\r\n"
            f"\r\nSent by smtplib.\r\n.leading dot\r\n")


def test_smtplib_starttls(mta, cert):
    s = uid()
    with smtplib.SMTP("127.0.0.1", mta.port(), local_hostname="client.test", timeout=10) as c:
        code, _ = c.ehlo()
        assert code == 250 and c.has_extn("starttls") and c.has_extn("pipelining")
        assert c.starttls(context=ca_only(cert))[0] == 220
        c.ehlo()
        assert not c.has_extn("starttls")
        refused = c.sendmail("sender@remote.test", ["alice@example.test", "bob@localhost"], _msg(s))
        assert refused == {}
    (raw,) = mta.maildir("alice").wait(1, match=s)
    mta.maildir("bob").wait(1, match=s)
    assert b"\n.leading dot\n" in raw
    assert "with ESMTPS" in received_line(raw)


def test_smtplib_implicit_tls(mta, cert):
    s = uid()
    with smtplib.SMTP_SSL("127.0.0.1", mta.port("tls"), local_hostname="client.test",
                          context=ca_only(cert), timeout=10) as c:
        c.sendmail("sender@remote.test", ["alice@example.test"], _msg(s))
    mta.maildir("alice").wait(1, match=s)


def test_smtplib_refused_recipient_raises(mta):
    with smtplib.SMTP("127.0.0.1", mta.port(), local_hostname="client.test", timeout=10) as c:
        try:
            c.sendmail("sender@remote.test", ["nosuch@example.test"], _msg(uid()))
        except smtplib.SMTPRecipientsRefused as e:
            assert e.recipients["nosuch@example.test"] == (550, b"5.1.1 User unknown")
        else:
            raise AssertionError("recipient not refused")


def test_smtplib_size_refused(daemon):
    d = daemon(limits={"message_size": 2000})
    with smtplib.SMTP("127.0.0.1", d.port(), local_hostname="client.test", timeout=10) as c:
        c.ehlo()
        assert c.esmtp_features["size"] == "2000"
        try:
            c.sendmail("sender@remote.test", ["alice@example.test"], _msg(uid()) + "x" * 4000)
        except smtplib.SMTPSenderRefused as e:
            assert e.smtp_code == 552 and e.smtp_error == b"5.3.4 Message size exceeds fixed limit"
        else:
            raise AssertionError("message not refused")


class SClient:
    """openssl s_client driven line by line."""

    def __init__(self, args):
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(["openssl", "s_client", *args, "-quiet", "-crlf"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err)
        self.buf = b""

    def reply(self, timeout=10):
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                    raise AssertionError(f"s_client: no reply; got {lines!r} {self.buf!r}; "
                                         f"stderr {self.stderr()}")
                chunk = self.p.stdout.read1(4096)
                if not chunk:
                    raise AssertionError(f"s_client ended; got {lines!r}; stderr {self.stderr()}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode()
            lines.append(line)
            if len(line) >= 4 and line[3] == " ":
                return lines

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def cmd(self, line):
        self.send(line + "\n")
        return self.reply()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.p.poll() is not None:
            return
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def _s_client_transaction(mta, sc, s):
    assert sc.cmd("EHLO client.test")[0] == f"250-{HOSTNAME}"
    assert sc.cmd("MAIL FROM:<sender@remote.test>") == ["250 2.1.0 Ok"]
    assert sc.cmd("RCPT TO:<alice@example.test>") == ["250 2.1.5 Ok"]
    assert sc.cmd("DATA")[0].startswith("354 ")
    sc.send(f"Subject: {s}\n\nSent by openssl s_client.\n.\n")
    assert sc.reply()[0].startswith("250 2.0.0 Ok: queued as ")
    assert sc.cmd("QUIT") == ["221 2.0.0 Bye"]
    sc.close()
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert "with ESMTPS" in received_line(raw)


def test_openssl_s_client_starttls(mta, cert):
    with SClient(["-starttls", "smtp", "-connect", f"127.0.0.1:{mta.port()}",
                  "-servername", HOSTNAME, "-CAfile", cert[0], "-verify_return_error"]) as sc:
        # s_client consumed the greeting, EHLO and the 220 itself
        _s_client_transaction(mta, sc, uid())


def test_openssl_s_client_implicit_tls(mta, cert):
    with SClient(["-connect", f"127.0.0.1:{mta.port('tls')}", "-servername", HOSTNAME,
                  "-CAfile", cert[0], "-verify_return_error"]) as sc:
        assert sc.reply() == [f"220 {HOSTNAME} ESMTP postern"]
        _s_client_transaction(mta, sc, uid())
