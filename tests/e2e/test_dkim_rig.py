"""DKIM verification with keys served by real DNS: the rig's knot holds a
zone with the key records that `postern dkim keygen` printed, and
`postern dkim verify --dns-server <the rig's unbound>` fetches them.

  * postern-signed rsa-sha256 and ed25519-sha256 messages pass;
  * a 2048-bit RSA key record is longer than one TXT string: it arrives as
    several character-strings (checked with dnspython) and is joined, also
    when the strings split it in awkward places;
  * a key lookup that times out (the rig's deny zone, and its blackhole
    server) is temperror with exit 75, within the --timeout bound;
    SERVFAIL too;
  * a revoked key (empty p=) and a missing key record are permerror;
  * dkimpy, given the same rig resolver (dnspython), passes what postern
    passes: the published records are right, not only self-consistent.
"""
import subprocess
import time

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest

from pstlib import SANITIZER_MARKS, postern_bin
from rig import query, txt_rdata

DOMAIN = "dkim-rig.test"

MSG = (b"From: Joe <joe@dkim-rig.test>\r\n"
       b"To: Ann <ann@example.net>\r\n"
       b"Subject: keys from the rig\r\n"
       b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
       b"Message-ID: <rig@dkim-rig.test>\r\n"
       b"\r\n"
       b"Hello over real DNS.\r\n")


def postern(*args, stdin=b"", timeout=60):
    p = subprocess.run([postern_bin(), *args], input=stdin, capture_output=True,
                       timeout=timeout)
    err = p.stderr.decode(errors="replace")
    found = [m for m in SANITIZER_MARKS if m in err]
    assert not found, f"postern {' '.join(args[:2])}: {found}:\n{err}"
    return p.returncode, p.stdout.decode(errors="replace"), err


class Keys:
    pass


def keygen(d, sel, typ, bits=None):
    path = str(d / f"{sel}.pem")
    args = ["dkim", "keygen", "-d", DOMAIN, "-s", sel, "-t", typ, "-o", path]
    if bits:
        args += ["-b", str(bits)]
    rc, out, err = postern(*args)
    assert rc == 0, err
    line = out.strip()
    strings = line.split("(", 1)[1].rsplit(")", 1)[0].split('"')[1::2]
    return path, line, "".join(strings), strings


@pytest.fixture(scope="module")
def keys(rig, tmp_path_factory):
    d = tmp_path_factory.mktemp("dkimrig")
    k = Keys()
    k.rsa, rsa_line, k.rsa_record, k.rsa_strings = keygen(d, "rsa", "rsa", 2048)
    k.ed, ed_line, k.ed_record, _ = keygen(d, "ed", "ed25519")
    # the same RSA key again, its record cut inside "k=rsa" and then every
    # 100 octets, inside the base64 of p=
    r = k.rsa_record
    k.split_strings = [r[:12]] + [r[i:i + 100] for i in range(12, len(r), 100)]
    awkward = " ".join(f'"{s}"' for s in k.split_strings)
    k.zone = rig.zone(DOMAIN, f"""
{rsa_line}
{ed_line}
split._domainkey  TXT  {awkward}
revoked._domainkey TXT {txt_rdata("v=DKIM1; k=rsa; p=")}
slow._domainkey   TXT  {txt_rdata(k.rsa_record)}
broken._domainkey TXT  {txt_rdata(k.rsa_record)}
""")
    rig.timeout(f"slow._domainkey.{DOMAIN}")
    rig.servfail(f"broken._domainkey.{DOMAIN}")
    k.server = ["--dns-server", str(rig.resolver)]
    return k


def sign(keys, *pairs, msg=MSG):
    args = ["dkim", "sign", "-d", DOMAIN]
    for sel, key in pairs:
        args += ["-s", sel, "-k", key]
    rc, out, err = postern(*args, stdin=msg)
    assert rc == 0, err
    return out.encode()


def verify(keys, msg, *extra, server=None, timeout=60):
    return postern("dkim", "verify", *(server or keys.server), *extra, stdin=msg,
                   timeout=timeout)


def dkimpy_verify_via_rig(rig, msg, idx=0):
    """dkimpy with a dnsfunc that asks the rig's unbound (dnspython)."""
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        r = query(rig.resolver, n, "TXT")
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(rrset[0].strings)
        return None
    try:
        return dkim.DKIM(msg).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException:
        return False


def test_rsa_signature_verified_with_key_from_rig(rig, keys):
    m = sign(keys, ("rsa", keys.rsa))
    rc, out, err = verify(keys, m)
    assert (rc, out) == (0, f"pass d={DOMAIN} s=rsa a=rsa-sha256\n"), err
    assert dkimpy_verify_via_rig(rig, m)


def test_ed25519_signature_verified_with_key_from_rig(rig, keys):
    m = sign(keys, ("ed", keys.ed))
    rc, out, err = verify(keys, m)
    assert (rc, out) == (0, f"pass d={DOMAIN} s=ed a=ed25519-sha256\n"), err
    assert dkimpy_verify_via_rig(rig, m)


