"""Hostile envelope addresses, as argv bytes to the installed command run as the delivery user.

Recipients, senders and original recipients with quotes, `..`, `/`, `%`,
control bytes, very long local parts, UTF-8 and invalid UTF-8, `@` inside
quotes, empty, only `@domain`, through a texthash table, a regexp table that
puts `$1` (the local part) into the path, +extension folders created on
demand. Wanted, besides every invariant of fuzz_support (above all: nothing
written outside the base): a control character or an over-long address
bounces 5.1.7 (sender) or 5.1.3 (recipient), in that order; such an original
recipient only loses its X-Original-To; known mailboxes are delivered; what is
delivered carries exactly the addresses given.
"""
import os

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fuzz_support import check_outside, check_status, check_store, examples, external, fold, has_control

MESSAGE = b"Subject: address fuzz\n\nbody\n"

TOKENS = [b"bob", b"BOB", b"alice", b"mbox", b"x", b".", b"..", b"../", b"/", b"%", b"%2e%2e", b"\\",
          b'"', b"@", b"+", b"+tag", b"+.hidden", b"+a/b", b"+..", b"-", b"_", b" ", b"\t", b"~",
          b"*", b"$1", b"${1}", b"(", b")", b",", b":", b";", b"<", b">", b"[", b"]", b"'", b"!",
          b"#", b"&", b"=", b"?", b"{", b"}", b"|",
          b"\xc3\xbc", b"\xc3\x9c", b"\xe4\xbe\x8b", b"\xc3\x9f", b"\xc4\xb0", b"\xe2\x80\xae",
          b"\xff", b"\xc3", b"\xed\xa0\x80",                # invalid UTF-8
          b"\x01", b"\x1f", b"\x7f", b"\r", b"\n", b"\x1b[31m"]  # control characters
DOMAINS = [b"example.com", b"EXAMPLE.COM", b"Example.Com", b"example.net", b"EXAMPLE.NET",
           b"catchall.example", b"CATCHALL.EXAMPLE", b"b\xc3\xbccher.example", b"xn--bcher-kva.example",
           b"example.com.", b"", b"..", b"example.net/../x", b"[127.0.0.1]", b"\xff.example"]

CONTROL = (b"\x01", b"\x1f", b"\x7f", b"\r", b"\n", b"\x1b[31m")
clean_local = st.lists(st.sampled_from([t for t in TOKENS if t not in CONTROL]), max_size=12).map(b"".join)
local_part = st.one_of(
    clean_local, clean_local,
    st.lists(st.sampled_from(TOKENS), max_size=12).map(b"".join),
    st.binary(max_size=30).map(lambda b: b.replace(b"\0", b"")),
    st.integers(60, 1100).map(lambda n: b"a" * n))
domain = st.one_of(st.sampled_from(DOMAINS[:6]), st.sampled_from(DOMAINS),
                   st.binary(max_size=20).map(lambda b: b.replace(b"\0", b"")))
clean_address = st.builds(lambda local, dom: local + b"@" + dom, clean_local, st.sampled_from(DOMAINS[:6]))
address = st.one_of(
    clean_address,
    st.builds(lambda local, dom: local + b"@" + dom, local_part, domain),
    st.builds(lambda local, dom: b'"' + local + b'"@' + dom, local_part, domain),
    st.builds(lambda dom: b"@" + dom, domain),
    local_part,
    st.sampled_from([b"", b"@", b"@@", b"bob@example.com", b"Bob+Tag@Example.COM", b"bob+@example.com",
                     b"+bob@example.com", b"bob++x@example.com", b"bob+.hidden@example.com",
                     b"bob+a/b@example.com", b"bob+..@example.com", b"../../x@example.net",
                     b"..@example.net", b"a/../../b@example.net", b"/etc/passwd@example.net",
                     b"%2e%2e/x@example.net", b"@example.net", b"x/@example.net",
                     b'"a@b"@example.net', b"bob@example.com@example.net", b"b\xc3\xbccher@example.com",
                     b"B\xc3\x9cCHER@EXAMPLE.COM", b"\xc4\xb0@catchall.example"]))
senders = st.one_of(st.sampled_from([b"", b"s@example.net", b"MAILER-DAEMON"]), clean_address, address)
originals = st.one_of(st.just(b""), clean_address, address)


@pytest.fixture(scope="module")
def address_mail(fuzz_mail):
    rules = os.path.join(fuzz_mail.top, "rules")
    fuzz_mail.write_table("/^(.*)@example\\.net$/ example.net/$1/\n", rules)
    fuzz_mail.write_table("bob@example.com      example.com/bob/\n"
                          "alice@example.com    example.com/alice/\n"
                          "mbox@example.com     example.com/mbox\n"
                          "@catchall.example    catchall/\n"
                          "b\u00fccher@example.com example.com/buecher/\n"
                          '"quoted@x"@example.com example.com/quoted/\n')
    fuzz_mail.write_config("extension_folder = create\n",
                           maps=f"texthash:{fuzz_mail.table_path}, regexp:{rules}")
    fuzz_mail.rebaseline()
    return fuzz_mail


def decoded(raw):
    return raw.decode("utf-8", "surrogateescape")


def bad(text):
    return has_control(text) or len(text) > 1000


def expected_outcome(sender, recipient, original):
    """(code, status) README promises, or None when any non-bounce outcome is allowed."""
    if bad(sender):
        return 65, "5.1.7"
    if not recipient or bad(recipient):
        return 67, "5.1.3"
    return None  # a bad original recipient only loses X-Original-To


def surely_delivered(recipient):
    """Recipients whose mailbox the tables certainly give (with extension_folder = create)."""
    folded = fold(recipient)
    local, _, dom = folded.rpartition("@")
    return (dom == "catchall.example" or (dom == "example.com" and local.partition("+")[0] == "bob"
                                          and "@" not in local))


@settings(max_examples=examples(300))
@given(recipient=address, sender=senders, original=originals)
def test_any_address_bounces_defers_or_delivers_exactly(address_mail, recipient, sender, original):
    fuzz = address_mail
    fuzz.reset()
    args = [b"-f", sender] + ([b"-a", original] if original else []) + [b"--", recipient]
    result = fuzz.run_with_file(*args, message=MESSAGE)
    status = check_status(result)
    event(f"exit {result.code} {status}")
    check_outside(fuzz)
    rcpt, snd, orig = decoded(recipient), decoded(sender), decoded(original)
    wanted = expected_outcome(snd, rcpt, orig)
    if wanted is not None:
        assert (result.code, status) == wanted, result
    else:
        assert result.code in (0, 67, 75), result
        if result.code == 67:
            assert status == "5.1.1", result
        if surely_delivered(rcpt):
            assert result.code == 0, result
    headers = b"Return-Path: <" + (external(sender) if sender else b"") + b">\n"
    if original and not bad(orig):  # a malformed one is dropped (logged), never a bounce
        headers += b"X-Original-To: " + external(original) + b"\n"
    headers += b"Delivered-To: " + external(fold(rcpt).encode("utf-8", "surrogateescape")) + b"\n"
    if fold(rcpt) == "mbox@example.com":
        check_store(fuzz, result, mbox_expected=headers + MESSAGE + b"\n")
        return
    path = check_store(fuzz, result, expected=headers + MESSAGE)
    if path and surely_delivered(rcpt) and not fold(rcpt).endswith("@catchall.example"):
        assert path.startswith(fuzz.path("example.com/bob/")), path
