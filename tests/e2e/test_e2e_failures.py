"""Failures through the real Postfix: bounces (5.1.1, 5.4.6) reach the sender; admin faults defer.

A bounce must carry vdeliver's status in its DSN; a fault the admin can fix (modes, a
missing table) must leave the mail deferred with vdeliver's reason, send no bounce, and
be delivered exactly once after the fix and `postqueue -f`. Tests that take `mode` run
through pipe(8) and through LMTP (vdeliver's reply: 550 at RCPT, 554/451 after DATA).
The LMTP daemon reads its tables once: a table that goes missing is noticed only at
SIGHUP, which keeps the old tables (a test says so). Never: leave a fault in place
after a test (every fault is undone in a finally).
"""
from __future__ import annotations

import os
import re
import smtplib

import pytest

import harness
from harness import HOSTED, SENDER, UNKNOWN, delivery_status, make_message
from postfix_config import postfix_command


def no_bounce_for(mail, queue_id: str, msgid: str) -> None:
    assert not mail.find_bounce(msgid), f"a bounce was sent for {msgid}"
    assert not mail.log_lines(rf": {queue_id}: sender non-delivery notification"), "Postfix logged a bounce"


def assert_bounced(mail, queue_id: str, msgid: str, rcpt: str, status: str, keyword: str) -> None:
    """Postfix logged the bounce and SENDER got a DSN carrying vdeliver's status and reason."""
    logged = mail.wait_status(queue_id, "bounced")[0]
    assert logged["agent"] == mail.agent and logged["relay"] == mail.relay, logged["line"]
    vdeliver_lines = mail.vdeliver_lines(rcpt)
    assert vdeliver_lines, f"vdeliver logged nothing for {rcpt}"
    vdeliver_reason = logged_reason(vdeliver_lines[-1], status, "bounced")
    assert keyword in vdeliver_reason, vdeliver_reason
    # What the sender reads is the public reason: the log's, without the mailbox it names.
    vdeliver_reason = re.sub(r" \(mailbox [^)]*\)$", "", vdeliver_reason)
    assert logged["dsn"] == status and vdeliver_reason in logged["text"], logged["line"]
    assert "example.com/" not in logged["text"], logged["line"]
    bounce = mail.wait_bounce(msgid)
    assert bounce["To"] == SENDER
    fields = delivery_status(bounce)
    assert len(fields) == 1, fields
    assert fields[0]["action"] == "failed"
    assert fields[0]["status"] == status
    assert fields[0]["final-recipient"].split(";")[1].strip().lower() == rcpt.lower()
    assert vdeliver_reason in " ".join(fields[0]["diagnostic-code"].split()), fields[0]


def logged_reason(vdeliver_line: str, status: str, outcome: str) -> str:
    """The reason in vdeliver's own log line `... dsn=STATUS, status=OUTCOME (REASON)`."""
    match = re.search(r"dsn=(\d\.\d+\.\d+), status=(\w+) \((.*)\)$", vdeliver_line)
    assert match and match.group(1) == status and match.group(2) == outcome, \
        f"vdeliver should log dsn={status}, status={outcome}: {vdeliver_line}"
    return match.group(3)


def test_address_unknown_to_postfix_is_refused_at_rcpt(settled):
    """Postfix's own virtual_mailbox_maps keeps strangers out before vdeliver runs."""
    data, _ = make_message("stranger", to=f"nobody@{HOSTED}")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        settled.send(data, f"nobody@{HOSTED}")
    code, reply = next(iter(refused.value.recipients.values()))
    assert code == 550 and b"5.1.1" in reply, (code, reply)


def test_unknown_recipient_bounces_5_1_1(settled, mode):
    """ghost@ is in Postfix's table (smtpd accepts it) but not in vdeliver's."""
    mail = settled
    data, msgid = make_message("unknown user", to=UNKNOWN)
    queue_id = mail.send(data, UNKNOWN)
    assert_bounced(mail, queue_id, msgid, UNKNOWN, "5.1.1", "unknown")
    assert not os.path.exists(os.path.join(mail.mail_base, HOSTED, "ghost")), "nothing may be created"


