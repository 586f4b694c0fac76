"""Hostile messages on stdin, through the installed command as the delivery user.

A property (hypothesis: arbitrary bytes, and header blocks built from nasty
parts) and a fixed corpus of known nasty cases. Whatever the bytes: exit 0
with the message byte for byte behind the prepended headers (Maildir) or
From_ line, headers and mboxrd quoting (mbox), or 65 5.4.6 exactly when the
header block holds `Delivered-To:` the recipient; plus every invariant of
fuzz_support.
"""
import re

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fuzz_support import check_outside, check_status, check_store, examples, fold

SENDER = "s@example.net"
CHUNK = 1 << 16          # vdeliver reads stdin in 64 KiB chunks (README: How a message is written)
MAX_HEADER_LINE = 4096   # longer header lines: which bytes count is vdeliver's choice


def headers(recipient, original, eol):
    """README: Return-Path, X-Original-To (with -a), Delivered-To (folded)."""
    lines = [b"Return-Path: <" + SENDER.encode() + b">"]
    if original:
        lines.append(b"X-Original-To: " + original.encode())
    lines.append(b"Delivered-To: " + fold(recipient).encode())
    return eol.join(lines) + eol


def maildir_bytes(message, recipient, original):
    """CRLF headers when the message's first line (within the first chunk) ends in CRLF."""
    first = message[:CHUNK]
    newline = first.find(b"\n")
    eol = b"\r\n" if newline > 0 and first[newline - 1:newline] == b"\r" else b"\n"
    return headers(recipient, original, eol) + message


def mbox_bytes(message, recipient, original):
    """After the From_ line: headers, mboxrd quoting (^>*From  gets a '>'), newline, blank line."""
    quoted = re.sub(rb"(?m)^(>*From )", rb">\1", message)
    end = b"\n" if message and not message.endswith(b"\n") else b""
    return headers(recipient, original, b"\n") + quoted + end + b"\n"


def loop_expected(message, recipient):
    """Does the header block hold Delivered-To: recipient? True, False, or None (either is fine).

    The header block, as README and pipe(8)'s D flag: lines up to the first
    empty line or the first line that is neither a header (`name:` with
    printable name) nor a continuation (leading space or tab). A value is
    unfolded, stripped of spaces and tabs and of one pair of <>, and compared
    case-folded. Undecided (None): a header-block line longer than 4096
    bytes, a Delivered-To value holding CR.
    """
    wanted = fold(recipient)
    lines = message.split(b"\n")
    if message.endswith(b"\n") or not message:
        lines = lines[:-1]
    current, undecided = None, False

    def end_header():
        nonlocal current, undecided
        if current is None:
            return False
        value = b"".join(current).strip(b" \t")
        current = None
        if value.startswith(b"<") and value.endswith(b">"):
            value = value[1:-1]
        if b"\r" in value:
            undecided = True
            return False
        return fold(value.decode("utf-8", "surrogateescape")) == wanted

    for line in lines:
        if len(line) > MAX_HEADER_LINE:
            return None if not end_header() else True
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        if end_header():
            return True
        colon = line.find(b":")
        if colon <= 0 or any(byte < 33 or byte > 126 for byte in line[:colon]):
            break
        if line[:colon].lower() == b"delivered-to":
            current = [line[colon + 1:]]
    if end_header():
        return True
    return None if undecided else False


def check_delivery(fuzz, result, message, recipient, original, wanted_code=None):
    status = check_status(result)
    check_outside(fuzz)
    if wanted_code is None:
        loop = loop_expected(message, recipient)
        wanted_code = None if loop is None else 65 if loop else 0
    if wanted_code is None:
        assert result.code in (0, 65), result
    else:
        assert result.code == wanted_code, result
    if result.code == 65:
        assert status == "5.4.6"
    if recipient.startswith("mbox"):
        check_store(fuzz, result, mbox_expected=mbox_bytes(message, recipient, original))
    else:
        check_store(fuzz, result, expected=maildir_bytes(message, recipient, original))
    return status


