"""postern's test rig: real servers on loopback for end-to-end tests.

    from rig import Rig            # tests/ on sys.path (the e2e conftest does it)
    with Rig() as rig:
        z = rig.zone("example.test", "@ MX 10 mx\\nmx A 192.0.2.1\\n")
        rig.zone("signed.test", "@ TXT \\"hello\\"\\n", signed=True)
        rig.zone("bogus.test", "@ A 192.0.2.9\\n", bogus=True)
        rig.servfail("broken.example.test")
        rig.timeout("slow.example.test")
        str(rig.resolver)        # "127.0.N.2:53"  unbound, validating
        str(rig.auth)            # "127.0.N.1:53"  knot
        str(rig.blackhole)       # "127.0.N.3:53"  never answers
        rig.trust_anchor         # DNSKEY/DS of every signed zone
        cert = rig.cert("mx.example.test")                    # .cert .key .chain
        bad = rig.cert("mx.example.test", kind="expired")     # wrong-name, self-signed...
        rig.cafile
        rig.https_host("mta-sts.example.test", {"/.well-known/mta-sts.txt": "..."})
        peer = rig.postfix("mx.example.test", tls="valid")   # .endpoint .wait() .maildir()
        sink = rig.sink(hard=["RCPT"])                         # smtp-sink

Everything listens on addresses of one 127.0.N.0/24 block reserved for this
rig (see proc.py), runs from a temporary directory, and is stopped by
rig.stop() (also at interpreter exit, and by PR_SET_PDEATHSIG or the reaper
process when the interpreter is killed). Nothing system-wide is read or
written: every server gets its own configuration file.

Fixed addresses in the block: .1 knot, .2 unbound, .3 blackhole, .4 nginx,
.5 the SERVFAIL server; peers and sinks get .10 upward. Ports are the
standard ones (53, 443, 25) when they can be bound (as root), otherwise
free high ports: always read them from the endpoints.
"""
import os
import shutil
import tempfile

from .ca import KINDS, Cert, TestCA
from .dns import Dns, Endpoint, Zone, query, records_text, txt_rdata
from .https import Nginx
from .mta import Maildir, Postfix, SmtpSink
from .proc import Block, RigError, pick_port, register, stop_all, unregister

__all__ = ["Rig", "Cert", "TestCA", "Zone", "Endpoint", "Maildir", "Postfix", "SmtpSink",
           "RigError", "KINDS", "query", "records_text", "txt_rdata", "stop_all"]


