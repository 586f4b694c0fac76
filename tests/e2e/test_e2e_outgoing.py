"""Sieve's outgoing mail end to end: SMTP -> Postfix -> vdeliver (pipe and LMTP) -> the
vacation reply or redirect submitted through that same Postfix's own sendmail
(`sendmail_path = /usr/sbin/sendmail -C <its config>`) -> delivered by Postfix to the
original sender's mailbox (Postfix's virtual(8) for SENDER, vdeliver for hosted users).

Vacation: one reply per sender and period, none for mailing-list or auto-submitted mail,
and two vacation users writing to each other get exactly one reply each (no loop).
Redirect: the message arrives at its target with the original envelope sender, and is
not stored at the redirecting mailbox.
Never: touch other users' Maildirs; leave sendmail_path in vdeliver.cf after the test.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil

import pytest

import harness
from harness import (REDIRECT_TARGET, REDIRECT_USER, SENDER, VACATION_USERS,
                     header_values, make_message)

VACATION = 'require ["vacation"];\nvacation :days 2 :subject "Away" "I am away until Monday.";\n'
VERA, WALT = VACATION_USERS


def own(path: str) -> None:
    entry = pwd.getpwnam(harness.VMAIL)
    os.lchown(path, entry.pw_uid, entry.pw_gid)


def install_script(h, user: str, script: str) -> None:
    """~/.dovecot.sieve of user's Maildir (its home), a fresh response database."""
    maildir = h.maildir(user).rstrip("/")
    for directory in (os.path.dirname(maildir), maildir):
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o700)
            own(directory)
    for name in (".vdeliver.db", ".vdeliver.db-journal"):
        if os.path.exists(f"{maildir}/{name}"):
            os.unlink(f"{maildir}/{name}")
    path = f"{maildir}/.dovecot.sieve"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(script)
    os.chmod(path, 0o600)
    own(path)


@pytest.fixture
def outgoing(settled):
    """vdeliver.cf with sendmail_path = this Postfix instance's sendmail; restored after."""
    with open(harness.VDELIVER_CF, encoding="utf-8") as fh:
        saved = fh.read()
    with open(harness.VDELIVER_CF, "a", encoding="utf-8") as fh:
        fh.write(f"sendmail_path = /usr/sbin/sendmail -C {settled.etc}\n")
    settled.reload_lmtpd()
    try:
        yield settled
    finally:
        with open(harness.VDELIVER_CF, "w", encoding="utf-8") as fh:
            fh.write(saved)
        settled.reload_lmtpd()
        for user in (*VACATION_USERS, REDIRECT_USER, REDIRECT_TARGET):
            maildir = settled.maildir(user).rstrip("/")
            if os.path.isdir(maildir):
                shutil.rmtree(maildir)


def replies_to(messages, msgid: str) -> list[bytes]:
    return [data for data in messages if msgid.encode() in header_values(data, "In-Reply-To")]


def deliver_and_settle(h, data: bytes, rcpt: str, sender: str = SENDER) -> None:
    queue_id = h.send(data, rcpt, sender)
    h.wait_status(queue_id, "sent")
    assert not h.settle(), "mail deferred"


def test_vacation_reply_arrives_once(outgoing, mode):
    h = outgoing
    install_script(h, VERA, VACATION)
    first, first_id = make_message("question", to=VERA)
    deliver_and_settle(h, first, VERA)
    h.wait_delivered(h.maildir(VERA), first_id)
    reply = harness.wait_until(lambda: replies_to(h.bounces(), first_id), 30,
                               f"the vacation reply to {first_id}")
    (data,) = reply
    assert header_values(data, "Return-Path") == [b"<>"]
    assert header_values(data, "Subject") == [b"Away"]
    assert header_values(data, "Auto-Submitted") == [b"auto-replied (vacation)"]
    assert header_values(data, "Precedence") == [b"bulk"]
    assert header_values(data, "To") == [f"<{SENDER}>".encode()]
    assert header_values(data, "References") == [first_id.encode()]
    assert data.endswith(b"\n\nI am away until Monday.\n")
    second, second_id = make_message("follow-up", to=VERA)
    deliver_and_settle(h, second, VERA)
    h.wait_delivered(h.maildir(VERA), second_id)
    assert replies_to(h.bounces(), second_id) == []
    assert len(replies_to(h.bounces(), first_id)) == 1
    lines = h.vdeliver_lines(VERA)
    assert any("answered within the period already" in line for line in lines[-1:]), lines[-1:]


@pytest.mark.parametrize("headers, why", [
    pytest.param(b"List-Id: <dev.lists.example>\n", "mailing list", id="List-Id"),
    pytest.param(b"Auto-Submitted: auto-generated\n", "auto-submitted", id="auto-submitted"),
    pytest.param(b"Precedence: bulk\n", "Precedence", id="Precedence bulk"),
])
def test_no_vacation_reply_to_lists_and_robots(outgoing, headers, why):
    h = outgoing
    install_script(h, VERA, VACATION)
    data, msgid = make_message("newsletter", to=VERA, headers=headers)
    deliver_and_settle(h, data, VERA)
    h.wait_delivered(h.maildir(VERA), msgid)
    assert replies_to(h.bounces(), msgid) == []
    assert why in h.vdeliver_lines(VERA)[-1]


