"""Delivery through the real Postfix: bytes on disk, added headers, lookup order, 8-bit, SMTPUTF8.

Each test sends over SMTP to the private instance (harness.py) and reads the Maildir
that vdeliver's table names. Never: read the mailbox before Postfix logged the delivery.
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
from harness import CATCHALL, HOSTED, SENDER, header_values, make_message

# Lines that SMTP, Postfix or a careless agent could alter: a lone dot, dot-stuffing,
# an mbox From_ line, trailing white space, a tab, an empty line, a 5000-byte line.
TRICKY_BODY = (b"First line.\n.\n..two dots\n.leading dot\nFrom the start of a line\n"
               b"trailing spaces   \n\ttab first\n\n" + b"x" * 5000 + b"\nlast line\n")
NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+R[0-9a-f]+\.[^/,:]+,S=(\d+)$")


def deliver(mail, rcpt: str, key: str, data: bytes, msgid: str, **send) -> tuple[str, bytes]:
    """Send, wait for Postfix's 'sent', return (name, bytes) of the file in key's Maildir."""
    queue_id = mail.send(data, rcpt, **send)
    sent = mail.wait_status(queue_id, "sent")
    assert sent[0]["relay"] == "vdeliver" and sent[0]["dsn"] == "2.0.0", sent[0]["line"]
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


def test_hosted_mailbox_gets_exact_bytes_and_delivery_headers(settled):
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("exact bytes", TRICKY_BODY, to=rcpt)
    name, delivered = deliver(mail, rcpt, rcpt, data, msgid)

    added = (f"Return-Path: <{SENDER}>\nX-Original-To: {rcpt}\nDelivered-To: {rcpt}\n").encode()
    assert delivered.startswith(added), delivered[:300]
    received = received_header(delivered, 3)
    assert received.startswith(b"Received: from client.e2e.test"), received
    assert delivered == added + received + data, "the original message must follow byte for byte"
    for header in ("Return-Path", "Delivered-To", "X-Original-To"):
        assert len(header_values(delivered, header)) == 1, f"{header} appears more than once"


def test_null_sender_gives_empty_return_path(settled):
    """The snippet's null_sender= passes MAIL FROM:<> as an empty -f argument."""
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("null sender", sender="MAILER-DAEMON@e2e.test")
    _, delivered = deliver(mail, rcpt, rcpt, data, msgid, sender="")
    assert header_values(delivered, "Return-Path") == [b"<>"]
    assert delivered.endswith(data)


def test_maildir_file_name_mode_owner_and_size(settled):
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
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == pwd.getpwnam(harness.VMAIL).pw_uid
    assert os.listdir(os.path.join(mail.maildir(rcpt), "tmp")) == [], "tmp/ must be empty after delivery"


def test_vdeliver_logs_one_line_per_delivery(settled):
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
    pytest.param(f"BOB@Example.COM", f"bob@{HOSTED}", id="case folded"),
    pytest.param(f"carol+list@{HOSTED}", f"carol+list@{HOSTED}", id="full key with extension wins"),
    pytest.param(f"carol+other@{HOSTED}", f"carol@{HOSTED}", id="other extension falls back"),
    pytest.param(f"info@{CATCHALL}", f"info@{CATCHALL}", id="user key beats catch-all"),
    pytest.param(f"info+x@{CATCHALL}", f"info@{CATCHALL}", id="user key minus extension beats catch-all"),
    pytest.param(f"anyone@{CATCHALL}", f"@{CATCHALL}", id="catch-all"),
    pytest.param(f"Someone+x@CatchAll.Example", f"@{CATCHALL}", id="catch-all with extension and case"),
]


@pytest.mark.parametrize("rcpt, key", RESOLUTION)
def test_recipient_resolves_as_virtual8(settled, rcpt, key):
    data, msgid = make_message(f"resolve {rcpt}", to=rcpt)
    _, delivered = deliver(settled, rcpt, key, data, msgid)
    # pipe's h flag lower-cases the domain; vdeliver folds the whole address for Delivered-To.
    assert header_values(delivered, "Delivered-To") == [rcpt.lower().encode()]
    assert [v.lower() for v in header_values(delivered, "X-Original-To")] == [rcpt.lower().encode()]
    assert delivered.endswith(data)


def test_alias_keeps_original_recipient_in_x_original_to(settled):
    """virtual_alias_maps rewrites postmaster@ to bob@; -a ${original_recipient} keeps the first."""
    mail, rcpt = settled, f"postmaster@{HOSTED}"
    data, msgid = make_message("alias", to=rcpt)
    _, delivered = deliver(mail, rcpt, f"bob@{HOSTED}", data, msgid)
    assert header_values(delivered, "X-Original-To") == [rcpt.encode()]
    assert header_values(delivered, "Delivered-To") == [f"bob@{HOSTED}".encode()]


@pytest.mark.parametrize("rcpts", [
    [f"bob@{HOSTED}", f"alice@{HOSTED}"],
    [f"team@{HOSTED}"],
], ids=["two RCPT TO", "alias to two mailboxes"])
def test_each_recipient_gets_its_own_delivery(settled, rcpts):
    """vdeliver_destination_recipient_limit = 1: one vdeliver run, one Delivered-To, per mailbox."""
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


def test_large_message_streams_intact(settled):
    """5 MB through pipe(8): vdeliver must read all of stdin and write it all."""
    rcpt = f"alice@{HOSTED}"
    body = b"".join(b"%07d " % n + base64.b64encode(hashlib.sha512(b"%d" % n).digest()) + b"\n"
                    for n in range(5 * 1024 * 1024 // 97))
    data, msgid = make_message("large", body, to=rcpt)
    name, delivered = deliver(settled, rcpt, rcpt, data, msgid)
    assert delivered.endswith(data)
    assert name.endswith(f",S={len(delivered)}")


EIGHT_BIT_BODY = "Grüße, naïve café – ½ € ✓\n".encode() + b"latin-1 bytes: \xe9\xe8\xff\n"


def test_8bit_body_arrives_intact(settled):
    rcpt = f"bob@{HOSTED}"
    data, msgid = make_message("8-bit body", EIGHT_BIT_BODY, to=rcpt)
    _, delivered = deliver(settled, rcpt, rcpt, data, msgid, mail_options=("BODY=8BITMIME",))
    assert delivered.endswith(data)


@pytest.mark.parametrize("rcpt", [f"jörg@{HOSTED}", f"JÖRG@{HOSTED}"], ids=["utf8 local part", "utf8 case folded"])
def test_smtputf8_message_arrives_intact(settled, rcpt):
    sender = f"rené@{harness.BOUNCES}"
    headers = "Subject-Extra: Grüße aus Köln\nFrom-Name: Zoë Ångström\n".encode()
    data, msgid = make_message("Grüße ✓ SMTPUTF8", EIGHT_BIT_BODY, sender=sender, to=rcpt, headers=headers)
    _, delivered = deliver(settled, rcpt, f"jörg@{HOSTED}", data, msgid, sender=sender,
                           mail_options=("SMTPUTF8", "BODY=8BITMIME"))
    assert delivered.endswith(data)
    assert header_values(delivered, "Return-Path") == [f"<{sender}>".encode()]
    assert header_values(delivered, "Delivered-To") == [f"jörg@{HOSTED}".encode()]
    assert header_values(delivered, "X-Original-To") == [rcpt.encode()]
