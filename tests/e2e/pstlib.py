"""pstlib - helpers for postern's end-to-end tests (and bench/smtp-inbound).

Everything here talks to real processes on loopback:

  * Daemon      writes a posternd configuration, starts posternd, waits for
                its ports, stops it and checks its stderr for sanitizer
                reports;
  * Client      a raw SMTP client: explicit bytes out, one complete
                (possibly multi-line) reply in, each with a timeout;
  * Maildir     reads what was delivered;
  * Postfix     a private Postfix instance (own config, queue and data
                directories) on its own loopback port (tests/rig/mta.py);
  * helpers     free ports, a self-signed certificate, the postern CLI.

Runs under Debian's /usr/bin/python3 with the standard library and the
rig package (tests/rig).
"""
import atexit
import copy
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(ROOT, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
from rig import mta as _rig_mta  # noqa: E402
from rig.proc import descendants  # noqa: E402,F401  (bench/smtp-inbound uses it)
HOSTNAME = "mx.test"
QUEUE_ID_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{24})$")
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")

# Every process started here, so that nothing survives the test run even
# when a fixture's teardown never ran.
_live = set()


def _kill_leftovers():
    for p in list(_live):
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_leftovers)


def build_dir():
    return os.environ.get("POSTERN_BUILD") or os.path.join(ROOT, "build-asan")


def posternd_bin():
    return os.path.join(build_dir(), "src", "posternd", "posternd")


def postern_bin():
    return os.path.join(build_dir(), "src", "postern", "postern")


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bind to 0 and read it back)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def make_cert(directory, cn=HOSTNAME):
    """Self-signed RSA certificate for cn; returns (cert_path, key_path)."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
                    "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def client_tls_context(cafile=None):
    """A TLS client context that verifies mx.test against cafile (our test
    certificate), or verifies nothing when cafile is None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------- config

def _render(value, indent):
    pad = "  " * indent
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**31 else f"{value}L"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        inner = "".join(f"{pad}  {k} = {_render(v, indent + 1)};\n"
                        for k, v in value.items() if v is not None)
        return "{\n" + inner + pad + "}"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, dict) for v in value):
            items = ",\n".join(f"{pad}  {_render(v, indent + 1)}" for v in value)
            return "(\n" + items + "\n" + pad + ")"
        return "[ " + ", ".join(_render(v, indent) for v in value) + " ]"
    raise TypeError(f"cannot render {value!r}")


def render_config(conf):
    """libconfig text for a dict (None values are left out)."""
    return "".join(f"{k} = {_render(v, 0)};\n" for k, v in conf.items() if v is not None)


def merge(base, over):
    """Deep merge: dicts merge, anything else replaces; None deletes."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def default_config(workdir, cert=None, key=None):
    """The configuration the tests start from: one plaintext listener with
    STARTTLS and one implicit-TLS listener on free ports."""
    conf = {
        "hostname": HOSTNAME,
        "spool": os.path.join(workdir, "spool"),
        "mail_root": os.path.join(workdir, "mail"),
        "log": {"target": "stderr", "debug": False},
        "tls": {"certificate": cert, "key": key, "generate": False} if cert else None,
        "listeners": [
            {"address": "127.0.0.1", "port": free_port(), "mode": "smtp", "starttls": bool(cert)},
        ],
        "domains": ["example.test", "localhost"],
        "users": [{"name": "alice"}, {"name": "bob"}],
        "postmaster": "alice",
        "aliases": [{"from": "abuse", "to": "alice"}, {"from": "info@example.test", "to": "bob"}],
        "limits": {"message_size": 26214400, "recipients": 100, "line_length": 2048,
                   "bad_commands": 20, "sessions": 1000, "sessions_per_ip": 50,
                   "bare_eol": "reject"},
        "timeouts": {"command": 30, "data": 30, "tls_handshake": 10,
                     "shutdown_grace": 3, "retry": 1},
        # SPF and DMARC ask DNS for every message: tests that want them
        # turn them on with the rig's resolver (dns.server)
        "spf": {"verify": False},
        "dmarc": {"verify": False},
    }
    if cert:
        conf["listeners"].append({"address": "127.0.0.1", "port": free_port(), "mode": "tls"})
    return conf


# ---------------------------------------------------------------- client

class Reply:
    """One SMTP reply: code (int) and its lines without CRLF."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    @property
    def line(self):
        """The last (for single-line replies: the only) line."""
        return self.lines[-1]

    @property
    def queue_id(self):
        m = QUEUE_ID_RE.match(self.line)
        return m.group(1) if m else None

    def __repr__(self):
        return "Reply(" + " | ".join(self.lines) + ")"

    def __str__(self):
        return "\n".join(self.lines)


class ProtocolError(AssertionError):
    pass


