"""Dovecot reads what vdeliver wrote: IMAP count, RFC822.SIZE and BODY[] agree with the files.

Dovecot trusts the `,S=<size>` in a Maildir file name; a wrong one shows up as a wrong
RFC822.SIZE, a cut BODY[], or a complaint in its log. Only ivy@'s Maildir is opened
over IMAP (Dovecot moves files from new/ to cur/, which other tests must not see);
the test runs in pipe and LMTP mode, the second run adds to the first one's messages.
Never: compare without converting the file's LF to the CRLF of the IMAP wire.
"""
from __future__ import annotations

import imaplib
import re

import pytest

from harness import HOSTED, make_message

IVY = f"ivy@{HOSTED}"
BODIES = [
    b"A short plain message.\n",
    "8-bit: Grüße, café, ✓\n".encode() + b"latin-1: \xe9\xff\n",
    b"long line: " + b"y" * 3000 + b"\n.\n..\nFrom here\n",
    b"\n\n\nblank lines first\n",
]
DOVECOT_COMPLAINTS = re.compile(r"size mismatch|broken S=|broken physical size|cached message size|"
                                r"wrong S value|corrupt|error:|panic:|fatal:", re.IGNORECASE)


def fetch_all(conn) -> tuple[int, list[tuple[int, bytes]]]:
    """SELECT INBOX, FETCH every message's RFC822.SIZE and BODY[]; (count, [(size, body)])."""
    typ, data = conn.select("INBOX")
    assert typ == "OK", data
    count = int(data[0])
    typ, data = conn.fetch(f"1:{count}", "(RFC822.SIZE BODY[])")
    assert typ == "OK", data
    out = []
    for item in data:
        if isinstance(item, tuple):
            size = re.search(rb"RFC822\.SIZE (\d+)", item[0])
            assert size, item[0]
            out.append((int(size.group(1)), item[1]))
    return count, out


def test_imap_sees_every_message_byte_for_byte(settled, mode):
    mail = settled
    before = len(mail.messages(mail.maildir(IVY)))
    for n, body in enumerate(BODIES):
        data, msgid = make_message(f"imap {n} {mode}", body, to=IVY)
        sent = mail.wait_status(mail.send(data, IVY, mail_options=("BODY=8BITMIME",)), "sent")
        assert sent[0]["agent"] == mail.agent, sent[0]["line"]
    files = mail.messages(mail.maildir(IVY))
    assert len(files) == before + len(BODIES)

    try:
        conn = mail.imap(IVY)
        count, fetched = fetch_all(conn)
        conn.logout()
    except imaplib.IMAP4.error as err:
        pytest.fail(f"IMAP failed: {err}; Dovecot says: {dovecot_complaints(mail)}")
    assert count == len(files)
    wire = sorted(data.replace(b"\n", b"\r\n") for data in files.values())
    assert sorted(body for _, body in fetched) == wire, "BODY[] must be the file, LF -> CRLF"
    for size, body in fetched:
        assert size == len(body), "RFC822.SIZE must agree with BODY[]"

    assert not dovecot_complaints(mail)
    after = mail.messages(mail.maildir(IVY))  # Dovecot moved them to cur/NAME:2,FLAGS
    assert sorted(after.values()) == sorted(files.values()), "Dovecot must not change the files"
    for name, data in after.items():
        assert name.split(":")[0].endswith(f",S={len(data)}"), f"{name}: S= must be the size {len(data)}"


def dovecot_complaints(mail) -> list[str]:
    return [line for line in mail.dovecot_log_text().splitlines() if DOVECOT_COMPLAINTS.search(line)]

