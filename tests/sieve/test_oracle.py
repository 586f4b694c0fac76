"""The harness itself: known sieve-test outcomes, the canonical form, the adapter's
model of the delivery core, and the corpus's coverage.

The outcomes below were measured with Pigeonhole 0.5.19 (Debian's dovecot-sieve
2.3.19); if a newer Pigeonhole changes one, this file says which.
"""
from types import SimpleNamespace as NS

import pytest

import adapter
import corpus_sieve
import oracle
from oracle import Case, Outcome

INBOX = ("store", "INBOX", ())

KNOWN = [
    (Case("fileinto-flags", b'require ["fileinto", "imap4flags"];\n'
          b'if header :contains "subject" "report" { fileinto :flags "\\\\Seen $Junk" "Work"; }\n',
          folders=("Work",)),
     Outcome("ok", (("store", "Work", ("$Junk", "\\Seen")),))),
    (Case("implicit-keep", b'if false { discard; }\n'), Outcome("ok", (INBOX,))),
    (Case("missing-folder", b'require "fileinto";\nfileinto "Missing";\n'),
     Outcome("action-failed", (INBOX,))),
    (Case("missing-folder-aborts-all", b'require ["fileinto", "imap4flags"];\naddflag "\\\\Seen";\n'
          b'redirect "r@example.net";\nfileinto "Work";\nfileinto "Missing";\n', folders=("Work",)),
     Outcome("action-failed", (INBOX,))),
    (Case("compile-error-line", b'require "fileinto";\n\nfrobnicate;\n'), Outcome("compile-error", (), 3)),
    (Case("missing-semicolon-line", b'require "fileinto"\nfileinto "x";\n'), Outcome("compile-error", (), 1)),
    (Case("runtime-redirects", b'redirect "a@b.c"; redirect "b@b.c"; redirect "c@b.c";\n'
          b'redirect "d@b.c";\nredirect "e@b.c";\n'), Outcome("runtime-error", (INBOX,), 3)),
    (Case("reject-multiline", b'require "reject";\nreject "go away\r\nnow";\n'),
     Outcome("ok", (("reject", "go away\nnow"),))),
    (Case("discard", b'discard;\n'), Outcome("ok", (("discard",),))),
    (Case("discard-then-fileinto", b'require "fileinto";\ndiscard;\nfileinto "Work";\n', folders=("Work",)),
     Outcome("ok", (("store", "Work", ()),))),
    (Case("vacation-notify-redirect", b'require ["vacation", "enotify"];\nvacation "x";\n'
          b'notify "mailto:a%40b.example";\nredirect "r@x.example";\n'),
     Outcome("ok", (("notify", "mailto:a@b.example", "2"), ("redirect", "r@x.example"),
                    ("vacation", 604800, None, None)))),
    (Case("vacation-clamped", b'require ["vacation", "vacation-seconds"];\n'
          b'vacation :seconds 60 :subject "Away" :from "me@example.com" "x";\n'),
     Outcome("ok", (INBOX, ("vacation", 86400, "Away", "me@example.com")))),
    (Case("redirect-dedupe-exact", b'redirect "a@b.c";\nredirect "A@b.c";\nredirect "a@b.c";\n'),
     Outcome("ok", (("redirect", "A@b.c"), ("redirect", "a@b.c")))),
    (Case("utf8-folder", 'require ["fileinto", "mailbox"];\nfileinto :create "Über.a&b";\n'.encode()),
     Outcome("ok", (("store", "Über.a&b", ()),))),
    (Case("include", b'require "include";\ninclude :personal "p";\ninclude :global "g";\n',
          personal={"p": b'require "fileinto";\nfileinto "Work";\n'}, global_={"g": b'keep;\n'},
          folders=("Work",)),
     Outcome("ok", (INBOX, ("store", "Work", ())))),
    (Case("keep-flags-last-wins", b'require "imap4flags";\nkeep :flags "A";\nkeep :flags "B";\n'),
     Outcome("ok", (("store", "INBOX", ("B",)),))),
    (Case("flags-as-stored", b'require "imap4flags";\n'
          b'addflag ["\\\\seen", "Foo", "foo", "\\\\RECENT", "two words", "x(y"];\n'),
     Outcome("ok", (("store", "INBOX", ("Foo", "\\Seen", "two", "words")),))),
    (Case("editheader-visible", b'require ["editheader"];\naddheader "X-A" "1";\n'
          b'if header :is "X-A" "1" { redirect "yes@x.example"; }\n'),
     Outcome("ok", (("redirect", "yes@x.example"),))),
    (Case("editheader-stored", b'require ["fileinto", "editheader"];\nfileinto "Work";\n'
          b'addheader "X-A" "1";\ndeleteheader "subject";\nkeep;\n',
          message=b"From: a@example.org\nSubject: s\n\nbody\n", folders=("Work",)),
     Outcome("ok", (INBOX, ("store", "Work", ())),
             stored_headers=(("INBOX", (("X-A", "1"), ("From", "a@example.org"))),))),
    (Case("spamtest-configured", b'require ["spamtest", "relational", "comparator-i;ascii-numeric"];\n'
          b'if spamtest :value "ge" :comparator "i;ascii-numeric" "5" { discard; }\n',
          message=corpus_sieve.M_SPAM),
     Outcome("ok", (("discard",),))),
    (Case("subaddress-delimiter", b'require ["envelope", "subaddress", "reject"];\n'
          b'if envelope :detail "to" "tag" { reject "detail"; }\n', recipient="user+tag@example.com"),
     Outcome("ok", (("reject", "detail"),))),
    (Case("error-command", b'require "ihave";\nerror "this fails";\n'),
     Outcome("runtime-error", (INBOX,), None)),
    (Case("settings-max-redirects", b'redirect "a@b.example";\nredirect "c@d.example";\n',
          settings={"sieve_max_redirects": "1"}),
     Outcome("runtime-error", (INBOX,), 2)),
    (Case("extension-disabled", b'require "editheader";\n', extensions="-editheader"),
     Outcome("compile-error", (), 1)),
]


