"""DNS for the rig: knot as the authoritative server of the test zones,
unbound as a validating recursive resolver in front of it, and two small
misbehaving servers.

  Knot        knotd with its own configuration, rundir and databases in the
              rig directory; one zone file per test zone; a zone can be
              signed by knot itself (dnssec-signing: on, a CSK with
              ECDSAP256SHA256) or presigned with ldns-signzone and then
              tampered (served with dnssec-signing: off) so that validators
              find it bogus.
  Unbound     unbound with a stub-zone per test zone pointing at knot,
              do-not-query-localhost: no, a trust anchor per signed zone,
              no root trust anchor (so unsigned test zones are insecure);
              names made to SERVFAIL (stub to the SERVFAIL server) or to
              time out (local-zone deny: the query is dropped).
  Responder   a DNS server on its own address that answers every query with
              one rcode (SERVFAIL), or never answers at all (the blackhole:
              UDP and TCP sockets that are bound and never read).

Zone text is written relative to the zone's origin; the rig adds $ORIGIN,
$TTL, an SOA and an NS record unless the text has its own.
"""
import base64
import os
import re
import select
import socket
import struct
import threading
import time

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone

from .proc import Proc, RigError, pick_port, run, wait_for

DEFAULT_TTL = 300


class ZoneRefused(RigError):
    """knotd logged an error loading a zone (the message has its lines)."""


class Endpoint(tuple):
    """(host, port); str() gives "host:port" as the CLIs take it."""

    def __new__(cls, host, port):
        return super().__new__(cls, (host, port))

    host = property(lambda self: self[0])
    port = property(lambda self: self[1])

    def __str__(self):
        return f"{self[0]}:{self[1]}"

    def __repr__(self):
        return f"Endpoint({self[0]!r}, {self[1]})"


def absolute(name):
    return name if name.endswith(".") else name + "."


def txt_rdata(text):
    """TXT rdata for a string of any length: quoted character-strings of at
    most 255 bytes each (RFC 1035 3.3.14), '"' and '\\' escaped."""
    data = text.encode() if isinstance(text, str) else text
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]

    def quote(chunk):
        out = []
        for b in chunk:
            if b in (0x22, 0x5C):
                out.append("\\" + chr(b))
            elif 0x20 <= b < 0x7F:
                out.append(chr(b))
            else:
                out.append(f"\\{b:03d}")
        return '"' + "".join(out) + '"'

    return " ".join(quote(c) for c in chunks)


def records_text(records):
    """Zone lines for a list of (name, type, data) or (name, ttl, type, data)."""
    lines = []
    for r in records:
        if len(r) == 3:
            name, rtype, data = r
            lines.append(f"{name} {rtype} {data}")
        elif len(r) == 4:
            name, ttl, rtype, data = r
            lines.append(f"{name} {ttl} {rtype} {data}")
        else:
            raise ValueError(f"record {r!r}: want (name, type, data) or (name, ttl, type, data)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- queries

def query(server, name, rtype="A", dnssec=False, cd=False, timeout=3.0, tcp=False, rdclass="IN"):
    """One query to server (an Endpoint or (host, port)) with dnspython;
    returns the dns.message.Message. Raises dns.exception.Timeout."""
    q = dns.message.make_query(name, rtype, rdclass, want_dnssec=dnssec)
    if cd:
        q.flags |= dns.flags.CD
    if tcp:
        return dns.query.tcp(q, server[0], port=server[1], timeout=timeout)
    r = dns.query.udp(q, server[0], port=server[1], timeout=timeout, ignore_trailing=True)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, server[0], port=server[1], timeout=timeout)
    return r


# ---------------------------------------------------------------- responder

