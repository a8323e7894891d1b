"""Fixtures for postern's end-to-end tests.

  cert        session-scoped self-signed certificate for mx.test
              (cert_path, key_path)
  daemon      factory: daemon(**overrides) writes a configuration into
              tmp_path (default_config() deep-merged with the overrides;
              a None value removes a key), starts posternd and waits until
              every listener accepts. At teardown every daemon gets SIGTERM
              (SIGKILL if it does not exit) and the test FAILS if its stderr
              holds a sanitizer report, if it does not exit 0, or if it
              died during the test unasked.
  mta         one started daemon with the default configuration
  postfix     factory for private Postfix instances, always stopped
  rig         the test rig (tests/rig), one per module: knot + unbound with
              test zones, a test CA, nginx, Postfix peers, smtp-sink
  fresh_rig   a rig of the test's own

Run one test:
  POSTERN_BUILD=$PWD/build-asan /usr/bin/python3 -m pytest tests/e2e/test_x.py -k name
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pstlib  # noqa: E402  (puts tests/ on sys.path for the rig)
from rig.fixtures import fresh_rig, rig  # noqa: E402,F401


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    return pstlib.make_cert(str(tmp_path_factory.mktemp("cert")))


@pytest.fixture
def daemon(tmp_path, cert, request):
    started = []

    def make(start=True, tls=True, workdir=None, **overrides):
        wd = workdir or str(tmp_path / f"d{len(started)}")
        conf = pstlib.default_config(wd, *(cert if tls else (None, None)))
        conf = pstlib.merge(conf, overrides)
        d = pstlib.Daemon(wd, conf)
        started.append(d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in started:
        was_running = d.running()
        try:
            rc = d.stop()
        except Exception as e:  # still look at the sanitizer output
            problems.append(f"stopping posternd failed: {e!r}")
            d.kill()
            rc = None
        if was_running and rc != 0:
            problems.append(f"posternd exit status {rc} on SIGTERM (None: had to be killed)")
        elif d.proc is not None and not was_running and not d.killed_by_test:
            rc = d.proc.returncode
            if rc < 0:
                problems.append(f"posternd died of signal {-rc} during the test")
            elif rc != 0 and d.ready and not d.terminating:
                problems.append(f"posternd exited {rc} during the test, unasked")
        found = d.sanitizer_reports()
        if found:
            problems.append(f"posternd stderr has {', '.join(found)}:\n{d.stderr()[-8000:]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mta(daemon):
    return daemon()


@pytest.fixture
def postfix():
    made = []

    def make(**kw):
        p = pstlib.Postfix(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.cleanup()