@pytest.fixture(scope="module")
def known():
    oracle.require_available()
    return oracle.run_cases([c for c, _ in KNOWN])


@pytest.mark.parametrize("case,want", [pytest.param(c, w, id=c.id) for c, w in KNOWN])
def test_known_sieve_test_outcome(case, want, known):
    got = known[case.id]
    assert got == want, f"\n{got}\n--- sieve-test said:\n{got.detail}"


def test_each_run_is_fresh():
    """Nothing of one run (a compiled .svbin, the duplicate database) reaches the
    next: the same vacation is decided on again, the same script recompiled."""
    oracle.require_available()
    case = Case("vacation-again", b'require ["vacation", "duplicate", "fileinto"];\n'
                b'if duplicate { fileinto "Dup"; }\nvacation "x";\n', folders=("Dup",))
    first = oracle.run_cases([case])[case.id]
    second = oracle.run_cases([case])[case.id]
    assert first == second == Outcome("ok", (INBOX, ("vacation", 604800, None, None)))


@pytest.mark.parametrize("name,encoded", [
    ("Work", "Work"), ("Über.a&b", "&ANw-ber.a&-b"), ("日本", "&ZeVnLA-"), ("a&", "a&-")])
def test_mutf7(name, encoded):
    assert oracle.mutf7_encode(name) == encoded
    assert oracle.mutf7_decode(encoded) == name


# -- the adapter's model of the delivery core (a pure function; no interpreter) --

def act(kind, **kw):
    base = dict(mailbox="", flags=(), create=False, copy=False, reason="", address="", params={})
    base.update(kw)
    return NS(kind=kind, **base)


def result(actions=(), implicit_keep=False, errors=(), keep_flags=()):
    return NS(actions=list(actions), implicit_keep=implicit_keep, errors=list(errors),
              keep_flags=tuple(keep_flags))


