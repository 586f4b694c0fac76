"""Delivery through the real Postfix: bytes on disk, added headers, lookup order, 8-bit, SMTPUTF8.

Each test sends over SMTP to the private instance (harness.py) and reads the Maildir
that vdeliver's table names. Tests that take `mode` run twice: through pipe(8) (the
snippet as written) and through Postfix's lmtp client and vdeliver's LMTP daemon.
Never: read the mailbox before Postfix logged the delivery.
"""
from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import subprocess

import pytest

import harness
from harness import CATCHALL, HOSTED, SENDER, WRITES_X_ORIGINAL_TO, header_values, make_message

# Lines that SMTP, Postfix or a careless agent could alter: a lone dot, dot-stuffing,
# an mbox From_ line, trailing white space, a tab, an empty line, a 5000-byte line.
TRICKY_BODY = (b"First line.\n.\n..two dots\n.leading dot\nFrom the start of a line\n"
               b"trailing spaces   \n\ttab first\n\n" + b"x" * 5000 + b"\nlast line\n")
NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+R[0-9a-f]+\.[^/,:]+,S=(\d+)$")


def deliver(mail, rcpt: str, key: str, data: bytes, msgid: str, **send) -> tuple[str, bytes]:
    """Send, wait for Postfix's 'sent', return (name, bytes) of the file in key's Maildir."""
    queue_id = mail.send(data, rcpt, **send)
    sent = mail.wait_status(queue_id, "sent")
    assert sent[0]["agent"] == mail.agent and sent[0]["relay"] == mail.relay, sent[0]["line"]
    assert sent[0]["dsn"] == "2.0.0", sent[0]["line"]
    found = mail.find(mail.maildir(key), msgid)
    assert len(found) == 1, f"{msgid} should be in {mail.maildir(key)} once: {sorted(found)}"
    return next(iter(found.items()))


def received_header(delivered: bytes, added: int) -> bytes:
    """The header Postfix put between vdeliver's `added` lines and the original message."""
    lines = delivered.split(b"\n")[added:]
    out = [lines[0]]
    for line in lines[1:]:
        if line[:1] not in (b" ", b"\t"):
            break
        out.append(line)
    return b"\n".join(out) + b"\n"


def added_headers(mode: str, sender: str, rcpt: str, original: str) -> bytes:
    """What vdeliver puts in front of the message, in this mode."""
    original_line = f"X-Original-To: {original}\n" if WRITES_X_ORIGINAL_TO[mode] else ""
    return f"Return-Path: <{sender}>\n{original_line}Delivered-To: {rcpt}\n".encode()


def test_hosted_mailbox_gets_exact_bytes_and_delivery_headers(settled, mode):
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("exact bytes", TRICKY_BODY, to=rcpt)
    name, delivered = deliver(mail, rcpt, rcpt, data, msgid)

    added = added_headers(mode, SENDER, rcpt, rcpt)
    assert delivered.startswith(added), delivered[:300]
    received = received_header(delivered, added.count(b"\n"))
    assert received.startswith(b"Received: from client.e2e.test"), received
    if harness.FOLDS_LONG_LINES[mode]:
        # Postfix's lmtp client breaks the 5000-byte line: 998 bytes, then "\n " + 997...
        assert b"\n" + b"x" * 998 + b"\n " + b"x" * 997 + b"\n " in delivered, "no fold at 998"
        assert b" " + b"x" * 14 + b"\nlast line\n" in delivered
        delivered = delivered.replace(b"\n ", b"")   # no other line of the message starts with a space
    assert delivered == added + received + data, "the original message must follow byte for byte"
    for header in ("Return-Path", "Delivered-To", "X-Original-To"):
        assert len(header_values(delivered, header)) <= 1, f"{header} appears more than once"


def test_null_sender_gives_empty_return_path(settled, mode):
    """The snippet's null_sender= passes MAIL FROM:<> as an empty -f argument."""
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("null sender", sender="MAILER-DAEMON@e2e.test")
    _, delivered = deliver(mail, rcpt, rcpt, data, msgid, sender="")
    assert header_values(delivered, "Return-Path") == [b"<>"]
    assert delivered.endswith(data)