def test_rsa_and_ed25519_signatures_both_pass(keys):
    m = sign(keys, ("rsa", keys.rsa), ("ed", keys.ed))
    rc, out, err = verify(keys, m)
    assert rc == 0, err
    assert out.splitlines() == [f"pass d={DOMAIN} s=rsa a=rsa-sha256",
                                f"pass d={DOMAIN} s=ed a=ed25519-sha256"]


def test_rsa2048_record_arrives_as_several_strings_and_is_joined(rig, keys):
    assert len(keys.rsa_strings) >= 2 and all(len(s) <= 255 for s in keys.rsa_strings)
    r = query(rig.resolver, f"rsa._domainkey.{DOMAIN}", "TXT")
    (rrset,) = [a for a in r.answer if a.rdtype == dns.rdatatype.TXT]
    strings = [s.decode() for s in rrset[0].strings]
    assert strings == keys.rsa_strings, "the resolver hands out the strings as published"
    m = sign(keys, ("rsa", keys.rsa))
    rc, out, err = verify(keys, m)
    assert rc == 0 and out.startswith("pass "), out + err


def test_record_split_in_awkward_places_is_joined(rig, keys):
    r = query(rig.resolver, f"split._domainkey.{DOMAIN}", "TXT")
    (rrset,) = [a for a in r.answer if a.rdtype == dns.rdatatype.TXT]
    strings = [s.decode() for s in rrset[0].strings]
    assert strings == keys.split_strings and strings[0] == "v=DKIM1; k=r" and len(strings) == 5
    assert "".join(strings) == keys.rsa_record
    m = sign(keys, ("split", keys.rsa))
    rc, out, err = verify(keys, m)
    assert (rc, out) == (0, f"pass d={DOMAIN} s=split a=rsa-sha256\n"), err
    assert dkimpy_verify_via_rig(rig, m)


def test_key_lookup_timeout_is_temperror_exit_75(rig, keys):
    m = sign(keys, ("slow", keys.rsa))
    t0 = time.monotonic()
    rc, out, err = verify(keys, m, "--timeout", "1")
    took = time.monotonic() - t0
    assert rc == 75, out + err
    assert out.startswith(f"temperror d={DOMAIN} s=slow a=rsa-sha256 key lookup for "
                          f"slow._domainkey.{DOMAIN}"), out
    assert "timed out" in out, out
    assert took < 15, f"a 1 s lookup timeout took {took:.1f} s"


def test_blackhole_server_is_temperror_exit_75(rig, keys):
    m = sign(keys, ("rsa", keys.rsa), ("ed", keys.ed))
    t0 = time.monotonic()
    rc, out, err = verify(keys, m, "--timeout", "1", server=["--dns-server", str(rig.blackhole)])
    assert rc == 75, out + err
    lines = out.splitlines()
    assert [ln.split(" ")[0] for ln in lines] == ["temperror", "temperror"], out
    assert all("timed out" in ln for ln in lines), out
    assert time.monotonic() - t0 < 20


def test_servfail_is_temperror_exit_75(keys):
    m = sign(keys, ("broken", keys.rsa))
    rc, out, err = verify(keys, m)
    assert rc == 75, out + err
    assert out.startswith(f"temperror d={DOMAIN} s=broken a=rsa-sha256 key lookup"), out


def test_temperror_and_pass_together_exit_0(keys):
    """One signature whose key times out, one that passes: the message
    passes (exit 0) and each line tells its own result."""
    m = sign(keys, ("slow", keys.rsa), ("ed", keys.ed))
    rc, out, err = verify(keys, m, "--timeout", "1")
    assert rc == 0, out + err
    words = [ln.split(" ")[0] for ln in out.splitlines()]
    assert words == ["temperror", "pass"], out


def test_revoked_key_from_rig_is_permerror(rig, keys):
    m = sign(keys, ("revoked", keys.rsa))
    rc, out, err = verify(keys, m)
    assert (rc, out) == (1, f"permerror d={DOMAIN} s=revoked a=rsa-sha256 key revoked\n"), err
    assert dkimpy_verify_via_rig(rig, m) is False


def test_missing_key_record_is_permerror(keys):
    m = sign(keys, ("nosuch", keys.rsa))
    rc, out, err = verify(keys, m)
    assert rc == 1, out + err
    assert out == (f"permerror d={DOMAIN} s=nosuch a=rsa-sha256 no key record at "
                   f"nosuch._domainkey.{DOMAIN}\n"), out


def test_tampered_body_fails_with_key_from_rig(keys):
    m = sign(keys, ("rsa", keys.rsa), ("ed", keys.ed)).replace(b"real DNS", b"fake DNS")
    rc, out, err = verify(keys, m)
    assert rc == 1, out + err
    assert out.splitlines() == [f"fail d={DOMAIN} s=rsa a=rsa-sha256 body hash mismatch",
                                f"fail d={DOMAIN} s=ed a=ed25519-sha256 body hash mismatch"]
