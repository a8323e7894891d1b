"""posternd's DKIM hooks: signing keys loaded with the configuration (at
start and on SIGHUP, refused with a reason when a key does not load), and
inbound verification on the check pool, with keys served by the rig's DNS
(knot behind unbound). The verdicts are logged per message; they become an
Authentication-Results header with the DMARC work."""
import os
import re
import subprocess

import pytest

import pstlib
from pstlib import render_config

DOMAIN = "example.test"


def postern(*args, stdin=b""):
    p = subprocess.run([pstlib.postern_bin(), *args], input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def keygen(directory, sel, typ):
    path = os.path.join(directory, f"{sel}.pem")
    rc, out, err = postern("dkim", "keygen", "-d", DOMAIN, "-s", sel, "-t", typ, "-o", path)
    assert rc == 0, err
    line = out.decode().strip()
    record = "".join(line.split("(", 1)[1].rsplit(")", 1)[0].split('"')[1::2])
    return path, record


def zone_txt(record):
    return " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("dkimkeys"))
    return {"rsa": keygen(d, "r1", "rsa"), "ed": keygen(d, "e1", "ed25519")}


@pytest.fixture(scope="module")
def published(rig, keys):
    """The keys in the rig's example.test zone, and a name that times out."""
    rig.zone(DOMAIN, f"""
r1._domainkey TXT {zone_txt(keys["rsa"][1])}
e1._domainkey TXT {zone_txt(keys["ed"][1])}
""")
    rig.zone("slow.test", "@ A 192.0.2.1\n")
    rig.timeout("slow.test")
    return rig


def signed(keys, subject, extra_headers=""):
    msg = (f"From: someone@{DOMAIN}\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
           f"Date: Sat, 28 Nov 2026 20:00:00 +0000\r\nMessage-ID: <{subject}@{DOMAIN}>\r\n"
           f"{extra_headers}\r\nA signed body.\r\n").encode()
    rc, out, err = postern("dkim", "sign", "-d", DOMAIN, "-s", "r1", "-k", keys["rsa"][0],
                           "-s", "e1", "-k", keys["ed"][0], stdin=msg)
    assert rc == 0, err
    return out


def send(d, raw):
    c = d.connect()
    c.ehlo()
    r = c.transaction("someone@example.test", ["alice@example.test"], raw)
    c.quit()
    return r.queue_id


def checks_line(d, qid):
    return d.wait_log(re.escape(qid) + r" checks: .*", timeout=15).group(0)


def test_signing_keys_load_at_start(daemon, keys):
    d = daemon(dkim={"sign": [
        {"domain": DOMAIN, "selector": "r1", "key": keys["rsa"][0]},
        {"domain": DOMAIN, "selector": "e1", "key": keys["ed"][0]},
    ]})
    d.wait_log(r"dkim: 2 signing keys for 1 domain loaded")


def test_unreadable_key_refuses_start(tmp_path):
    conf = pstlib.default_config(str(tmp_path / "w"))
    conf["dkim"] = {"sign": [{"domain": DOMAIN, "selector": "x", "key": str(tmp_path / "nope.pem")}]}
    path = str(tmp_path / "p.conf")
    with open(path, "w") as f:
        f.write(render_config(conf))
    p = subprocess.run([pstlib.posternd_bin(), "-c", path], capture_output=True, text=True,
                       timeout=10, cwd=str(tmp_path))
    assert p.returncode != 0
    assert f"dkim key {tmp_path}/nope.pem: No such file or directory" in p.stderr, p.stderr


def test_garbage_key_refuses_start_without_showing_it(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n")
    conf = pstlib.default_config(str(tmp_path / "w"))
    conf["dkim"] = {"sign": [{"domain": DOMAIN, "selector": "x", "key": str(bad)}]}
    path = str(tmp_path / "p.conf")
    with open(path, "w") as f:
        f.write(render_config(conf))
    p = subprocess.run([pstlib.posternd_bin(), "-c", path], capture_output=True, text=True,
                       timeout=10, cwd=str(tmp_path))
    assert p.returncode != 0
    assert "x._domainkey.example.test" in p.stderr and "not a usable private key" in p.stderr
    assert "c2VjcmV0" not in p.stderr


def test_reload_with_broken_key_keeps_the_old_keys(daemon, keys, tmp_path):
    d = daemon(dkim={"sign": [{"domain": DOMAIN, "selector": "r1", "key": keys["rsa"][0]}]})
    d.wait_log(r"dkim: 1 signing key for 1 domain loaded")
    conf = dict(d.conf, dkim={"sign": [{"domain": DOMAIN, "selector": "r1",
                                        "key": str(tmp_path / "gone.pem")}]})
    d.write_config(conf)
    d.hup()
    d.wait_log(r"reload refused, keeping the running configuration: dkim key .*gone\.pem")
    c = d.connect()
    assert c.ehlo().code == 250


def test_unsigned_message_is_dkim_none(daemon):
    d = daemon()
    qid = send(d, pstlib.message("unsigned").encode())
    assert checks_line(d, qid).endswith("checks: dkim=none; action=deliver")
    (raw,) = d.maildir("alice").wait(1, match="unsigned")
    # our Authentication-Results field comes first, above our Received
    assert raw.split(b"\n")[2].startswith(b"Authentication-Results: " + pstlib.HOSTNAME.encode()), raw


def test_signed_message_passes_with_keys_from_the_rig(daemon, keys, published):
    d = daemon(dns={"server": str(published.resolver), "timeout": 5})
    qid = send(d, signed(keys, "pass1"))
    line = checks_line(d, qid)
    assert f"dkim=pass header.d={DOMAIN} header.s=r1 header.a=rsa-sha256" in line, line
    assert f"dkim=pass header.d={DOMAIN} header.s=e1 header.a=ed25519-sha256" in line, line
    # the message is delivered as usual, its signatures intact
    (raw,) = d.maildir("alice").wait(1, match="pass1")
    assert b"DKIM-Signature:" in raw
    assert re.search(rb"Authentication-Results: [^;]+;\n\tdkim=pass header\.d=example\.test "
                     rb"header\.s=r1 header\.i=@example\.test header\.a=rsa-sha256", raw), raw


def test_tampered_body_fails(daemon, keys, published):
    d = daemon(dns={"server": str(published.resolver)})
    raw = signed(keys, "tamper1").replace(b"A signed body.", b"A changed body.")
    line = checks_line(d, send(d, raw))
    assert "dkim=fail (body hash mismatch) header.d=example.test header.s=r1" in line, line


def test_key_lookup_timeout_is_temperror(daemon, keys, published):
    d = daemon(dns={"server": str(published.resolver), "timeout": 2})
    # a signature whose key lives under the name the rig never answers
    raw = signed(keys, "slow1").replace(b"d=example.test", b"d=slow.test")
    line = checks_line(d, send(d, raw))
    assert re.search(r"dkim=temperror \([^)]*\) header\.d=slow\.test", line), line


def test_verification_off(daemon, keys):
    d = daemon(dkim={"verify": False})
    c = d.connect()
    c.ehlo()
    r = c.transaction("someone@example.test", ["alice@example.test"], signed(keys, "off"))
    c.quit()
    d.maildir("alice").wait(1, match="off")
    assert r.queue_id + " checks:" not in d.stderr()