def test_maildir_file_name_mode_owner_and_size(settled, mode):
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("file name")
    name, delivered = deliver(mail, rcpt, rcpt, data, msgid)
    path = os.path.join(mail.maildir(rcpt), name)

    folder, base = name.split("/")
    assert folder == "new", name
    match = NAME.match(base)
    assert match, f"{base} is not <sec>.M<usec>P<pid>Q<n>R<hex>.<host>,S=<size>"
    st = os.stat(path)
    assert int(match.group(1)) == st.st_size == len(delivered)
    if mode == "lmtp":
        assert f"P{mail.lmtpd_pid()}Q" in base, f"{base}: the daemon should have written it"
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == pwd.getpwnam(harness.VMAIL).pw_uid
    assert os.listdir(os.path.join(mail.maildir(rcpt), "tmp")) == [], "tmp/ must be empty after delivery"


def test_vdeliver_logs_one_line_per_delivery(settled, mode):
    mail, rcpt = settled, f"alice@{HOSTED}"
    before = len(mail.vdeliver_lines(rcpt))
    data, msgid = make_message("log line", to=rcpt)
    name, _ = deliver(mail, rcpt, rcpt, data, msgid)
    lines = mail.vdeliver_lines(rcpt)[before:]
    assert len(lines) == 1, lines
    assert "relay=vdeliver" in lines[0] and "dsn=2.0.0, status=sent (" in lines[0], lines[0]
    assert name.split("/")[-1] in lines[0], "the log line should name the new file"


# virtual(8)'s order (fact sheet 4.1): user+ext@domain, user@domain, @domain.
RESOLUTION = [
    pytest.param(f"bob+tag@{HOSTED}", f"bob@{HOSTED}", id="extension stripped"),
    pytest.param("BOB@Example.COM", f"bob@{HOSTED}", id="case folded"),
    pytest.param(f"carol+list@{HOSTED}", f"carol+list@{HOSTED}", id="full key with extension wins"),
    pytest.param(f"carol+other@{HOSTED}", f"carol@{HOSTED}", id="other extension falls back"),
    pytest.param(f"info@{CATCHALL}", f"info@{CATCHALL}", id="user key beats catch-all"),
    pytest.param(f"info+x@{CATCHALL}", f"info@{CATCHALL}", id="user key minus extension beats catch-all"),
    pytest.param(f"anyone@{CATCHALL}", f"@{CATCHALL}", id="catch-all"),
    pytest.param("Someone+x@CatchAll.Example", f"@{CATCHALL}", id="catch-all with extension and case"),
    # Postfix hands pipe(8) the internal form (John Doe@...) and lmtp the quoted one; both look
    # up the quoted key first and write Delivered-To quoted, as virtual(8) and mail_copy() do.
    pytest.param(f'"John Doe"@{HOSTED}', f'"john doe"@{HOSTED}', id="quoted local part"),
]


@pytest.mark.parametrize("rcpt, key", RESOLUTION)
def test_recipient_resolves_as_virtual8(settled, mode, rcpt, key):
    data, msgid = make_message(f"resolve {rcpt}", to=rcpt)
    _, delivered = deliver(settled, rcpt, key, data, msgid)
    # pipe's h flag lower-cases the domain; vdeliver folds the whole address for Delivered-To.
    assert header_values(delivered, "Delivered-To") == [rcpt.lower().encode()]
    wanted = [rcpt.lower().encode()] if WRITES_X_ORIGINAL_TO[mode] else []
    assert [v.lower() for v in header_values(delivered, "X-Original-To")] == wanted
    assert delivered.endswith(data)


def test_alias_keeps_original_recipient_in_x_original_to(settled, mode):
    """virtual_alias_maps rewrites postmaster@ to bob@; -a ${original_recipient} keeps the first.

    Over LMTP the original recipient can only come as RCPT TO's ORCPT, which Postfix's
    lmtp client sends only to a server that announces DSN in its LHLO reply (lmtp_dsn).
    """
    mail, rcpt = settled, f"postmaster@{HOSTED}"
    data, msgid = make_message("alias", to=rcpt)
    _, delivered = deliver(mail, rcpt, f"bob@{HOSTED}", data, msgid)
    assert header_values(delivered, "X-Original-To") == [rcpt.encode()]
    assert header_values(delivered, "Delivered-To") == [f"bob@{HOSTED}".encode()]


