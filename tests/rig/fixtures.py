"""pytest fixtures for the rig (imported by tests/e2e/conftest.py).

  rig        one Rig per test module (module scope): zones, certificates,
             HTTPS hosts and peers accumulate within the module, so give
             each test its own names. At teardown the module's last test
             gets an error if a rig server died, and everything is stopped.
  fresh_rig  a Rig of the test's own (function scope), for tests that
             stop, break or reconfigure servers.
"""
import signal
import threading

import pytest

from . import Rig

# A test run stopped with SIGTERM would otherwise end without finalizers or
# atexit handlers, leaving Postfix masters behind: make it an interrupt.
if threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    def _sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, _sigterm)


def _finish(r):
    try:
        r.check()
    finally:
        r.stop()


@pytest.fixture(scope="module")
def rig():
    r = Rig()
    yield r
    _finish(r)


@pytest.fixture
def fresh_rig():
    r = Rig()
    yield r
    _finish(r)
