"""Daemon manners: SIGTERM with a grace period, SIGHUP reload (good and
bad configurations), configuration errors at start, the embedded default."""
import os
import re
import signal
import socket
import subprocess
import time
import uuid

import pytest

from pstlib import HOSTNAME, Client, Daemon, Maildir, dot_stuff, message, posternd_bin, render_config

H = HOSTNAME


def uid():
    return "d" + uuid.uuid4().hex[:16]


# -- SIGTERM

def test_sigterm_lets_open_session_finish_and_exits_0(daemon):
    d = daemon(timeouts={"shutdown_grace": 10})
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    d.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert d.running(), "exited before the open session finished"
    s = uid()
    c.send(dot_stuff(message(s)) + b".\r\n")
    assert c.reply().queue_id
    c.send(b"QUIT\r\n")
    assert c.reply().line in ("221 2.0.0 Bye", f"421 4.3.2 {H} Service shutting down")
    rc = d.wait_exit(10)
    assert rc == 0, f"exit status {rc}; stderr:\n{d.stderr()[-3000:]}"
    d.maildir("alice").wait(1, match=s, timeout=1)


def test_sigterm_stops_accepting(daemon):
    d = daemon(timeouts={"shutdown_grace": 10})
    c = d.connect()
    d.signal(signal.SIGTERM)
    time.sleep(0.5)
    try:
        n = Client(d.port(), timeout=2)
    except OSError:
        pass  # refused: listener closed
    else:
        r = n.reply()
        assert r.line == f"421 4.3.2 {H} Service shutting down"
    assert c.cmd("NOOP").code in (250, 421)


def test_sigterm_idle_session_gets_421_after_grace(daemon):
    d = daemon(timeouts={"shutdown_grace": 1})
    c = d.connect()
    c.ehlo()
    d.signal(signal.SIGTERM)
    r = c.reply(timeout=5)
    assert r.line == f"421 4.3.2 {H} Service shutting down"
    assert c.closed(3)
    assert d.wait_exit(5) == 0


def test_sigterm_without_sessions_exits_0_at_once(daemon):
    d = daemon(timeouts={"shutdown_grace": 30})
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(5) == 0
    assert time.monotonic() - t0 < 3


def test_sigint_also_stops(daemon):
    d = daemon()
    d.signal(signal.SIGINT)
    assert d.wait_exit(8) == 0


# -- SIGHUP

def test_sighup_reload_new_domain_takes_effect_and_session_stays(daemon):
    d = daemon()
    old = d.connect()
    old.ehlo()
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<alice@new.test>").line == "554 5.7.1 Relay access denied"
    c.quit()
    conf = dict(d.conf, domains=["example.test", "localhost", "new.test"])
    d.write_config(conf)
    d.hup()
    deadline = time.monotonic() + 5
    while True:
        c = d.connect()
        c.ehlo()
        c.cmd("MAIL FROM:<sender@remote.test>")
        r = c.cmd("RCPT TO:<alice@new.test>")
        c.quit()
        if r.line == "250 2.1.5 Ok":
            break
        assert time.monotonic() < deadline, f"reload not in effect: {r}\n{d.stderr()[-2000:]}"
        time.sleep(0.2)
    # the session opened before the reload is still there and works
    assert old.cmd("NOOP").line == "250 2.0.0 Ok"
    s = uid()
    old.transaction("sender@remote.test", ["alice@example.test"], message(s))
    d.maildir("alice").wait(1, match=s)
    assert d.running()


def test_sighup_reload_removed_domain_refused_for_new_sessions(daemon):
    d = daemon()
    d.write_config(dict(d.conf, domains=["example.test"]))
    d.hup()
    deadline = time.monotonic() + 5
    while True:
        c = d.connect()
        c.ehlo()
        c.cmd("MAIL FROM:<sender@remote.test>")
        r = c.cmd("RCPT TO:<alice@localhost>")
        c.quit()
        if r.line == "554 5.7.1 Relay access denied":
            break
        assert time.monotonic() < deadline, f"reload not in effect: {r}"
        time.sleep(0.2)