@pytest.mark.parametrize("rcpts", [
    [f"bob@{HOSTED}", f"alice@{HOSTED}"],
    [f"team@{HOSTED}"],
], ids=["two RCPT TO", "alias to two mailboxes"])
def test_each_recipient_gets_its_own_delivery(settled, mode, rcpts):
    """One Delivered-To per mailbox: pipe runs vdeliver once per recipient
    (vdeliver_destination_recipient_limit = 1); LMTP delivers one copy per RCPT."""
    mail = settled
    data, msgid = make_message("two recipients", to=", ".join(rcpts))
    queue_id = mail.send(data, rcpts)
    mail.wait_status(queue_id, "sent", count=2)
    for owner in (f"bob@{HOSTED}", f"alice@{HOSTED}"):
        found = mail.find(mail.maildir(owner), msgid)
        assert len(found) == 1, (owner, sorted(found))
        delivered = next(iter(found.values()))
        assert header_values(delivered, "Delivered-To") == [owner.encode()]
        assert delivered.endswith(data)


def test_dry_run_names_table_key_and_mailbox(settled):
    """`vdeliver -n` resolves without delivering (run as root: it drops to the base's owner)."""
    mail = settled
    result = subprocess.run([harness.snippet_command(), "-n", f"carol+other@{HOSTED}"], capture_output=True,
                            text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"texthash:{mail.table}" in result.stdout
    assert f"carol@{HOSTED}" in result.stdout
    assert os.path.join(mail.mail_base, f"{HOSTED}/carol") in result.stdout


def test_large_message_streams_intact(settled, mode):
    """5 MB through pipe(8) or LMTP: vdeliver must read all of it and write it all."""
    rcpt = f"alice@{HOSTED}"
    body = b"".join(b"%07d " % n + base64.b64encode(hashlib.sha512(b"%d" % n).digest()) + b"\n"
                    for n in range(5 * 1024 * 1024 // 97))
    data, msgid = make_message("large", body, to=rcpt)
    name, delivered = deliver(settled, rcpt, rcpt, data, msgid)
    assert delivered.endswith(data)
    assert name.endswith(f",S={len(delivered)}")


EIGHT_BIT_BODY = "Grüße, naïve café – ½ € ✓\n".encode() + b"latin-1 bytes: \xe9\xe8\xff\n"


def test_8bit_body_arrives_intact(settled, mode):
    rcpt = f"bob@{HOSTED}"
    data, msgid = make_message("8-bit body", EIGHT_BIT_BODY, to=rcpt)
    _, delivered = deliver(settled, rcpt, rcpt, data, msgid, mail_options=("BODY=8BITMIME",))
    assert delivered.endswith(data)


@pytest.mark.parametrize("rcpt", [f"jörg@{HOSTED}", f"JÖRG@{HOSTED}"], ids=["utf8 local part", "utf8 case folded"])
def test_smtputf8_message_arrives_intact(settled, mode, rcpt):
    sender = f"rené@{harness.BOUNCES}"
    headers = "Subject-Extra: Grüße aus Köln\nFrom-Name: Zoë Ångström\n".encode()
    data, msgid = make_message("Grüße ✓ SMTPUTF8", EIGHT_BIT_BODY, sender=sender, to=rcpt, headers=headers)
    _, delivered = deliver(settled, rcpt, f"jörg@{HOSTED}", data, msgid, sender=sender,
                           mail_options=("SMTPUTF8", "BODY=8BITMIME"))
    assert delivered.endswith(data)
    assert header_values(delivered, "Return-Path") == [f"<{sender}>".encode()]
    assert header_values(delivered, "Delivered-To") == [f"jörg@{HOSTED}".encode()]
    wanted = [rcpt.encode()] if WRITES_X_ORIGINAL_TO[mode] else []
    assert header_values(delivered, "X-Original-To") == wanted
