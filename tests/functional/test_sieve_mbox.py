"""Sieve for an mbox recipient through the installed pipe command (mboxroute.py).

The home from virtual_home_maps, folders as mbox files below ~/mail (Dovecot's
mbox layout, separator `/`), IMAP flags in Status:/X-Status:/X-Keywords:,
discard, reject, a fileinto that cannot store kept in INBOX, and an
all-or-nothing append: read back with mailbox.mbox.
"""
import mailbox
import os

import pytest

from functional.sievelayout import activate, write

MBOX = "example.com/mbox"
HOME = "homes/mbox"
MESSAGE = b"From: sender@example.net\nTo: mbox@example.com\nSubject: hello\n\nFrom here on\nbody line\n"
FILEINTO = 'require ["fileinto", "mailbox", "imap4flags", "reject", "editheader", "copy", "body"];\n'


@pytest.fixture
def home(mail):
    homes = os.path.join(mail.top, "homes")
    mail.write_table(f"mbox@example.com {HOME}/\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\nsieve_extensions = +editheader\n")
    return HOME


def deliver(mail, stdin=MESSAGE):
    return mail.run("-i", "4MBOX1", "-f", "sender@example.net", "--", "mbox@example.com", stdin=stdin)


def delivered(result):
    assert (result.code, result.stdout) == (0, b""), result
    (line,) = result.log.decode("utf-8", "replace").splitlines()
    assert "dsn=2.0.0, status=sent" in line, line
    return line


def messages(mail, relative):
    path = mail.path(relative)
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [box.get_bytes(key) for key in box.keys()]
    finally:
        box.close()


def test_fileinto_a_folder_below_mail_and_keep(mail, home):
    activate(mail, FILEINTO + 'fileinto :create "Work/Urgent";\nkeep;\n', box=home)
    line = delivered(deliver(mail))
    (inbox,) = messages(mail, MBOX)
    (folder,) = messages(mail, f"{home}/mail/Work/Urgent")
    assert inbox == folder
    assert inbox.count(b"Delivered-To: mbox@example.com\n") == 1
    assert f"{MBOX}, {home}/mail/Work/Urgent" in line or f"{home}/mail/Work/Urgent, {MBOX}" in line, line
    raw = open(mail.path(MBOX), "rb").read()
    assert raw.startswith(b"From sender@example.net ") and b"\n>From here on\n" in raw, raw
    st = os.stat(mail.path(f"{home}/mail/Work"))
    assert st.st_mode & 0o777 == 0o700


@pytest.mark.parametrize("script, inbox, folder", [
    pytest.param('fileinto "Missing";', 1, 0, id="a missing folder without :create"),
    pytest.param('fileinto "a//b";', 1, 0, id="an empty level"),
    pytest.param('fileinto ".hidden";', 1, 0, id="a leading dot"),
    pytest.param('fileinto :create "INBOX/child";', 1, 0, id="INBOX has no children"),
])
def test_a_fileinto_that_cannot_store_keeps_in_inbox(mail, home, script, inbox, folder):
    activate(mail, FILEINTO + script + "\n", box=home)
    line = delivered(deliver(mail))
    assert len(messages(mail, MBOX)) == inbox
    assert "kept in INBOX" in line, line
    assert not os.path.exists(mail.path(f"{home}/mail")) or not os.listdir(mail.path(f"{home}/mail"))


def test_a_folder_that_is_a_symlink_is_kept_in_inbox(mail, home):
    os.makedirs(mail.path(f"{home}/mail"), exist_ok=True)
    write(mail, "elsewhere", b"")
    os.symlink(mail.path("elsewhere"), mail.path(f"{home}/mail/Evil"))
    activate(mail, FILEINTO + 'fileinto "Evil";\n', box=home)
    line = delivered(deliver(mail))
    assert len(messages(mail, MBOX)) == 1 and os.path.getsize(mail.path("elsewhere")) == 0
    assert "kept in INBOX" in line, line


def test_without_a_home_a_folder_is_kept_in_inbox_and_admin_scripts_run(mail):
    before = os.path.join(mail.top, "before.sieve")
    with open(before, "w") as fh:
        fh.write('require ["fileinto", "mailbox"];\nfileinto :create "Junk";\n')
    os.chmod(before, 0o644)
    mail.write_config(f"sieve_before = {before}\n")
    line = delivered(deliver(mail))
    assert len(messages(mail, MBOX)) == 1
    assert "cannot store into Junk (no home): kept in INBOX" in line, line


@pytest.mark.parametrize("script, status", [
    pytest.param('keep :flags "\\\\Seen";', [b"Status: R"], id="seen"),
    pytest.param('keep :flags ["\\\\Flagged", "\\\\Answered", "\\\\Seen"];', [b"Status: R", b"X-Status: AF"],
                 id="answered and flagged"),
    pytest.param('keep :flags ["\\\\Draft", "\\\\Deleted", "$Label1"];', [b"X-Status: TD", b"X-Keywords: $Label1"],
                 id="draft, deleted and a keyword"),
])
def test_flags_are_written_as_dovecot_writes_them(mail, home, script, status):
    activate(mail, FILEINTO + script + "\n", box=home)
    delivered(deliver(mail, stdin=b"Status: RO\nX-Status: D\n" + MESSAGE))
    (data,) = messages(mail, MBOX)
    head = data.split(b"\n\n", 1)[0].split(b"\n")
    assert [line for line in head if line.split(b":")[0] in (b"Status", b"X-Status", b"X-Keywords")] \
        == status, head


