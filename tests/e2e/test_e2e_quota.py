"""Dovecot's view of vdeliver's quota: both read and write the same Maildir++ maildirsize.

QUOTA_USER has `1M,100C` in vdeliver's virtual_mailbox_quota_maps and the same limit in
Dovecot (quota = maildir:User quota, quota_rule = *:storage=1M:messages=100, with the
Maildir as its control directory, where the maildir backend keeps maildirsize). Mail
goes SMTP -> Postfix -> vdeliver (pipe and LMTP); then the usage in maildirsize, the
real files, `doveadm quota get` and IMAP GETQUOTAROOT must agree, and Dovecot must only
read the file (same inode, size, mtime, bytes). Dovecot reports STORAGE in KiB, rounded
up. `doveadm quota recalc` (Dovecot's own scan) must find what vdeliver counted, and
vdeliver must append to Dovecot's file rather than recalculate it. With different
limits, each side rewrites line 1 (and so recalculates) when it next looks. A Trash
folder counts for neither (vdeliver skips .Trash; Dovecot has `Trash:ignore`).

Never: leave the quota table changed (restored in a finally).
"""
from __future__ import annotations

import imaplib
import os
import re

import pytest

from harness import PASSWORD, QUOTA_USER, make_message, table_text, write_file

LIMIT_LINE = "1048576S,100C"          # 1M,100C as both write line 1
LIMIT_KIB, LIMIT_MESSAGES = 1024, 100
BODY_SIZES = [2_500, 7_000, 40_000]


