"""`postern dns query`: the --json contract and the exit codes, from a zone
file (--dns-zone) and from a real resolver (--dns-server: an unbound of
the test's own on 127.0.0.1 serving the same records as local-data, and
DNSSEC-signed zones as auth-zones), and the two must agree.

The rig engineer's tests (test_dns_rig.py) drive the same CLI against knot
behind unbound; these need nothing but unbound and ldns-signzone.
"""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

import pstlib

ZONE = """$ORIGIN example.test.
$TTL 300
@        IN SOA ns1 hostmaster 1 3600 600 86400 60
@        IN NS  ns1
ns1      IN A   192.0.2.53
@        IN MX  20 mx2
@        IN MX  10 MX1
www      IN A   192.0.2.1
www      IN A   192.0.2.2
www      IN AAAA 2001:db8::1
spf      IN TXT "v=spf1 " "ip4:192.0.2.0/24" " -all"
odd      IN TXT "a\\000b\\\\c\\"d\\255"
_25._tcp.mx1 IN TLSA 3 1 1 ABCDEF0123456789
alias    IN CNAME www
alias2   IN CNAME alias
dangling IN CNAME nothere
loop1    IN CNAME loop2
loop2    IN CNAME loop1
a.b.ent  IN A   192.0.2.5
"""
LONG = ["%03d" % i + "x" * 252 for i in range(4)]  # four 255-octet strings
ZONE += "long     IN TXT " + " ".join('"%s"' % s for s in LONG) + "\n"
ZONE += "1.2.0.192.in-addr.arpa. IN PTR www.example.test.\n"
ZONE_MARKERS = ZONE + 'sf IN TXT "postern-test=servfail"\nslow IN TXT "postern-test=timeout"\n'


def run(*args, timeout=30):
    return subprocess.run([pstlib.postern_bin(), "dns", "query", *args], capture_output=True,
                          text=True, timeout=timeout)


def query(name, rtype, *opts):
    p = run(name, rtype, "--json", *opts)
    assert p.stdout.count("\n") == 1, (p.returncode, p.stdout, p.stderr)
    return p.returncode, json.loads(p.stdout)


@pytest.fixture(scope="module")
def zone_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zone") / "example.test.zone"
    path.write_text(ZONE_MARKERS)
    return str(path)


# ------------------------------------------------------------- the contract

def test_json_contract_mx(zone_file):
    p = run("Example.TEST", "mx", "--json", "--dns-zone", zone_file)
    assert p.returncode == 0, p.stderr
    assert p.stdout == (
        '{"name":"example.test.","type":"MX","status":"ok","notfound":null,'
        '"dnssec":"insecure","ttl":300,"canonical":"example.test.","reason":null,'
        '"records":[{"preference":10,"exchange":"mx1.example.test."},'
        '{"preference":20,"exchange":"mx2.example.test."}]}\n')
    assert p.stderr == ""


@pytest.mark.parametrize("name,rtype,records", [
    ("www.example.test", "A", ["192.0.2.1", "192.0.2.2"]),
    ("www.example.test", "AAAA", ["2001:db8::1"]),
    ("spf.example.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"]),
    ("odd.example.test", "TXT", ['a\\000b\\092c"d\\255']),
    ("long.example.test", "TXT", ["".join(LONG)]),
    ("_25._tcp.mx1.example.test", "TLSA",
     [{"usage": 3, "selector": 1, "mtype": 1, "data": "abcdef0123456789"}]),
    ("alias2.example.test", "CNAME", ["alias.example.test."]),
    ("1.2.0.192.in-addr.arpa", "PTR", ["www.example.test."]),
    ("192.0.2.1", "PTR", ["www.example.test."]),
])
def test_records(zone_file, name, rtype, records):
    rc, j = query(name, rtype, "--dns-zone", zone_file)
    assert (rc, j["status"], j["records"]) == (0, "ok", records)
    assert j["type"] == rtype and j["notfound"] is None and j["reason"] is None