class Client:
    """A raw SMTP client: send explicit bytes, read one complete reply."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, source=None, tls_context=None,
                 server_hostname=HOSTNAME):
        self.timeout = timeout
        self.buf = b""
        self.transcript = []
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=server_hostname)

    # -- bytes
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transcript.append(("C", data))
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def reply(self, timeout=None):
        """Reads one complete reply (all continuation lines and the last)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                try:
                    self._fill(deadline)
                except (socket.timeout, ConnectionError) as e:
                    got = lines + ([self.buf.decode(errors="replace")] if self.buf else [])
                    raise ProtocolError(f"{e} waiting for a reply; got so far {got!r}; "
                                        f"transcript {self.show()}") from None
            raw, self.buf = self.buf.split(b"\r\n", 1)
            line = raw.decode("utf-8", errors="replace")
            self.transcript.append(("S", raw + b"\r\n"))
            if not re.match(r"^[2-5]\d\d([ -]|$)", line):
                raise ProtocolError(f"malformed reply line {line!r}; transcript {self.show()}")
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        """Sends one command line (CRLF added) and returns its reply."""
        self.send(line + "\r\n")
        return self.reply(timeout)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def greeting(self):
        return self.reply()

    def ehlo(self, name="client.test"):
        r = self.cmd(f"EHLO {name}")
        if r.code != 250:
            raise ProtocolError(f"EHLO refused: {r}")
        return r

    def silence(self, seconds):
        """Bytes the server sent within `seconds` (b"" when it stayed quiet).
        Does not fail on close; returns what came before it."""
        got = self.buf
        self.buf = b""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        except (ConnectionError, OSError):
            pass
        return got

    def closed(self, timeout=None):
        """True when the server closes the connection within timeout (any
        bytes received before the close are discarded)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except socket.timeout:
            return False
        except (ConnectionError, OSError):
            return True
        return False

    def starttls(self, context, server_hostname=HOSTNAME):
        """Wraps the socket in TLS (after the 220 to STARTTLS was read).
        Fails if the server sent anything after the 220 in plaintext."""
        if self.buf:
            raise ProtocolError(f"plaintext bytes after the 220 before the handshake: {self.buf!r}")
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    # -- conveniences for a whole transaction
    def transaction(self, sender, rcpts, body, expect_queued=True):
        """MAIL, RCPT..., DATA, body (dot-stuffed here), end. Returns the
        final reply."""
        r = self.cmd(f"MAIL FROM:<{sender}>")
        if r.code != 250:
            raise ProtocolError(f"MAIL refused: {r}")
        for rc in rcpts:
            r = self.cmd(f"RCPT TO:<{rc}>")
            if r.code != 250:
                raise ProtocolError(f"RCPT {rc} refused: {r}")
        r = self.cmd("DATA")
        if r.code != 354:
            raise ProtocolError(f"DATA refused: {r}")
        self.send(dot_stuff(body) + b".\r\n")
        r = self.reply()
        if expect_queued and r.queue_id is None:
            raise ProtocolError(f"message not queued: {r}")
        return r

    def quit(self):
        try:
            return self.cmd("QUIT")
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def show(self):
        return "".join(f"\n  {who}: {data!r}" for who, data in self.transcript[-30:])


def dot_stuff(body):
    """CRLF-terminated, dot-stuffed data for DATA (without the final dot)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


def message(subject, body="Hello.\n", sender="sender@remote.test", to="alice@example.test",
            extra=""):
    """A small RFC 5322 message (str, LF line ends: dot_stuff() makes CRLF)."""
    return (f"From: <{sender}>\nTo: <{to}>\nSubject: {subject}\n"
            f"Message-ID: <{subject}@remote.test>\n{extra}\n{body}")


# ---------------------------------------------------------------- maildir

# The Maildir reader is the rig's (new/ and cur/, wait, count, parsed).
Maildir = _rig_mta.Maildir


def header_block(raw):
    """The header lines of a delivered message (LF line ends), unfolded."""
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", errors="replace")
    return re.sub(r"\n[ \t]+", " ", head).split("\n")


def body_of(raw):
    return raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else b""


# ---------------------------------------------------------------- daemon