def test_discard_and_reject(mail, home):
    activate(mail, FILEINTO + "discard;\n", box=home)
    line = delivered(deliver(mail))
    assert messages(mail, MBOX) == [] and "nowhere (discarded)" in line, line
    activate(mail, FILEINTO + 'reject "not here";\n', box=home)
    result = deliver(mail)
    assert (result.code, result.stdout) == (69, b"5.7.1 not here"), result
    assert messages(mail, MBOX) == []


def test_editheader_edits_the_copies_after_it(mail, home):
    activate(mail, FILEINTO + 'fileinto :create :copy "Before";\naddheader "X-Tag" "yes";\n', box=home)
    delivered(deliver(mail))
    (inbox,) = messages(mail, MBOX)
    (before,) = messages(mail, f"{home}/mail/Before")
    assert inbox.startswith(b"X-Tag: yes\n") and b"X-Tag" not in before


def test_a_copy_that_cannot_be_written_leaves_no_other_copy(mail, home):
    """The folder mbox exists but is not writable by the delivery user (owned by
    root): every copy is taken back and the delivery defers."""
    activate(mail, FILEINTO + 'fileinto "Ro";\nkeep;\n', box=home)
    write(mail, MBOX, b"From old@example.net Mon Jan  1 00:00:00 2026\nSubject: old\n\nold\n\n")
    os.makedirs(mail.path(f"{home}/mail"), exist_ok=True)
    os.chown(mail.path(f"{home}/mail"), mail.user.pw_uid, mail.user.pw_gid)
    write(mail, f"{home}/mail/Ro", b"")
    os.chown(mail.path(f"{home}/mail/Ro"), 0, 0)
    os.chmod(mail.path(f"{home}/mail/Ro"), 0o644)
    before = open(mail.path(MBOX), "rb").read()
    result = deliver(mail)
    assert result.code == 75 and result.stdout.startswith(b"4."), result
    assert open(mail.path(MBOX), "rb").read() == before
    assert not os.path.exists(mail.path(f"{MBOX}.lock"))


def test_a_body_test_reads_the_spooled_message(mail, home):
    activate(mail, FILEINTO + 'if body :contains "body line" { fileinto :create "B"; }\n',
             box=home)
    delivered(deliver(mail))
    assert len(messages(mail, f"{home}/mail/B")) == 1 and messages(mail, MBOX) == []


def test_dry_run_names_an_mbox_recipients_home_and_scripts(mail, home):
    activate(mail, FILEINTO + "keep;\n", box=home)
    result = mail.run("-n", "mbox@example.com", stdin=b"")
    assert result.code == 0, result
    out = result.stdout.decode()
    assert f"home: {mail.path(home)}" in out and "format: mbox" in out, out
    assert f"sieve personal: {mail.path(home)}/sieve/roundcube.sieve" in out, out
    plain = mail.run("-n", "alice@example.com", stdin=b"")
    assert "sieve: no script" in plain.stdout.decode(), plain


def test_dry_run_without_a_home(mail):
    result = mail.run("-n", "mbox@example.com", stdin=b"")
    assert result.code == 0, result
    assert "home: (none: not in virtual_home_maps)" in result.stdout.decode(), result


# --------------------------------------------------------------------------- outgoing mail

@pytest.fixture
def outbox_home(mail):
    from functional.outbox import Outbox
    box = Outbox(mail)
    homes = os.path.join(mail.top, "homes")
    mail.write_table(f"mbox@example.com {HOME}/\n", homes)
    mail.write_config(box.config(f"virtual_home_maps = texthash:{homes}\n"
                                 "sieve_extensions = +editheader\n"))
    return box


def test_a_redirect_only_script_sends_and_stores_nothing(mail, outbox_home):
    from functional.outbox import envelope
    activate(mail, 'redirect "target@example.org";\n', box=HOME)
    line = delivered(deliver(mail))
    assert "sieve: redirected to <target@example.org> (from <sender@example.net>)" in line, line
    ((args, sent),) = outbox_home.sent()
    assert envelope(args) == ("sender@example.net", ["target@example.org"])
    assert sent.startswith(b"X-Sieve-Redirected-From: mbox@example.com\n") and sent.endswith(MESSAGE)
    assert messages(mail, MBOX) == []


def test_a_redirect_not_sent_keeps_the_message_in_the_mbox(mail, outbox_home):
    outbox_home.fail_with(75)
    activate(mail, 'redirect "target@example.org";\n', box=HOME)
    line = delivered(deliver(mail))
    assert "redirect to <target@example.org> failed" in line and "kept in INBOX" in line, line
    (inbox,) = messages(mail, MBOX)
    assert inbox.endswith(b"body line\n")


def test_vacation_for_an_mbox_recipient_replies_once_after_the_copy_is_stored(mail, outbox_home):
    from functional.outbox import envelope
    activate(mail, 'require "vacation";\nvacation "Away.";\n', box=HOME)
    line = delivered(deliver(mail))
    assert "sent vacation response to <sender@example.net>" in line, line
    line = delivered(deliver(mail))
    assert "answered within the period already" in line, line
    ((args, _),) = outbox_home.sent()
    assert envelope(args) == ("<>", ["sender@example.net"])
    assert len(messages(mail, MBOX)) == 2
    assert os.path.isfile(mail.path(f"{HOME}/.vdeliver.db"))


def test_a_redirect_after_an_edit_sends_the_edited_message(mail, outbox_home):
    activate(mail, 'require ["editheader"];\naddheader "X-Tag" "edited";\n'
                   'redirect "target@example.org";\n', box=HOME)
    delivered(deliver(mail))
    ((_, sent),) = outbox_home.sent()
    head = sent.split(b"\n\n", 1)[0]
    assert b"\nX-Tag: edited\n" in head + b"\n", head