@pytest.mark.parametrize("res,folders,want", [
    pytest.param(result(implicit_keep=True, keep_flags=("\\seen",)), (),
                 Outcome("ok", (("store", "INBOX", ("\\Seen",)),)), id="implicit keep with flags"),
    pytest.param(result([act("fileinto", mailbox="Work")]), ("Work",),
                 Outcome("ok", (("store", "Work", ()),)), id="fileinto"),
    pytest.param(result([act("redirect", address="a@b.c"), act("fileinto", mailbox="Nope")]), (),
                 Outcome("action-failed", (INBOX,)), id="missing folder fails everything"),
    pytest.param(result([act("fileinto", mailbox="Nope", create=True)]), (),
                 Outcome("ok", (("store", "Nope", ()),)), id="create"),
    pytest.param(result([act("keep")], errors=["script: line 7: error: boom"]), (),
                 Outcome("runtime-error", (INBOX,), 7), id="errors keep in INBOX"),
    pytest.param(result([act("discard")]), (), Outcome("ok", (("discard",),)), id="discard"),
    pytest.param(result([act("discard"), act("keep")]), (), Outcome("ok", (INBOX,)), id="discard then keep"),
    pytest.param(result([act("reject", reason="no\r\nway")]), (),
                 Outcome("ok", (("reject", "no\nway"),)), id="reject line ends"),
    pytest.param(result([act("keep", flags=("A",)), act("fileinto", mailbox="inbox", flags=("B",))]), (),
                 Outcome("ok", (("store", "INBOX", ("B",)),)), id="one INBOX copy, last flags"),
    pytest.param(result([act("notify", params={"method": "mailto:a%40b.c?subject=x"})],
                        implicit_keep=True), (),
                 Outcome("ok", (("notify", "mailto:a@b.c", "2"), INBOX)), id="notify"),
    pytest.param(result([act("keep", flags=("\\Recent", "x(y", "ok", "OK"))]), (),
                 Outcome("ok", (("store", "INBOX", ("ok",)),)), id="flags as stored"),
])
def test_outcome_of(res, folders, want):
    assert adapter.outcome_of(res, adapter.existing(folders)) == want


@pytest.mark.parametrize("name,valid", [
    ("Work", True), ("Lists.dev", True), ("a/b", False), ("Work.", False), (".Work", False),
    ("a..b", False), ("a\tb", False), ("a%b*", True)])
def test_mailbox_valid(name, valid):
    assert adapter.mailbox_valid(name) is valid


def test_mailbox_name():
    assert [adapter.mailbox_name(n) for n in ("", "inbox", "Inbox.sub", "Inboxes")] == [
        "INBOX", "INBOX", "INBOX.sub", "Inboxes"]


def test_outcome_of_redirect_loop():
    res = result([act("redirect", address="boss@example.net")])
    assert adapter.outcome_of(res, adapter.existing(()), redirect_loop=True) == Outcome("ok", (INBOX,))


# -- the corpus --------------------------------------------------------------

AREAS = {"core", "tests", "address", "envelope", "match", "encoded-character", "reject", "copy",
         "message", "limits", "settings",
         "subaddress", "relational", "regex", "imap4flags", "body", "variables", "include",
         "environment", "mailbox", "date", "index", "ihave", "mime", "editheader", "spamtest",
         "vacation", "notify", "duplicate", "malformed", "runtime", "roundcube", "extensions"}


def test_corpus_covers_every_area():
    cases = corpus_sieve.CASES
    assert len(cases) >= 300
    assert len({c.id for c in cases}) == len(cases)
    assert {c.area for c in cases} == AREAS
    assert all(c.sender for c in cases), "sieve-test cannot be given a null sender"


def test_deliberate_differences_have_reasons():
    ids = {c.id for c in corpus_sieve.CASES}
    for case_id, why in corpus_sieve.DELIBERATE_DIFFERENCES.items():
        assert case_id in ids and why.strip()


def test_trace_explains():
    oracle.require_available()
    text = oracle.trace(Case("trace", b'if header :is "subject" "Weekly report" { discard; }\n'))
    assert "Started executing script 'script'" in text and "matching value `Weekly report'" in text