class Daemon:
    """posternd running on a configuration written into workdir."""

    def __init__(self, workdir, conf):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.conf = conf
        self.config_path = os.path.join(workdir, "postern.conf")
        self.stderr_path = os.path.join(workdir, "posternd.stderr")
        self.proc = None
        self.clients = []
        self.killed_by_test = False
        self.terminating = False
        self.ready = False
        self.write_config(conf)

    # -- configuration
    def write_config(self, conf=None, text=None):
        if conf is not None:
            self.conf = conf
        with open(self.config_path + ".new", "w") as f:
            f.write(text if text is not None else render_config(self.conf))
        os.replace(self.config_path + ".new", self.config_path)

    @property
    def hostname(self):
        return self.conf["hostname"]

    def port(self, mode="smtp"):
        for ln in self.conf.get("listeners", []):
            if ln.get("mode", "smtp") == mode and "port" in ln:
                return ln["port"]
        raise KeyError(f"no {mode} listener")

    @property
    def spool(self):
        return self.conf["spool"]

    @property
    def mail_root(self):
        return self.conf["mail_root"]

    def maildir(self, user):
        return Maildir(os.path.join(self.mail_root, user))

    # -- process
    def start(self, wait=True, timeout=10.0, args=None):
        if not os.access(posternd_bin(), os.X_OK):
            raise AssertionError(f"{posternd_bin()} is not built")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._stderr = open(self.stderr_path, "ab")
        self._stderr_start = self._stderr.tell()
        self.killed_by_test = False
        self.terminating = False
        self.ready = False
        self.proc = subprocess.Popen([posternd_bin()] + (args or ["-c", self.config_path]),
                                     stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, cwd=self.workdir, env=env)
        _live.add(self.proc)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        for ln in self.conf.get("listeners", []):
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"posternd exited with {self.proc.returncode} while "
                                         f"starting; stderr:\n{self.stderr()}")
                try:
                    if "path" in ln:  # a local (unix socket) listener
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.settimeout(0.5)
                        try:
                            s.connect(ln["path"])
                        except OSError:
                            s.close()
                            raise
                    else:
                        s = socket.create_connection((ln["address"], ln["port"]), timeout=0.5)
                except OSError:
                    if time.monotonic() > deadline:
                        where = ln.get("path") or f"{ln.get('address')}:{ln.get('port')}"
                        raise AssertionError(f"posternd does not accept on {where} after "
                                             f"{timeout}s; stderr:\n{self.stderr()}")
                    time.sleep(0.02)
                    continue
                self._probe_close(s, ln.get("mode") in ("tls", "submissions"))
                break
        self.ready = True

    def _probe_close(self, s, tls):
        """Ends a readiness probe politely (greeting, QUIT, EOF) so that it
        does not count against session limits afterwards."""
        try:
            s.settimeout(2)
            if tls:
                s = client_tls_context().wrap_socket(s, server_hostname=HOSTNAME)
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return
                buf += chunk
            s.sendall(b"QUIT\r\n")
            while s.recv(4096):
                pass
        except (OSError, ssl.SSLError):
            pass
        finally:
            s.close()

    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.terminating = True
        self.proc.send_signal(sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM and wait; SIGKILL after timeout. Returns the exit status,
        or None when it had to be killed."""
        if self.proc is None:
            return None
        for c in self.clients:
            c.close()
        self.clients = []
        rc = self.proc.poll()
        if rc is None:
            if not self.terminating:  # a second SIGTERM may mean "now"
                self.proc.send_signal(signal.SIGTERM)
            grace = self.conf.get("timeouts", {}).get("shutdown_grace", 30)
            rc = self.wait_exit(timeout if timeout is not None else grace + 10)
            if rc is None:
                self.kill()
        self._finish()
        return rc

    def kill(self):
        """SIGKILL, like a crash."""
        self.killed_by_test = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._finish()

    def _finish(self):
        _live.discard(self.proc)
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None

    def restart(self, **kw):
        self.stop()
        return self.start(**kw)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=5.0, since=0):
        """Waits until stderr (from offset `since`) matches regex pattern."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr()[since:]
            m = re.search(pattern, text)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout}s; "
                                     f"stderr:\n{text[-4000:]}")
            time.sleep(0.05)

    def sanitizer_reports(self):
        text = self.stderr()
        return [m for m in SANITIZER_MARKS if m in text]

    # -- clients
    def connect(self, mode="smtp", greet=True, **kw):
        """A Client on the listener of the given mode ("smtp" or "tls"),
        with the greeting already read and checked when greet is set."""
        if mode == "tls" and "tls_context" not in kw:
            kw["tls_context"] = client_tls_context()
        c = Client(self.port(mode), **kw)
        self.clients.append(c)
        if greet:
            g = c.greeting()
            if g.line != f"220 {self.hostname} ESMTP postern":
                raise ProtocolError(f"unexpected greeting {g!r}")
        return c


def queue_cli(*args, spool, timeout=10):
    """Runs `postern queue ARGS --spool SPOOL`; returns CompletedProcess."""
    return subprocess.run([postern_bin(), "queue", *args, "--spool", spool],
                          capture_output=True, text=True, timeout=timeout)


def queue_ids(spool):
    p = queue_cli("list", spool=spool)
    if p.returncode != 0:
        raise AssertionError(f"postern queue list exited {p.returncode}: {p.stderr}")
    return re.findall(r"\b[0-9A-F]{24}\b", p.stdout)


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


# ---------------------------------------------------------------- postfix

class Postfix(_rig_mta.Postfix):
    """A private Postfix instance relaying for the tests (the rig's
    rig.mta.Postfix with the settings these tests always had): listening
    on 127.0.0.1:port, myhostname relay.test, no local delivery; `main`
    holds extra main.cf settings. See tests/rig/mta.py."""

    def __init__(self, main=None, port=None, smtpd_max="-", base=None):
        settings = {"mydomain": "relay.test", "myorigin": "relay.test"}
        settings.update(main or {})
        super().__init__(base=base, address="127.0.0.1", port=port, hostname="relay.test",
                         main=settings, deliver=False, smtpd_max=smtpd_max)
