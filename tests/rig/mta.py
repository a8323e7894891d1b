"""Peer MTAs for the rig: private Postfix instances and smtp-sink.

Postfix
    A private instance: config_directory, queue_directory and
    data_directory in a directory of its own (world-traversable, because
    Postfix opens files there after dropping to the postfix user), chroot
    off, listening on one address and port, logging to a file of its own
    (maillog_file). With deliver=True it accepts mail for every domain and
    writes every message to the Maildir <dir>/mail/inbox/ (virtual(8)
    as nobody, which adds Delivered-To:). tls is a Cert (from the test CA: valid,
    expired, wrong-name, self-signed...) offered with STARTTLS, or None for
    a server without STARTTLS. `main` overrides any main.cf setting.

    Postfix reports startup errors only to its log, so start() runs
    `postfix check` first and shows the log when anything fails. It is
    started with `postfix -c DIR start` (through script(1), the only way it
    prints fatal errors on a terminal instead of to a syslog nobody runs)
    and stopped with `postfix stop`, then SIGKILL to whatever remains of
    the master and its children.

SmtpSink
    Postfix's smtp-sink on one address and port: accepts everything,
    writes each transaction to a file in its directory (with the
    X-Mail-Args / X-Rcpt-Args lines smtp-sink adds), and can reject
    commands with 5xx (hard) or 4xx (soft), disconnect, answer 421, or wait
    before replying -- for failure injection.
"""
import email
import email.policy
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .proc import (Proc, RigError, alive, descendants, free_port, guard, register, unguard,
                   unregister, wait_tcp)

