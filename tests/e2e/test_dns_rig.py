"""postern's resolver against the rig: `postern dns query NAME TYPE
--dns-server <the rig's unbound> --json`, and the zone-file resolver
(`--dns-zone FILE`) against the real server for the same zone.

The JSON contract (src/postern/cmd_dns.c):
  {"name","type","status":"ok"|"notfound"|"retry"|"fail",
   "notfound":"nxdomain"|"nodata"|null,"dnssec":"secure"|"insecure"|"bogus",
   "ttl","canonical","reason","records":[...]}
exit status 0 ok, 1 notfound, 75 retry, 2 fail or usage."""
import json
import subprocess
import time

import dns.name
import dns.rdatatype
import dns.zone
import pytest

from pstlib import SANITIZER_MARKS, postern_bin
from rig import txt_rdata

EXIT = {"ok": 0, "notfound": 1, "retry": 75, "fail": 2}
TYPES = ("A", "AAAA", "TXT", "MX", "TLSA", "PTR", "CNAME")

LONG_TXT = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 13 + "x" * 10
assert len(LONG_TXT) == 600

TLSA_HEX = "0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef"

ZONE = f"""
@                MX    10 mx1
@                MX    20 mx2
@                MX    5 mx0
mx0              A     192.0.2.10
mx1              A     192.0.2.11
mx1              AAAA  2001:db8::11
mx2              A     192.0.2.12
mx2              A     192.0.2.13
txt              TXT   "v=spf1 ip4:192.0.2.0/24 -all"
multi            TXT   "first"
multi            TXT   "second" " joined"
long             TXT   {txt_rdata(LONG_TXT)}
escapes          TXT   "back\\\\slash" " say \\"hi\\"" "\\001\\200~"
alias            CNAME alias2
alias2           CNAME mx1
_25._tcp.mx1     TLSA  3 1 1 {TLSA_HEX}
onlya            A     192.0.2.99
"""


def dns_query(name, rtype, *args, timeout=60):
    """Runs `postern dns query NAME TYPE ARGS --json`; returns (exit
    status, parsed JSON or None, stderr). Fails on sanitizer reports."""
    p = subprocess.run([postern_bin(), "dns", "query", name, rtype, *args, "--json"],
                       capture_output=True, text=True, timeout=timeout)
    found = [m for m in SANITIZER_MARKS if m in p.stderr]
    assert not found, f"postern dns query {name} {rtype}: {found}:\n{p.stderr}"
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = None
    return p.returncode, j, p.stderr


def answer(name, rtype, *args, want=None, timeout=60):
    """dns_query that checks the envelope of the answer: valid JSON, the
    name and type as asked, and an exit status that matches the status."""
    rc, j, err = dns_query(name, rtype, *args, timeout=timeout)
    assert j is not None, f"exit {rc}, no JSON; stderr:\n{err}"
    assert j["name"] == name.rstrip(".") + "." and j["type"] == rtype, j
    assert rc == EXIT[j["status"]], f"exit {rc} for {j}"
    if want is not None:
        assert j["status"] == want, f"{j}\n{err}"
    return j


@pytest.fixture(scope="module")
def zones(rig):
    return {
        "plain": rig.zone("example.test", ZONE),
        "reverse": rig.zone("2.0.192.in-addr.arpa", "11 PTR mx1.example.test.\n"
                                                    "13 PTR mx2.example.test.\n"),
        "signed": rig.zone("signed.test", "@ MX 10 mx\nmx A 192.0.2.20\n"
                                          "_25._tcp.mx TLSA 3 1 1 " + "ab" * 32 + "\n",
                           signed=True),
        "bogus": rig.zone("bogus.test", "@ MX 10 mx\nmx A 192.0.2.30\n", bogus=True),
    }


@pytest.fixture(scope="module")
def server(rig, zones):
    """--dns-server for the rig's unbound."""
    return ["--dns-server", str(rig.resolver)]


@pytest.fixture(scope="module")
def validating(rig, zones):
    return ["--dns-server", str(rig.resolver), "--trust-anchor", rig.trust_anchor]


EACH_TYPE = [
    ("mx0.example.test", "A", ["192.0.2.10"]),
    ("mx1.example.test", "AAAA", ["2001:db8::11"]),
    ("example.test", "MX", [{"preference": 5, "exchange": "mx0.example.test."},
                            {"preference": 10, "exchange": "mx1.example.test."},
                            {"preference": 20, "exchange": "mx2.example.test."}]),
    ("txt.example.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"]),
    ("_25._tcp.mx1.example.test", "TLSA",
     [{"usage": 3, "selector": 1, "mtype": 1, "data": TLSA_HEX.lower()}]),
    ("11.2.0.192.in-addr.arpa", "PTR", ["mx1.example.test."]),
    ("alias.example.test", "CNAME", ["alias2.example.test."]),
]


@pytest.mark.parametrize("name,rtype,records", EACH_TYPE, ids=[e[1] for e in EACH_TYPE])
def test_each_record_type(server, name, rtype, records):
    j = answer(name, rtype, *server, want="ok")
    assert j["records"] == records
    assert j["notfound"] is None and j["reason"] is None
    assert j["dnssec"] == "insecure"
    assert j["canonical"] == name + "."
    assert 0 < j["ttl"] <= 300


def test_several_records_of_a_type(server):
    j = answer("mx2.example.test", "A", *server, want="ok")
    assert sorted(j["records"]) == ["192.0.2.12", "192.0.2.13"]
    j = answer("multi.example.test", "TXT", *server, want="ok")
    assert sorted(j["records"]) == ["first", "second joined"]