def test_redirect_arrives_with_the_original_envelope_sender(outgoing, mode):
    h = outgoing
    install_script(h, REDIRECT_USER, f'redirect "{REDIRECT_TARGET}";\n')
    data, msgid = make_message("forward me", to=REDIRECT_USER)
    deliver_and_settle(h, data, REDIRECT_USER)
    _, got = h.wait_delivered(h.maildir(REDIRECT_TARGET), msgid)
    assert header_values(got, "Return-Path") == [f"<{SENDER}>".encode()]
    assert header_values(got, "X-Sieve-Redirected-From") == [REDIRECT_USER.encode()]
    assert header_values(got, "Delivered-To") == [REDIRECT_TARGET.encode(), REDIRECT_USER.encode()]
    assert got.endswith(data.split(b"\n\n", 1)[1])
    assert h.messages(h.maildir(REDIRECT_USER)) == {}
    line = h.vdeliver_lines(REDIRECT_USER)[-1]
    assert f"redirected to <{REDIRECT_TARGET}> (from <{SENDER}>)" in line, line


@pytest.mark.parametrize("from_recipient", [False, True], ids=["reply from <>", "reply from the user"])
def test_two_vacation_users_writing_to_each_other_do_not_loop(outgoing, from_recipient):
    h = outgoing
    if from_recipient:
        with open(harness.VDELIVER_CF, "a", encoding="utf-8") as fh:
            fh.write("sieve_vacation_send_from_recipient = yes\n")
        h.reload_lmtpd()
    for user in VACATION_USERS:
        install_script(h, user, VACATION)
    mark = len(h.log_text())
    to_walt, walt_id = make_message("from vera", sender=VERA, to=WALT)
    to_vera, vera_id = make_message("from walt", sender=WALT, to=VERA)
    deliver_and_settle(h, to_walt, WALT, sender=VERA)
    deliver_and_settle(h, to_vera, VERA, sender=WALT)
    harness.wait_until(lambda: replies_to(h.messages(h.maildir(VERA)).values(), walt_id), 30,
                       "walt's reply in vera's Maildir")
    assert not h.settle(), "mail deferred"
    vera_box = list(h.messages(h.maildir(VERA)).values())
    walt_box = list(h.messages(h.maildir(WALT)).values())
    # Each has the other's message and exactly one reply to their own; nothing else.
    assert len(vera_box) == 2 and len(walt_box) == 2, (len(vera_box), len(walt_box))
    assert len(replies_to(vera_box, walt_id)) == 1
    assert len(replies_to(walt_box, vera_id)) == 1
    reply = replies_to(vera_box, walt_id)[0]
    wanted = f"<{WALT}>" if from_recipient else "<>"
    assert header_values(reply, "Return-Path") == [wanted.encode()]
    log = h.log_text()[mark:]
    refused = re.findall(r"discarded vacation response (?:to <>|to an auto-submitted)", log)
    assert len(refused) == 2, log
    assert len(re.findall(r"sent vacation response", log)) == 2, log


def test_vacation_reply_through_submission_host(outgoing, mode):
    """submission_host = the instance's smtpd: the reply goes over SMTP, from <>."""
    h = outgoing
    with open(harness.VDELIVER_CF, "a", encoding="utf-8") as fh:
        fh.write(f"submission_host = 127.0.0.1:{h.smtp_port}\n")
    h.reload_lmtpd()
    install_script(h, VERA, VACATION)
    data, msgid = make_message("over smtp", to=VERA)
    deliver_and_settle(h, data, VERA)
    (reply,) = harness.wait_until(lambda: replies_to(h.bounces(), msgid), 30,
                                  f"the vacation reply to {msgid}")
    assert header_values(reply, "Return-Path") == [b"<>"]
    assert header_values(reply, "Auto-Submitted") == [b"auto-replied (vacation)"]
    received = b" ".join(header_values(reply, "Received"))
    assert b"with ESMTP" in received and b"from userid" not in received, received


def test_notify_success_gets_one_delivered_report(outgoing, mode):
    """NOTIFY=SUCCESS: one "delivered" report (RFC 3464) reaches the sender. In pipe mode
    Postfix sends it (pipe(8) is final delivery); over LMTP vdeliver announces DSN, so
    Postfix leaves the report to it, and it comes through sendmail_path from <>."""
    h, rcpt = outgoing, f"bob@{harness.HOSTED}"
    data, msgid = make_message("report wanted", to=rcpt)
    queue_id = h.send(data, rcpt, mail_options=("ENVID=e2e+2Bdsn", "RET=HDRS"),
                      rcpt_options=("NOTIFY=SUCCESS",))
    h.wait_status(queue_id, "sent")
    h.wait_delivered(h.maildir(rcpt), msgid)
    reports = harness.wait_until(lambda: h.find_bounce(msgid), 30, f"the success report for {msgid}")
    (report,) = reports
    assert b"\nOriginal-Envelope-Id: e2e+dsn\n" in report, report
    assert header_values(report, "Return-Path") == [b"<>"]
    assert re.search(rb"\nAction: delivered\n", report), report
    assert re.search(rb"\nStatus: 2\.0\.0\n", report), report
    assert re.search(rb"\nFinal-Recipient: rfc822; ?bob@", report), report
    assert msgid.encode() in report and b"report wanted" in report
    assert not h.settle(), "mail deferred"
    if mode == "lmtp":
        assert "success DSN sent to " + SENDER in h.vdeliver_lines(rcpt)[-1]
    assert len(h.find_bounce(msgid)) == 1
