"""`postern sendmail` (and a link named sendmail) against a real posternd
with a local submission listener (a unix socket).

Each test starts posternd with its default configuration plus the local
listener, feeds a message on stdin and looks at what landed in the
Maildirs (or at the exit status and stderr when it should fail).
"""
import getpass
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from pstlib import body_of, header_block, postern_bin

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 64, 65, 67, 75


@pytest.fixture
def sockdir():
    # posternd wants the socket path under 100 bytes: pytest's tmp_path can
    # be longer than that
    d = tempfile.mkdtemp(prefix="pst-sm-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_local(daemon, sockdir, **overrides):
    """posternd with the default listeners and a local one."""
    path = os.path.join(sockdir, "submit.sock")
    d = daemon(start=False, **overrides)
    d.conf["listeners"] = d.conf["listeners"] + [{"mode": "local", "path": path}]
    d.write_config(d.conf)
    d.start()
    d.sock = path
    return d


@pytest.fixture
def smd(daemon, sockdir):
    return start_local(daemon, sockdir)


def sendmail(d_or_path, args, data, argv0=None, timeout=30):
    """Runs postern sendmail ARGS with data on stdin; CompletedProcess."""
    path = d_or_path if isinstance(d_or_path, str) else d_or_path.sock
    env = dict(os.environ, POSTERN_SOCKET=path)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    cmd = [argv0, *args] if argv0 else [postern_bin(), "sendmail", *args]
    if isinstance(data, str):
        data = data.encode()
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, env=env)
    assert b"Sanitizer" not in p.stderr and b"runtime error" not in p.stderr, p.stderr
    return p


def headers(raw):
    return header_block(raw.replace(b"\r\n", b"\n"))


def field(raw, name):
    return [h.split(":", 1)[1].strip() for h in headers(raw)
            if h.lower().startswith(name.lower() + ":")]


def msg(subject, extra="", body="Hello.\n", frm="Alice <alice@example.test>",
        to="alice@example.test"):
    return f"From: {frm}\nTo: {to}\nSubject: {subject}\n{extra}\n{body}"


def test_local_user_gets_date_and_message_id(smd):
    p = sendmail(smd, ["alice@example.test"], msg("sm-local", body="line one\nline two\n"))
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"" and p.stderr == b""
    (raw,) = smd.maildir("alice").wait(1, match="sm-local")
    assert len(field(raw, "Date")) == 1, headers(raw)
    assert len(field(raw, "Message-ID")) == 1, headers(raw)
    assert field(raw, "Subject") == ["sm-local"]
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"line one\nline two\n"


def test_extract_to_cc_bcc_and_bcc_removed(smd):
    m = ("From: alice@example.test\nTo: Bob <bob@example.test>\n"
         "Cc: \"Info, desk\" <info@example.test>\nBcc: alice@example.test,\n postmaster@localhost\n"
         "Subject: sm-extract\n\nbody\n")
    p = sendmail(smd, ["-t"], m)
    assert p.returncode == 0, p.stderr
    # bob directly, info@ is an alias of bob (sent once per address),
    # alice as Bcc and again as postmaster@localhost
    bob = smd.maildir("bob").wait(2, match="sm-extract")
    alice = smd.maildir("alice").wait(2, match="sm-extract")
    for raw in bob + alice:
        assert field(raw, "Bcc") == [], headers(raw)
        # only the daemon's Delivered-To names the blind copy's address
        shown = [h for h in headers(raw) if not h.startswith("Delivered-To:")]
        assert not any("postmaster@localhost" in h for h in shown), shown
        assert field(raw, "To") == ["Bob <bob@example.test>"]


