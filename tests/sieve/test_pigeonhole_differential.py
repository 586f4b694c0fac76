"""vdeliver's Sieve interpreter against Pigeonhole's sieve-test, case by case.

Every corpus case (corpus_sieve.CASES) is run by both; their canonical outcomes
(oracle.Outcome: status, the actions, the first error's line) must agree
(oracle.agree).
The cases where vdeliver differs on purpose are in
corpus_sieve.DELIBERATE_DIFFERENCES, the ones still to fix in NOT_YET_AGREED:
both are xfail(strict), so a case that starts to agree is reported too.
"""
import pytest

import adapter
import corpus_sieve
import oracle


def params():
    out = []
    for case in corpus_sieve.CASES:
        why = (corpus_sieve.DELIBERATE_DIFFERENCES.get(case.id)
               or corpus_sieve.NOT_YET_AGREED.get(case.id))
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def explain(case, want, got):
    script = case.script.decode("utf-8", "replace")
    return (f"\n--- case {case.id} ({case.area}); folders={list(case.folders)} "
            f"extensions={case.extensions!r} envelope from={case.sender} to={case.recipient}"
            f"{' orig=' + case.original_recipient if case.original_recipient else ''}\n"
            f"{script}\n--- Pigeonhole:\n{want}\n--- vdeliver:\n{got}\n"
            f"--- vdeliver's errors:\n{got.detail}\n--- sieve-test said:\n{want.detail}\n"
            f"--- sieve-test's trace (a dry run):\n{oracle.trace(case)}")


@pytest.mark.parametrize("case", params())
def test_agrees_with_pigeonhole(case, pigeonhole):
    want = pigeonhole[case.id]
    got = adapter.run_case(case)
    assert oracle.agree(want, got), explain(case, want, got)


def main(argv):
    """python tests/sieve/test_differential.py [ID-PREFIX...]: the disagreements
    as a table (Pigeonhole's outcome, then vdeliver's), for working on them."""
    import sys
    import traceback
    cases = [c for c in corpus_sieve.CASES if not argv or any(c.id.startswith(p) for p in argv)]
    outcomes = oracle.run_cases(cases)
    bad = 0
    for case in cases:
        want = outcomes[case.id]
        try:
            got = adapter.run_case(case)
        except Exception:
            got = oracle.Outcome("exception", (), None, traceback.format_exc(limit=-3))
        if oracle.agree(want, got):
            continue
        bad += 1
        mark = " (deliberate)" if case.id in corpus_sieve.DELIBERATE_DIFFERENCES else ""
        print(f"## {case.id} [{case.area}]{mark}\n   {case.script[:160]!r}")
        print(f"   Pigeonhole: {want.status} line={want.error_line} {want.actions}")
        print(f"   vdeliver:   {got.status} line={got.error_line} {got.actions}")
        if got.detail:
            print("   " + got.detail.strip().replace("\n", "\n   ")[:400])
    print(f"{bad} of {len(cases)} cases disagree", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.dirname(here)]
    sys.exit(main(sys.argv[1:]))
