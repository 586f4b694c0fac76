"""Sieve end to end: SMTP -> Postfix -> vdeliver (pipe and LMTP) -> Maildir++ -> Dovecot IMAP.

SIEVE_USER's Maildir (his home: no virtual_home_maps) holds the layout
ManageSieve leaves behind when Roundcube saves and activates a filter set:
~/sieve/roundcube.sieve and the relative symlink ~/.dovecot.sieve ->
sieve/roundcube.sieve. What vdeliver files must be what Dovecot then shows:
the folders in LIST (Maildir++ names, mUTF-7), the message in SELECT/SEARCH,
its \\Seen / \\Flagged and keyword in FETCH FLAGS (cur/ info letters and
dovecot-keywords read by Dovecot itself). A reject bounces 5.7.1 with the
user's reason, in both modes.
MBOX_SIEVE_USER's mailbox is an mbox file, her home (virtual_home_maps, set
in vdeliver.cf only while her test runs) holds the same layout: the folder
vdeliver files into below ~/mail is what Dovecot's mbox layout LISTs, and the
flags written in Status:/X-Status: are what it FETCHes.
Never: touch another user's Maildir; rely on the order of runs (each message
is found by its Message-ID; the LMTP run adds to what the pipe run filed).
"""
from __future__ import annotations

import imaplib
import os
import re
import shutil

import pytest

import harness
from harness import MBOX_SIEVE_HOME, MBOX_SIEVE_USER, SIEVE_USER, delivery_status, make_message

ROUNDCUBE = """require ["fileinto","mailbox","imap4flags","reject"];
# rule:[Reports]
if header :contains "subject" "report"
{
\tfileinto :create :flags ["\\\\Seen","\\\\Flagged","$Report"] "Work.Reports";
\tstop;
}
# rule:[Drafts]
if header :contains "subject" "entwurf"
{
\tfileinto :create "Entwürfe";
\tstop;
}
# rule:[Inbox child]
if header :contains "subject" "child of inbox"
{
\tfileinto :create "INBOX.Sub";
\tstop;
}
# rule:[Refuse]
if header :contains "subject" "go away"
{
\treject "Sam does not take this.";
\tstop;
}
"""


def own(path: str) -> None:
    shutil.chown(path, harness.VMAIL, harness.VMAIL)


@pytest.fixture
def managesieve(settled):
    """SIEVE_USER's Maildir with Roundcube's script activated as ManageSieve does it."""
    maildir = settled.maildir(SIEVE_USER).rstrip("/")
    for directory in (os.path.dirname(maildir), maildir, f"{maildir}/sieve"):
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o700)
            own(directory)
    script = f"{maildir}/sieve/roundcube.sieve"
    with open(script, "w", encoding="utf-8") as fh:
        fh.write(ROUNDCUBE)
    os.chmod(script, 0o600)
    own(script)
    link = f"{maildir}/.dovecot.sieve"
    if not os.path.lexists(link):
        os.symlink("sieve/roundcube.sieve", link)
        os.lchown(link, *owner_ids())
    return maildir


def owner_ids() -> tuple[int, int]:
    import pwd
    entry = pwd.getpwnam(harness.VMAIL)
    return entry.pw_uid, entry.pw_gid


def listed(conn) -> dict[str, str]:
    """{mailbox name as Dovecot LISTs it: its flags}."""
    typ, data = conn.list('""', "*")
    assert typ == "OK", data
    out = {}
    for item in data:
        match = re.match(rb'\((?P<flags>[^)]*)\) "(?P<sep>[^"]*)" (?P<name>.+)$', item)
        assert match, item
        out[match.group("name").strip(b'"').decode()] = match.group("flags").decode()
    return out