def test_sighup_broken_config_keeps_old_and_logs_reason(daemon):
    d = daemon()
    before = len(d.stderr())
    d.write_config(text=render_config(d.conf) + "limits = { message_size = ; };\n")
    broken_line = render_config(d.conf).count("\n") + 1
    d.hup()
    m = d.wait_log(re.escape(d.config_path) + r":(\d+)", timeout=5, since=before)
    assert int(m.group(1)) == broken_line, d.stderr()[before:]
    assert d.running()
    c = d.connect()
    c.ehlo()
    s = uid()
    c.transaction("sender@remote.test", ["alice@localhost"], message(s))
    d.maildir("alice").wait(1, match=s)


def test_sighup_reloads_certificate(daemon, tmp_path, cert):
    from pstlib import client_tls_context, make_cert
    d = daemon()
    new_cert, new_key = make_cert(str(tmp_path / "newcert"), cn=H)
    d.write_config(dict(d.conf, tls={"certificate": new_cert, "key": new_key, "generate": False}))
    d.hup()
    deadline = time.monotonic() + 5
    while True:
        c = d.connect()
        c.ehlo()
        assert c.cmd("STARTTLS").code == 220
        try:
            c.starttls(client_tls_context(new_cert))
            break
        except Exception:
            assert time.monotonic() < deadline, "new certificate not served after SIGHUP"
            time.sleep(0.2)


# -- configuration errors at start

def start_bad(tmp_path, text):
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([posternd_bin(), "-c", path], capture_output=True, text=True, timeout=10,
                       cwd=str(tmp_path))
    return path, p


def good_conf(tmp_path):
    from pstlib import default_config
    conf = default_config(str(tmp_path / "w"))
    return conf


def test_bad_config_syntax_error_at_start(tmp_path):
    text = render_config(good_conf(tmp_path))
    line = text.count("\n") + 1
    path, p = start_bad(tmp_path, text + "domains = [ \"a.test\" \n")
    assert p.returncode != 0
    assert re.search(re.escape(path) + r":\d+: \S", p.stderr), p.stderr
    assert f"{path}:{line}:" in p.stderr or f"{path}:{line + 1}:" in p.stderr, p.stderr


def test_bad_config_wrong_type_names_line(tmp_path):
    conf = good_conf(tmp_path)
    text = render_config(conf)
    lines = text.split("\n")
    i = next(n for n, l in enumerate(lines) if l.strip().startswith("message_size ="))
    lines[i] = '    message_size = "huge";'
    path, p = start_bad(tmp_path, "\n".join(lines))
    assert p.returncode != 0
    assert f"{path}:{i + 1}: " in p.stderr, p.stderr


def test_bad_config_unknown_postmaster_user(tmp_path):
    conf = dict(good_conf(tmp_path), postmaster="nobody-here")
    path, p = start_bad(tmp_path, render_config(conf))
    assert p.returncode != 0
    assert re.search(re.escape(path) + r":\d+: .*nobody-here", p.stderr), p.stderr


def test_bad_config_unknown_setting(tmp_path):
    path, p = start_bad(tmp_path, render_config(good_conf(tmp_path)) + "hostnmae = \"x\";\n")
    assert p.returncode != 0
    assert re.search(re.escape(path) + r":\d+: .*hostnmae", p.stderr), p.stderr


