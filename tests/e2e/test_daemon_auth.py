"""SPF, DKIM and DMARC on received mail, end to end: the policy records
live in the rig's DNS (knot behind unbound), messages come from chosen
127.0.0.x source addresses (a raw client, swaks, and a Postfix relay), and
each test asserts the SMTP reply, the Authentication-Results field and
where the message landed (inbox, Junk folder, nowhere), plus the row in the
results store."""
import os
import re
import sqlite3
import subprocess
import uuid

import pytest

import pstlib

GOOD_IP = "127.0.0.21"   # the one address every SPF record here allows
BAD_IP = "127.0.0.22"    # allowed by none
ALLOW_IP = "127.0.0.23"  # on the daemon's allow-list in one test
PF_IP = "127.0.0.24"     # the Postfix relay's source address

ZONES = {
    # p=reject, SPF allows GOOD_IP
    "dm-reject.test": f"""
@ TXT "v=spf1 ip4:{GOOD_IP} -all"
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@dm-reject.test"
sel._domainkey TXT "{{dkim}}"
""",
    "dm-quarantine.test": f"""
@ TXT "v=spf1 ip4:{GOOD_IP} -all"
_dmarc TXT "v=DMARC1; p=quarantine"
""",
    "dm-none.test": f"""
@ TXT "v=spf1 ip4:{GOOD_IP} -all"
_dmarc TXT "v=DMARC1; p=none"
""",
    # t=y: the policy is applied one level lower (RFC 9989 5.3)
    "dm-testing.test": f"""
@ TXT "v=spf1 ip4:{GOOD_IP} -all"
_dmarc TXT "v=DMARC1; p=reject; t=y"
""",
    # np: the policy for non-existent subdomains (RFC 9989 4.7)
    "dm-np.test": f"""
@ TXT "v=spf1 ip4:{GOOD_IP} -all"
_dmarc TXT "v=DMARC1; p=none; sp=none; np=reject"
""",
    # no DMARC record at all
    "dm-nopolicy.test": f"""
@ TXT "v=spf1 ip4:{GOOD_IP} -all"
""",
    "other.test": "@ A 192.0.2.7",
    # a HELO name with its own SPF record (RFC 7208 2.3)
    "relay.helo.test": f'@ TXT "v=spf1 ip4:{GOOD_IP} -all"',
}


def postern(*args, stdin=b""):
    p = subprocess.run([pstlib.postern_bin(), *args], input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("authkeys"))
    path = os.path.join(d, "sel.pem")
    rc, out, err = postern("dkim", "keygen", "-d", "dm-reject.test", "-s", "sel", "-t", "ed25519",
                           "-o", path)
    assert rc == 0, err
    line = out.decode().strip()
    record = "".join(line.split("(", 1)[1].rsplit(")", 1)[0].split('"')[1::2])
    return path, record