def fetch_flags(conn, mailbox: str, msgid: str) -> set[str]:
    """SELECT mailbox, SEARCH the message by Message-ID, FETCH its FLAGS."""
    typ, data = conn.select(f'"{mailbox}"')
    assert typ == "OK", (mailbox, data)
    typ, data = conn.search(None, "HEADER", "Message-ID", msgid)
    assert typ == "OK", data
    numbers = data[0].split()
    assert len(numbers) == 1, f"{msgid} in {mailbox}: {numbers}"
    typ, data = conn.fetch(numbers[0].decode(), "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    flags = re.search(rb"FLAGS \(([^)]*)\)", data[0][0])
    assert flags, data
    return set(flags.group(1).decode().split())


def test_managesieve_layout_files_into_folders_dovecot_lists_and_reads(settled, mode, managesieve):
    mail = settled
    report, report_id = make_message(f"monthly report ({mode})", to=SIEVE_USER)
    draft, draft_id = make_message(f"Entwurf ({mode})", to=SIEVE_USER)
    plain, plain_id = make_message(f"hello ({mode})", to=SIEVE_USER)
    child, child_id = make_message(f"child of inbox ({mode})", to=SIEVE_USER)
    for data in (report, draft, plain, child):
        sent = mail.wait_status(mail.send(data, SIEVE_USER), "sent")[0]
        assert sent["agent"] == mail.agent, sent["line"]

    # On disk: Maildir++ folders as Dovecot makes them; the flagged copy in cur/.
    (name,) = mail.find(f"{managesieve}/.Work.Reports", report_id)
    assert name.startswith("cur/") and re.search(r":2,FSa$", name), name
    assert open(f"{managesieve}/.Work.Reports/dovecot-keywords").read() == "0 $Report\n"
    assert os.path.exists(f"{managesieve}/.Work.Reports/maildirfolder")
    assert len(mail.find(f"{managesieve}/.Entw&APw-rfe", draft_id)) == 1
    assert len(mail.find(managesieve, plain_id)) == 1
    # INBOX.Sub where Dovecot keeps the inbox's children (it was .Sub: another folder)
    assert len(mail.find(f"{managesieve}/.INBOX.Sub", child_id)) == 1
    line = [text for text in mail.vdeliver_lines(SIEVE_USER) if ".Work.Reports/cur/" in text][-1]
    assert "sieve: ran example.com/sam/sieve/roundcube.sieve" in line, line

    try:
        conn = mail.imap(SIEVE_USER)
        try:
            boxes = listed(conn)
            assert "Work.Reports" in boxes and "Entw&APw-rfe" in boxes and "INBOX" in boxes, boxes
            # ~/.dovecot.sieve (a symlink), ~/.dovecot.sieve.log and ~/sieve/ are no folders
            # (with maildir_stat_dirs = yes: harness.py).
            assert not any("sieve" in box.lower() or box == "dovecot" for box in boxes), boxes
            assert fetch_flags(conn, "Work.Reports", report_id) >= {"\\Seen", "\\Flagged", "$Report"}
            assert not {"\\Seen", "\\Flagged"} & fetch_flags(conn, "Entw&APw-rfe", draft_id)
            assert "$Report" not in fetch_flags(conn, "INBOX", plain_id)
            assert "INBOX.Sub" in boxes and "Sub" not in boxes, boxes
            assert fetch_flags(conn, "INBOX.Sub", child_id) is not None  # SELECT finds it there
        finally:
            conn.logout()
    except imaplib.IMAP4.error as err:
        pytest.fail(f"IMAP failed: {err}; Dovecot says: {mail.dovecot_log_text()[-2000:]}")
    complaints = [line for line in mail.dovecot_log_text().splitlines()
                  if re.search(r"error|panic|fatal|corrupt", line, re.IGNORECASE)]
    assert not complaints, complaints


