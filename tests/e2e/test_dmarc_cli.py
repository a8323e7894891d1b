"""`postern dmarc record DOMAIN` against the rig's DNS (knot behind
unbound, `--dns-server`), the same records from a zone file
(`--dns-zone`) giving the same answer, and `postern dmarc lint`.

The whole "test." zone is served by the rig, so the tree walk's last query
(_dmarc.test) has a real NXDOMAIN answer instead of leaving the rig.

The JSON contract (src/postern/cmd_dmarc.c): {"domain","found",
"policy_domain","org_domain","record","queries":[{"name","result"}],
"tags","state","issues","error"}; exit status 0 found, 1 none, 75
temporary DNS failure, 2 usage or DNS failure."""
import json
import subprocess

import pytest

from pstlib import SANITIZER_MARKS, postern_bin

ZONE = """
_dmarc.example      TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.test"
mail.example        A   192.0.2.1
_dmarc.psd          TXT "v=DMARC1; p=quarantine; psd=y"
_dmarc.own.psd      TXT "v=DMARC1; p=none; psd=n"
_dmarc.two          TXT "v=DMARC1; p=reject"
_dmarc.two          TXT "v=DMARC1; p=none"
_dmarc.legacy       TXT "v=DMARC1; p=reject; pct=0; ri=3600"
"""


def postern(*args, timeout=60):
    p = subprocess.run([postern_bin(), "dmarc", *args], capture_output=True, text=True,
                       timeout=timeout)
    found = [m for m in SANITIZER_MARKS if m in p.stderr]
    assert not found, f"postern dmarc {args}: {found}:\n{p.stderr}"
    return p


def record(domain, *dns):
    p = postern("record", domain, "--json", *dns)
    assert p.stdout.count("\n") == 1, (p.returncode, p.stdout, p.stderr)
    return p.returncode, json.loads(p.stdout)


@pytest.fixture(scope="module")
def server(rig):
    rig.zone("test", ZONE)
    rig.servfail("broken.test")
    return ["--dns-server", str(rig.resolver)]


@pytest.fixture(scope="module")
def zone_file(tmp_path_factory):
    text = "$ORIGIN test.\n$TTL 300\n" + ZONE + '_dmarc.broken TXT "postern-test=servfail"\n'
    path = tmp_path_factory.mktemp("dmarc") / "test.zone"
    path.write_text(text)
    return ["--dns-zone", str(path)]


def names(j):
    return [q["name"] for q in j["queries"]]


@pytest.fixture(params=["server", "zone"])
def dns(request, server, zone_file):
    return server if request.param == "server" else zone_file


def test_found_at_org_domain(dns):
    rc, j = record("a.mail.example.test", *dns)
    assert rc == 0, j
    assert j["found"] and j["policy_domain"] == "example.test" and j["org_domain"] == "example.test"
    assert j["record"] == "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.test"
    assert names(j) == ["_dmarc.a.mail.example.test", "_dmarc.mail.example.test",
                        "_dmarc.example.test", "_dmarc.test"]
    assert j["tags"]["p"] == "reject" and j["tags"]["sp"] == "quarantine"
    assert j["tags"]["rua"] == ["mailto:d@example.test"]
    assert j["state"] == "ok" and j["error"] is None


def test_none(dns):
    rc, j = record("nothing.test", *dns)
    assert rc == 1 and not j["found"] and j["record"] is None
    assert names(j) == ["_dmarc.nothing.test", "_dmarc.test"]
    assert j["org_domain"] == "nothing.test"


def test_psd(dns):
    rc, j = record("x.y.psd.test", *dns)
    assert rc == 0, j
    assert j["policy_domain"] == "psd.test" and j["org_domain"] == "y.psd.test"
    assert names(j) == ["_dmarc.x.y.psd.test", "_dmarc.y.psd.test", "_dmarc.psd.test"]
    rc, j = record("a.own.psd.test", *dns)
    assert rc == 0 and j["org_domain"] == "own.psd.test" and len(j["queries"]) == 2


def test_eight_queries(dns):
    deep = "a.b.c.d.e.f.g.h.i.example.test"
    rc, j = record(deep, *dns)
    assert rc == 0 and j["policy_domain"] == "example.test"
    # 11 labels: the second query skips to 7 (RFC 9989 4.10 step 4)
    assert names(j) == ["_dmarc." + deep, "_dmarc.e.f.g.h.i.example.test",
                        "_dmarc.f.g.h.i.example.test", "_dmarc.g.h.i.example.test",
                        "_dmarc.h.i.example.test", "_dmarc.i.example.test",
                        "_dmarc.example.test", "_dmarc.test"]


def test_two_records_discarded(dns):
    rc, j = record("two.test", *dns)
    assert rc == 1 and j["queries"][0]["result"] == "multiple"


def test_legacy_tags(dns):
    rc, j = record("legacy.test", *dns)
    assert rc == 0 and j["tags"]["pct"] == 0 and j["tags"]["t"] == "y" and j["tags"]["ri"] == 3600
    assert all(i["warning"] for i in j["issues"])


def test_servfail_is_tempfail(dns):
    rc, j = record("mail.broken.test", *dns)
    assert rc == 75, j
    assert j["error"] and j["queries"][-1]["result"] == "temperror"


def test_server_and_zone_agree(server, zone_file):
    for d in ("a.mail.example.test", "x.y.psd.test", "nothing.test", "legacy.test"):
        assert record(d, *server) == record(d, *zone_file)


@pytest.mark.parametrize("text,rc", [
    ("v=DMARC1; p=reject; rua=mailto:d@example.test", 0),
    ("v=DMARC1; p=none; pct=0", 0),
    ("v=DMARC1; p=reject; sp=bogus", 1),
    ("v=DMARC1; rua=mailto:d@example.test", 1),
    ("p=reject; v=DMARC1", 1),
    ("v=dmarc1; p=reject", 1),
])
def test_lint(text, rc):
    p = postern("lint", text, "--json")
    assert p.returncode == rc, (p.stdout, p.stderr)
    assert json.loads(p.stdout)["valid"] == (rc == 0)
    p = postern("lint", text)
    assert p.returncode == rc
    assert p.stdout.startswith("valid" if rc == 0 else "invalid")


def test_usage():
    assert postern("lint").returncode == 2
    assert postern("record").returncode == 2
    assert postern("record", "not a domain", "--dns-zone", "/dev/null").returncode == 2
    assert postern("frobnicate").returncode == 2
