"""conftest.py - the e2e session fixture: one private Postfix + Dovecot (harness.py) per session.

Missing prerequisites (not root, no Postfix or Dovecot, vdeliver not installed where
master.cf.snippet runs it) go through support.require, the suite's policy: a skip with
the reason outside CI, a failure in CI (CI=true). A failed test's report gets the tail
of the mail log, of Dovecot's log and of the LMTP daemon's output.

Transport modes: a test that takes the `mode` fixture runs once per harness.MODES
(pipe: master.cf.snippet as written; lmtp: vdeliver's LMTP daemon behind Postfix's
lmtp client); `@pytest.mark.mode("lmtp")` pins a test to one mode; every other test
runs in pipe mode. `settled` switches the instance (a Postfix restart), and the tests
are ordered so that this happens once per run: pipe first, then lmtp.

Never: skip in CI; leave the instance running (the fixture stops it on every exit
path, a failed test, Ctrl-C, or SIGTERM, which becomes KeyboardInterrupt); let the
LMTP daemon exit with anything but 0 unnoticed (checked when the session ends).
"""
from __future__ import annotations

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # any --import-mode
import harness  # noqa: E402
from support import require  # noqa: E402  (tests/support.py: skip, or fail in CI)

ACTIVE: list[harness.Harness] = []


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    config.addinivalue_line("markers", "mode(name): run this e2e test with the instance in mode "
                                       "'pipe' or 'lmtp' (harness.MODES)")


def wanted_mode(item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "mode" in callspec.params:
        return callspec.params["mode"]
    marker = item.get_closest_marker("mode")
    return marker.args[0] if marker else "pipe"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Among the e2e tests, pipe-mode ones first, then LMTP-mode ones (a stable sort: file
    order is kept); they stay where they were among the other directories' tests."""
    e2e = os.path.dirname(os.path.abspath(__file__)) + os.sep
    places = [n for n, item in enumerate(items) if str(item.fspath).startswith(e2e)]
    ordered = sorted((items[n] for n in places), key=lambda item: harness.MODES.index(wanted_mode(item)))
    for n, item in zip(places, ordered):
        items[n] = item


@pytest.fixture(scope="session")
def mail():
    """The running private mail system (a harness.Harness)."""
    missing = harness.missing_prerequisites()
    require(not missing, "e2e prerequisites missing: " + "; ".join(missing))
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with harness.Harness(metrics=True) as h:  # the daemon's metrics on (test_e2e_burst.py)
            ACTIVE.append(h)
            yield h
            ACTIVE.remove(h)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert h.lmtpd_exits and all(status == 0 for status in h.lmtpd_exits), \
        f"the LMTP daemon should exit 0 on SIGTERM every time: {h.lmtpd_exits}"


@pytest.fixture(scope="session", params=harness.MODES)
def mode(request):
    """'pipe' or 'lmtp': the test runs once in each (see the module docstring)."""
    return request.param


@pytest.fixture
def settled(mail, request):
    """The mail system, in the test's mode, with nothing queued; a test that leaves mail
    queued fails (at teardown), and its leftovers are deleted so that they cannot upset
    the next test."""
    mail.use_mode(wanted_mode(request.node))
    mail.start_lmtpd()  # running in both modes (a no-op unless a test stopped it)
    left = mail.settle()
    assert not left, f"mail left queued by an earlier test (now deleted): {left}"
    yield mail
    left = mail.settle()
    assert not left, f"the test left mail in the queue (now deleted): {left}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and ACTIVE:
        h = ACTIVE[-1]
        report.sections.append((f"mail log (last 30 lines, mode {h.mode})", tail(h.log_text(), 30)))
        report.sections.append(("Dovecot log (last 10 lines)", tail(h.dovecot_log_text(), 10)))
        report.sections.append(("LMTP daemon output (last 10 lines)", tail(h.lmtpd_text(), 10)))


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