@pytest.mark.parametrize("seen", ["bob@example.com", "<BOB@Example.COM>"], ids=["same", "angle brackets, case"])
def test_delivered_to_loop_bounces_5_4_6(settled, mode, seen):
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("loop", to=rcpt, headers=f"Delivered-To: {seen}\n".encode())
    queue_id = mail.send(data, rcpt)
    assert_bounced(mail, queue_id, msgid, rcpt, "5.4.6", "loop")
    assert not mail.find(mail.maildir(rcpt), msgid)
    assert os.listdir(os.path.join(mail.maildir(rcpt), "tmp")) == [], "the loop is found mid-copy: tmp/ must be clean"


@pytest.mark.parametrize("headers, body", [
    (b"Delivered-To: alice@example.com\n", b"Hello.\n"),
    (b"", b"Delivered-To: bob@example.com\n"),
], ids=["other address in header", "recipient only in the body"])
def test_delivered_to_that_is_not_a_loop_is_delivered(settled, mode, headers, body):
    mail, rcpt = settled, f"bob@{HOSTED}"
    data, msgid = make_message("no loop", body, to=rcpt, headers=headers)
    queue_id = mail.send(data, rcpt)
    mail.wait_status(queue_id, "sent")
    assert len(mail.find(mail.maildir(rcpt), msgid)) == 1


# --------------------------------------------------------------------------- admin faults

DORA = f"dora@{HOSTED}"


def chmod_fault(sub: str, mode: int):
    def make(mail):
        path = os.path.join(mail.maildir(DORA), sub)
        old = os.stat(path).st_mode & 0o7777
        os.chmod(path, mode)
        return lambda: os.chmod(path, old)
    return make


def missing_table(mail):
    os.rename(mail.table, mail.table + ".away")
    return lambda: os.rename(mail.table + ".away", mail.table)


UNAVAILABLE = "mailbox temporarily unavailable (mailbox example.com/dora)"
MAILBOX_FAULTS = [
    pytest.param(chmod_fault("", 0o000), "Permission denied", UNAVAILABLE, id="Maildir mode 000"),
    pytest.param(chmod_fault("tmp", 0o555), "Permission denied", UNAVAILABLE, id="tmp/ read-only"),
    pytest.param(chmod_fault("new", 0o555), "Permission denied", UNAVAILABLE, id="new/ read-only"),
]


@pytest.fixture
def dora_maildir(settled):
    """dora's Maildir, made by a first delivery, so that a fault can be put into it."""
    mail = settled
    if not os.path.isdir(os.path.join(mail.maildir(DORA), "new")):
        data, msgid = make_message("make the Maildir", to=DORA)
        mail.wait_status(mail.send(data, DORA), "sent")
    return mail.maildir(DORA)


@pytest.mark.parametrize("fault, reason_word, public", MAILBOX_FAULTS)
def test_mailbox_fault_defers_then_flush_delivers_once(settled, mode, dora_maildir, fault, reason_word,
                                                       public):
    fault_defers_then_flush_delivers_once(settled, dora_maildir, fault, reason_word, public)


def test_missing_table_defers_then_flush_delivers_once(settled, dora_maildir):
    """Pipe mode: every vdeliver run opens the table."""
    fault_defers_then_flush_delivers_once(settled, dora_maildir, missing_table, "mailboxes",
                                          "temporary lookup failure")


def fault_defers_then_flush_delivers_once(mail, dora_maildir, fault, reason_word, public):
    """The admin's fault defers; the queue (mailq, delay warnings) shows the public reason,
    vdeliver's own log line the private detail (reason_word: an errno text, a path)."""
    data, msgid = make_message("deferred until fixed", to=DORA)
    undo = fault(mail)
    try:
        queue_id = mail.send(data, DORA)
        logged = mail.wait_status(queue_id, "deferred")[0]
        vdeliver_line = (mail.vdeliver_lines(DORA) or ["(vdeliver logged nothing)"])[-1]
        queued = [m for m in mail.queue() if m["queue_id"] == queue_id]
    finally:
        undo()
    assert logged["agent"] == mail.agent and logged["relay"] == mail.relay, logged["line"]
    assert re.fullmatch(r"4\.\d{1,3}\.\d{1,3}", logged["dsn"]), logged["line"]
    vdeliver_reason = logged_reason(vdeliver_line, logged["dsn"], "deferred")
    assert reason_word in vdeliver_reason, vdeliver_reason
    assert public in logged["text"] and reason_word not in logged["text"], logged["line"]
    assert len(queued) == 1 and queued[0]["queue_name"] == "deferred", queued
    delay_reason = queued[0]["recipients"][0]["delay_reason"]
    assert public in delay_reason and reason_word not in delay_reason, queued
    assert os.listdir(os.path.join(dora_maildir, "tmp")) == [], "a failed delivery must leave tmp/ empty"
    assert not mail.find(dora_maildir, msgid), "a failed delivery must leave nothing in new/"
    no_bounce_for(mail, queue_id, msgid)

    mail.flush()
    mail.wait_status(queue_id, "sent", timeout=60)
    mail.wait_queue_empty(30)
    assert len(mail.find(dora_maildir, msgid)) == 1, "delivered exactly once after the fix"
    assert len([d for d in mail.deliveries(queue_id) if d["status"] == "sent"]) == 1
    no_bounce_for(mail, queue_id, msgid)