class Responder:
    """A DNS server on host:port (UDP and TCP) that answers every query with
    `rcode`, or -- rcode None -- never answers (a blackhole: the sockets
    are bound, nothing reads them, so clients time out)."""

    def __init__(self, host, port, rcode=None):
        self.endpoint = Endpoint(host, port)
        self.rcode = rcode
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, port))
        self.tcp.listen(64)
        self.queries = 0
        self._stop_r, self._stop_w = os.pipe()
        self._thread = None
        if rcode is not None:
            self._thread = threading.Thread(target=self._serve, daemon=True,
                                            name=f"rig-dns-{rcode}-{host}")
            self._thread.start()

    def _answer(self, q):
        if len(q) < 12:
            return None
        qd = struct.unpack("!H", q[4:6])[0]
        # copy the question (name up to its root label, then type and class)
        i = 12
        if qd:
            while i < len(q) and q[i] != 0:
                i += 1 + q[i]
            i += 5
            if i > len(q):
                return None
        flags = struct.unpack("!H", q[2:4])[0]
        flags = 0x8000 | (flags & 0x7900) | 0x0080 | (self.rcode & 0xF)  # QR, opcode, RD, RA
        return q[:2] + struct.pack("!HHHHH", flags, 1 if qd else 0, 0, 0, 0) + q[12:i]

    def _serve(self):
        conns = {}
        try:
            while True:
                rl, _, _ = select.select([self.udp, self.tcp, self._stop_r] + list(conns), [], [])
                if self._stop_r in rl:
                    return
                for s in rl:
                    if s is self.udp:
                        q, peer = self.udp.recvfrom(65535)
                        self.queries += 1
                        a = self._answer(q)
                        if a:
                            self.udp.sendto(a, peer)
                    elif s is self.tcp:
                        c, _ = self.tcp.accept()
                        conns[c] = b""
                    else:
                        data = s.recv(65535)
                        if not data:
                            s.close()
                            del conns[s]
                            continue
                        buf = conns[s] + data
                        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                            n = struct.unpack("!H", buf[:2])[0]
                            self.queries += 1
                            a = self._answer(buf[2:2 + n])
                            buf = buf[2 + n:]
                            if a:
                                s.sendall(struct.pack("!H", len(a)) + a)
                        conns[s] = buf
        except (OSError, ValueError):
            return
        finally:
            for c in conns:
                c.close()

    def stop(self):
        if self._stop_w is None:
            return
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
        if self._thread:
            self._thread.join(5)
        for s in (self.udp, self.tcp):
            s.close()
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_r = self._stop_w = None


# ---------------------------------------------------------------- zones

