"""Processes and loopback addresses for the rig.

Every server the rig starts runs in its own process group (its own session)
with PR_SET_PDEATHSIG, is remembered in a module-wide registry, and is
stopped by stop() -- SIGTERM to the group, SIGKILL after a grace period --
or at interpreter exit (atexit) when nobody called stop().

Addresses: a rig takes a whole block 127.0.N.0/24 (N in 2..254). The block
is reserved with an flock(2) on a lock file in the temporary directory, held
as long as the rig lives (the kernel drops it when the process dies), and
skipped when anything listens on an address of it (a leftover of a killed
run). So concurrent test runs on one machine never share an address.
"""
import atexit
import ctypes
import errno
import fcntl
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LOCK_DIR = os.path.join(tempfile.gettempdir(), "postern-rig-locks")

_live = []  # objects with a stop() method, in start order


def register(obj):
    _live.append(obj)
    return obj


def unregister(obj):
    try:
        _live.remove(obj)
    except ValueError:
        pass


@atexit.register
def stop_all():
    """Stops everything still registered, newest first."""
    for obj in reversed(list(_live)):
        try:
            obj.stop()
        except Exception:  # keep going: every process must end
            pass
    _live.clear()


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before any fork
except (OSError, AttributeError):
    _prctl = None


def _pdeathsig():
    """In the child before exec: die with SIGKILL when the parent does."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


# Servers that daemonize (Postfix's master makes itself a session leader)
# escape PR_SET_PDEATHSIG. A reaper process of its own session holds their
# process group ids; when this process ends in any way, even by SIGKILL, its
# pipe reaches end of file and the reaper kills what is still registered.
REAPER = """
import os, signal, sys
live = set()
for line in sys.stdin:
    op, pg = line.split()
    (live.add if op == "+" else live.discard)(int(pg))
for pg in live:
    try:
        os.killpg(pg, signal.SIGKILL)
    except OSError:
        pass
"""
_reaper = None


def guard(pgid):
    """Kill process group pgid if this process dies before unguard(pgid)."""
    global _reaper
    if _reaper is None or _reaper.poll() is not None:
        _reaper = subprocess.Popen([sys.executable, "-c", REAPER], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, text=True)
    _reaper.stdin.write(f"+ {pgid}\n")
    _reaper.stdin.flush()


def unguard(pgid):
    if _reaper is not None and _reaper.poll() is None:
        try:
            _reaper.stdin.write(f"- {pgid}\n")
            _reaper.stdin.flush()
        except OSError:
            pass


class Proc:
    """A server process in its own process group; output to a log file."""

    def __init__(self, name, argv, log, cwd=None, env=None, stdin=None):
        self.name = name
        self.argv = argv
        self.log = log
        self._logf = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT, cwd=cwd,
                                     env=env, start_new_session=True, preexec_fn=_pdeathsig)
        self.pid = self.proc.pid
        self._stopped = False
        register(self)

    def running(self):
        return self.proc.poll() is None

    def logtext(self, tail=6000):
        try:
            with open(self.log, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return ""
        return data[-tail:].decode("utf-8", errors="replace")

    def check(self):
        """Raises if the process has exited without stop() being called."""
        if not self._stopped and not self.running():
            raise RigError(f"{self.name} exited with {self.proc.returncode}:\n{self.logtext()}")

    def signal(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def stop(self, grace=5.0):
        """SIGTERM to the process group, SIGKILL after grace seconds."""
        unregister(self)
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        try:
            if self.proc.poll() is None:
                _killpg(self.pid, signal.SIGTERM)
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            # children that outlived the leader (nginx workers) go too
            _killpg(self.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait(5)
        finally:
            self._logf.close()
        return self.proc.returncode


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class RigError(AssertionError):
    """A rig piece failed to start or to do what was asked (fails the test)."""


# ---------------------------------------------------------------- addresses

def _listening_addresses():
    """Local IPv4 addresses with a TCP listener or a bound UDP socket."""
    out = set()
    for table, state in (("/proc/net/tcp", "0A"), ("/proc/net/udp", "07")):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] != state:
                        continue
                    hexaddr = parts[1].split(":")[0]
                    out.add(socket.inet_ntoa(bytes.fromhex(hexaddr)[::-1]))
        except OSError:
            pass
    return out


def _try_lock(n):
    """An fd holding block n's lock, or None when another rig holds it."""
    fd = os.open(os.path.join(LOCK_DIR, f"127.0.{n}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise


def _sweep():
    """Removes the directories of rigs whose process died without cleaning
    up (SIGKILL): their block's lock is free. Kept ones (RIG_KEEP: a .keep
    file inside) stay."""
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.match(r"^postern-rig-(\d+)-", d)
        path = os.path.join(tmp, d)
        if not m or os.path.exists(os.path.join(path, ".keep")):
            continue
        fd = _try_lock(int(m.group(1)))
        if fd is not None:
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)


class Block:
    """A reserved 127.0.N.0/24 block; released by release()."""

    def __init__(self, first=2, last=254):
        os.makedirs(LOCK_DIR, exist_ok=True)
        _sweep()
        busy = _listening_addresses()
        candidates = list(range(first, last + 1))
        random.shuffle(candidates)
        for n in candidates:
            prefix = f"127.0.{n}."
            if any(a.startswith(prefix) for a in busy):
                continue
            fd = _try_lock(n)
            if fd is None:
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.n = n
            self.prefix = f"127.0.{n}"
            self._fd = fd
            self._next = 10
            return
        raise RigError("no free 127.0.N.0/24 block for the rig")

    def addr(self, host):
        return f"{self.prefix}.{host}"

    def next_addr(self):
        """A fresh address of the block (from .10 upward)."""
        if self._next > 254:
            raise RigError(f"rig block {self.prefix}.0/24 is exhausted")
        a = self.addr(self._next)
        self._next += 1
        return a

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def can_bind(host, port, udp=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        if not udp:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(host, udp_too=False):
    """A port free on host (TCP, and UDP too when asked)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if not udp_too or can_bind(host, port, udp=True):
            return port
    raise RigError(f"no free port on {host}")


def pick_port(host, wanted, udp_too=False):
    """wanted (53, 443, 25) when it can be bound here (as root), else a
    free high port."""
    if can_bind(host, wanted) and (not udp_too or can_bind(host, wanted, udp=True)):
        return wanted
    return free_port(host, udp_too)


def wait_tcp(host, port, timeout=10.0, proc=None, what=None):
    """Waits until host:port accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            pass
        if proc is not None:
            proc.check()
        if time.monotonic() > deadline:
            extra = f":\n{proc.logtext()}" if proc is not None else ""
            raise RigError(f"{what or 'server'} not accepting on {host}:{port} "
                           f"after {timeout}s{extra}")
        time.sleep(0.02)


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RigError(f"{what}: not reached within {timeout}s")
        time.sleep(interval)


def run(argv, timeout=60, check=True, **kw):
    """subprocess.run with captured text output; raises RigError on failure."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise RigError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def alive(pid):
    """True while pid runs (a zombie waiting for its parent does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid):
    """All descendant pids of pid (from /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out
