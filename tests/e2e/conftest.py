"""conftest.py - the e2e session fixture: one private Postfix + Dovecot (harness.py) per session.

Missing prerequisites (not root, no Postfix or Dovecot, vdeliver not installed where
master.cf.snippet runs it) go through support.require, the suite's policy: a skip with
the reason outside CI, a failure in CI (CI=true). A failed test's report gets the tail
of the mail log and of Dovecot's log.

Never: skip in CI; leave the instance running (the fixture stops it on every exit
path, a failed test, Ctrl-C, or SIGTERM, which becomes KeyboardInterrupt).
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


@pytest.fixture(scope="session")
def mail():
    """The running private mail system (a harness.Harness)."""
    missing = harness.missing_prerequisites()
    require(not missing, "e2e prerequisites missing: " + "; ".join(missing))
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with harness.Harness() as h:
            ACTIVE.append(h)
            yield h
            ACTIVE.remove(h)
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def settled(mail):
    """The mail system with nothing queued; a test that leaves mail queued fails (at
    teardown), and its leftovers are deleted so that they cannot upset the next test."""
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
        report.sections.append(("mail log (last 30 lines)", tail(h.log_text(), 30)))
        report.sections.append(("Dovecot log (last 10 lines)", tail(h.dovecot_log_text(), 10)))


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