@pytest.mark.mode("lmtp")
def test_lmtp_reload_without_its_table_keeps_the_old_tables(settled, dora_maildir):
    """The daemon read the table at start; SIGHUP with the file gone fails and keeps the old
    tables (vdeliver(8): "a broken new config is logged and the old one kept"), so mail is
    still delivered, not deferred; with the file back, SIGHUP reloads."""
    mail = settled
    undo = missing_table(mail)
    try:
        mail.reload_lmtpd()
        failed = harness.wait_until(
            lambda: mail.log_lines(r"vdeliver/lmtp\[\d+\]: reload failed, keeping the old configuration: .*mailbox"),
            20, "'reload failed'")
        data, msgid = make_message("table gone, old tables kept", to=DORA)
        queue_id = mail.send(data, DORA)
        mail.wait_status(queue_id, "sent")
    finally:
        undo()
    assert len(mail.find(dora_maildir, msgid)) == 1
    assert f"[{mail.lmtpd_pid()}]" in failed[-1], failed[-1]
    reloaded = r"LMTP daemon reloaded its configuration and tables"
    before = len(mail.log_lines(reloaded))
    mail.reload_lmtpd()
    harness.wait_until(lambda: len(mail.log_lines(reloaded)) > before, 20, "'reloaded', the table back")


# --------------------------------------------------------------------------- several recipients

def test_two_good_one_unknown_in_one_transaction(settled, mode):
    """One SMTP transaction to bob@, ghost@ (Postfix knows it, vdeliver does not) and alice@:
    two deliveries and one 5.1.1 bounce. Over LMTP that is one LMTP transaction (no
    recipient limit of 1): ghost@ is refused at RCPT, the others get 250 after DATA."""
    mail = settled
    good = [f"bob@{HOSTED}", f"alice@{HOSTED}"]
    data, msgid = make_message("two good, one unknown", to=", ".join(good + [UNKNOWN]))
    queue_id = mail.send(data, [good[0], UNKNOWN, good[1]])
    sent = mail.wait_status(queue_id, "sent", count=2)
    assert_bounced(mail, queue_id, msgid, UNKNOWN, "5.1.1", "unknown")
    mail.wait_queue_empty(30)
    for rcpt in good:
        found = mail.find(mail.maildir(rcpt), msgid)
        assert len(found) == 1, (rcpt, sorted(found))
        assert harness.header_values(next(iter(found.values())), "Delivered-To") == [rcpt.encode()]
    attempts = mail.deliveries(queue_id)
    assert sorted(d["to"] for d in attempts) == sorted(good + [UNKNOWN]), [d["line"] for d in attempts]
    assert not os.path.exists(os.path.join(mail.mail_base, HOSTED, "ghost"))
    if mode == "lmtp":
        limit = harness.run(postfix_command(harness.POSTCONF, mail.etc, "-h",
                                            "lmtp_destination_recipient_limit"))
        assert limit.stdout.strip() != "1", "LMTP needs no recipient limit of 1"
        lines = [d["line"] for d in attempts]
        assert len({d["pid"] for d in attempts}) == 1, f"one lmtp(8) delivery: {lines}"
        bounced = next(d for d in attempts if d["status"] == "bounced")
        assert "in reply to RCPT TO command" in bounced["text"], bounced["line"]
    assert all(d["dsn"] == "2.0.0" for d in sent), [d["line"] for d in sent]