def test_cname_chain_canonical(zone_file):
    rc, j = query("alias2.example.test", "A", "--dns-zone", zone_file)
    assert rc == 0
    assert j["name"] == "alias2.example.test."
    assert j["canonical"] == "www.example.test."
    assert j["records"] == ["192.0.2.1", "192.0.2.2"]


@pytest.mark.parametrize("name,rtype,nf,canonical", [
    ("nothing.example.test", "A", "nxdomain", "nothing.example.test."),
    ("www.example.test", "TXT", "nodata", "www.example.test."),
    ("ent.example.test", "A", "nodata", "ent.example.test."),
    ("dangling.example.test", "A", "nxdomain", "nothere.example.test."),
])
def test_notfound(zone_file, name, rtype, nf, canonical):
    rc, j = query(name, rtype, "--dns-zone", zone_file)
    assert (rc, j["status"], j["notfound"], j["canonical"]) == (1, "notfound", nf, canonical)
    assert j["records"] == [] and j["ttl"] == 60


def test_cname_loop_fails(zone_file):
    rc, j = query("loop1.example.test", "A", "--dns-zone", zone_file)
    assert (rc, j["status"]) == (2, "fail")
    assert j["reason"] == ("CNAME loop: loop1.example.test. -> loop2.example.test. -> "
                           "loop1.example.test.")


@pytest.mark.parametrize("name,reason", [("sf.example.test", "SERVFAIL (simulated)"),
                                         ("slow.example.test", "timed out (simulated)")])
def test_simulated_retry(zone_file, name, reason):
    rc, j = query(name, "MX", "--dns-zone", zone_file)
    assert (rc, j["status"], j["reason"], j["ttl"]) == (75, "retry", reason, 0)


def test_plain_output(zone_file):
    p = run("alias.example.test", "A", "--dns-zone", zone_file)
    assert p.returncode == 0
    assert p.stdout == ("status=ok notfound=- dnssec=insecure ttl=300 canonical=www.example.test.\n"
                        "192.0.2.1\n192.0.2.2\n")
    p = run("odd.example.test", "TXT", "--dns-zone", zone_file)
    assert p.stdout.splitlines()[1] == '"a\\000b\\092c\\034d\\255"'
    p = run("nothing.example.test", "MX", "--dns-zone", zone_file)
    assert p.returncode == 1
    assert p.stdout == ("status=notfound notfound=nxdomain dnssec=insecure ttl=60 "
                        "canonical=nothing.example.test.\n")
    p = run("sf.example.test", "A", "--dns-zone", zone_file)
    assert p.returncode == 75
    assert p.stdout == ('status=retry notfound=- dnssec=insecure ttl=0 '
                        'canonical=sf.example.test. reason="SERVFAIL (simulated)"\n')


# ------------------------------------------------------------- bad input

def test_zone_syntax_error_names_the_line(tmp_path):
    z = tmp_path / "bad.zone"
    z.write_text("$ORIGIN t.\n$TTL 60\nwww A 192.0.2.1\n\nmx MX 10\n")
    p = run("www.t", "A", "--dns-zone", str(z))
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith(f"postern: dns query: {z}:5: "), p.stderr


@pytest.mark.parametrize("args,msg", [
    (["x.test"], "needs NAME and TYPE"),
    (["x.test", "NS"], "type 'NS' is not one of"),
    (["a..b", "A"], "'a..b' is not a domain name"),
    (["x.test", "A", "--timeout", "0"], "--timeout wants whole seconds"),
    (["x.test", "A", "--timeout", "5s"], "--timeout wants whole seconds"),
    (["x.test", "A", "--dns-server"], "--dns-server needs a value"),
    (["x.test", "A", "--dns-server", "ns.example.test"], "not ADDR[:PORT]"),
    (["x.test", "A", "--dns-zone", "/nonexistent/zone"], "cannot open"),
    (["x.test", "A", "--dns-zone", "z", "--dns-server", "127.0.0.1"], "--dns-zone answers alone"),
    (["x.test", "A", "--bogus"], "unknown option '--bogus'"),
    (["x.test", "A", "extra"], "too many arguments"),
])
def test_usage_errors(args, msg):
    p = run(*args)
    assert p.returncode == 2
    assert msg in p.stderr, p.stderr