def test_check_only_accepts_good_config(tmp_path):
    path = str(tmp_path / "good.conf")
    with open(path, "w") as f:
        f.write(render_config(good_conf(tmp_path)))
    p = subprocess.run([posternd_bin(), "-t", "-c", path], capture_output=True, text=True,
                       timeout=10, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr


def test_check_only_refuses_bad_config(tmp_path):
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write(render_config(dict(good_conf(tmp_path), postmaster="nobody-here")))
    p = subprocess.run([posternd_bin(), "-t", "-c", path], capture_output=True, text=True,
                       timeout=10, cwd=str(tmp_path))
    assert p.returncode != 0
    assert f"{path}:" in p.stderr, p.stderr


def test_print_default_is_a_valid_config(tmp_path):
    p = subprocess.run([posternd_bin(), "--print-default"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0 and "listeners" in p.stdout
    path = str(tmp_path / "default.conf")
    with open(path, "w") as f:
        f.write(p.stdout)
    t = subprocess.run([posternd_bin(), "-t", "-c", path], capture_output=True, text=True,
                       timeout=10, cwd=str(tmp_path))
    assert t.returncode == 0, t.stderr


def test_missing_config_file(tmp_path):
    p = subprocess.run([posternd_bin(), "-c", str(tmp_path / "none.conf")],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "none.conf" in p.stderr


def test_port_in_use_fails_at_start(daemon):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        d = daemon(start=False, listeners=[{"address": "127.0.0.1", "port": s.getsockname()[1],
                                            "mode": "smtp", "starttls": False}])
        d.start(wait=False)
        rc = d.wait_exit(10)
        assert rc not in (None, 0), "posternd kept running without its port"
        assert str(s.getsockname()[1]) in d.stderr()
    finally:
        s.close()


# -- logging

def test_log_line_per_session_with_client_address(mta):
    before = len(mta.stderr())
    c = mta.connect()
    c.ehlo()
    c.cmd("FROB")
    c.quit()
    mta.wait_log(r"127\.0\.0\.1", since=before)
    text = mta.stderr()[before:]
    assert all(l.strip() for l in text.splitlines()), "blank log lines"


# -- the embedded default (make run)

def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_embedded_default_delivers_postmaster(tmp_path):
    # its ports are fixed: wait a little for another `make run` to end
    deadline = time.monotonic() + 10
    while not (port_free(2525) and port_free(4650)):
        if time.monotonic() > deadline:
            pytest.fail("ports 2525/4650 are taken; the embedded default needs them")
        time.sleep(0.2)
    d = Daemon(str(tmp_path), {"hostname": "localhost",
                              "listeners": [{"address": "127.0.0.1", "port": 2525, "mode": "smtp"},
                                            {"address": "127.0.0.1", "port": 4650, "mode": "tls"}],
                              "timeouts": {"shutdown_grace": 3}})
    d.start(args=["--embedded"])
    try:
        c = Client(2525)
        g = c.greeting()
        assert g.code == 220 and g.line.endswith(" ESMTP postern"), g
        ehlo = c.ehlo()
        assert ehlo.lines[-1] == "250 STARTTLS"
        s = uid()
        c.transaction("sender@remote.test", ["postmaster@localhost", "postmaster@example.test"],
                      message(s))
        c.quit()
        mail = tmp_path / "var" / "mail"
        deadline = time.monotonic() + 10
        while True:
            found = [Maildir(str(mail / u)).count(s) for u in (os.listdir(mail) if mail.is_dir() else [])]
            if sum(found) >= 1:
                break
            assert time.monotonic() < deadline, f"nothing under {mail}"
            time.sleep(0.1)
        assert any((tmp_path / "var").rglob("*.pem")), "no generated certificate under ./var"
    finally:
        rc = d.stop()
        bad = d.sanitizer_reports()
    assert rc == 0
    assert not bad, d.stderr()


def test_sighup_during_data_keeps_the_message(daemon):
    d = daemon()
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    s = uid()
    c.send(f"Subject: {s}\r\n\r\nfirst half\r\n".encode())
    d.write_config(dict(d.conf, domains=["example.test", "localhost", "new.test"]))
    d.hup()
    time.sleep(0.5)
    c.send(b"second half\r\n.\r\n")
    assert c.reply().queue_id
    (raw,) = d.maildir("alice").wait(1, match=s)
    assert raw.endswith(b"first half\nsecond half\n")


def test_many_sighups_in_a_row(daemon):
    d = daemon()
    c = d.connect()
    for _ in range(20):
        d.hup()
    time.sleep(0.5)
    assert d.running()
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    assert d.connect().cmd("NOOP").line == "250 2.0.0 Ok"

