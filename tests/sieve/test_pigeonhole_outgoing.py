"""Sieve's outgoing mail against Pigeonhole: for every corpus_outgoing case, what
sieve-test -e sends (oracle.run_sent) and what the installed vdeliver hands to
sendmail_path in a real delivery (functional/outbox.py) are the same after
oracle.canonical_sent(): the decision to send at all, the kind, the envelope sender,
the recipients, and the key header fields.
"""
import pytest

import corpus_outgoing
import oracle
from functional.conftest import mail  # noqa: F401  (the fixture, shared)
from functional.outbox import Outbox, envelope


def params():
    return [pytest.param(case, id=case.id,
                         marks=[pytest.mark.xfail(strict=True, reason=corpus_outgoing.DELIBERATE[case.id])]
                         if case.id in corpus_outgoing.DELIBERATE else [])
            for case in corpus_outgoing.CASES]


def vdeliver_sent(mail, case):
    box = Outbox(mail)
    mail.write_config(box.config())
    local = case.recipient.split("@")[0]
    mail.write_table(f"{case.recipient} example.com/{local}/\n")
    home = mail.path(f"example.com/{local}")
    import os
    os.makedirs(home, 0o700)
    os.chown(os.path.dirname(home), mail.user.pw_uid, mail.user.pw_gid)
    os.chown(home, mail.user.pw_uid, mail.user.pw_gid)
    path = os.path.join(home, ".dovecot.sieve")
    with open(path, "wb") as fh:
        fh.write(case.script)
    os.chown(path, mail.user.pw_uid, mail.user.pw_gid)
    result = mail.run("-i", "4DIFF", "-f", case.sender, "-a",
                      case.original_recipient or case.recipient, "--", case.recipient,
                      stdin=case.message)
    assert (result.code, result.stdout) == (0, b""), result
    return sorted(oracle.canonical_sent(*envelope_of(args), data) for args, data in box.sent())


def envelope_of(args):
    sender, rcpts = envelope(args)
    return ("" if sender == "<>" else sender), rcpts


@pytest.mark.parametrize("case", params())
def test_sends_what_pigeonhole_sends(mail, case):
    oracle.require_available()
    want = oracle.run_sent(case)
    got = vdeliver_sent(mail, case)
    assert got == want, (f"\n{case.script.decode()}\n--- Pigeonhole sent:\n"
                         + "\n".join(map(repr, want)) + "\n--- vdeliver sent:\n"
                         + "\n".join(map(repr, got)))