# --- the property ---------------------------------------------------------------------------

RECIPIENT_FORMS = [b"bob@example.com", b"mbox@example.com", b"<Bob@Example.COM>", b" BOB@EXAMPLE.COM ",
                   b"\tmbox@example.com", b"bob@example.com\r", b"alice@example.com", b""]
line_text = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b""))
header_name = st.one_of(
    st.sampled_from([b"Delivered-To", b"delivered-to", b"DELIVERED-TO"]),
    st.sampled_from([b"Subject", b"From", b"Received", b"X-\xff", b"Delivered-To ", b"From ", b""]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
            min_size=1, max_size=12).map(str.encode),
    st.binary(min_size=1, max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b":", b"")))
header_value = st.one_of(line_text, st.sampled_from(RECIPIENT_FORMS).map(lambda v: b" " + v))
header_line = st.builds(lambda name, value: name + b":" + value, header_name, header_value)
delivered_to_line = st.builds(lambda name, lead, value: name + b":" + lead + value,
                              st.sampled_from([b"Delivered-To", b"delivered-to"]),
                              st.sampled_from([b"", b" ", b"\t", b"  "]), st.sampled_from(RECIPIENT_FORMS))
continuation = st.builds(lambda lead, value: lead + value, st.sampled_from([b" ", b"\t"]),
                         st.one_of(line_text, st.sampled_from(RECIPIENT_FORMS)))
odd_line = st.sampled_from([b"From someone Mon Jan  1 00:00:00 2026", b">From x", b"", b"\r",
                            b"\x00", b"no colon here", b"\xe9t\xe9: \xff"])
body = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from([b"From me\n", b">From x\n", b">>From y\n", b"\r\n", b"\n", b"\x00",
                              b"text\n", b"\xff\xfe\x80", b"\r", b"From ", b".\n"]),
             max_size=60).map(b"".join),
    st.builds(lambda unit, count: unit * count, st.binary(min_size=1, max_size=40),
              st.integers(0, 4000)))


@st.composite
def messages(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=3000))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines = draw(st.lists(st.one_of(header_line, delivered_to_line, continuation, odd_line), max_size=25))
    text = eol.join(lines)
    if lines and draw(st.booleans()):
        text += eol
    if draw(st.booleans()):
        text += eol + draw(body)
    return text


@settings(max_examples=examples(250))
@given(message=messages(), recipient=st.sampled_from(["bob@example.com", "mbox@example.com"]),
       original=st.sampled_from(["", "Orig@Example.COM"]))
def test_any_message_is_delivered_exactly_or_bounced_as_a_loop(fuzz_mail, message, recipient, original):
    fuzz_mail.reset()
    args = ["-f", SENDER] + (["-a", original] if original else []) + ["--", recipient]
    result = fuzz_mail.run_with_file(*args, message=message)
    status = check_delivery(fuzz_mail, result, message, recipient, original)
    event(f"exit {result.code} {status}")


# --- the fixed corpus -----------------------------------------------------------------------

def many_headers(count, last=b""):
    return b"".join(b"X-Header-%d: value %d\n" % (n, n) for n in range(count)) + last + b"\nbody\n"


def straddle(offset):
    """Delivered-To: bob@example.com starting `offset` bytes before the 64 KiB chunk boundary."""
    pad = b"X-Pad: " + b"p" * (CHUNK - offset - len(b"X-Pad: ") - 1) + b"\n"
    return pad + b"Delivered-To: bob@example.com\nSubject: x\n\nbody\n"