def zone_text(dkim):
    """One zone for the whole "test." tree, so that the DMARC tree walk's
    queries up to _dmarc.test get real answers (NXDOMAIN) from the rig."""
    lines = []
    for name, text in ZONES.items():
        sub = name[:-len(".test")]
        for line in text.strip().splitlines():
            owner, rest = line.split(" ", 1)
            owner = sub if owner == "@" else f"{owner}.{sub}"
            lines.append(f"{owner} {rest.replace('{dkim}', dkim)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def zones(rig, dkim_key):
    rig.zone("test", zone_text(dkim_key[1]))
    rig.timeout("dm-slow.test")
    return rig


@pytest.fixture
def authd(daemon, zones):
    """A daemon with every check on, asking the rig's resolver."""
    def make(**over):
        conf = {"dns": {"server": str(zones.resolver), "timeout": 2},
                "spf": {"verify": True}, "dmarc": {"verify": True}}
        conf.update(over)
        return daemon(**conf)
    return make


def message(author, subject, extra=""):
    return (f"From: Someone <{author}>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.net>\r\n{extra}\r\nHello.\r\n").encode()


def send(d, ip, mailfrom, raw, helo="client.test"):
    """One transaction from source address ip; returns the reply to the data."""
    c = d.connect(source=ip)
    c.ehlo(helo)
    assert c.cmd(f"MAIL FROM:<{mailfrom}>").code == 250
    assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(pstlib.dot_stuff(raw) + b".\r\n")
    r = c.reply(timeout=20)
    c.quit()
    return r


def auth_results(raw):
    """Our Authentication-Results field (unfolded) from a delivered message."""
    text = raw.decode(errors="replace")
    m = re.search(r"^Authentication-Results: mx\.test;(.*?)\n(?=\S)", text, re.M | re.S)
    assert m, text[:2000]
    return " ".join(m.group(1).split())


def junk(d, user="alice"):
    return pstlib.Maildir(os.path.join(d.mail_root, user, ".Junk"))


def store_rows(d, n=1, timeout=10):
    """The results store's rows, once it holds at least n (posternd commits
    its batched inserts within a second or two)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        rows = []
        path = os.path.join(d.workdir, "spool", "auth.sqlite")
        if os.path.exists(path):
            db = sqlite3.connect(path)
            try:
                db.row_factory = sqlite3.Row
                rows = [dict(r) for r in db.execute("SELECT * FROM auth_result ORDER BY id")]
            except sqlite3.OperationalError:
                rows = []  # the schema is not there yet
            finally:
                db.close()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def uid():
    return "auth-" + uuid.uuid4().hex[:10]


def test_pass_is_delivered_with_results(authd):
    d = authd()
    s = uid()
    r = send(d, GOOD_IP, "bounce@dm-reject.test", message("news@dm-reject.test", s))
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    ar = auth_results(raw)
    assert "spf=pass smtp.mailfrom=bounce@dm-reject.test" in ar, ar
    assert "dkim=none" in ar, ar
    assert "dmarc=pass header.from=dm-reject.test policy.dmarc=none" in ar, ar
    row = [x for x in store_rows(d) if x["queue_id"] == r.queue_id][0]
    assert row["source_ip"] == GOOD_IP and row["header_from"] == "dm-reject.test", row
    assert (row["spf_result"], row["dmarc_result"], row["disposition"]) == ("pass", "pass",
                                                                            "deliver"), row


def test_helo_identity_is_checked_too(authd):
    d = authd()
    s = uid()
    r = send(d, GOOD_IP, "bounce@dm-reject.test", message("news@dm-reject.test", s),
             helo="relay.helo.test")
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    ar = auth_results(raw)
    assert "spf=pass smtp.mailfrom=bounce@dm-reject.test" in ar, ar
    assert "spf=pass smtp.helo=relay.helo.test" in ar, ar
    s2 = uid()
    r = send(d, BAD_IP, "x@dm-none.test", message("x@dm-none.test", s2), helo="relay.helo.test")
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s2)
    assert re.search(r"spf=fail reason=\"relay\.helo\.test: [^;]* smtp\.helo=relay\.helo\.test",
                     auth_results(raw)), auth_results(raw)


def test_reject_policy_refuses_with_550(authd):
    d = authd()
    s = uid()
    r = send(d, BAD_IP, "bounce@dm-reject.test", message("news@dm-reject.test", s))
    assert r.code == 550 and r.line.startswith("550 5.7.1 "), r
    assert "DMARC policy of dm-reject.test" in r.line, r
    assert d.maildir("alice").count(s) == 0 and junk(d).count(s) == 0
    row = store_rows(d)[-1]
    assert (row["spf_result"], row["dmarc_result"], row["policy"], row["disposition"]) == \
        ("fail", "fail", "reject", "reject"), row


def test_aligned_dkim_passes_despite_spf_fail(authd, dkim_key):
    d = authd()
    s = uid()
    rc, signed, err = postern("dkim", "sign", "-d", "dm-reject.test", "-s", "sel", "-k", dkim_key[0],
                              stdin=message("news@dm-reject.test", s))
    assert rc == 0, err
    r = send(d, BAD_IP, "bounce@dm-reject.test", signed)
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    ar = auth_results(raw)
    assert "spf=fail" in ar and "dkim=pass header.d=dm-reject.test header.s=sel" in ar, ar
    assert "dmarc=pass header.from=dm-reject.test" in ar, ar


def test_quarantine_goes_to_junk(authd):
    d = authd()
    s = uid()
    r = send(d, BAD_IP, "x@dm-quarantine.test", message("x@dm-quarantine.test", s))
    assert r.code == 250, r
    (raw,) = junk(d).wait(1, match=s)
    assert "dmarc=fail" in auth_results(raw) and "policy.dmarc=quarantine" in auth_results(raw)
    assert d.maildir("alice").count(s) == 0


def test_none_policy_delivers_to_inbox(authd):
    d = authd()
    s = uid()
    r = send(d, BAD_IP, "x@dm-none.test", message("x@dm-none.test", s))
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    ar = auth_results(raw)
    assert "spf=fail" in ar and "dmarc=fail" in ar and "policy.dmarc=none" in ar, ar


def test_testing_flag_lowers_reject_to_quarantine(authd):
    d = authd()
    s = uid()
    r = send(d, BAD_IP, "x@dm-testing.test", message("x@dm-testing.test", s))
    assert r.code == 250, r
    (raw,) = junk(d).wait(1, match=s)
    assert "policy.dmarc=quarantine" in auth_results(raw), auth_results(raw)


def test_np_rejects_nonexistent_subdomain(authd):
    d = authd()
    s = uid()
    r = send(d, BAD_IP, "x@other.test", message("x@ghost.dm-np.test", s))
    assert r.code == 550 and r.line.startswith("550 5.7.1 "), r
    # an existing domain under the same policy gets sp=none
    s2 = uid()
    r = send(d, BAD_IP, "x@other.test", message("x@dm-np.test", s2))
    assert r.code == 250, r


def test_no_policy_is_dmarc_none(authd):
    d = authd()
    s = uid()
    r = send(d, BAD_IP, "x@dm-nopolicy.test", message("x@dm-nopolicy.test", s))
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert "dmarc=none" in auth_results(raw), auth_results(raw)


def test_dns_timeout_is_451_or_accepted_by_setting(authd):
    d = authd()
    s = uid()
    r = send(d, GOOD_IP, "x@dm-slow.test", message("x@dm-slow.test", s))
    assert r.code == 451 and r.line.startswith("451 4.7.5 "), r
    d2 = authd(dmarc={"verify": True, "temperror": "accept"})
    r = send(d2, GOOD_IP, "x@dm-slow.test", message("x@dm-slow.test", s))
    assert r.code == 250, r
    (raw,) = d2.maildir("alice").wait(1, match=s)
    assert "dmarc=temperror" in auth_results(raw), auth_results(raw)


def test_reject_as_quarantine_setting(authd):
    d = authd(dmarc={"verify": True, "reject": "quarantine"})
    s = uid()
    r = send(d, BAD_IP, "bounce@dm-reject.test", message("news@dm-reject.test", s))
    assert r.code == 250, r
    junk(d).wait(1, match=s)
    assert store_rows(d)[-1]["override"] == "local_policy"


def test_allow_list_skips_enforcement(authd):
    d = authd(auth={"allow": [ALLOW_IP]})
    s = uid()
    r = send(d, ALLOW_IP, "bounce@dm-reject.test", message("news@dm-reject.test", s))
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert "dmarc=fail" in auth_results(raw)
    assert re.search(re.escape(r.queue_id) + r" checks: .*action=deliver \(override local_policy\)",
                     d.stderr())
    # the list names that address only
    r = send(d, BAD_IP, "bounce@dm-reject.test", message("news@dm-reject.test", uid()))
    assert r.code == 550, r


def test_forged_results_with_our_id_are_removed(authd):
    d = authd()
    s = uid()
    # a long forged field: removing it shrinks the header, so the message
    # is moved back in its file (and forward when ours is longer)
    padding = "".join(f"\r\n\tdkim=pass header.d=forged{i}.example" for i in range(40))
    forged = ("Authentication-Results: mx.test; dmarc=pass header.from=dm-reject.test"
              f"{padding}\r\n"
              "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@b.example\r\n")
    r = send(d, GOOD_IP, "x@dm-none.test", message("x@dm-none.test", s, extra=forged))
    assert r.code == 250, r
    (raw,) = d.maildir("alice").wait(1, match=s)
    fields = [h for h in pstlib.header_block(raw) if h.lower().startswith("authentication-results:")]
    ours = [f for f in fields if f.startswith("Authentication-Results: mx.test;")]
    assert len(ours) == 1 and "dmarc=pass header.from=dm-none.test" in " ".join(
        auth_results(raw).split()), fields
    assert any("other.example" in f for f in fields), fields
    assert "header.from=dm-reject.test" not in raw.decode()
    assert "forged7.example" not in raw.decode()
    assert pstlib.body_of(raw) == b"Hello.\n", raw[-200:]


def test_swaks_from_allowed_address(authd):
    d = authd()
    s = uid()
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(d.port()),
                        "--local-interface", GOOD_IP, "--helo", "client.test",
                        "--from", "bounce@dm-reject.test", "--to", "alice@example.test",
                        "--header", "From: news@dm-reject.test", "--header", f"Subject: {s}",
                        "--body", "Sent by swaks.\n", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert "dmarc=pass" in auth_results(raw)
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(d.port()),
                        "--local-interface", BAD_IP, "--helo", "client.test",
                        "--from", "bounce@dm-reject.test", "--to", "alice@example.test",
                        "--header", "From: news@dm-reject.test", "--header", f"Subject: {uid()}",
                        "--body", "Sent by swaks.\n", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "550 5.7.1" in p.stdout, p.stdout


def test_postfix_relay_gets_the_reject(authd, postfix):
    """A real MTA on a source address SPF does not allow: posternd refuses
    at end of data, Postfix bounces; the allowed address gets through."""
    d = authd()
    bad = postfix(main={"relayhost": f"[127.0.0.1]:{d.port()}", "smtp_bind_address": BAD_IP,
                        "smtp_helo_name": "relay.test"}).start()
    good = postfix(main={"relayhost": f"[127.0.0.1]:{d.port()}", "smtp_bind_address": GOOD_IP,
                         "smtp_helo_name": "relay.test"}).start()
    import smtplib
    s_bad, s_good = uid(), uid()
    for pf, s in ((bad, s_bad), (good, s_good)):
        with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test", timeout=10) as c:
            c.sendmail("bounce@dm-reject.test", ["alice@example.test"],
                       message("news@dm-reject.test", s).decode())
    d.maildir("alice").wait(1, match=s_good, timeout=30)
    deadline = pstlib.time.monotonic() + 30
    while "550 5.7.1" not in bad.logtext():
        assert pstlib.time.monotonic() < deadline, bad.logtext()[-3000:]
        pstlib.time.sleep(0.2)
    assert re.search(r"status=bounced .*550 5\.7\.1", bad.logtext()), bad.logtext()[-3000:]
    assert d.maildir("alice").count(s_bad) == 0


def test_cli_auth_agrees_with_the_daemon(authd, zones):
    d = authd()
    s = uid()
    raw = message("news@dm-reject.test", s)
    rc, out, err = postern("auth", "--ip", BAD_IP, "--helo", "client.test", "--mail-from",
                           "bounce@dm-reject.test", "--authserv-id", "mx.test",
                           "--dns-server", str(zones.resolver), stdin=raw)
    assert rc == 1, (out, err)
    text = out.decode()
    assert text.startswith("Authentication-Results: mx.test;\n\tspf=fail"), text
    assert text.rstrip().endswith("disposition: reject"), text
    r = send(d, BAD_IP, "bounce@dm-reject.test", raw)
    assert r.code == 550, r


@pytest.mark.parametrize("forged_lines", [0, 60])
def test_large_message_survives_the_rewrite(authd, forged_lines):
    """The Authentication-Results rewrite moves the body within its file
    (forward when the header grows, back when a long forged field goes):
    a body of several read chunks arrives unchanged either way."""
    d = authd()
    s = uid()
    body = b"".join(b"line %06d of a long body, with some text to fill it up\r\n" % i
                    for i in range(6000))  # ~350 KiB: several 64 KiB chunks
    padding = "".join(f"\r\n\tdkim=pass header.d=forged{i}.example" for i in range(forged_lines))
    extra = (f"Authentication-Results: mx.test; none{padding}\r\n" if forged_lines else "")
    raw = message("x@dm-none.test", s, extra=extra).replace(b"Hello.\r\n", body)
    r = send(d, GOOD_IP, "x@dm-none.test", raw)
    assert r.code == 250, r
    (got,) = d.maildir("alice").wait(1, match=s)
    assert pstlib.body_of(got) == body.replace(b"\r\n", b"\n")
    assert b"forged1.example" not in got


def test_cli_auth_json_and_tempfail(zones):
    """`postern auth --json`: the fields scripts read, and exit 75 when DNS
    cannot decide DMARC."""
    import json
    dns = ["--dns-server", str(zones.resolver), "--timeout", "2"]
    rc, out, err = postern("auth", "--ip", GOOD_IP, "--helo", "relay.helo.test", "--mail-from",
                           "bounce@dm-reject.test", "--authserv-id", "mx.test", "--json", *dns,
                           stdin=message("news@dm-reject.test", uid()))
    assert rc == 0, err
    j = json.loads(out)
    assert j["spf"] == "pass" and j["disposition"] == "deliver", j
    assert j["dmarc"]["result"] == "pass" and j["dmarc"]["header_from"] == "dm-reject.test", j
    assert j["authentication_results"].startswith("Authentication-Results: mx.test;"), j
    rc, out, err = postern("auth", "--ip", GOOD_IP, "--mail-from", "x@dm-slow.test",
                           "--authserv-id", "mx.test", "--json", *dns,
                           stdin=message("x@dm-slow.test", uid()))
    assert rc == 75, (rc, out, err)
    assert json.loads(out)["disposition"] == "tempfail"
    rc, out, err = postern("auth", "--mail-from", "a@b.test", *dns, stdin=b"From: a@b.test\r\n\r\nx\r\n")
    assert rc == 2 and "--ip is required" in err, err


def test_results_are_committed_when_posternd_stops(authd):
    """Inserts are batched; what is gathered is committed on SIGTERM."""
    d = authd()
    for _ in range(3):
        assert send(d, GOOD_IP, "bounce@dm-reject.test",
                    message("news@dm-reject.test", uid())).code == 250
    d.stop()
    rows = store_rows(d, n=3, timeout=0)
    assert len(rows) == 3 and {r["dmarc_result"] for r in rows} == {"pass"}, rows
