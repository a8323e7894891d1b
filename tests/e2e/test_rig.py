"""Self-tests of the test rig (tests/rig): every piece does what the
other tests rely on, judged by independent clients (dnspython, kdig,
Python's ssl and smtplib, openssl verify)."""
import os
import signal
import smtplib
import ssl
import subprocess
import time

import dns.exception
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from rig import Rig, RigError, query, txt_rdata
from rig.proc import LOCK_DIR, alive

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LONG_TXT = "v=DKIM1; k=rsa; p=" + "A" * 582  # 600 bytes: three character-strings

ZONE = f"""
@           MX    10 mx1
@           MX    5 mx0
mx0         A     192.0.2.10
mx1         A     192.0.2.11
mx1         AAAA  2001:db8::11
txt         TXT   "v=spf1 -all"
long        TXT   {txt_rdata(LONG_TXT)}
alias       CNAME mx1
_25._tcp.mx1 TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
onlya       A     192.0.2.99
"""

EXPECT = [  # name, type, answer text as dnspython prints the rdata
    ("example.test", "MX", {"5 mx0.example.test.", "10 mx1.example.test."}),
    ("mx0.example.test", "A", {"192.0.2.10"}),
    ("mx1.example.test", "AAAA", {"2001:db8::11"}),
    ("txt.example.test", "TXT", {'"v=spf1 -all"'}),
    ("alias.example.test", "CNAME", {"mx1.example.test."}),
    ("_25._tcp.mx1.example.test", "TLSA",
     {"3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}),
    ("11.2.0.192.in-addr.arpa", "PTR", {"mx1.example.test."}),
]


@pytest.fixture(scope="module")
def zones(rig):
    return {
        "plain": rig.zone("example.test", ZONE),
        "reverse": rig.zone("2.0.192.in-addr.arpa", "11 PTR mx1.example.test.\n"),
        "signed": rig.zone("signed.test", "@ MX 10 mx\nmx A 192.0.2.20\n", signed=True),
        "bogus": rig.zone("bogus.test", "@ MX 10 mx\nmx A 192.0.2.30\n", bogus=True),
        "partly": rig.zone("partly.test", "good A 192.0.2.40\nbad A 192.0.2.41\n", bogus=["bad"]),
    }


def answer_set(r, rtype):
    t = dns.rdatatype.from_text(rtype)
    return {rd.to_text() for rs in r.answer if rs.rdtype == t for rd in rs}


# ------------------------------------------------------------------ DNS

@pytest.mark.parametrize("name,rtype,want", EXPECT, ids=[e[1] for e in EXPECT])
def test_knot_and_unbound_answer_each_type(rig, zones, name, rtype, want):
    a = query(rig.auth, name, rtype)
    assert a.flags & dns.flags.AA, "knot answers with authority"
    assert answer_set(a, rtype) == want
    r = query(rig.resolver, name, rtype)
    assert r.flags & dns.flags.RA and r.rcode() == dns.rcode.NOERROR
    assert answer_set(r, rtype) == want
    assert not r.flags & dns.flags.AD, "an unsigned zone is insecure"


def test_kdig_against_knot_and_unbound(rig, zones):
    for server in (rig.auth, rig.resolver):
        p = subprocess.run(["kdig", f"@{server.host}", "-p", str(server.port), "+short",
                            "example.test", "MX"], capture_output=True, text=True, timeout=10)
        assert sorted(p.stdout.split("\n")) == ["", "10 mx1.example.test.", "5 mx0.example.test."]


def test_nxdomain_and_nodata(rig, zones):
    r = query(rig.resolver, "nosuch.example.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
    r = query(rig.resolver, "onlya.example.test", "MX")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert any(rs.rdtype == dns.rdatatype.SOA for rs in r.authority)


def test_long_txt_split_in_strings(rig, zones):
    r = query(rig.resolver, "long.example.test", "TXT")
    (rd,) = [rd for rs in r.answer for rd in rs]
    assert [len(s) for s in rd.strings] == [255, 255, 90]
    assert b"".join(rd.strings).decode() == LONG_TXT


def test_cname_followed_by_the_resolver(rig, zones):
    r = query(rig.resolver, "alias.example.test", "A")
    assert answer_set(r, "CNAME") == {"mx1.example.test."}
    assert answer_set(r, "A") == {"192.0.2.11"}


def test_signed_zone_is_secure(rig, zones):
    a = query(rig.auth, "signed.test", "MX", dnssec=True)
    assert any(rs.rdtype == dns.rdatatype.RRSIG for rs in a.answer), "knot signs"
    r = query(rig.resolver, "signed.test", "MX", dnssec=True)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AD
    assert answer_set(r, "MX") == {"10 mx.signed.test."}
    r = query(rig.resolver, "nosuch.signed.test", "A", dnssec=True)
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AD, "NXDOMAIN proven"
    with open(rig.trust_anchor) as f:
        anchors = f.read()
    assert "signed.test. 300 IN DNSKEY 257 3 13 " in anchors
    assert "bogus.test.\tIN\tDS\t" in anchors
    assert zones["signed"].ds().startswith("signed.test. IN DS ")


def test_tampered_zone_is_bogus(rig, zones):
    r = query(rig.resolver, "mx.bogus.test", "A", dnssec=True)
    assert r.rcode() == dns.rcode.SERVFAIL
    # with checking disabled the data is there: only the signatures are wrong
    r = query(rig.resolver, "mx.bogus.test", "A", dnssec=True, cd=True)
    assert answer_set(r, "A") == {"192.0.2.30"} and not r.flags & dns.flags.AD
    # the key itself validates against the trust anchor
    r = query(rig.resolver, "bogus.test", "DNSKEY", dnssec=True)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AD


def test_only_the_named_owner_is_bogus(rig, zones):
    r = query(rig.resolver, "bad.partly.test", "A", dnssec=True)
    assert r.rcode() == dns.rcode.SERVFAIL
    r = query(rig.resolver, "good.partly.test", "A", dnssec=True)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AD
    assert answer_set(r, "A") == {"192.0.2.40"}


def test_servfail_for_a_name_inside_a_zone(rig, zones):
    rig.servfail("broken.example.test")
    t0 = time.monotonic()
    r = query(rig.resolver, "x.broken.example.test", "TXT")
    assert r.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - t0 < 2
    r = query(rig.resolver, "mx0.example.test", "A")
    assert answer_set(r, "A") == {"192.0.2.10"}, "the rest of the zone still answers"
    r = query(rig.servfail_server, "anything.test", "A")
    assert r.rcode() == dns.rcode.SERVFAIL


def test_timeout_for_a_name_and_the_blackhole(rig, zones):
    rig.timeout("slow.example.test")
    with pytest.raises(dns.exception.Timeout):
        query(rig.resolver, "x.slow.example.test", "A", timeout=0.5)
    assert answer_set(query(rig.resolver, "mx1.example.test", "A"), "A") == {"192.0.2.11"}
    with pytest.raises(dns.exception.Timeout):
        query(rig.blackhole, "example.test", "MX", timeout=0.5)
    with pytest.raises(dns.exception.Timeout):
        query(rig.blackhole, "example.test", "MX", timeout=0.5, tcp=True)


def test_zone_update_reaches_the_resolver(rig, zones):
    z = rig.zone("update.test", "@ TXT \"one\"\n")
    assert answer_set(query(rig.resolver, "update.test", "TXT"), "TXT") == {'"one"'}
    z.update("@ TXT \"two\"\n")
    assert answer_set(query(rig.resolver, "update.test", "TXT"), "TXT") == {'"two"'}
    s = rig.zone("update-signed.test", "@ TXT \"one\"\n", signed=True)
    s.update("@ TXT \"two\"\n")
    r = query(rig.resolver, "update-signed.test", "TXT", dnssec=True)
    assert answer_set(r, "TXT") == {'"two"'} and r.flags & dns.flags.AD


def test_zone_from_records_and_own_soa(rig):
    z = rig.zone("records.test", [("@", "MX", "10 mx"), ("mx", 60, "A", "192.0.2.50")])
    r = query(rig.auth, "mx.records.test", "A")
    assert r.answer[0].ttl == 60
    own = rig.zone("own-soa.test", "@ SOA ns.own-soa.test. h.own-soa.test. 42 1 1 1 1\n"
                   "@ NS ns.own-soa.test.\n@ A 192.0.2.51\n")
    assert own.serial == 42 and z.serial == 1
    r = query(rig.auth, "own-soa.test", "SOA")
    assert r.answer[0][0].serial == 42


# ------------------------------------------------------------------ certificates

def verify(rig, cert, name):
    """Verifies cert for name with OpenSSL's own verifier."""
    return subprocess.run(["openssl", "verify", "-CAfile", rig.cafile, "-verify_hostname", name,
                           cert.cert], capture_output=True, text=True, timeout=10)


def test_certificate_variants_with_openssl_verify(rig):
    name = "mx.certs.test"
    assert verify(rig, rig.cert(name), name).returncode == 0
    for kind, error in (("expired", "certificate has expired"),
                        ("not-yet-valid", "certificate is not yet valid"),
                        ("wrong-name", "hostname mismatch"),
                        ("self-signed", "self-signed certificate")):
        p = verify(rig, rig.cert(name, kind=kind), name)
        assert p.returncode != 0 and error in p.stdout + p.stderr, (kind, p.stdout + p.stderr)


@pytest.fixture(scope="module")
def https(rig):
    for kind in ("valid", "expired", "wrong-name", "self-signed"):
        rig.https_host(f"{kind}.https.test", {"/index.txt": kind + "\n"}, cert=kind)
    rig.https_host("mta-sts.one.test", {"/.well-known/mta-sts.txt": "version: STSv1\nmode: enforce\n"})
    rig.https_host("mta-sts.two.test", {"/.well-known/mta-sts.txt": "version: STSv1\nmode: testing\n"},
                   extra="location = /gone { return 404; }")
    return rig.https


def test_certificate_variants_with_python_ssl(rig, https):
    assert https.get("valid.https.test", "/index.txt")[2] == b"valid\n"
    for kind, error in (("expired", "certificate has expired"),
                        ("wrong-name", "Hostname mismatch"),
                        ("self-signed", "self-signed certificate")):
        with pytest.raises(ssl.SSLCertVerificationError, match=error):
            https.get(f"{kind}.https.test", "/index.txt")
        # the server is there: without verification the file comes
        assert https.get(f"{kind}.https.test", "/index.txt", verify=False)[2] == (kind + "\n").encode()


def test_nginx_serves_two_names_by_sni(rig, https):
    st, headers, body = https.get("mta-sts.one.test", "/.well-known/mta-sts.txt")
    assert (st, body) == (200, b"version: STSv1\nmode: enforce\n")
    assert headers["Content-Type"] == "text/plain"
    st, _, body = https.get("mta-sts.two.test", "/.well-known/mta-sts.txt")
    assert (st, body) == (200, b"version: STSv1\nmode: testing\n")
    with https.connect("mta-sts.two.test") as s:
        san = s.getpeercert()["subjectAltName"]
    assert san == (("DNS", "mta-sts.two.test"),)
    assert https.get("mta-sts.two.test", "/gone")[0] == 404
    assert https.get("mta-sts.one.test", "/nothing-here")[0] == 404
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        https.connect("unknown.https.test")
    https.put("mta-sts.one.test", "/.well-known/mta-sts.txt", "version: STSv1\nmode: none\n")
    assert https.get("mta-sts.one.test", "/.well-known/mta-sts.txt")[2].endswith(b"mode: none\n")


# ------------------------------------------------------------------ peer MTAs

def smtp_send(endpoint, hostname, rcpt, subject, context=None):
    """Sends one message; STARTTLS with `context` (verifying hostname) when
    given. Returns the EHLO features seen before STARTTLS."""
    with smtplib.SMTP(endpoint.host, endpoint.port, local_hostname="client.test", timeout=10) as c:
        c.ehlo()
        features = dict(c.esmtp_features)
        if context is not None:
            c._host = hostname  # the name the certificate must match (SNI too)
            c.starttls(context=context)
            c.ehlo()
        c.sendmail("sender@client.test", [rcpt], f"From: sender@client.test\r\nTo: {rcpt}\r\n"
                   f"Subject: {subject}\r\n\r\nrig test\r\n")
        return features


@pytest.fixture(scope="module")
def peers(rig):
    return {kind: rig.postfix(f"mx-{kind}.peers.test", tls=None if kind == "none" else kind)
            for kind in ("valid", "expired", "wrong-name", "self-signed", "none")}


def test_postfix_peer_receives_over_starttls(rig, peers):
    p = peers["valid"]
    assert p.endpoint.port == 25 or os.geteuid() != 0
    features = smtp_send(p.endpoint, p.hostname, "alice@example.test", "rig-valid",
                         rig.ca.context())
    assert "starttls" in features
    (msg,) = p.wait(1, match="rig-valid", rcpt="alice@example.test")
    assert b"with ESMTPS" in msg and b"Delivered-To: alice@example.test" in msg
    assert p.messages("bob@example.test") == []


@pytest.mark.parametrize("kind,error", [("expired", "certificate has expired"),
                                        ("wrong-name", "Hostname mismatch"),
                                        ("self-signed", "self-signed certificate")])
def test_postfix_peer_certificate_variants(rig, peers, kind, error):
    p = peers[kind]
    with pytest.raises(ssl.SSLCertVerificationError, match=error):
        smtp_send(p.endpoint, p.hostname, "alice@example.test", "x", rig.ca.context())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    smtp_send(p.endpoint, p.hostname, "alice@example.test", f"rig-{kind}", ctx)
    p.wait(1, match=f"rig-{kind}")


def test_postfix_peer_without_starttls(rig, peers):
    p = peers["none"]
    features = smtp_send(p.endpoint, p.hostname, "bob@example.test", "rig-plain")
    assert "starttls" not in features
    (msg,) = p.wait(1, match="rig-plain", rcpt="bob@example.test")
    assert b"with ESMTP id" in msg


def test_smtp_sink_accepts_and_records_the_envelope(rig):
    s = rig.sink("sink-ok.test")
    smtp_send(s.endpoint, s.hostname, "carol@example.test", "rig-sink")
    (raw,) = s.wait(1, match="rig-sink")
    assert s.envelope(raw) == ("sender@client.test", ["carol@example.test"])


def test_smtp_sink_failure_injection(rig):
    s = rig.sink("sink-bad.test", hard=["RCPT"], soft=["MAIL"], hard_reply="550 5.7.1 No thanks")
    with smtplib.SMTP(s.endpoint.host, s.endpoint.port, timeout=10) as c:
        assert c.ehlo()[0] == 250
        assert c.mail("a@client.test")[0] == 450
    s2 = rig.sink("sink-bad2.test", hard=["RCPT"], hard_reply="550 5.7.1 No thanks")
    with smtplib.SMTP(s2.endpoint.host, s2.endpoint.port, timeout=10) as c:
        assert c.mail("a@client.test")[0] == 250
        assert c.rcpt("b@example.test") == (550, b"5.7.1 No thanks")
    s3 = rig.sink("sink-421.test", reply421=["EHLO"])
    with smtplib.SMTP(s3.endpoint.host, s3.endpoint.port, timeout=10) as c:
        assert c.ehlo()[0] == 421
    s4 = rig.sink("sink-drop.test", disconnect=["DATA"])
    with smtplib.SMTP(s4.endpoint.host, s4.endpoint.port, timeout=10) as c:
        c.mail("a@client.test")
        c.rcpt("b@example.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.data("Subject: x\r\n\r\nx\r\n")


# ------------------------------------------------------------------ the rig itself

def test_every_process_is_stopped_and_the_block_released():
    with Rig() as r:
        r.zone("stop.test", "@ A 192.0.2.1\n")
        r.https_host("www.stop.test", {"/a.txt": "a"})
        p = r.postfix("mx.stop.test")
        r.sink("sink.stop.test")
        other = Rig()
        assert other.block.prefix != r.block.prefix, "two rigs never share a block"
        other.stop()
        pids = [r.dns.knot.pid, r.dns.unbound.pid, r.https.proc.pid, r.sinks[0].proc.pid,
                *p.pids()]
        d = r.dir
        assert all(alive(x) for x in pids)
    assert not any(alive(x) for x in pids)
    assert not os.path.exists(d)
    # the block can be had again
    fd = os.open(os.path.join(LOCK_DIR, f"{r.block.prefix}.lock"), os.O_RDWR)
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_a_dead_server_is_reported(fresh_rig):
    fresh_rig.zone("dead.test", "@ A 192.0.2.1\n")
    fresh_rig.check()
    os.kill(fresh_rig.dns.unbound.pid, signal.SIGKILL)
    fresh_rig.dns.unbound.proc.wait(5)
    with pytest.raises(RigError, match="unbound exited"):
        fresh_rig.check()
    fresh_rig.dns.unbound.stop()  # the fixture's own check passes now


def test_cli_prints_variables_and_stops_at_end_of_input(tmp_path):
    zone = tmp_path / "cli.zone"
    zone.write_text("@ MX 10 mx\nmx A 192.0.2.60\n")
    p = subprocess.Popen(["/usr/bin/python3", "-m", "tests.rig", "up", "--zone",
                          f"cli.test={zone}", "--cert", "mx.cli.test:expired"],
                         cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        env = {}
        deadline = time.monotonic() + 30
        while "RIG_READY" not in env and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            k, _, v = line.strip().partition("=")
            env[k] = v
        assert env.get("RIG_READY") == "1", (env, p.stderr.read() if p.poll() is not None else "")
        host, port = env["RIG_DNS"].split(":")
        r = query((host, int(port)), "mx.cli.test", "A")
        assert answer_set(r, "A") == {"192.0.2.60"}
        assert os.path.exists(env["RIG_CERT1"]) and os.path.exists(env["RIG_CA"])
        knot = [int(x) for x in subprocess.run(["pgrep", "-f", env["RIG_DIR"]],
                                               capture_output=True, text=True).stdout.split()]
        assert knot, "the rig's servers run"
        p.stdin.close()
        assert p.wait(20) == 0
        assert not any(alive(x) for x in knot)
        assert not os.path.exists(env["RIG_DIR"])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