def test_nxdomain(server):
    j = answer("nosuch.example.test", "A", *server, want="notfound")
    assert j["notfound"] == "nxdomain" and j["records"] == []


def test_nodata(server):
    j = answer("onlya.example.test", "MX", *server, want="notfound")
    assert j["notfound"] == "nodata" and j["records"] == []
    # an empty non-terminal exists (RFC 8020): no data, not NXDOMAIN
    j = answer("_tcp.mx1.example.test", "TXT", *server, want="notfound")
    assert j["notfound"] == "nodata"


def test_servfail_is_retry(rig, server):
    rig.servfail("broken.example.test")
    j = answer("_dmarc.broken.example.test", "TXT", *server, want="retry")
    assert j["records"] == [] and j["reason"], j
    # a server that answers SERVFAIL itself
    j = answer("example.test", "MX", "--dns-server", str(rig.servfail_server), want="retry")
    assert j["reason"], j


def test_timeout_is_retry(rig, server):
    rig.timeout("slow.example.test")
    t0 = time.monotonic()
    j = answer("_mta-sts.slow.example.test", "TXT", *server, "--timeout", "1", want="retry")
    assert j["reason"], j
    assert time.monotonic() - t0 < 15, "the per-query timeout bounds the wait"
    t0 = time.monotonic()
    j = answer("example.test", "MX", "--dns-server", str(rig.blackhole), "--timeout", "1",
               want="retry")
    assert time.monotonic() - t0 < 15


def test_long_txt_is_joined(server):
    j = answer("long.example.test", "TXT", *server, want="ok")
    assert j["records"] == [LONG_TXT]


def test_txt_bytes_outside_printable_ascii_are_escaped(server):
    j = answer("escapes.example.test", "TXT", *server, want="ok")
    assert j["records"] == ['back\\092slash say "hi"\\001\\200~']


def test_cname_chain_is_followed(server):
    j = answer("alias.example.test", "A", *server, want="ok")
    assert j["records"] == ["192.0.2.11"]
    assert j["canonical"] == "mx1.example.test."
    assert j["name"] == "alias.example.test."
    j = answer("alias.example.test", "AAAA", *server, want="ok")
    assert j["records"] == ["2001:db8::11"] and j["canonical"] == "mx1.example.test."


def test_signed_zone_is_secure(validating):
    j = answer("signed.test", "MX", *validating, want="ok")
    assert j["dnssec"] == "secure"
    assert j["records"] == [{"preference": 10, "exchange": "mx.signed.test."}]
    j = answer("_25._tcp.mx.signed.test", "TLSA", *validating, want="ok")
    assert j["dnssec"] == "secure"
    assert j["records"] == [{"usage": 3, "selector": 1, "mtype": 1, "data": "ab" * 32}]
    j = answer("nosuch.signed.test", "A", *validating, want="notfound")
    assert j["notfound"] == "nxdomain" and j["dnssec"] == "secure"


def test_signed_zone_without_trust_anchor_is_insecure(server):
    j = answer("signed.test", "MX", *server, want="ok")
    assert j["dnssec"] == "insecure"


def test_unsigned_zone_with_trust_anchor_is_insecure(validating):
    j = answer("mx0.example.test", "A", *validating, want="ok")
    assert j["dnssec"] == "insecure"


def test_broken_signature_is_bogus(validating):
    # libunbound validates with the trust anchor and finds the signature
    # wrong: bogus, and like SERVFAIL a temporary failure (RFC 7672 2.1.1);
    # the forged data is not handed out
    j = answer("mx.bogus.test", "A", *validating)
    assert j["dnssec"] == "bogus", j
    assert j["status"] == "retry" and j["records"] == [], j


def zone_queries(path, origin):
    """(name, type) for every owner name and record type in the zone file
    that `postern dns query` knows, plus one type each name lacks (NODATA),
    empty non-terminals and names that do not exist (NXDOMAIN)."""
    z = dns.zone.from_file(path, origin=origin, relativize=False)
    out = []
    for name, node in sorted(z.nodes.items()):
        have = {dns.rdatatype.to_text(rds.rdtype) for rds in node.rdatasets}
        for t in TYPES:
            if t in have:
                out.append((name.to_text(), t))
        if "CNAME" in have:
            out.append((name.to_text(), "A"))  # followed to its target
            continue
        missing = [t for t in ("TXT", "AAAA", "MX") if t not in have]
        if missing:
            out.append((name.to_text(), missing[0]))
    out += [("_tcp.mx1." + origin, "TLSA"), ("nosuch." + origin, "A"),
            ("deeper.nosuch." + origin, "MX")]
    return out


def test_zone_file_and_server_give_the_same_answers(rig, zones, server):
    z = zones["plain"]
    queries = zone_queries(z.source, z.origin)
    assert len(queries) > 20
    diffs = []
    for name, rtype in queries:
        a = answer(name, rtype, "--dns-zone", z.source)
        b = answer(name, rtype, *server)
        assert a["ttl"] > 0 and b["ttl"] > 0 or a["status"] != "ok"
        fields = ("status", "notfound", "dnssec", "canonical")
        got = {k: a[k] for k in fields}
        want = {k: b[k] for k in fields}
        # several records of a type come in the server's order: compare sets
        got["records"] = sorted(json.dumps(r, sort_keys=True) for r in a["records"])
        want["records"] = sorted(json.dumps(r, sort_keys=True) for r in b["records"])
        if rtype == "MX":
            assert a["records"] == sorted(a["records"], key=lambda r: r["preference"])
        if got != want:
            diffs.append(f"{name} {rtype}: zone file {got} != server {want}")
    assert not diffs, "\n".join(diffs)