CORPUS = [
    # id, the message (made when the test runs: a collected suite must stay small in memory;
    # tests/functional measures a child's peak RSS, which counts its parent's pages until exec),
    # the wanted exit (None: 0 or 65 both fine)
    ("empty", lambda: b"", 0),
    ("only a newline", lambda: b"\n", 0),
    ("headers only, no blank line", lambda: b"Subject: x\nFrom: y", 0),
    ("no blank line, body-like text", lambda: b"Subject: x\nthis is body text\nmore\n", 0),
    ("huge header line (10 MB)", lambda: b"X-Long: " + b"a" * 10_000_000 + b"\n\nbody\n", 0),
    ("huge line, no newline at all (200 KB)", lambda: b"From x" + b"y" * 200_000, 0),
    ("100k headers", lambda: many_headers(100_000), 0),
    ("100k headers then Delivered-To",
     lambda: many_headers(100_000, b"Delivered-To: bob@example.com\n"), 65),
    ("Delivered-To across the chunk boundary", lambda: straddle(10), 65),
    ("Delivered-To just after the chunk boundary", lambda: straddle(0), 65),
    ("Delivered-To, angle brackets and case", lambda: b"Delivered-To: <BOB@Example.Com>\n\nx\n", 65),
    ("Delivered-To, folded value", lambda: b"Subject: x\nDelivered-To:\n bob@example.com\n\nx\n", 65),
    ("Delivered-To with CRLF", lambda: b"Delivered-To: bob@example.com\r\n\r\nx\r\n", 65),
    ("Delivered-To, value padded past 4096 bytes",
     lambda: b"Delivered-To: bob@example.com" + b" " * 5000 + b"\n\nx\n", None),
    ("Delivered-To in the body", lambda: b"Subject: x\n\nDelivered-To: bob@example.com\n", 0),
    ("Delivered-To after a non-header line",
     lambda: b"Subject: x\nnot a header\nDelivered-To: bob@example.com\n", 0),
    ("Delivered-To after an 8-bit header name", lambda: b"X-\xff: v\nDelivered-To: bob@example.com\n\n", 0),
    ("Delivered-To another address", lambda: b"Delivered-To: alice@example.com\n\nx\n", 0),
    ("continuation before any header", lambda: b" folded\nDelivered-To: bob@example.com\n\nx\n", None),
    ("NUL and bare CR", lambda: b"Subject: a\x00b\rc\n\n\x00\r\r\nx\rFrom y\r\n", 0),
    ("leading From line", lambda: b"From sender Mon Jan  1 00:00:00 2026\nSubject: x\n\nbody\n", 0),
    ("From lines in the body", lambda: b"Subject: x\n\nFrom a\n>From b\n>>From c\nFrom\n From d\n", 0),
    ("8-bit everywhere",
     lambda: b"Subject: \xe9t\xe9 \xff\n" + bytes(range(128, 256)) + b"\n\n" + bytes(range(1, 256)), 0),
    ("CRLF message", lambda: b"Subject: crlf\r\n\r\nbody\r\n", 0),
    ("bare CR line endings", lambda: b"Subject: cr\r\rbody\r", 0),
    ("exactly one chunk", lambda: b"Subject: x\n\n" + b"z" * (CHUNK - 13) + b"\n", 0),
    ("one chunk and one byte", lambda: b"Subject: x\n\n" + b"z" * (CHUNK - 12) + b"\n", 0),
    ("no final newline", lambda: b"Subject: x\n\nno final newline", 0),
]


@pytest.mark.parametrize("recipient", ["bob@example.com", "mbox@example.com"])
@pytest.mark.parametrize("name, message, wanted", [pytest.param(*case, id=case[0]) for case in CORPUS])
def test_corpus_of_nasty_messages(fuzz_mail, name, message, wanted, recipient):
    fuzz_mail.reset()
    message = message()
    if wanted == 65 and recipient.startswith("mbox"):
        message = message.replace(b"bob@example.com", b"mbox@example.com").replace(
            b"BOB@Example.Com", b"MBOX@Example.Com")
    result = fuzz_mail.run("-f", SENDER, "--", recipient, stdin=message)  # a pipe, as pipe(8)
    check_delivery(fuzz_mail, result, message, recipient, "", wanted)
