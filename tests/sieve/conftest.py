"""Fixtures of the Sieve differential tests: Pigeonhole's outcomes for the corpus.

sieve-test is consulted afresh on every test run (nothing is cached on disk):
the session fixture runs the selected corpus cases through it in a small pool,
once, before the first differential test. As root it runs as the unprivileged
oracle.ORACLE_USER (created if need be), otherwise as ourselves. Without
sieve-test the tests skip, and in CI (CI=true) they fail (support.require).
"""
import pytest

import corpus_sieve
import oracle


@pytest.fixture(scope="session")
def pigeonhole(request):
    """{case id: oracle.Outcome} for the corpus cases this session selected."""
    oracle.require_available()
    wanted = {item.callspec.params["case"].id for item in request.session.items
              if getattr(item, "callspec", None) and "case" in item.callspec.params
              and isinstance(item.callspec.params["case"], oracle.Case)}
    cases = [c for c in corpus_sieve.CASES if c.id in wanted] or corpus_sieve.CASES
    return oracle.run_cases(cases)


_AREA = {c.id: c.area for c in corpus_sieve.CASES}
_DISAGREE = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.failed and "test_agrees_with_pigeonhole[" in report.nodeid:
        _DISAGREE.append(report.nodeid.rsplit("[", 1)[1].rstrip("]"))


def pytest_terminal_summary(terminalreporter):
    """One line per corpus area that disagrees with Pigeonhole, with its cases."""
    if not _DISAGREE:
        return
    by_area = {}
    for case_id in _DISAGREE:
        by_area.setdefault(_AREA.get(case_id, "?"), []).append(case_id)
    terminalreporter.section("Sieve cases that disagree with Pigeonhole, by area")
    for area, ids in sorted(by_area.items(), key=lambda kv: -len(kv[1])):
        terminalreporter.write_line(f"{area} ({len(ids)}): {' '.join(ids)}")