MASTER_CF = """\
{listen} inet  n       -       n       -       {smtpd_max}  smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Maildir:
    """Reads the messages of one Maildir (new/ and cur/)."""

    def __init__(self, path):
        self.path = path

    def files(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.path, sub)
            if os.path.isdir(d):
                out += [os.path.join(d, f) for f in sorted(os.listdir(d)) if not f.startswith(".")]
        return out

    def messages(self):
        out = []
        for f in self.files():
            try:
                with open(f, "rb") as fh:
                    out.append(fh.read())
            except FileNotFoundError:
                pass
        return out

    def parsed(self):
        return [email.message_from_bytes(m, policy=email.policy.compat32) for m in self.messages()]

    def wait(self, n=1, timeout=10.0, match=None):
        """Waits until at least n messages (containing `match` when given)
        are here; returns them. Raises on timeout."""
        return _wait_messages(self.messages, self.path, n, timeout, match)

    def count(self, match=None):
        if isinstance(match, str):
            match = match.encode()
        return sum(1 for m in self.messages() if match is None or match in m)


def _wait_messages(get, where, n, timeout, match, log=None):
    if isinstance(match, str):
        match = match.encode()
    deadline = time.monotonic() + timeout
    while True:
        msgs = [m for m in get() if match is None or match in m]
        if len(msgs) >= n:
            return msgs
        if time.monotonic() > deadline:
            extra = f"\n--- log:\n{log()[-4000:]}" if log else ""
            raise RigError(f"{where}: {len(msgs)} message(s)"
                           f"{' containing ' + repr(match) if match else ''} after "
                           f"{timeout}s, wanted {n}{extra}")
        time.sleep(0.05)


class Postfix:
    """A private Postfix instance (see the module comment)."""

    def __init__(self, base=None, address="127.0.0.1", port=None, hostname="mx.test", main=None,
                 tls=None, deliver=True, smtpd_max="-"):
        self.address = address
        self.port = port or free_port(address)
        self.hostname = hostname
        self.tls = tls
        self.dir = base or tempfile.mkdtemp(prefix="postern-pf-")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.mail = os.path.join(self.dir, "mail")
        self.log = os.path.join(self.dir, "maillog")
        for d in (self.etc, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        shutil.chown(self.data, "postfix")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            # the address is bound by master.cf; Postfix wants inet_interfaces to
            # name a configured interface, which 127.0.N.x is not
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": hostname,
            "mydomain": hostname.split(".", 1)[-1] if "." in hostname else hostname,
            "myorigin": hostname,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.dir,
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "biff": "no",
        }
        if deliver:
            nobody = pwd.getpwnam("nobody")
            os.makedirs(self.mail, exist_ok=True)
            shutil.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
            settings.update({
                "virtual_mailbox_domains": "static:all",
                "virtual_mailbox_base": self.mail,
                # every recipient's mail in one Maildir; virtual(8) adds
                # Delivered-To: (maps may not substitute into paths)
                "virtual_mailbox_maps": "static:inbox/",
                "virtual_uid_maps": f"static:{nobody.pw_uid}",
                "virtual_gid_maps": f"static:{nobody.pw_gid}",
                "smtpd_relay_restrictions": "permit_mynetworks, permit_auth_destination, reject",
            })
        if tls is not None:
            settings.update({
                "smtpd_tls_security_level": "may",
                "smtpd_tls_chain_files": f"{tls.key}, {tls.chain}",
                "smtpd_tls_loglevel": "1",
                "smtpd_tls_received_header": "yes",
            })
        else:
            settings["smtpd_tls_security_level"] = "none"
        settings.update(main or {})
        self.settings = settings
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen=f"{address}:{self.port}", smtpd_max=smtpd_max))
        # Postfix rereads a configuration file modified within the current
        # second (up to 5 x 0.3 s) to be sure it is complete: date them back
        past = time.time() - 5
        for name in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.etc, name), (past, past))
        self.started = False

    @property
    def endpoint(self):
        from .dns import Endpoint
        return Endpoint(self.address, self.port)

    def _run(self, *args, timeout=60):
        cmd = " ".join(["postfix", "-c", self.etc, *args])
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self, timeout=15):
        p = self._run("check")
        if p.returncode != 0:
            raise RigError(f"postfix check failed: {p.stdout}{p.stderr}\n{self.logtext()}")
        register(self)
        self.started = True  # from here on stop() looks for a master to kill
        p = self._run("start")
        if p.returncode != 0:
            raise RigError(f"postfix start failed: {p.stdout}{p.stderr}\n{self.logtext()}")
        self._guarded = self.master_pid()
        if self._guarded:
            guard(self._guarded)  # the master is the leader of its process group
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RigError(f"postfix not listening on {self.address}:{self.port}:\n"
                                   f"{self.logtext()}")
                time.sleep(0.05)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def pids(self):
        """The master and all its descendants."""
        m = self.master_pid()
        return [m] + descendants(m) if m and alive(m) else []

    def running(self):
        m = self.master_pid()
        return bool(m) and alive(m)

    def check(self):
        if self.started and not self.running():
            raise RigError(f"postfix on {self.address}:{self.port} is not running:\n"
                           f"{self.logtext()[-4000:]}")

    def stop(self, graceful=False):
        """Stops the instance: `postfix stop` when graceful, else (the
        default, fast) SIGKILL to the master's process group. Either way
        every process of it is gone when this returns."""
        unregister(self)
        if not self.started:
            return
        master = self.master_pid()
        self.started = False
        if graceful:
            self._run("stop")
            deadline = time.monotonic() + 10
            while master and time.monotonic() < deadline and alive(master):
                time.sleep(0.05)
        if master:
            left = descendants(master)
            try:
                os.killpg(master, signal.SIGKILL)  # the master is a session leader
            except (ProcessLookupError, PermissionError):
                pass
            for pid in [master] + left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and alive(master):
                time.sleep(0.01)
        if getattr(self, "_guarded", None):
            unguard(self._guarded)
            self._guarded = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- received mail
    @property
    def inbox(self):
        """The Maildir holding every message delivered here (deliver=True)."""
        return Maildir(os.path.join(self.mail, "inbox"))

    def messages(self, rcpt=None):
        """Every message delivered here, or only those for rcpt (by the
        Delivered-To: header virtual(8) adds)."""
        msgs = self.inbox.messages()
        if rcpt is None:
            return msgs
        want = f"\ndelivered-to: {rcpt.lower()}\n".encode()
        return [m for m in msgs if want in b"\n" + m.split(b"\n\n", 1)[0].lower() + b"\n"]

    def wait(self, n=1, timeout=15.0, match=None, rcpt=None):
        """Waits for n messages (containing match, for rcpt when given)."""
        return _wait_messages(lambda: self.messages(rcpt),
                              f"postfix {self.hostname}" + (f" for {rcpt}" if rcpt else ""),
                              n, timeout, match, self.logtext)


class SmtpSink:
    """smtp-sink on address:port (see the module comment).

    hard, soft, disconnect, reply421: commands (CONNECT, HELO, EHLO, MAIL,
    RCPT, DATA, ".", RSET, QUIT...) answered 5xx, 4xx, by closing, or
    with 421 and closing. hard_reply / soft_reply replace the reply text
    ("550 5.7.1 No thanks"). delay: {command: seconds}. extra: more
    smtp-sink options."""

    def __init__(self, directory, address, port=25, hostname="sink.test", hard=(), soft=(),
                 disconnect=(), reply421=(), hard_reply=None, soft_reply=None, delay=None,
                 extra=(), start=True):
        self.dir = directory
        self.address = address
        self.port = port
        self.hostname = hostname
        self.dumps = os.path.join(directory, "dump")
        os.makedirs(self.dumps, exist_ok=True)
        os.chmod(directory, 0o755)
        shutil.chown(self.dumps, "nobody")
        argv = ["smtp-sink", "-u", "nobody", "-h", hostname, "-d", self.dumps + "/%Y%m%d%H%M%S."]
        for opt, cmds in (("-f", hard), ("-r", soft), ("-q", disconnect), ("-Q", reply421)):
            if cmds:
                argv += [opt, ",".join(cmds)]
        if hard_reply:
            argv += ["-B", hard_reply]
        if soft_reply:
            argv += ["-b", soft_reply]
        for cmd, secs in (delay or {}).items():
            argv += ["-W", f"{cmd}:{secs}"]
        argv += list(extra)
        argv += [f"inet:{address}:{port}", "64"]
        self.argv = argv
        self.proc = None
        if start:
            self.start()

    @property
    def endpoint(self):
        from .dns import Endpoint
        return Endpoint(self.address, self.port)

    def start(self):
        self.proc = Proc("smtp-sink", self.argv, os.path.join(self.dir, "smtp-sink.log"),
                         cwd=self.dir)
        wait_tcp(self.address, self.port, 10, self.proc, "smtp-sink")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def check(self):
        if self.proc is not None:
            self.proc.check()

    def logtext(self):
        return self.proc.logtext() if self.proc else ""

    def messages(self):
        """Raw bytes of every captured transaction (complete files only)."""
        out = []
        for f in sorted(os.listdir(self.dumps)):
            try:
                with open(os.path.join(self.dumps, f), "rb") as fh:
                    out.append(fh.read())
            except FileNotFoundError:
                pass
        return out

    def wait(self, n=1, timeout=10.0, match=None):
        return _wait_messages(self.messages, f"smtp-sink {self.address}:{self.port}", n, timeout,
                              match, self.logtext)

    @staticmethod
    def envelope(raw):
        """(mail_from, [rcpts]) of a captured transaction."""
        head = raw.split(b"\n\n", 1)[0].decode(errors="replace")
        m = re.search(r"^X-Mail-Args: <?([^>\s]*)>?", head, re.M)
        rcpts = re.findall(r"^X-Rcpt-Args: <?([^>\s]*)>?", head, re.M)
        return (m.group(1) if m else None), rcpts