def test_extract_adds_command_line_recipients(smd):
    m = "From: alice@example.test\nTo: bob@example.test\nSubject: sm-extract-add\n\nbody\n"
    p = sendmail(smd, ["-t", "alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    smd.maildir("bob").wait(1, match="sm-extract-add")
    smd.maildir("alice").wait(1, match="sm-extract-add")


def test_command_line_address_lists(smd):
    p = sendmail(smd, ["Bob <bob@example.test>, alice@example.test (Alice)"], msg("sm-list"))
    assert p.returncode == 0, p.stderr
    smd.maildir("bob").wait(1, match="sm-list")
    smd.maildir("alice").wait(1, match="sm-list")


def test_mbox_from_line_dropped(smd):
    m = "From someone@example.org Sat Nov 28 12:00:00 2026\n" + msg("sm-mbox")
    p = sendmail(smd, ["alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-mbox")
    assert b"someone@example.org" not in raw
    assert field(raw, "From") == ["Alice <alice@example.test>"]


def test_extract_without_recipients_fails(smd):
    p = sendmail(smd, ["-t"], "From: alice@example.test\nSubject: sm-none\n\nbody\n")
    assert p.returncode == EX_DATAERR, p
    assert b"no recipient addresses found" in p.stderr


def test_sender_in_return_path(smd):
    for args, want in ((["-f", "owner@example.org"], "<owner@example.org>"),
                       (["-fother@example.org"], "<other@example.org>"),
                       (["-r", "<>"], "<>")):
        subj = f"sm-sender-{want.strip('<>') or 'null'}"
        p = sendmail(smd, args + ["alice@example.test"], msg(subj))
        assert p.returncode == 0, p.stderr
        (raw,) = smd.maildir("alice").wait(1, match=subj)
        assert field(raw, "Return-Path") == [want], headers(raw)


def test_default_sender_is_user_at_hostname(smd):
    p = sendmail(smd, ["alice@example.test"], msg("sm-default-sender"))
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-default-sender")
    want = f"<{getpass.getuser()}@{socket.gethostname()}>"
    assert field(raw, "Return-Path") == [want], headers(raw)


def test_from_added_with_full_name(smd):
    m = "To: alice@example.test\nSubject: sm-from-added\n\nbody\n"
    p = sendmail(smd, ["-F", "Joe Q. Public", "-f", "joe@example.org", "alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-from-added")
    assert field(raw, "From") == ['"Joe Q. Public" <joe@example.org>'], headers(raw)


def test_message_without_header_is_body(smd):
    p = sendmail(smd, ["-F", "Cron Daemon", "alice@example.test"],
                 "just a line sm-no-header\nand another\n")
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-no-header")
    want = f"Cron Daemon <{getpass.getuser()}@{socket.gethostname()}>"
    assert field(raw, "From") == [want], headers(raw)
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"just a line sm-no-header\nand another\n"


def test_lone_dot_ends_input_without_i(smd):
    m = msg("sm-dot", body="before\n.\nafter\n")
    p = sendmail(smd, ["alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-dot")
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"before\n"


def test_lone_dot_ends_without_eof(smd):
    # like a person typing: the "." line sends the message although stdin
    # stays open
    env = dict(os.environ, POSTERN_SOCKET=smd.sock)
    p = subprocess.Popen([postern_bin(), "sendmail", "alice@example.test"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        p.stdin.write(msg("sm-dot-open", body="typed\n").encode() + b".\n")
        p.stdin.flush()
        assert p.wait(10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()
    (raw,) = smd.maildir("alice").wait(1, match="sm-dot-open")
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"typed\n"


@pytest.mark.parametrize("flag", ["-i", "-oi"])
def test_lone_dot_kept_with_i(smd, flag):
    subj = f"sm-dot-kept{flag}"
    m = msg(subj, body="before\n.\n..two\nafter\n")
    p = sendmail(smd, [flag, "alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match=subj)
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"before\n.\n..two\nafter\n"


def test_header_ended_by_a_non_header_line(smd):
    # no empty line between the fields and the text: one is put there
    m = "From: alice@example.test\nSubject: sm-nosep\nthis is the body\n"
    p = sendmail(smd, ["alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-nosep")
    assert field(raw, "Subject") == ["sm-nosep"]
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"this is the body\n"


def test_crlf_input_kept(smd):
    m = msg("sm-crlf", body="a\nb\n").replace("\n", "\r\n")
    p = sendmail(smd, ["alice@example.test"], m)
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-crlf")
    assert body_of(raw.replace(b"\r\n", b"\n")) == b"a\nb\n"


def test_ignored_options_accepted(smd):
    # what Debian's cron runs, and other common flags
    p = sendmail(smd, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-odi", "-oQ/x", "-om",
                       "-v", "alice@example.test"], msg("sm-ignored", body="caf\u00e9\n"))
    assert p.returncode == 0, p.stderr
    (raw,) = smd.maildir("alice").wait(1, match="sm-ignored")
    assert "café".encode() in raw


def test_dsn_options(smd):
    # NOTIFY=SUCCESS: the daemon tells the sender (alice) of the delivery
    # to bob, with the ENVID and only the headers (RET=HDRS)
    p = sendmail(smd, ["-N", "success,failure", "-R", "hdrs", "-V", "id 1+x", "-f",
                       "alice@example.test", "bob@example.test"],
                 msg("sm-dsn", body="secret body\n"))
    assert p.returncode == 0, p.stderr
    smd.maildir("bob").wait(1, match="sm-dsn")
    (dsn,) = smd.maildir("alice").wait(1, match="Original-Envelope-Id")
    text = dsn.replace(b"\r\n", b"\n")
    assert b"Original-Envelope-Id: id 1+x" in text, text
    assert b"Action: delivered" in text, text
    assert b"Original-Recipient: rfc822; bob@example.test" in text, text
    assert b"text/rfc822-headers" in text and b"secret body" not in text, text


@pytest.mark.parametrize("args", [["-x", "alice@example.test"], ["-N", "sometimes", "a@b"],
                                  ["-R", "all", "a@b"], ["-bd"], ["-f"], ["-oX", "a@b"], ["-oQ", "/dir", "a@b"], []])
def test_bad_usage(smd, args):
    p = sendmail(smd, args, msg("sm-usage"))
    assert p.returncode == EX_USAGE, p
    assert p.stderr.startswith(b"postern: sendmail: "), p.stderr


def test_unknown_local_user_refused(smd):
    p = sendmail(smd, ["nosuchuser@example.test"], msg("sm-nouser"))
    assert p.returncode == EX_NOUSER, p
    assert b"<nosuchuser@example.test>: 550 5.1.1 User unknown" in p.stderr, p.stderr
    assert smd.maildir("alice").count("sm-nouser") == 0


def test_one_refused_others_delivered(smd):
    p = sendmail(smd, ["nosuchuser@example.test", "bob@example.test"], msg("sm-partial"))
    assert p.returncode == EX_NOUSER, p
    assert b"550 5.1.1 User unknown" in p.stderr, p.stderr
    smd.maildir("bob").wait(1, match="sm-partial")


def test_temporary_refusal_exits_75(daemon, sockdir):
    # one recipient per message: the second gets 452 4.5.3, the first the mail
    d = start_local(daemon, sockdir, limits={"recipients": 1})
    p = sendmail(d, ["alice@example.test", "bob@example.test"], msg("sm-452"))
    assert p.returncode == EX_TEMPFAIL, p
    assert b"<bob@example.test>: 452 4.5.3" in p.stderr, p.stderr
    d.maildir("alice").wait(1, match="sm-452")
    assert d.maildir("bob").count("sm-452") == 0


def test_daemon_not_running(sockdir):
    p = sendmail(os.path.join(sockdir, "none.sock"), ["alice@example.test"], msg("sm-down"))
    assert p.returncode == EX_TEMPFAIL, p
    assert b"cannot reach posternd" in p.stderr and b"none.sock" in p.stderr, p.stderr


def test_daemon_stopped(smd):
    smd.stop()
    p = sendmail(smd, ["alice@example.test"], msg("sm-stopped"))
    assert p.returncode == EX_TEMPFAIL, p
    assert b"cannot reach posternd" in p.stderr, p.stderr


def test_symlink_named_sendmail(smd, tmp_path):
    link = tmp_path / "sendmail"
    link.symlink_to(postern_bin())
    p = sendmail(smd, ["-t"], msg("sm-link", to="bob@example.test"), argv0=str(link))
    assert p.returncode == 0, p.stderr
    smd.maildir("bob").wait(1, match="sm-link")
    p = sendmail(smd, ["nosuchuser@example.test"], msg("sm-link-nouser"), argv0=str(link))
    assert p.returncode == EX_NOUSER and b"550 5.1.1" in p.stderr, p


def test_mailq_link_lists_the_queue(smd, tmp_path):
    link = tmp_path / "mailq"
    link.symlink_to(postern_bin())
    p = subprocess.run([str(link), "--spool", smd.spool], capture_output=True, timeout=10)
    q = subprocess.run([postern_bin(), "queue", "list", "--spool", smd.spool],
                       capture_output=True, timeout=10)
    assert p.returncode == 0 and q.returncode == 0, (p, q)
    assert p.stdout == q.stdout


def test_bp_lists_the_queue(smd):
    p = subprocess.run([postern_bin(), "sendmail", "-bp", "--spool", smd.spool],
                       capture_output=True, timeout=10)
    q = subprocess.run([postern_bin(), "queue", "list", "--spool", smd.spool],
                       capture_output=True, timeout=10)
    assert p.returncode == 0 and q.returncode == 0, (p, q)
    assert p.stdout == q.stdout


def test_bs_session(smd):
    env = dict(os.environ, POSTERN_SOCKET=smd.sock)
    p = subprocess.Popen([postern_bin(), "sendmail", "-bs"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    got = b""

    def reply():
        nonlocal got
        deadline = time.monotonic() + 10
        while True:
            lines = got.split(b"\r\n")
            for i, ln in enumerate(lines[:-1]):
                if len(ln) >= 4 and ln[3:4] == b" ":
                    out = b"\r\n".join(lines[:i + 1])
                    got = b"\r\n".join(lines[i + 1:])
                    return out.decode()
            r, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))
            assert r, f"no reply; got {got!r}"
            chunk = os.read(p.stdout.fileno(), 65536)
            assert chunk, f"closed; got {got!r}"
            got += chunk

    def cmd(line):
        p.stdin.write(line.encode() + b"\r\n")
        p.stdin.flush()
        return reply()

    assert reply().startswith("220 ")
    assert "250 DSN" in cmd("EHLO client.test").split("\r\n")
    assert cmd("MAIL FROM:<bs@example.org>").startswith("250 ")
    assert cmd("RCPT TO:<alice@example.test>").startswith("250 ")
    assert cmd("DATA").startswith("354 ")
    assert cmd("Subject: sm-bs\r\n\r\nvia -bs\r\n.").startswith("250 ")
    assert cmd("QUIT").startswith("221 ")
    p.stdin.close()
    assert p.wait(10) == 0
    p.stdout.close()
    p.stderr.close()
    (raw,) = smd.maildir("alice").wait(1, match="sm-bs")
    assert field(raw, "Return-Path") == ["<bs@example.org>"]


def test_bs_daemon_not_running(sockdir):
    env = dict(os.environ, POSTERN_SOCKET=os.path.join(sockdir, "none.sock"))
    p = subprocess.run([postern_bin(), "sendmail", "-bs"], input=b"QUIT\r\n",
                       capture_output=True, env=env, timeout=10)
    assert p.returncode == EX_TEMPFAIL and b"cannot reach posternd" in p.stderr, p