class Rig:
    """A set of test servers on one loopback block, started on first use."""

    def __init__(self, keep=None):
        self.block = Block()
        self.dir = tempfile.mkdtemp(prefix=f"postern-rig-{self.block.n}-")
        os.chmod(self.dir, 0o755)
        self.keep = bool(os.environ.get("RIG_KEEP")) if keep is None else keep
        if self.keep:
            open(os.path.join(self.dir, ".keep"), "w").close()
        self._dns = None
        self._ca = None
        self._https = None
        self.peers = []
        self.sinks = []
        self.stopped = False
        register(self)

    # ------------------------------------------------------------ DNS
    @property
    def dns(self):
        """The Dns piece (knot + unbound), started on first use."""
        if self._dns is None:
            self._dns = Dns(self.dir, self.block)
        return self._dns.start()

    def zone(self, name, text="", signed=False, bogus=False, ttl=300, raw=False):
        """Serves zone `name` from knot (see Dns.zone); returns the Zone."""
        return self.dns.zone(name, text, signed=signed, bogus=bogus, ttl=ttl, raw=raw)

    def servfail(self, name):
        """The resolver answers SERVFAIL for name and everything under it."""
        self.dns.servfail(name)

    def timeout(self, name):
        """The resolver never answers for name and everything under it."""
        self.dns.timeout(name)

    @property
    def resolver(self):
        """Endpoint of unbound, the validating resolver postern should use."""
        return self.dns.resolver

    @property
    def auth(self):
        """Endpoint of knot, the authoritative server of the test zones."""
        return self.dns.auth

    @property
    def blackhole(self):
        """Endpoint of a DNS server that never answers (UDP or TCP)."""
        return self.dns.blackhole

    @property
    def servfail_server(self):
        """Endpoint of a DNS server that answers SERVFAIL to everything."""
        return self.dns.servfail_endpoint

    @property
    def trust_anchor(self):
        """Path of the trust-anchor file (DNSKEY/DS of every signed zone),
        for unbound's trust-anchor-file and libunbound's ub_ctx_add_ta_file."""
        return self.dns.trust_anchor

    # ------------------------------------------------------------ TLS
    @property
    def ca(self):
        if self._ca is None:
            self._ca = TestCA(os.path.join(self.dir, "ca"),
                              name=f"postern rig test CA {self.block.prefix}")
        return self._ca

    @property
    def cafile(self):
        return self.ca.cafile

    def cert(self, *names, kind="valid", key="ec"):
        """A certificate (Cert) for names from the test CA; kind is one of
        valid, expired, not-yet-valid, wrong-name, self-signed."""
        return self.ca.cert(*names, kind=kind, key=key)

    # ------------------------------------------------------------ HTTPS
    @property
    def https(self):
        """The nginx piece; its first host() starts it."""
        if self._https is None:
            host = self.block.addr(4)
            self._https = Nginx(os.path.join(self.dir, "nginx"), host, pick_port(host, 443),
                                self.ca)
        return self._https

    def https_host(self, name, files=None, cert="valid", extra=""):
        """Serves files ({path: content}) for host name over HTTPS."""
        return self.https.host(name, files, cert=cert, extra=extra)

    # ------------------------------------------------------------ SMTP
    def _tls_cert(self, hostname, tls):
        if tls is None or tls is False:
            return None
        if isinstance(tls, Cert):
            return tls
        return self.cert(hostname, kind="valid" if tls is True else tls)

    def postfix(self, hostname="mx.test", tls="valid", main=None, deliver=True, port=25,
                address=None, start=True):
        """A private Postfix listening on its own address of the block
        (port 25 when possible). tls: a certificate kind from the test CA
        for hostname ("valid", "expired", "wrong-name", "self-signed"...),
        a Cert, or None for no STARTTLS. main: extra main.cf settings."""
        address = address or self.block.next_addr()
        n = len(self.peers) + 1
        p = Postfix(base=os.path.join(self.dir, f"postfix{n}-{hostname}"), address=address,
                    port=pick_port(address, port) if port else None, hostname=hostname,
                    main=main, tls=self._tls_cert(hostname, tls), deliver=deliver)
        self.peers.append(p)
        if start:
            p.start()
        return p

    def sink(self, hostname="sink.test", port=25, address=None, **kw):
        """An smtp-sink on its own address (see SmtpSink for the options)."""
        address = address or self.block.next_addr()
        n = len(self.sinks) + 1
        s = SmtpSink(os.path.join(self.dir, f"sink{n}"), address, pick_port(address, port),
                     hostname=hostname, **kw)
        self.sinks.append(s)
        return s

    def address(self):
        """A fresh address of the block for anything else a test runs."""
        return self.block.next_addr()

    # ------------------------------------------------------------ life
    def env(self):
        """RIG_* variables describing what runs (for C tests and shells)."""
        e = {"RIG_DIR": self.dir}
        if self._dns is not None and self._dns.knot is not None:
            d = self._dns
            e.update(RIG_DNS=str(d.resolver), RIG_AUTH=str(d.auth), RIG_BLACKHOLE=str(d.blackhole),
                     RIG_SERVFAIL=str(d.servfail_endpoint), RIG_TRUST_ANCHOR=d.trust_anchor)
        if self._ca is not None:
            e["RIG_CA"] = self._ca.cafile
        if self._https is not None and self._https.proc is not None:
            e["RIG_HTTPS"] = str(self._https.endpoint)
        for i, p in enumerate(self.peers, 1):
            e[f"RIG_MTA{i}"] = str(p.endpoint)
            e[f"RIG_MTA{i}_MAIL"] = p.mail
        for i, s in enumerate(self.sinks, 1):
            e[f"RIG_SINK{i}"] = str(s.endpoint)
            e[f"RIG_SINK{i}_DUMPS"] = s.dumps
        return e

    def check(self):
        """Raises RigError when a server of this rig died."""
        problems = []
        for piece in [self._dns, self._https, *self.peers, *self.sinks]:
            if piece is None:
                continue
            try:
                piece.check()
            except RigError as e:
                problems.append(str(e))
        if problems:
            raise RigError("rig server(s) died:\n" + "\n".join(problems))

    def stop(self):
        """Stops every server; removes the directory unless keep (RIG_KEEP=1)."""
        if self.stopped:
            return
        self.stopped = True
        unregister(self)
        for piece in [*self.sinks, *self.peers, self._https, self._dns]:
            if piece is not None:
                try:
                    piece.stop()
                except Exception:
                    pass
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.block.release()

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
