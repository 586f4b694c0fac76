"""vdeliver's Sieve interpreter against Pigeonhole's sieve-test, case by case.

Every corpus case (corpus_sieve.CASES) is run by both; their canonical outcomes
(oracle.Outcome: status, the actions, the first error's line) must be equal.
The cases where vdeliver differs on purpose are in
corpus_sieve.DELIBERATE_DIFFERENCES: they are xfail(strict), so a case that
starts to agree is reported too.
"""
import pytest

import adapter
import corpus_sieve


def params():
    for case in corpus_sieve.CASES:
        marks = []
        why = corpus_sieve.DELIBERATE_DIFFERENCES.get(case.id)
        if why:
            marks.append(pytest.mark.xfail(strict=True, reason=why))
        yield pytest.param(case, id=case.id, marks=marks)


def explain(case, want, got):
    script = case.script.decode("utf-8", "replace")
    return (f"\n--- case {case.id} ({case.area}); folders={list(case.folders)} "
            f"extensions={case.extensions!r} envelope from={case.sender} to={case.recipient}"
            f"{' orig=' + case.original_recipient if case.original_recipient else ''}\n"
            f"{script}\n--- Pigeonhole:\n{want}\n--- vdeliver:\n{got}\n"
            f"--- vdeliver's errors:\n{got.detail}\n--- sieve-test said:\n{want.detail}")


@pytest.mark.parametrize("case", params())
def test_agrees_with_pigeonhole(case, pigeonhole):
    want = pigeonhole[case.id]
    got = adapter.run_case(case)
    assert got == want, explain(case, want, got)
