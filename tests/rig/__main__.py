"""The rig from the command line, for C tests and shells.

  cd <repo> && /usr/bin/python3 -m tests.rig up [OPTIONS]
  (or: PYTHONPATH=<repo>/tests /usr/bin/python3 -m rig up [OPTIONS])

starts what the options ask for, prints one shell assignment per line
(RIG_DNS=127.0.N.2:53 ...), then RIG_READY=1, and stays until
  * its standard input (a pipe or terminal; /dev/null is ignored) reaches
    end of file,
  * the reader of its standard output (a pipe) closes it,
  * it gets SIGTERM, SIGINT or SIGHUP, or its parent exits.
Then it stops everything and exits 0. A C test popen()s it for reading,
reads up to RIG_READY=1, and pclose()s at the end: pclose() returns once
every server is stopped. In a shell, use a coprocess or a FIFO.

Options (each may be repeated):
  --zone NAME=FILE         serve zone NAME from FILE (text relative to NAME;
                           SOA and NS are added when missing)
  --signed-zone NAME=FILE  the same, signed by knot (DNSKEY in RIG_TRUST_ANCHOR)
  --bogus-zone NAME=FILE   the same, presigned and tampered: validators say bogus
  --servfail NAME          the resolver answers SERVFAIL for NAME and below
  --timeout NAME           the resolver never answers for NAME and below
  --dns                    start knot and unbound even without zones
  --cert NAME[,NAME...][:KIND]
                           a certificate from the test CA (KIND valid,
                           expired, not-yet-valid, wrong-name, self-signed):
                           RIG_CERTi / RIG_KEYi / RIG_CHAINi
  --https NAME=DIR         serve DIR's files over HTTPS for host NAME
  --postfix HOSTNAME[:TLS] a Postfix peer (TLS: valid, expired, wrong-name,
                           self-signed, not-yet-valid or none): RIG_MTAi,
                           RIG_MTAi_MAIL (its Maildir is RIG_MTAi_MAIL/inbox)
  --sink HOSTNAME[:OPTS]   an smtp-sink; OPTS like hard=RCPT+DATA,soft=MAIL,
                           disconnect=EHLO: RIG_SINKi, RIG_SINKi_DUMPS
  --until-signal           do not watch standard input (output still is)
  --keep                   keep the rig directory (RIG_DIR) afterwards

Exit status: 0 after a clean stop, 1 when something failed to start (the
reason on stderr), 2 on a usage error.
"""
import argparse
import os
import select
import shlex
import signal
import stat
import sys

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "rig"

from . import KINDS, Rig, RigError  # noqa: E402


def _name_file(spec, what):
    if "=" not in spec:
        raise SystemExit(f"rig: {what} wants NAME=PATH, got {spec!r}")
    name, path = spec.split("=", 1)
    return name, path


def _read(path):
    with open(path) as f:
        return f.read()


def _sink_opts(spec):
    kw = {}
    for part in filter(None, spec.split(",")):
        if "=" not in part:
            raise SystemExit(f"rig: --sink option {part!r} wants KEY=VALUE")
        k, v = part.split("=", 1)
        if k in ("hard", "soft", "disconnect", "reply421"):
            kw[k] = v.split("+")
        elif k in ("hard_reply", "soft_reply"):
            kw[k] = v
        else:
            raise SystemExit(f"rig: unknown --sink option {k!r}")
    return kw


def up(a):
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    rig = Rig(keep=a.keep)
    try:
        return _up(a, rig)
    except _Stop:
        return 0
    finally:
        rig.stop()


def _up(a, rig):
    out = []
    try:
        if a.dns or a.zone or a.signed_zone or a.bogus_zone or a.servfail or a.timeout:
            rig.dns  # noqa: B018 -- starts knot and unbound
        for spec in a.zone:
            n, p = _name_file(spec, "--zone")
            rig.zone(n, _read(p))
        for spec in a.signed_zone:
            n, p = _name_file(spec, "--signed-zone")
            rig.zone(n, _read(p), signed=True)
        for spec in a.bogus_zone:
            n, p = _name_file(spec, "--bogus-zone")
            rig.zone(n, _read(p), bogus=True)
        for n in a.servfail:
            rig.servfail(n)
        for n in a.timeout:
            rig.timeout(n)
        for i, spec in enumerate(a.cert, 1):
            names, _, kind = spec.partition(":")
            kind = kind or "valid"
            if kind not in KINDS:
                raise SystemExit(f"rig: --cert kind {kind!r}: want one of {', '.join(KINDS)}")
            c = rig.cert(*names.split(","), kind=kind)
            out += [(f"RIG_CERT{i}", c.cert), (f"RIG_KEY{i}", c.key), (f"RIG_CHAIN{i}", c.chain)]
        for spec in a.https:
            n, d = _name_file(spec, "--https")
            files = {}
            for root, _, names in os.walk(d):
                for f in names:
                    full = os.path.join(root, f)
                    with open(full, "rb") as fh:
                        files["/" + os.path.relpath(full, d)] = fh.read()
            rig.https_host(n, files)
        for spec in a.postfix:
            host, _, tls = spec.partition(":")
            tls = tls or "valid"
            rig.postfix(host, tls=None if tls == "none" else tls)
        for spec in a.sink:
            host, _, opts = spec.partition(":")
            rig.sink(host or "sink.test", **_sink_opts(opts))
    except (RigError, OSError) as e:
        print(f"rig: {e}", file=sys.stderr)
        return 1
    env = rig.env()
    env.update(out)
    for k, v in env.items():
        print(f"{k}={shlex.quote(str(v))}")
    print("RIG_READY=1", flush=True)
    wait(not a.until_signal)
    return 0


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def _is_pipe(fd):
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or os.isatty(fd)


def wait(watch_stdin):
    """Returns at end of input (when standard input is a pipe or terminal,
    not /dev/null), when whoever reads our standard output closed it (a C
    test's pclose()), or when the parent is gone; a signal raises _Stop."""
    parent = os.getppid()
    poller = select.poll()
    if watch_stdin and _is_pipe(0):
        poller.register(0, select.POLLIN)
    if _is_pipe(1) and not os.isatty(1):
        poller.register(1, 0)  # POLLERR/POLLHUP only: the reader went away
    while True:
        if os.getppid() != parent:
            return  # our parent is gone: nobody would stop us
        for fd, ev in poller.poll(500):
            if fd == 0:
                if ev & (select.POLLHUP | select.POLLERR) or not os.read(0, 4096):
                    return
            elif ev & (select.POLLERR | select.POLLHUP):
                return


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m tests.rig", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start servers, print RIG_* variables, wait")
    for opt in ("zone", "signed-zone", "bogus-zone", "servfail", "timeout", "cert", "https",
                "postfix", "sink"):
        u.add_argument(f"--{opt}", action="append", default=[])
    u.add_argument("--dns", action="store_true")
    u.add_argument("--until-signal", action="store_true")
    u.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    return up(a)


if __name__ == "__main__":
    sys.exit(main())