def send(mail, size: int, subject: str) -> None:
    body = b"".join(b"quota line %05d " % n + b"q" * 60 + b"\n" for n in range(size // 78 + 1))
    data, _ = make_message(subject, body, to=QUOTA_USER)
    sent = mail.wait_status(mail.send(data, QUOTA_USER), "sent")[0]
    assert sent["agent"] == mail.agent, sent["line"]


def maildirsize(mail) -> tuple[str, tuple[int, int, int]]:
    """(text, (inode, size, mtime_ns)) of QUOTA_USER's maildirsize."""
    path = os.path.join(mail.maildir(QUOTA_USER), "maildirsize")
    with open(path, encoding="ascii") as fh:
        text = fh.read()
    st = os.stat(path)
    return text, (st.st_ino, st.st_size, st.st_mtime_ns)


def file_usage(text: str) -> tuple[int, int]:
    """(bytes, messages): the sum of maildirsize's lines after the first."""
    rows = [line.split() for line in text.splitlines()[1:] if line.strip()]
    return sum(int(r[0]) for r in rows), sum(int(r[1]) for r in rows)


def real_usage(maildir: str) -> tuple[int, int]:
    """(bytes, messages) of the files in new/ and cur/; each name's S= is its size."""
    total = count = 0
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(maildir, sub)):
            size = os.stat(os.path.join(maildir, sub, name)).st_size
            assert re.search(rf",S={size}(?:[:,]|$)", name), f"{sub}/{name}: S= is not the size {size}"
            total, count = total + size, count + 1
    return total, count


def doveadm_quota(mail) -> dict[str, tuple[int, int]]:
    """`doveadm quota get`: {'STORAGE': (KiB, limit KiB), 'MESSAGE': (count, limit)}."""
    out = mail.doveadm("-f", "tab", "quota", "get", "-u", QUOTA_USER)
    rows = [line.split("\t") for line in out.splitlines()[1:] if line.strip()]
    return {row[1]: (int(row[2]), int(row[3])) for row in rows if row[0] == "User quota"}


def imap_quota(mail) -> dict[str, tuple[int, int]]:
    """IMAP GETQUOTAROOT INBOX (RFC 2087), as the user sees it."""
    conn = imaplib.IMAP4("127.0.0.1", mail.imap_port, timeout=15)
    try:
        conn.login(QUOTA_USER, PASSWORD)
        typ, data = conn.getquotaroot("INBOX")
        conn.logout()
    except imaplib.IMAP4.error as err:
        pytest.fail(f"GETQUOTAROOT failed: {err}; Dovecot log: {mail.dovecot_log_text()[-1000:]}")
    assert typ == "OK", data
    quota = next(line for line in data[1] if b"User quota" in line).decode()
    return {name: (int(value), int(limit)) for name, value, limit in
            re.findall(r"(\w+) (\d+) (\d+)", quota)}


def kib(n: int) -> int:
    return -(-n // 1024)  # Dovecot rounds STORAGE up to whole KiB


def dovecot_view(used: tuple[int, int]) -> dict[str, tuple[int, int]]:
    return {"STORAGE": (kib(used[0]), LIMIT_KIB), "MESSAGE": (used[1], LIMIT_MESSAGES)}


def test_dovecot_reads_the_usage_vdeliver_wrote(settled, mode, capsys):
    mail, maildir = settled, settled.maildir(QUOTA_USER)
    for n, size in enumerate(BODY_SIZES):
        send(mail, size, f"quota {mode} {n}")
    text, identity = maildirsize(mail)
    lines = text.splitlines()
    assert lines[0] == LIMIT_LINE, lines
    used, real = file_usage(text), real_usage(maildir)
    assert used == real, f"maildirsize says {used}, the Maildir holds {real}"
    assert all(line.endswith(" 1") for line in lines[-len(BODY_SIZES):]), "one '<size> 1' line per delivery"

    dovecot, imap = doveadm_quota(mail), imap_quota(mail)
    assert dovecot == dovecot_view(used), f"doveadm quota get: {dovecot}, maildirsize: {used}"
    assert imap == dovecot_view(used), f"GETQUOTAROOT: {imap}, maildirsize: {used}"
    assert maildirsize(mail) == (text, identity), "Dovecot rewrote maildirsize (same limits: it should read)"

    # Dovecot's own scan finds what vdeliver counted ...
    mail.doveadm("quota", "recalc", "-u", QUOTA_USER)
    recalculated, recalculated_identity = maildirsize(mail)
    assert recalculated == f"{LIMIT_LINE}\n{real[0]} {real[1]}\n", recalculated
    # ... and vdeliver appends to Dovecot's file: no recalculation (same inode, one line more).
    send(mail, 1_000, f"quota {mode} after recalc")
    after, after_identity = maildirsize(mail)
    assert after_identity[0] == recalculated_identity[0], "vdeliver replaced Dovecot's maildirsize"
    assert after.startswith(recalculated) and re.fullmatch(r"\d+ 1\n", after[len(recalculated):]), after
    assert file_usage(after) == real_usage(maildir)
    assert doveadm_quota(mail) == dovecot_view(file_usage(after))
    with capsys.disabled():
        print(f"\n[quota {mode}] maildirsize {used[0]} bytes, {used[1]} messages ({len(lines) - 1} lines); "
              f"files {real[0]} bytes, {real[1]}; doveadm STORAGE {dovecot['STORAGE']} KiB, MESSAGE "
              f"{dovecot['MESSAGE']}; GETQUOTAROOT {imap}; Dovecot left maildirsize as it was; "
              f"after recalc + 1 delivery: {file_usage(after)}")


def test_different_limits_make_each_side_rewrite_maildirsize(settled, capsys):
    """vdeliver at 2M: it finds line 1 (1M) stale and recalculates; Dovecot, forced to 1M
    (`*` rule), finds 2M stale and recalculates in turn. Both still count the same usage."""
    mail, maildir = settled, settled.maildir(QUOTA_USER)
    send(mail, 2_000, "quota before the change")
    try:
        write_file(mail.quota_table, table_text({**mail.quotas, QUOTA_USER: "2M,100C"}))
        send(mail, 2_000, "quota at 2M")
        by_vdeliver, vdeliver_identity = maildirsize(mail)
        dovecot = doveadm_quota(mail)
        by_dovecot, dovecot_identity = maildirsize(mail)
    finally:
        write_file(mail.quota_table, table_text(mail.quotas))
    real = real_usage(maildir)
    assert by_vdeliver.splitlines()[0] == "2097152S,100C", by_vdeliver
    assert file_usage(by_vdeliver) == real
    assert by_dovecot == f"{LIMIT_LINE}\n{real[0]} {real[1]}\n", by_dovecot
    assert dovecot_identity[0] != vdeliver_identity[0], "Dovecot should have replaced the file"
    assert dovecot == dovecot_view(real)
    with capsys.disabled():
        print(f"\n[quota mismatch] vdeliver (2M) wrote {by_vdeliver!r}; "
              f"Dovecot (1M) then wrote {by_dovecot!r}")


def test_trash_counts_for_neither_recalculation(settled, capsys):
    """vdeliver's recalculation skips .Trash; Dovecot's skips it only with a rule
    (quota_rule2 = Trash:ignore, in the harness): then both recalculations agree."""
    mail, maildir = settled, settled.maildir(QUOTA_USER)
    send(mail, 3_000, "quota, to be copied to Trash")
    if not os.path.isdir(os.path.join(maildir, ".Trash")):
        mail.doveadm("mailbox", "create", "-u", QUOTA_USER, "Trash")
    mail.doveadm("copy", "-u", QUOTA_USER, "Trash", "mailbox", "INBOX", "ALL")
    trash, inbox = real_usage(os.path.join(maildir, ".Trash")), real_usage(maildir)
    assert trash[1] > 0, "Dovecot should have copied the INBOX to Trash"

    mail.doveadm("quota", "recalc", "-u", QUOTA_USER)
    by_dovecot, _ = maildirsize(mail)
    assert by_dovecot == f"{LIMIT_LINE}\n{inbox[0]} {inbox[1]}\n", f"Dovecot counted Trash: {by_dovecot!r}"
    os.unlink(os.path.join(maildir, "maildirsize"))  # vdeliver's next delivery recalculates
    send(mail, 1_000, "quota, after the Trash copy")
    by_vdeliver, _ = maildirsize(mail)
    assert by_vdeliver.startswith(by_dovecot), f"vdeliver {by_vdeliver!r} vs Dovecot {by_dovecot!r}"
    assert file_usage(by_vdeliver) == real_usage(maildir)
    assert doveadm_quota(mail) == dovecot_view(real_usage(maildir))
    with capsys.disabled():
        print(f"\n[quota trash] INBOX {inbox}, Trash {trash}: Dovecot's recalculation {by_dovecot!r}, "
              f"vdeliver's {by_vdeliver!r}")