def test_a_sieve_reject_bounces_5_7_1_with_the_users_reason(settled, mode, managesieve):
    mail = settled
    data, msgid = make_message(f"go away ({mode})", to=SIEVE_USER)
    queue_id = mail.send(data, SIEVE_USER)
    bounced = mail.wait_status(queue_id, "bounced")[0]
    assert bounced["dsn"] == "5.7.1" and bounced["agent"] == mail.agent, bounced["line"]
    assert "Sam does not take this." in bounced["line"], bounced["line"]
    assert not mail.find(managesieve, msgid)
    bounce = mail.wait_bounce(msgid)
    (status,) = [entry for entry in delivery_status(bounce)
                 if entry.get("final-recipient", "").endswith(SIEVE_USER)]
    assert status["status"] == "5.7.1" and status["action"] == "failed", status
    if mode == "lmtp":
        assert "550 5.7.1 Sam does not take this." in status.get("diagnostic-code", ""), status


MBOX_SCRIPT = """require ["fileinto","mailbox","imap4flags"];
if header :contains "subject" "report"
{
\tfileinto :create :flags ["\\\\Seen","\\\\Flagged"] "Work/Reports";
\tstop;
}
"""


@pytest.fixture
def mbox_home(settled):
    """MBOX_SIEVE_USER's home (virtual_home_maps, in vdeliver.cf while the test runs)
    with Roundcube's kind of script, as ManageSieve leaves it."""
    mail = settled
    home = os.path.join(mail.mail_base, MBOX_SIEVE_HOME)
    for directory in (os.path.dirname(home), home, f"{home}/sieve",
                      os.path.dirname(os.path.join(mail.mail_base, mail.vdeliver_table[MBOX_SIEVE_USER]))):
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o700)
            own(directory)
    script = f"{home}/sieve/roundcube.sieve"
    with open(script, "w", encoding="utf-8") as fh:
        fh.write(MBOX_SCRIPT)
    own(script)
    if not os.path.lexists(f"{home}/.dovecot.sieve"):
        os.symlink("sieve/roundcube.sieve", f"{home}/.dovecot.sieve")
        os.lchown(f"{home}/.dovecot.sieve", *owner_ids())
    table = f"{mail.root}/vdeliver/homes"
    harness.write_file(table, f"{MBOX_SIEVE_USER} {MBOX_SIEVE_HOME}/\n", 0o644)
    saved = mail.extra_vdeliver_cf
    mail.extra_vdeliver_cf = saved + f"virtual_home_maps = texthash:{table}\n"
    harness.write_vdeliver_cf(mail)
    try:
        yield home
    finally:
        mail.extra_vdeliver_cf = saved
        harness.write_vdeliver_cf(mail)


def test_sieve_files_an_mbox_recipients_mail_into_folders_dovecot_reads(settled, mbox_home):
    """Dovecot's mbox layout (mail_location = mbox:~/mail:INBOX=...): the folder vdeliver
    made below ~/mail is what Dovecot LISTs with the separator /, the flags vdeliver wrote
    in Status:/X-Status: are what Dovecot FETCHes."""
    mail = settled
    report, report_id = make_message("monthly report (mbox)", to=MBOX_SIEVE_USER)
    plain, plain_id = make_message("hello (mbox)", to=MBOX_SIEVE_USER)
    for data in (report, plain):
        sent = mail.wait_status(mail.send(data, MBOX_SIEVE_USER), "sent")[0]
        assert sent["agent"] == mail.agent, sent["line"]
    folder = open(f"{mbox_home}/mail/Work/Reports", "rb").read()
    assert report_id.encode() in folder and b"\nStatus: R\n" in b"\n" + folder
    assert b"\nX-Status: F\n" in folder, folder
    conn = mail.imap(MBOX_SIEVE_USER)
    try:
        boxes = listed(conn)
        assert "Work/Reports" in boxes and "INBOX" in boxes, boxes
        assert fetch_flags(conn, "Work/Reports", report_id) >= {"\\Seen", "\\Flagged"}
        assert "\\Seen" not in fetch_flags(conn, "INBOX", plain_id)
    finally:
        conn.logout()