def test_timeout_against_a_silent_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        t0 = time.monotonic()
        rc, j = query("www.example.test", "A", "--dns-server",
                      "127.0.0.1:%d" % s.getsockname()[1], "--timeout", "1")
        took = time.monotonic() - t0
    finally:
        s.close()
    assert (rc, j["status"], j["reason"]) == (75, "retry", "timed out after 1 s")
    assert took < 10


# ------------------------------------------------------------- a real resolver

def local_data(zone_text):
    """The zone's records as unbound local-data lines (absolute names)."""
    lines, origin, ttl = [], None, 300
    for raw in zone_text.splitlines():
        if raw.startswith("$ORIGIN"):
            origin = raw.split()[1]
            continue
        if raw.startswith("$TTL") or not raw.strip():
            continue
        owner, rest = raw.split(None, 1)
        if owner == "@":
            owner = origin
        elif not owner.endswith("."):
            owner = owner + "." + origin
        parts = rest.split(None, 2)
        if parts[0] == "IN":
            parts = parts[1:]
        rtype, rdata = parts[0], " ".join(parts[1:])
        if rtype in ("MX", "CNAME", "NS", "PTR", "SOA"):
            rdata = " ".join(w if w.endswith(".") or w.isdigit() else w + "." + origin
                             for w in rdata.split())
        lines.append("  local-data: '%s %d IN %s %s'" % (owner, ttl, rtype, rdata))
    return "\n".join(lines)


def sign(workdir, zone, text):
    """Signs text as zone with a fresh KSK and ZSK; returns (signed file, DS text)."""
    path = os.path.join(workdir, zone + "zone")
    with open(path, "w") as f:
        f.write(text)
    ksk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], cwd=workdir,
                         capture_output=True, text=True, check=True).stdout.strip()
    zsk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", zone], cwd=workdir,
                         capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["ldns-signzone", "-n", path, ksk, zsk], cwd=workdir, check=True,
                   capture_output=True)
    with open(os.path.join(workdir, ksk + ".ds")) as f:
        return path + ".signed", f.read()


