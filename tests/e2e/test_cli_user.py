"""`postern user add|passwd|del|list`: the submission users file.

Checks the file's contract (lib/io/users.h): mode 0600, one
NAME:HASH:ADDRESSES line per user, a yescrypt hash and never the password;
the exit codes (0 ok, 1 no such user or file, 2 usage or refused edit);
comments kept through edits; a group-readable file refused; the password
read from stdin, or prompted twice with echo off on a terminal.

The hashes are checked with Python's crypt module where it exists
(libxcrypt underneath), so a second implementation confirms that the
stored hash is the password's."""
import os
import pty
import select
import stat
import subprocess
import time

import pytest

from pstlib import SANITIZER_MARKS, postern_bin

PASSWORD = "c0rrect horse:battery"


def user(*args, users, stdin="", timeout=60):
    p = subprocess.run([postern_bin(), "user", *args, "--users", str(users)], input=stdin,
                       capture_output=True, text=True, timeout=timeout)
    found = [m for m in SANITIZER_MARKS if m in p.stderr]
    assert not found, f"postern user {args}: {found}:\n{p.stderr}"
    return p


def lines(path):
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def check_hash(password, stored):
    """True when stored is password's crypt(3) hash (None: cannot tell)."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        return None
    return crypt.crypt(password, stored) == stored


@pytest.fixture
def users(tmp_path):
    return tmp_path / "users"


def test_add_list_passwd_del(users):
    p = user("add", "alice", "--address", "alice@example.org", "--address", "@alias.example",
             users=users, stdin=PASSWORD + "\n")
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    text = users.read_text()
    assert PASSWORD not in text
    assert "c0rrect" not in text
    [line] = lines(users)
    name, h, addrs = line.split(":")
    assert name == "alice"
    assert h.startswith("$y$")
    assert addrs == "alice@example.org,@alias.example"
    assert check_hash(PASSWORD, h) in (True, None)
    assert check_hash("wrong", h) in (False, None)

    p = user("add", "bob", users=users, stdin="bobs password\n")
    assert p.returncode == 0, p.stderr
    p = user("list", users=users)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "alice alice@example.org @alias.example\nbob\n"
    assert "$y$" not in p.stdout

    p = user("passwd", "alice", users=users, stdin="a new one\n")
    assert p.returncode == 0, p.stderr
    [new_line, _] = lines(users)
    new_name, new_h, new_addrs = new_line.split(":")
    assert (new_name, new_addrs) == ("alice", addrs)
    assert new_h != h and new_h.startswith("$y$")
    assert check_hash("a new one", new_h) in (True, None)
    assert check_hash(PASSWORD, new_h) in (False, None)
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600

    p = user("del", "alice", users=users)
    assert p.returncode == 0, p.stderr
    assert [ln.split(":")[0] for ln in lines(users)] == ["bob"]
    assert user("list", users=users).stdout == "bob\n"
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    # no temporary file left next to it
    assert sorted(os.listdir(users.parent)) == ["users"]


def test_duplicate_add_refused(users):
    assert user("add", "alice", users=users, stdin="pw one\n").returncode == 0
    before = users.read_text()
    p = user("add", "alice", users=users, stdin="pw two\n")
    assert p.returncode == 2
    assert "exists" in p.stderr
    p = user("add", "ALICE", users=users, stdin="pw two\n")
    assert p.returncode == 2
    assert users.read_text() == before


def test_unknown_user(users):
    assert user("add", "alice", users=users, stdin="pw\n").returncode == 0
    before = users.read_text()
    p = user("del", "bob", users=users)
    assert p.returncode == 1
    assert "no user bob" in p.stderr
    p = user("passwd", "bob", users=users, stdin="pw\n")
    assert p.returncode == 1
    assert users.read_text() == before


def test_missing_file(tmp_path):
    missing = tmp_path / "nothing-here"
    assert user("list", users=missing).returncode == 1
    assert user("del", "alice", users=missing).returncode == 1
    assert user("passwd", "alice", users=missing, stdin="pw\n").returncode == 1
    assert not missing.exists()


def test_password_never_in_output_or_errors(users):
    secret = "Zq8-unique-secret-7Yx"
    p = user("add", "alice", users=users, stdin=secret + "\n")
    assert secret not in p.stdout + p.stderr
    p = user("add", "alice", users=users, stdin=secret + "\n")  # refused
    assert secret not in p.stdout + p.stderr
    assert secret not in users.read_text()


def test_bad_input_refused(users):
    assert user("add", "al:ice", users=users, stdin="pw\n").returncode == 2
    assert user("add", "alice", "--address", "nodomain", users=users,
                stdin="pw\n").returncode == 2
    assert user("add", "alice", users=users, stdin="").returncode == 2  # no password
    assert user("add", "alice", users=users, stdin="\n").returncode == 2  # empty
    assert user("add", "alice", users=users, stdin="x" * 256 + "\n").returncode == 2
    # a password that is not UTF-8 could never be sent by AUTH
    p = subprocess.run([postern_bin(), "user", "add", "alice", "--users", str(users)],
                       input=b"\xff\xfe\n", capture_output=True, timeout=60)
    assert p.returncode == 2
    assert not users.exists()
    assert user("frobnicate", users=users).returncode == 2
    assert user("add", users=users).returncode == 2
    assert user("list", "extra", users=users).returncode == 2


def test_longest_password_and_crlf(users):
    assert user("add", "alice", users=users, stdin="p" * 255 + "\n").returncode == 0
    assert user("add", "bob", users=users, stdin="bobpw\r\n").returncode == 0
    [_, bob] = lines(users)
    assert check_hash("bobpw", bob.split(":")[1]) in (True, None)


def test_group_readable_file_refused(users):
    assert user("add", "alice", users=users, stdin="pw\n").returncode == 0
    os.chmod(users, 0o640)
    p = user("list", users=users)
    assert p.returncode == 2
    assert "chmod 600" in p.stderr
    p = user("add", "bob", users=users, stdin="pw\n")
    assert p.returncode == 2
    os.chmod(users, 0o600)
    assert user("list", users=users).stdout == "alice\n"


def test_comments_kept(users):
    users.write_text("# submission users\n\n")
    os.chmod(users, 0o600)
    assert user("add", "alice", users=users, stdin="pw\n").returncode == 0
    assert user("add", "bob", users=users, stdin="pw\n").returncode == 0
    assert user("del", "alice", users=users).returncode == 0
    text = users.read_text()
    assert text.startswith("# submission users\n\nbob:$y$")


def test_broken_file_not_rewritten(users):
    users.write_text("alice:not-a-hash:\n")
    os.chmod(users, 0o600)
    p = user("add", "bob", users=users, stdin="pw\n")
    assert p.returncode == 2
    assert f"{users}:1:" in p.stderr
    assert users.read_text() == "alice:not-a-hash:\n"


def run_on_tty(args, answers, timeout=30):
    """Runs postern with a pseudo-terminal as stdin; answers each password
    prompt with the next answer. Returns (exit code, all terminal output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(postern_bin(), [postern_bin(), *args])
    out = b""
    pending = list(answers)
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out += chunk
            # answer each prompt once, only after it was printed
            prompts = out.count(b"password: ")
            while pending and prompts > len(answers) - len(pending):
                os.write(fd, pending.pop(0).encode() + b"\n")
        else:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
    if status is None:
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_prompt_on_terminal_without_echo(users):
    code, out = run_on_tty(["user", "add", "alice", "--users", str(users)],
                           ["tty-secret-1", "tty-secret-1"])
    assert code == 0, out
    assert "New password:" in out and "Retype new password:" in out
    assert "tty-secret-1" not in out  # echo was off
    [line] = lines(users)
    assert check_hash("tty-secret-1", line.split(":")[1]) in (True, None)


def test_prompt_mismatch_refused(users):
    code, out = run_on_tty(["user", "add", "alice", "--users", str(users)],
                           ["one-password", "another-password"])
    assert code == 2, out
    assert "differ" in out
    assert not users.exists()