class Zone:
    """One test zone served by knot. Update it with update(text)."""

    def __init__(self, dns_rig, name, text, signed, bogus, ttl, raw):
        self.rig = dns_rig
        self.name = name.rstrip(".").lower()
        self.origin = self.name + "."
        self.signed = bool(signed or bogus)
        self.bogus = bogus  # False, True (all data) or a list of owner names
        self.ttl = ttl
        self.raw = raw
        self.serial = 0
        self.zdir = os.path.join(dns_rig.dir, "zones")
        self.path = os.path.join(self.zdir, f"{self.name}.zone")  # what knot loads
        self.source = os.path.join(self.zdir, f"{self.name}.unsigned")  # as written, unsigned
        self.text = None
        self._keybase = None
        self.trust_anchor_text = ""  # DNSKEY (knot) or DS (ldns) lines
        self._write(text)

    @property
    def knot_signs(self):
        return self.signed and not self.bogus

    def _compose(self, body):
        """The full zone text: directives, SOA and NS added when missing."""
        if self.raw:
            return body
        try:
            z = dns.zone.from_text(f"$TTL {self.ttl}\n" + body, origin=self.origin,
                                   relativize=True, check_origin=False)
            apex = z.get_node("@")
            has_soa = apex is not None and apex.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
            has_ns = apex is not None and apex.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS)
        except dns.exception.DNSException as e:
            raise RigError(f"zone {self.name}: {e}\n{body}") from None
        head = [f"$ORIGIN {self.origin}", f"$TTL {self.ttl}"]
        if not has_soa:
            head.append(f"@ SOA ns.{self.origin} hostmaster.{self.origin} "
                        f"{self.serial} 3600 600 86400 {self.ttl}")
        if not has_ns:
            head.append(f"@ NS ns.{self.origin}")
        return "\n".join(head) + "\n" + body + ("" if body.endswith("\n") else "\n")

    def _write(self, body):
        self.serial += 1
        if isinstance(body, (list, tuple)):
            body = records_text(body)
        text = self._compose(body)
        m = re.search(r"\bSOA\s+\S+\s+\S+\s+\(?\s*(\d+)", text)
        if m:
            self.serial = int(m.group(1))
        self.text = text
        os.makedirs(self.zdir, exist_ok=True)
        with open(self.source, "w") as f:
            f.write(text)
        if self.bogus:
            text = self._presign(text)
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    # -- ldns-signzone + tampering, for zones that must validate as bogus
    def _presign(self, text):
        kdir = os.path.join(self.rig.dir, "keys", self.name)
        if self._keybase is None:
            os.makedirs(kdir, exist_ok=True)
            p = run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", self.origin], cwd=kdir)
            self._keybase = os.path.join(kdir, p.stdout.strip())
            with open(self._keybase + ".ds") as f:
                self.trust_anchor_text = f.read().strip() + "\n"
        now = int(time.time())
        unsigned = os.path.join(kdir, "zone")
        with open(unsigned, "w") as f:
            f.write(text)
        run(["ldns-signzone", "-o", self.origin, "-i", str(now - 86400), "-e", str(now + 30 * 86400),
             "-f", unsigned + ".signed", unsigned, self._keybase])
        with open(unsigned + ".signed") as f:
            signed = f.read()
        return self._tamper(signed)

    def _tamper(self, signed):
        """Flips a bit in the signature of every RRSIG at the chosen owner
        names (all names when bogus is True), except the RRSIG over the
        DNSKEY set, so the key validates and the data does not."""
        if self.bogus is True:
            owners = None
        else:
            owners = {self.origin if n in ("@", "") else
                      (n.lower() if n.endswith(".") else f"{n.lower()}.{self.origin}")
                      for n in self.bogus}
        out, hit = [], 0
        for line in signed.splitlines():
            f = line.split()
            if (len(f) >= 13 and f[3] == "RRSIG" and f[4] != "DNSKEY"
                    and (owners is None or f[0].lower() in owners)):
                sig = bytearray(base64.b64decode("".join(f[12:])))
                sig[len(sig) // 2] ^= 0x01
                f = f[:12] + [base64.b64encode(bytes(sig)).decode()]
                line = "\t".join(f)
                hit += 1
            out.append(line)
        if hit == 0:
            raise RigError(f"zone {self.name}: no RRSIG at {sorted(owners or [])} to tamper with")
        return "\n".join(out) + "\n"

    def update(self, text):
        """Replaces the zone's content; returns when knot serves it and the
        resolver has forgotten the old answers."""
        if self.knot_signs:  # knot may have raised the serial when it signed
            self.serial = max(self.serial, self.rig._served_serial(self) or 0)
        self._write(text)
        self.rig._reload_zone(self)
        return self

    def ds(self, digest=2):
        """DS text for this zone's key (signed zones)."""
        if not self.signed:
            raise RigError(f"zone {self.name} is not signed")
        lines = []
        for rr in self._dnskeys():
            lines.append(f"{self.origin} IN DS "
                         f"{dns.dnssec.make_ds(self.origin, rr, digest).to_text()}")
        return "\n".join(lines) + "\n"

    def _dnskeys(self):
        r = query(self.rig.auth, self.origin, "DNSKEY")
        out = []
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.DNSKEY:
                out += [rd for rd in rrset if rd.flags & 0x0001]  # SEP: KSK or CSK
        return out

    def __repr__(self):
        kind = "bogus" if self.bogus else "signed" if self.signed else "unsigned"
        return f"Zone({self.name!r}, {kind}, serial {self.serial})"


# ---------------------------------------------------------------- knot + unbound

KNOT_CONF = """\
server:
    rundir: "{dir}/knot-run"
    listen: {host}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{dir}/knot-db"
    journal-db-max-size: 64M
    kasp-db-max-size: 16M
    timer-db-max-size: 16M
    catalog-db-max-size: 16M
policy:
  - id: rig
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
acl:
  - id: rig-transfer
    address: 127.0.0.0/8
    action: transfer
template:
  - id: default
    storage: "{dir}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
    acl: rig-transfer
"""

UNBOUND_CONF = """\
server:
    interface: {host}@{port}
    port: {port}
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    logfile: ""
    use-syslog: no
    log-time-ascii: yes
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    num-threads: 1
    so-reuseport: no
    outgoing-range: 64
    num-queries-per-thread: 64
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    module-config: "validator iterator"
    qname-minimisation: no
    aggressive-nsec: no
    harden-referral-path: no
    minimal-responses: no
    trust-anchor-signaling: no
    root-key-sentinel: no
    hide-version: no
{server_extra}
remote-control:
    control-enable: yes
    control-interface: "{dir}/unbound.ctl"
    control-use-cert: no
{zones}"""


class Dns:
    """knotd + unbound + the SERVFAIL server and the blackhole, all on
    addresses of the rig's block. Made by Rig.dns; start() is idempotent."""

    def __init__(self, rig_dir, block):
        self.dir = os.path.join(rig_dir, "dns")
        os.makedirs(self.dir, exist_ok=True)
        for d in ("knot-run", "knot-db", "zones", "keys"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.block = block
        self.zones = {}
        self.servfail_names = []
        self.timeout_names = []
        self.knot = None
        self.unbound = None
        self.servfail_server = None
        self.blackhole_server = None
        self.trust_anchor = os.path.join(self.dir, "trust-anchors.keys")
        open(self.trust_anchor, "w").close()
        self.knot_conf = os.path.join(self.dir, "knot.conf")
        self.unbound_conf = os.path.join(self.dir, "unbound.conf")
        self.auth = self.resolver = self.servfail_endpoint = self.blackhole = None

    # -- life
    def start(self):
        if self.knot is not None:
            return self
        kh, uh, bh, sh = (self.block.addr(i) for i in (1, 2, 3, 5))
        self.auth = Endpoint(kh, pick_port(kh, 53, udp_too=True))
        self.resolver = Endpoint(uh, pick_port(uh, 53, udp_too=True))
        self.blackhole_server = Responder(bh, pick_port(bh, 53, udp_too=True))
        self.blackhole = self.blackhole_server.endpoint
        self.servfail_server = Responder(sh, pick_port(sh, 53, udp_too=True),
                                         rcode=dns.rcode.SERVFAIL)
        self.servfail_endpoint = self.servfail_server.endpoint
        self._write_knot_conf()
        self.knot = Proc("knotd", ["knotd", "-c", self.knot_conf],
                         os.path.join(self.dir, "knotd.log"), cwd=self.dir)
        wait_for(lambda: self._knot_answers(), 10, f"knotd on {self.auth}", interval=0.02)
        self._write_unbound_conf()
        self.unbound = Proc("unbound", ["unbound", "-d", "-c", self.unbound_conf],
                            os.path.join(self.dir, "unbound.log"), cwd=self.dir)
        self._wait_unbound()
        return self

    def stop(self):
        for p in (self.unbound, self.knot):
            if p is not None:
                p.stop()
        for r in (self.servfail_server, self.blackhole_server):
            if r is not None:
                r.stop()
        self.unbound = self.knot = self.servfail_server = self.blackhole_server = None

    def check(self):
        """Raises if knotd or unbound died."""
        for p in (self.knot, self.unbound):
            if p is not None:
                p.check()

    # -- what tests call
    def zone(self, name, text="", signed=False, bogus=False, ttl=DEFAULT_TTL, raw=False):
        """Serves a zone: text relative to the origin (or a list of
        (name, [ttl,] type, data) tuples). signed=True: knot signs it and its
        DNSKEY joins the trust anchor file; bogus=True (or a list of owner
        names): presigned with ldns-signzone and tampered, so a validator
        finds those answers bogus. Returns when knot serves it and unbound
        knows the zone."""
        self.start()
        key = name.rstrip(".").lower()
        if key in self.zones:
            raise RigError(f"zone {key} exists; use its update()")
        z = Zone(self, key, text, signed, bogus, ttl, raw)
        self.zones[key] = z
        self._write_knot_conf()
        try:
            since = self._log_size()
            self._knotc("reload")
            self._wait_served(z, since)
        except RigError:
            del self.zones[key]  # knot must not keep a zone it cannot load
            self._write_knot_conf()
            self._knotc("reload")
            raise
        if z.knot_signs:
            z.trust_anchor_text = "".join(f"{z.origin} {DEFAULT_TTL} IN DNSKEY {rd.to_text()}\n"
                                          for rd in z._dnskeys())
        self._write_trust_anchors()
        self._reconfigure_unbound()
        return z

    def servfail(self, name):
        """Names at and under `name` SERVFAIL at the resolver (a stub zone
        whose only server answers SERVFAIL to everything)."""
        self.start()
        self.servfail_names.append(absolute(name.lower()))
        self._reconfigure_unbound()

    def timeout(self, name):
        """The resolver drops queries for names at and under `name`
        (local-zone deny): clients time out."""
        self.start()
        self.timeout_names.append(absolute(name.lower()))
        self._reconfigure_unbound()

    def flush(self):
        """Forgets every cached answer in the resolver."""
        self._reconfigure_unbound()

    # -- internals
    def _write_knot_conf(self):
        text = KNOT_CONF.format(dir=self.dir, host=self.auth.host, port=self.auth.port)
        if self.zones:
            text += "zone:\n"
            for z in self.zones.values():
                text += f"  - domain: {z.origin}\n"
                if z.knot_signs:
                    text += "    dnssec-signing: on\n    dnssec-policy: rig\n"
        tmp = self.knot_conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.knot_conf)

    def _knotc(self, *args):
        return run(["knotc", "-s", os.path.join(self.dir, "knot-run", "knot.sock"), "-t", "20",
                    *args], timeout=30)

    def _knot_answers(self):
        self.knot.check()
        try:
            query(self.auth, "version.server.", "TXT", timeout=0.05, rdclass="CH")
            return True
        except Exception:
            return False

    def _served_serial(self, z):
        try:
            r = query(self.auth, z.origin, "SOA", dnssec=z.signed, timeout=1)
        except Exception:
            return None
        if r.rcode() != dns.rcode.NOERROR or not (r.flags & dns.flags.AA):
            return None
        soa = [rs for rs in r.answer if rs.rdtype == dns.rdatatype.SOA]
        if not soa:
            return None
        if z.signed and not any(rs.rdtype == dns.rdatatype.RRSIG for rs in r.answer):
            return None
        return soa[0][0].serial

    def _log_size(self):
        try:
            return os.path.getsize(self.knot.log)
        except OSError:
            return 0

    def _knot_errors(self, z, since):
        """knotd's error lines about zone z written after offset since."""
        try:
            with open(self.knot.log, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if f"[{z.origin}]" in ln and " error: " in ln]

    def _wait_served(self, z, since=0):
        def ready():
            self.knot.check()
            errors = self._knot_errors(z, since)
            if errors:
                time.sleep(0.1)  # let the last line be written
                raise ZoneRefused(f"knot refuses zone {z.origin}:\n"
                               + "\n".join(self._knot_errors(z, since)) + f"\n--- zone:\n{z.text}")
            s = self._served_serial(z)
            # knot may raise the serial when it signs; unsigned zones are
            # served with exactly the file's serial
            return s is not None and (s >= z.serial if z.knot_signs else s == z.serial)
        try:
            wait_for(ready, 15, f"knot serving {z.origin} serial {z.serial}", interval=0.02)
        except ZoneRefused:
            raise
        except RigError as e:
            raise RigError(f"{e}\n--- knotd log:\n{self.knot.logtext()}\n--- zone:\n{z.text}") from None

    def _reload_zone(self, z):
        since = self._log_size()
        self._knotc("-b", "zone-reload", z.origin)
        self._wait_served(z, since)
        self._reconfigure_unbound()

    def _write_trust_anchors(self):
        text = "".join(z.trust_anchor_text for z in self.zones.values() if z.signed)
        tmp = self.trust_anchor + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.trust_anchor)

    def _write_unbound_conf(self):
        extra, zones = [], []
        if any(z.signed for z in self.zones.values()):
            extra.append(f'    trust-anchor-file: "{self.trust_anchor}"')
        # unbound serves some names itself by default (test., invalid.,
        # 2.0.192.in-addr.arpa. ...): turn that off for every test name
        nodefault = set()
        for n in list(self.zones) + self.servfail_names + self.timeout_names:
            labels = n.rstrip(".").split(".")
            for i in range(len(labels)):
                nodefault.add(".".join(labels[i:]) + ".")
        nodefault -= set(self.timeout_names)
        for n in sorted(nodefault):
            extra.append(f'    local-zone: "{n}" nodefault')
        for n in self.timeout_names:
            extra.append(f'    local-zone: "{n}" deny')
        for z in self.zones.values():
            zones.append(f'stub-zone:\n    name: "{z.origin}"\n'
                         f"    stub-addr: {self.auth.host}@{self.auth.port}\n")
        for n in self.servfail_names:
            zones.append(f'stub-zone:\n    name: "{n}"\n'
                         f"    stub-addr: {self.servfail_endpoint.host}@{self.servfail_endpoint.port}\n")
        text = UNBOUND_CONF.format(dir=self.dir, host=self.resolver.host, port=self.resolver.port,
                                   server_extra="\n".join(extra), zones="".join(zones))
        tmp = self.unbound_conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.unbound_conf)

    def _reconfigure_unbound(self):
        """New configuration and an empty cache: unbound-control reload."""
        self._write_unbound_conf()
        self.unbound.check()
        run(["unbound-control", "-c", self.unbound_conf, "reload"], timeout=20)
        self._wait_unbound()

    def _wait_unbound(self):
        def answers():
            self.unbound.check()
            try:
                query(self.resolver, "version.server.", "TXT", timeout=0.05, rdclass="CH")
                return True
            except Exception:
                return False
        try:
            wait_for(answers, 10, f"unbound on {self.resolver}", interval=0.02)
        except RigError as e:
            raise RigError(f"{e}\n{self.unbound.logtext()}") from None