SIGNED = """$ORIGIN %s
$TTL 300
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.10
@ IN MX 10 mx
"""


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    """An unbound on 127.0.0.1: example.test. as local-data, signed.test. and
    bogus.test. as signed auth-zones (bogus.test.'s published A record was
    changed after signing). Yields (server, trust anchor file)."""
    if shutil.which("unbound") is None or shutil.which("ldns-signzone") is None:
        pytest.skip("unbound and ldnsutils are needed (scripts/deps installs them)")
    wd = str(tmp_path_factory.mktemp("unbound"))
    signed, ds1 = sign(wd, "signed.test.", SIGNED % "signed.test.")
    bogus, ds2 = sign(wd, "bogus.test.", SIGNED % "bogus.test.")
    with open(bogus) as f:
        text = f.read().replace("192.0.2.10", "192.0.2.66")
    with open(bogus, "w") as f:
        f.write(text)
    anchors = os.path.join(wd, "anchors")
    with open(anchors, "w") as f:
        f.write(ds1 + "\n" + ds2 + "\n")
    port = pstlib.free_port()
    conf = os.path.join(wd, "unbound.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
  interface: 127.0.0.1
  port: {port}
  chroot: ""
  username: ""
  directory: "{wd}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
  local-zone: "example.test." static
  local-zone: "2.0.192.in-addr.arpa." static
{local_data(ZONE)}
auth-zone:
  name: "signed.test."
  zonefile: "{signed}"
  for-downstream: yes
  for-upstream: yes
auth-zone:
  name: "bogus.test."
  zonefile: "{bogus}"
  for-downstream: yes
  for-upstream: yes
remote-control:
  control-enable: no
""")
    proc = subprocess.Popen(["unbound", "-d", "-c", conf], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    pstlib._live.add(proc)
    server = f"127.0.0.1:{port}"
    try:
        # ready when it answers
        deadline = time.monotonic() + 10
        while True:
            rc, j = query("www.example.test", "A", "--dns-server", server, "--timeout", "1")
            if rc == 0:
                break
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, f"unbound on {server} does not answer: {j}"
            time.sleep(0.1)
        yield server, anchors
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pstlib._live.discard(proc)


SAME = [("example.test", "MX"), ("www.example.test", "A"), ("www.example.test", "AAAA"),
        ("spf.example.test", "TXT"), ("odd.example.test", "TXT"), ("long.example.test", "TXT"),
        ("_25._tcp.mx1.example.test", "TLSA"), ("alias.example.test", "A"),
        ("alias2.example.test", "AAAA"), ("alias2.example.test", "CNAME"),
        ("nothing.example.test", "A"), ("www.example.test", "MX"),
        ("dangling.example.test", "A"), ("loop1.example.test", "A"),
        ("ent.example.test", "A"), ("b.ent.example.test", "TXT"), ("x.a.b.ent.example.test", "A"),
        ("1.2.0.192.in-addr.arpa", "PTR")]


@pytest.mark.parametrize("name,rtype", SAME)
def test_zone_file_and_server_agree(zone_file, resolver, name, rtype):
    server, _ = resolver
    rc1, from_zone = query(name, rtype, "--dns-zone", zone_file)
    rc2, from_server = query(name, rtype, "--dns-server", server)
    # a cached record's TTL counts down; an RRset has no order (RFC 2181
    # 5), and unbound rotates it
    assert from_server["ttl"] <= from_zone["ttl"]
    from_server["ttl"] = from_zone["ttl"]
    for j in (from_zone, from_server):
        j["records"].sort(key=json.dumps)
    assert (rc2, from_server) == (rc1, from_zone)


def test_server_dnssec_secure(resolver):
    server, anchors = resolver
    rc, j = query("www.signed.test", "A", "--dns-server", server, "--trust-anchor", anchors)
    assert (rc, j["status"], j["dnssec"], j["records"]) == (0, "ok", "secure", ["192.0.2.10"])
    rc, j = query("nothing.signed.test", "A", "--dns-server", server, "--trust-anchor", anchors)
    assert (rc, j["notfound"], j["dnssec"]) == (1, "nxdomain", "secure")
    rc, j = query("signed.test", "TXT", "--dns-server", server, "--trust-anchor", anchors)
    assert (rc, j["notfound"], j["dnssec"]) == (1, "nodata", "secure")
    # without a trust anchor nothing is validated
    rc, j = query("www.signed.test", "A", "--dns-server", server)
    assert (rc, j["dnssec"]) == (0, "insecure")


def test_server_dnssec_bogus(resolver):
    server, anchors = resolver
    rc, j = query("www.bogus.test", "A", "--dns-server", server, "--trust-anchor", anchors)
    assert (rc, j["status"], j["dnssec"], j["records"]) == (75, "retry", "bogus", [])
    assert j["reason"].startswith("DNSSEC validation failed: ")


def test_trust_anchor_errors(tmp_path):
    bad = tmp_path / "anchor"
    bad.write_text("; anchors\nexample.test. IN A 192.0.2.1\n")
    p = run("x.test", "A", "--dns-server", "127.0.0.1", "--trust-anchor", str(bad))
    assert p.returncode == 2
    assert f"trust anchor {bad}:2: not a DS or DNSKEY record" in p.stderr
