"""Sieve at delivery through the installed pipe command: where the bytes land.

The recipient's scripts in Pigeonhole's layout (sievescripts.py), run in sequence
(filtering.py), the Plan executed through one commit point (sieveroute.SieveRoute,
maildir.store): files in INBOX and Maildir++ folders, flags in cur/ names,
keywords in dovecot-keywords, one inode for every copy, discard, reject (69,
5.7.1), and every script failure kept in INBOX with the error in the maillog
line and in ~/.dovecot.sieve.log.
"""
import mailbox
import os
import re
import shutil
import stat
import subprocess

import pytest

from functional.sievelayout import (BOX, MESSAGE, activate, folders_of, make_dirs, make_folder,
                                    message, read, stored, tmp_empty, write)
from support import assert_public, require

FILEINTO = 'require ["fileinto", "mailbox", "imap4flags", "copy"];\n'


def deliver(mail, recipient="bob@example.com", stdin=MESSAGE, *args):
    return mail.run("-i", "4SIEVE1", "-f", "sender@example.net", *args, "--", recipient, stdin=stdin)


def only_line(result):
    (line,) = result.log.decode("utf-8", "replace").splitlines()
    return line


def delivered(result):
    assert (result.code, result.stdout) == (0, b""), result
    line = only_line(result)
    assert "dsn=2.0.0, status=sent" in line, line
    return line


# --------------------------------------------------------------------------- the ManageSieve layout

# Roundcube's managesieve plugin writes one `# rule:[name]` block per rule.
ROUNDCUBE = """require ["fileinto","mailbox","regex"];
# rule:[Lists]
if address :is "from" "list@example.net"
{
\tfileinto "Lists";
\tstop;
}
# rule:[Urgent]
if header :contains "subject" "urgent"
{
\tfileinto :create "Work.Urgent";
\tstop;
}
# rule:[Drafts]
if header :contains "subject" "entwurf"
{
\tfileinto :create "Entwürfe";
\tstop;
}
# rule:[Inbox child]
if header :contains "subject" "child"
{
\tfileinto "INBOX.Lists";
\tstop;
}
# rule:[Tickets]
if header :regex "subject" "^\\\\[ticket #[[:digit:]]+\\\\]"
{
\tfileinto :create "Tickets";
\tstop;
}
# rule:[Explicit inbox]
if header :contains "subject" "inbox"
{
\tfileinto "INBOX";
\tstop;
}
"""


@pytest.mark.parametrize("sender, subject, folder, created", [
    pytest.param("list@example.net", "news", ".Lists", False, id="existing folder"),
    pytest.param("a@example.net", "urgent: call", ".Work.Urgent", True, id="create hierarchy"),
    pytest.param("a@example.net", "Entwurf 3", ".Entw&APw-rfe", True, id="create mUTF-7 name"),
    pytest.param("a@example.net", "child", ".INBOX.Lists", False,
                 id="INBOX's child, as Dovecot's default namespace stores it"),
    pytest.param("a@example.net", "[ticket #123] printer", ".Tickets", True, id="regex rule"),
    pytest.param("a@example.net", "[ticket #] printer", "", False, id="regex rule not matching"),
    pytest.param("a@example.net", "inbox please", "", False, id="fileinto INBOX"),
    pytest.param("a@example.net", "nothing special", "", False, id="no rule: implicit keep"),
])
def test_roundcube_rules_in_the_managesieve_layout(mail, sender, subject, folder, created):
    activate(mail, ROUNDCUBE)
    make_folder(mail, ".Lists")
    make_folder(mail, ".INBOX.Lists")  # as Dovecot makes INBOX.Lists, a client's "Lists" under INBOX
    data = f"From: {sender}\nSubject: {subject}\n\nbody\n".encode()
    line = delivered(deliver(mail, stdin=data))
    ((path, st),) = stored(mail).items()
    assert path.startswith(os.path.join(folder, "new/")), path
    assert read(mail.path(f"{BOX}/{path}")).endswith(data)
    assert st.st_uid == mail.user.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
    assert f"delivered to maildir {BOX}/{path}" in line, line
    assert f"sieve: ran {BOX}/sieve/roundcube.sieve" in line, line
    assert tmp_empty(mail)
    if created:
        top = mail.path(f"{BOX}/{folder}")
        assert sorted(os.listdir(top)) == ["cur", "maildirfolder", "new", "tmp"]
        assert os.path.getsize(os.path.join(top, "maildirfolder")) == 0
        for sub in ("", "/cur", "/new", "/tmp", "/maildirfolder"):
            assert os.stat(top + sub).st_uid == mail.user.pw_uid, sub
        assert stat.S_IMODE(os.stat(top).st_mode) == 0o700
    # Python's own Maildir reader sees the folder Dovecot would list.
    box = mailbox.Maildir(mail.path(BOX), factory=None, create=False)
    if folder:
        name = folder[1:]
        assert name in box.list_folders()
        assert len(box.get_folder(name)) == 1 and len(box) == 0
    else:
        assert len(box) == 1


def test_a_courier_style_namespace_files_inbox_children_without_the_prefix(mail):
    """imap_namespace_prefix = INBOX. (Dovecot's namespace for Courier migrations: prefix
    INBOX.): fileinto "INBOX.Lists" is the folder .Lists."""
    mail.write_config("imap_namespace_prefix = INBOX.\n")
    activate(mail, ROUNDCUBE)
    make_folder(mail, ".Lists")
    data = b"From: a@example.net\nSubject: child\n\nbody\n"
    delivered(deliver(mail, stdin=data))
    ((path, _),) = stored(mail).items()
    assert path.startswith(".Lists/new/"), path


def test_the_script_sees_the_message_and_envelope(mail):
    """address, envelope, header :matches with variables: what a Roundcube vacation-less
    ruleset tests, against what vdeliver was given on the command line."""
    activate(mail, FILEINTO + 'require ["envelope", "variables", "subaddress"];\n'
                   'if allof (envelope :is "from" "sender@example.net",\n'
                   '          envelope :detail "to" "lists",\n'
                   '          header :matches "subject" "[*] *") {\n'
                   '  fileinto :create "Lists.${1}";\n'
                   '}\n')
    delivered(deliver(mail, "bob+lists@example.com", message("[dev] release")))
    assert folders_of(mail) == {".Lists.dev": 1}
    delivered(deliver(mail, "bob@example.com", message("[dev] release")))
    assert folders_of(mail) == {".Lists.dev": 1, "": 1}


# --------------------------------------------------------------------------- flags and keywords

@pytest.mark.parametrize("script, folder, info, keywords", [
    pytest.param('addflag "\\\\Seen";', "", "S", {}, id="addflag Seen then implicit keep"),
    pytest.param('setflag ["\\\\Flagged", "\\\\Seen"];', "", "FS", {}, id="setflag two system flags"),
    pytest.param('keep :flags "\\\\Answered";', "", "R", {}, id="keep :flags"),
    pytest.param('fileinto :flags ["\\\\Seen", "\\\\Flagged"] "Work";', ".Work", "FS", {},
                 id="fileinto :flags"),
    pytest.param('fileinto :flags ["\\\\Seen", "$Label1", "Project"] "Work";', ".Work", "Sab",
                 {0: "$Label1", 1: "Project"}, id="keywords take letters a, b"),
    pytest.param('addflag ["\\\\Draft", "\\\\Deleted", "todo"]; fileinto "Work";', ".Work", "DTa",
                 {0: "todo"}, id="internal flags variable"),
    pytest.param('addflag ["\\\\Recent", "bad(flag", "\\\\Bogus", "\\\\seen", "\\\\SEEN"];',
                 "", "S", {}, id="invalid flags dropped, duplicates once"),
])
def test_imap4flags_name_the_file_in_cur(mail, script, folder, info, keywords):
    activate(mail, FILEINTO + script + "\n")
    make_folder(mail, ".Work")
    delivered(deliver(mail))
    ((path, st),) = stored(mail).items()
    assert path.startswith(os.path.join(folder, "cur/")), path
    name = path.rsplit("/", 1)[1]
    size = os.path.getsize(mail.path(f"{BOX}/{path}"))
    assert name.endswith(f",S={size}:2,{info}"), name
    directory = mail.path(f"{BOX}/{folder}")
    if keywords:
        text = read(os.path.join(directory, "dovecot-keywords")).decode()
        assert text == "".join(f"{n} {word}\n" for n, word in sorted(keywords.items()))
    else:
        assert not os.path.exists(os.path.join(directory, "dovecot-keywords"))
    # Python's reader agrees on the system flags (Maildir info letters).
    box = mailbox.Maildir(mail.path(BOX), create=False)
    box = box.get_folder(folder[1:]) if folder else box
    (msg,) = box.values()
    assert msg.get_subdir() == "cur" and msg.get_flags() == info


def test_keywords_reuse_dovecots_numbers(mail):
    """An existing dovecot-keywords (Dovecot's numbers) is read, matched without case,
    never renumbered; a new keyword takes the first free number."""
    make_folder(mail, ".Work")
    write(mail, f"{BOX}/.Work/dovecot-keywords", b"0 Junk\n2 Project\n")
    activate(mail, FILEINTO + 'fileinto :flags ["project", "$Forwarded"] "Work";\n')
    delivered(deliver(mail))
    (path,) = stored(mail)
    assert path.endswith(":2,bc"), path  # $Forwarded: 1 (free) -> b; project: 2 -> c
    assert read(mail.path(f"{BOX}/.Work/dovecot-keywords")) == b"0 Junk\n1 $Forwarded\n2 Project\n"
    assert not os.path.exists(mail.path(f"{BOX}/.Work/dovecot-keywords.lock"))


def test_a_known_keyword_takes_no_lock(mail):
    """Keyword number 0 is known: no dotlock, no rewrite of dovecot-keywords (Dovecot may
    hold the lock: the keyword must not wait for it, or be dropped)."""
    make_folder(mail, ".Work")
    keywords = write(mail, f"{BOX}/.Work/dovecot-keywords", b"0 Project\n")
    write(mail, f"{BOX}/.Work/dovecot-keywords.lock", b"")  # held by Dovecot right now
    inode = os.stat(keywords).st_ino
    activate(mail, FILEINTO + 'fileinto :flags "Project" "Work";\n')
    line = delivered(deliver(mail))
    (path,) = stored(mail)
    assert path.startswith(".Work/cur/") and path.endswith(":2,a"), path
    assert "keywords not stored" not in line, line
    assert os.stat(keywords).st_ino == inode and read(keywords) == b"0 Project\n"


# --------------------------------------------------------------------------- one message, many copies

@pytest.mark.parametrize("script, places", [
    pytest.param('fileinto "A"; fileinto "B"; keep;', {".A/new", ".B/new", "new"}, id="two fileinto and keep"),
    pytest.param('fileinto :copy "A"; fileinto :create "New.Folder";', {".A/new", ".New.Folder/new"},
                 id="copy and create, no keep"),
    pytest.param('fileinto :flags "\\\\Seen" "A"; fileinto "B"; keep :flags "\\\\Flagged";',
                 {".A/cur", ".B/new", "cur"}, id="new and cur mixed"),
    pytest.param('fileinto "A"; fileinto "A"; keep; keep;', {".A/new", "new"}, id="duplicates stored once"),
])
def test_every_copy_is_a_hard_link_of_one_inode(mail, script, places):
    activate(mail, FILEINTO + script + "\n")
    make_folder(mail, ".A")
    make_folder(mail, ".B")
    line = delivered(deliver(mail))
    files = stored(mail)
    assert {path.rsplit("/", 1)[0] for path in files} == places, files
    assert len(files) == len(places)
    assert len({(st.st_dev, st.st_ino) for st in files.values()}) == 1, "one inode"
    assert all(st.st_nlink == len(places) for st in files.values()), "no other link (tmp/ gone)"
    assert len({read(mail.path(f"{BOX}/{path}")) for path in files}) == 1
    assert tmp_empty(mail)
    for path in files:
        assert f"{BOX}/{path}" in line, line


def test_quota_is_charged_once_per_copy(mail):
    mail.write_config("virtual_mailbox_quota_default = 10M,100C\n")
    activate(mail, FILEINTO + 'fileinto "A"; fileinto :create "B"; keep;\n')
    make_folder(mail, ".A")
    delivered(deliver(mail))
    files = stored(mail)
    size = os.path.getsize(mail.path(f"{BOX}/{next(iter(files))}"))
    lines = read(mail.path(f"{BOX}/maildirsize")).decode().splitlines()
    assert lines[0] == "10485760S,100C"
    usage = [tuple(map(int, line.split())) for line in lines[1:]]
    assert (sum(u[0] for u in usage), sum(u[1] for u in usage)) == (3 * size, 3), lines
    assert usage[-1] == (3 * size, 3), lines


def test_copies_over_the_message_quota_defer_and_store_nothing(mail):
    """Two messages allowed: one delivery of three copies does not fit (the count is per copy)."""
    mail.write_config("virtual_mailbox_quota_default = 2C\n")
    activate(mail, FILEINTO + 'fileinto :create "A"; fileinto :create "B"; keep;\n')
    result = deliver(mail)
    assert result.code == 75 and result.stdout.startswith(b"4.2.2 "), result
    assert stored(mail) == {} and tmp_empty(mail)


# --------------------------------------------------------------------------- discard and reject

def test_discard_stores_nothing_and_succeeds(mail):
    activate(mail, 'if header :contains "subject" "spam" { discard; stop; }\n')
    line = delivered(deliver(mail, stdin=message("cheap spam")))
    assert stored(mail) == {} and tmp_empty(mail)
    assert "sieve: discarded" in line and "nowhere (discarded)" in line, line
    delivered(deliver(mail, stdin=message("ham")))
    assert folders_of(mail) == {"": 1}


@pytest.mark.parametrize("script, reason", [
    pytest.param('reject "Not wanted here.";', b"Not wanted here.", id="plain reason"),
    pytest.param('reject text:\nI do not read\nmail from you.\n.\n;', b"I do not read mail from you.",
                 id="multi-line reason made one line"),
    pytest.param('reject "bell\x07 esc\x1b[31m tab\there\r\nX-Injected: yes";',
                 b"bell? esc?[31m tab here X-Injected: yes", id="control characters"),
    pytest.param('require "variables"; set "who" "${1}"; reject "";',
                 b"rejected by the recipient's filter", id="empty reason"),
    pytest.param('reject "' + "long " * 200 + '";', None, id="long reason cut"),
])
def test_reject_bounces_5_7_1_and_stores_nothing(mail, script, reason):
    activate(mail, 'require "reject";\n' + script + "\n")
    result = deliver(mail)
    assert result.code == 69, result
    assert result.stdout.startswith(b"5.7.1 ") and b"\n" not in result.stdout, result
    assert all(0x20 <= byte < 0x7f for byte in result.stdout), result.stdout
    if reason is not None:
        assert result.stdout == b"5.7.1 " + reason
    else:
        assert len(result.stdout) < 400 and result.stdout.startswith(b"5.7.1 long long")
    assert_public(result.stdout)
    line = only_line(result)
    assert "dsn=5.7.1, status=bounced" in line, line
    assert stored(mail) == {} and tmp_empty(mail)


def test_reject_of_a_null_sender_message_is_a_discard(mail):
    """A bounce would have nowhere to go: Pigeonhole logs "not sending reject message to
    <>" and, the keep being cancelled, discards the message; so does vdeliver (exit 0,
    nothing stored, the note in the log line)."""
    activate(mail, 'require "reject";\nreject "Not wanted here.";\n')
    result = mail.run("-f", "", "--", "bob@example.com", stdin=MESSAGE)
    line = delivered(result)
    assert "sieve: not sending reject message to <>" in line and "sieve: discarded" in line, line
    assert stored(mail) == {} and tmp_empty(mail)


def test_reject_after_an_earlier_script_stored_is_ignored(mail):
    """The before script filed the message (:copy keeps the sequence going); the personal
    script's reject cannot take that copy back: the message is not bounced."""
    before = os.path.join(mail.top, "before.sieve")
    with open(before, "w") as fh:
        fh.write(FILEINTO + 'fileinto :copy :create "Archive";\n')
    mail.write_config(f"sieve_before = {before}\n")
    activate(mail, 'require "reject"; reject "no";\n')
    line = delivered(deliver(mail))
    assert folders_of(mail) == {".Archive": 1}
    assert "reject ignored" in line, line


# --------------------------------------------------------------------------- failures keep in INBOX

def user_log(mail, box=BOX):
    path = mail.path(f"{box}/.dovecot.sieve.log")
    return read(path).decode() if os.path.exists(path) else ""


@pytest.mark.parametrize("script, wanted", [
    pytest.param('require "fileinto";\nkeep;\nfrobnicate;\n', "line 3: error: unknown command 'frobnicate'",
                 id="unknown command line 3"),
    pytest.param('require "fileinto";\n\n\nif header :is "subject" "x" {\n  fileinto "A"\n}\n',
                 "line 6: error:", id="missing semicolon line 6"),
    pytest.param('fileinto "A";\n', "line 1: error:", id="fileinto without require"),
    pytest.param('require "nosuchext";\nkeep;\n', "line 1: error:", id="unknown extension"),
    pytest.param('if header :contains "subject" "x" {\n keep;\n', "error:", id="unclosed block"),
    pytest.param('require "variables";\nset "a" "b"\n', "line 3: error:", id="no semicolon at end"),
    pytest.param(b'keep;\n"\xff\xfe";\n', "error:", id="invalid UTF-8"),
])
def test_compile_error_keeps_in_inbox_and_tells_the_user(mail, script, wanted):
    activate(mail, script)
    make_folder(mail, ".A")
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert f"sieve: {mail.base}/{BOX}/sieve/roundcube.sieve failed (roundcube: " in line, line
    assert "kept in INBOX" in line, line
    log = user_log(mail)
    assert wanted in log, log
    assert "message kept in INBOX" in log
    assert stat.S_IMODE(os.stat(mail.path(f"{BOX}/.dovecot.sieve.log")).st_mode) == 0o600
    assert os.stat(mail.path(f"{BOX}/.dovecot.sieve.log")).st_uid == mail.user.pw_uid
    # Pigeonhole never writes a binary (.svbin) next to a script vdeliver compiled.
    assert sorted(os.listdir(mail.path(f"{BOX}/sieve"))) == ["roundcube.sieve"]


def test_runtime_error_keeps_in_inbox_and_drops_the_scripts_actions(mail):
    activate(mail, FILEINTO + 'require "variables";\nfileinto "A";\nset "x" "${unknown}";\n'
                              'fileinto "Missing";\n')
    make_folder(mail, ".A")
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}, "the script's fileinto 'A' is dropped too"
    assert "mailbox does not exist" in line, line
    assert "Missing" in user_log(mail)


@pytest.mark.parametrize("script", [
    pytest.param('fileinto "Missing";', id="fileinto missing"),
    pytest.param('fileinto "Missing"; keep;', id="fileinto missing and keep"),
    pytest.param('keep; fileinto "Missing";', id="keep and fileinto missing"),
    pytest.param('fileinto :copy "Missing";', id="copy into missing"),
])
def test_fileinto_a_missing_folder_keeps_once_in_inbox(mail, script):
    activate(mail, FILEINTO + script + "\n")
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert not os.path.exists(mail.path(f"{BOX}/.Missing"))
    assert "fileinto 'Missing': mailbox does not exist" in line and "kept in INBOX" in line, line
    assert "fileinto 'Missing': mailbox does not exist" in user_log(mail)


def test_the_user_log_never_follows_a_symlink(mail):
    activate(mail, "frobnicate;\n")
    victim = os.path.join(mail.top, "victim")
    with open(victim, "w") as fh:
        fh.write("untouched\n")
    os.chown(victim, mail.user.pw_uid, mail.user.pw_gid)
    os.symlink(victim, mail.path(f"{BOX}/.dovecot.sieve.log"))
    delivered(deliver(mail))
    assert read(victim) == b"untouched\n"
    assert folders_of(mail) == {"": 1}


def test_a_sieve_disabled_by_the_admin_runs_nothing(mail):
    mail.write_config("sieve = no\n")
    activate(mail, 'discard;\n')
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1} and "sieve" not in line, line


# --------------------------------------------------------------------------- the sequence

SPAM_RULE = 'require "fileinto";\nif header :contains "X-Spam-Flag" "YES" { fileinto "Junk"; }\n'
PERSONAL = (FILEINTO + 'if header :contains "subject" "work" { fileinto "Work"; stop; }\n'
            'fileinto :copy :create "Personal";\n')
AFTER = 'require ["fileinto", "mailbox"];\nfileinto :create "Archive";\n'


@pytest.mark.parametrize("headers, subject, wanted, ran", [
    pytest.param(b"X-Spam-Flag: YES\n", "work", {".Junk": 1}, ["before.d/10-spam.sieve"],
                 id="spam: only the admin's before script"),
    pytest.param(b"", "hello", {".Personal": 1, ".Archive": 1},
                 ["before.d/10-spam.sieve", "before.d/20-noop.sieve", BOX + "/sieve/roundcube.sieve",
                  "after.sieve"], id="ham: before, personal, after"),
    pytest.param(b"X-Spam-Flag: NO\n", "work", {".Work": 1},
                 ["before.d/10-spam.sieve", "before.d/20-noop.sieve", BOX + "/sieve/roundcube.sieve"],
                 id="personal cancels keep: after does not run"),
])
def test_sieve_before_personal_after_sequence(mail, headers, subject, wanted, ran):
    before = os.path.join(mail.top, "before.d")
    os.mkdir(before)
    for name, text in (("10-spam.sieve", SPAM_RULE), ("20-noop.sieve", "keep;\n"),
                       ("30-not-a-script.txt", "discard;\n")):
        with open(os.path.join(before, name), "w") as fh:
            fh.write(text)
    with open(os.path.join(mail.top, "after.sieve"), "w") as fh:
        fh.write(AFTER)
    mail.write_config(f"sieve_before = {before}\nsieve_after = {mail.top}/after.sieve\n")
    activate(mail, PERSONAL)
    make_folder(mail, ".Junk")
    make_folder(mail, ".Work")
    line = delivered(deliver(mail, stdin=message(subject, headers)))
    assert folders_of(mail) == wanted
    shown = line.split("sieve: ran ", 1)[1].split(";", 1)[0].rstrip(")").split(", ")
    assert [path.replace(mail.top + "/", "") for path in shown] == ran, line


@pytest.mark.parametrize("personal, wanted", [
    pytest.param('fileinto "A";', {".A": 1}, id="same folder from two scripts: one copy"),
    pytest.param('fileinto :flags "\\\\Seen" "A";', {".A": 1}, id="the later flags win"),
    pytest.param("keep;", {".A": 1, "": 1}, id="keep after a before copy"),
])
def test_two_scripts_filing_into_one_folder_store_one_copy(mail, personal, wanted):
    before = os.path.join(mail.top, "before.sieve")
    with open(before, "w") as fh:
        fh.write(FILEINTO + 'fileinto :copy "A";\n')
    mail.write_config(f"sieve_before = {before}\n")
    activate(mail, FILEINTO + personal + "\n")
    make_folder(mail, ".A")
    delivered(deliver(mail))
    assert folders_of(mail) == wanted
    if "Seen" in personal:
        (path,) = stored(mail)
        assert path.startswith(".A/cur/") and path.endswith(":2,S"), path


def test_a_broken_before_script_keeps_and_stops_the_sequence(mail):
    before = os.path.join(mail.top, "before.sieve")
    with open(before, "w") as fh:
        fh.write("if true {\n")
    mail.write_config(f"sieve_before = {before}\n")
    activate(mail, "discard;\n")
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert f"sieve: {before} failed" in line, line
    assert user_log(mail) == "", "the admin's error is not the user's"


@pytest.mark.parametrize("own, wanted", [
    pytest.param(None, {".Default": 1}, id="no personal script: sieve_default runs"),
    pytest.param("keep;\n", {"": 1}, id="a personal script replaces sieve_default"),
    pytest.param("dangling", {".Default": 1}, id="ManageSieve link to a deleted script"),
])
def test_sieve_default(mail, own, wanted):
    default = os.path.join(mail.top, "default.sieve")
    with open(default, "w") as fh:
        fh.write('require ["fileinto", "mailbox"]; fileinto :create "Default";\n')
    mail.write_config(f"sieve_default = {default}\n")
    if own is None:
        make_dirs(mail, BOX)
    else:
        activate(mail, own)
        if own == "dangling":
            os.unlink(mail.path(f"{BOX}/sieve/roundcube.sieve"))
    line = delivered(deliver(mail))
    assert folders_of(mail) == wanted
    assert (default in line) == (".Default" in wanted), line


INCLUDING = ('require ["include", "fileinto"];\ninclude :global "spam";\n'
             'include :personal "lists";\nif header :contains "subject" "stop" { fileinto "Work"; }\n')
GLOBAL_SPAM = 'require "fileinto";\nif header :is "X-Spam-Flag" "YES" { fileinto "Junk"; stop; }\n'
PERSONAL_LISTS = ('require ["fileinto", "mailbox", "variables"];\n'
                  'if header :matches "List-Id" "*<*.example.net>" { fileinto :create "Lists.${2}"; stop; }\n')


@pytest.mark.parametrize("headers, subject, wanted", [
    pytest.param(b"X-Spam-Flag: YES\nList-Id: Dev <dev.example.net>\n", "stop", {".Junk": 1},
                 id="global include stops"),
    pytest.param(b"List-Id: Dev <dev.example.net>\n", "stop", {".Lists.dev": 1}, id="personal include"),
    pytest.param(b"", "stop", {".Work": 1}, id="includes fall through to the script"),
    pytest.param(b"", "hi", {"": 1}, id="nothing matches: implicit keep"),
])
def test_include_personal_and_global(mail, headers, subject, wanted):
    global_dir = os.path.join(mail.top, "global")
    os.mkdir(global_dir)
    with open(os.path.join(global_dir, "spam.sieve"), "w") as fh:
        fh.write(GLOBAL_SPAM)
    mail.write_config(f"sieve_global_dir = {global_dir}\n")
    activate(mail, INCLUDING)
    write(mail, f"{BOX}/sieve/lists.sieve", PERSONAL_LISTS)
    make_folder(mail, ".Junk")
    make_folder(mail, ".Work")
    delivered(deliver(mail, stdin=message(subject, headers)))
    assert folders_of(mail) == wanted


def test_a_missing_include_is_a_compile_error(mail):
    activate(mail, 'require "include";\ninclude :personal "nosuch";\ndiscard;\n')
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert "nosuch" in line and "nosuch" in user_log(mail), line


def test_include_optional_and_once(mail):
    activate(mail, 'require ["include", "fileinto"];\ninclude :optional "nosuch";\n'
                   'include :once "lists";\ninclude :once "lists";\n')
    write(mail, f"{BOX}/sieve/lists.sieve", 'require "fileinto";\nfileinto :copy "A";\n'
          .replace('"fileinto"', '["fileinto", "copy"]'))
    make_folder(mail, ".A")
    delivered(deliver(mail))
    assert folders_of(mail) == {".A": 1, "": 1}


# --------------------------------------------------------------------------- homes and +extensions

def test_virtual_home_maps_puts_the_scripts_elsewhere(mail):
    homes = os.path.join(mail.top, "homes")
    mail.write_table("bob@example.com homes/bob/\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\n")
    activate(mail, FILEINTO + 'fileinto :create "FromHome";\n', box="homes/bob")
    activate(mail, "discard;\n", box=BOX)  # in the Maildir: not the home any more
    line = delivered(deliver(mail))
    assert folders_of(mail) == {".FromHome": 1}
    assert not os.path.exists(mail.path("homes/bob/.FromHome")), "folders are in the Maildir"
    assert "sieve: ran homes/bob/sieve/roundcube.sieve" in line, line
    # alice has no home entry: her Maildir is her home.
    activate(mail, FILEINTO + 'fileinto :create "Alice";\n', box="example.com/alice")
    delivered(deliver(mail, "alice@example.com"))
    assert folders_of(mail, "example.com/alice") == {".Alice": 1}
    # A broken script at the home: the user log is written there.
    activate(mail, "frobnicate;\n", box="homes/bob")
    delivered(deliver(mail))
    assert "frobnicate" in user_log(mail, "homes/bob") and user_log(mail) == ""


def test_a_home_that_is_missing_means_no_personal_script(mail):
    homes = os.path.join(mail.top, "homes")
    mail.write_table("bob@example.com homes/nobody-made-this/\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\n")
    activate(mail, "discard;\n")
    delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert not os.path.exists(mail.path("homes"))


@pytest.mark.parametrize("script, wanted", [
    pytest.param("", {".lists": 1}, id="implicit keep goes to the extension folder"),
    pytest.param("keep;", {".lists": 1}, id="explicit keep too"),
    pytest.param('fileinto "Work";', {".Work": 1}, id="fileinto replaces keep"),
    pytest.param('fileinto :copy "Work";', {".lists": 1, ".Work": 1}, id="fileinto copy and keep"),
    pytest.param('fileinto :copy "lists";', {".lists": 1}, id="fileinto the extension folder and keep"),
    pytest.param('fileinto :flags "\\\\Seen" "lists";', {".lists": 1}, id="fileinto the extension folder"),
    pytest.param('fileinto "INBOX";', {"": 1}, id="fileinto INBOX is the INBOX itself"),
    pytest.param('fileinto :copy "INBOX";', {"": 1, ".lists": 1}, id="fileinto copy INBOX and keep"),
])
def test_extension_folder_is_where_keep_stores(mail, script, wanted):
    mail.write_config("extension_folder = create\n")
    activate(mail, FILEINTO + script + "\n")
    make_folder(mail, ".Work")
    line = delivered(deliver(mail, "bob+lists@example.com"))
    assert folders_of(mail) == wanted
    files = stored(mail)
    assert len({st.st_ino for st in files.values()}) == 1
    assert all(f"{BOX}/{path}" in line for path in files), line


@pytest.mark.parametrize("script", ['fileinto "INBOX"; keep;', 'fileinto :copy "inbox";',
                                    'require "imap4flags"; fileinto :flags "\\\\Seen" "INBOX"; keep;'])
def test_fileinto_inbox_and_keep_are_one_copy(mail, script):
    activate(mail, FILEINTO + script + "\n")
    delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}


def test_mailbox_separator_slash(mail):
    mail.write_config("sieve_mailbox_separator = /\n")
    activate(mail, FILEINTO + 'fileinto :create "Work/Urgent";\n')
    delivered(deliver(mail))
    assert folders_of(mail) == {".Work.Urgent": 1}


def test_mailboxexists_and_spamtest_read_the_store(mail):
    """spamtest is not among Pigeonhole's default extensions: sieve_extensions adds it."""
    spam = "sieve_spamtest_status_header = X-Spam-Score: ([0-9.]+)\n" \
           "sieve_spamtest_status_type = score\nsieve_spamtest_max_value = 10\n"
    mail.write_config(spam)
    activate(mail, 'require "spamtest";\n')
    line = delivered(deliver(mail))
    assert "unknown Sieve capability 'spamtest'" in line, line
    os.unlink(mail.path(f"{BOX}/new/" + os.listdir(mail.path(f"{BOX}/new"))[0]))
    mail.write_config(spam + "sieve_extensions = +spamtest +mailbox\n")
    activate(mail, FILEINTO + 'require ["spamtest", "relational", "comparator-i;ascii-numeric"];\n'
                   'if spamtest :value "ge" :comparator "i;ascii-numeric" "5" {\n'
                   '  if mailboxexists "Junk" { fileinto "Junk"; } else { fileinto :create "Spam"; }\n'
                   '}\n')
    delivered(deliver(mail, stdin=message("x", b"X-Spam-Score: 7.5\n")))
    assert folders_of(mail) == {".Spam": 1}
    make_folder(mail, ".Junk")
    delivered(deliver(mail, stdin=message("x", b"X-Spam-Score: 9\n")))
    delivered(deliver(mail, stdin=message("x", b"X-Spam-Score: 1\n")))
    assert folders_of(mail) == {".Spam": 1, ".Junk": 1, "": 1}


@pytest.mark.parametrize("script, note", [
    pytest.param('require "vacation"; vacation "away";',
                 "vacation response to <sender@example.net> failed: cannot run", id="vacation"),
    pytest.param('redirect "other@example.org";', "redirect to <other@example.org> failed",
                 id="redirect cancels keep: kept anyway"),
    pytest.param('require "copy"; redirect :copy "other@example.org";',
                 "redirect to <other@example.org> failed", id="redirect copy"),
])
def test_outgoing_actions_not_sent_are_reported_and_the_message_kept(mail, script, note):
    """sendmail_path missing (tests/functional/test_sieve_outgoing.py: what is sent)."""
    mail.write_config("sendmail_path = /nonexistent/sendmail\n")
    activate(mail, script + "\n")
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert note in line, line


def test_dry_run_names_the_home_and_scripts_and_runs_nothing(mail):
    before = os.path.join(mail.top, "before.sieve")
    with open(before, "w") as fh:
        fh.write("keep;\n")
    mail.write_config(f"sieve_before = {before}\n")
    activate(mail, "discard;\n")
    result = mail.run("-n", "bob@example.com", stdin=b"")
    assert result.code == 0 and stored(mail) == {}, result
    text = result.stdout.decode()
    assert f"home: {mail.base}/{BOX}\n" in text, text
    assert f"sieve before: {before}\n" in text, text
    assert f"sieve personal: {mail.base}/{BOX}/sieve/roundcube.sieve" in text, text
    assert mail.log_lines() == []


# --------------------------------------------------------------------------- what the pipe command loads

SIEVE_PACKAGE = re.compile(r'"[^"]*/vdeliver/sieve(/[^"]*)?"')
RE2 = re.compile(r'"[^"]*/(re2|_re2)[^"/]*(/[^"]*)?"')
OUTGOING = re.compile(r'"[^"]*/(vdeliver/(__pycache__/)?(outgoing|userdb|vacation|submit|duplicates)'
                      r'[.][^"]*|sqlite3[^"]*)"')
HEADEREDIT = re.compile(r'"[^"]*/vdeliver/(__pycache__/)?headeredit[.][^"]*"')


@pytest.mark.parametrize("script, loads_sieve, loads_re2, loads_outgoing, loads_edits", [
    pytest.param(None, False, False, False, False, id="no script"),
    pytest.param("keep;\n", True, False, False, False, id="a script"),
    pytest.param('require ["fileinto", "imap4flags"];\nfileinto :flags "\\\\Seen" "INBOX";\n',
                 True, False, False, False, id="a script with flags"),
    pytest.param('require "regex";\nif header :regex "subject" "^h" { keep; }\n', True, True, False,
                 False, id="a script with regex"),
    pytest.param('require "vacation";\nvacation "away";\n', True, False, True, False,
                 id="a script with vacation"),
    pytest.param('require "editheader";\naddheader "X-A" "1";\n', True, False, False, True,
                 id="a script that edits"),
])
def test_a_recipient_without_a_script_loads_nothing_of_the_interpreter(
        mail, script, loads_sieve, loads_re2, loads_outgoing, loads_edits):
    """strace the installed pipe command: files it opens or stats. The interpreter
    (vdeliver/sieve/) is loaded only for a recipient with a script, RE2 only for :regex,
    the outgoing mail's modules (and sqlite3) only for a result that sends mail,
    headeredit.py (which loads re and base64: 6 ms) only for a script that edits."""
    require(shutil.which("strace"), "needs strace (scripts/setup-e2e installs it)")
    mail.write_config("sendmail_path = /nonexistent/sendmail\n"  # nothing leaves this test
                      "sieve_extensions = +editheader\n")
    if script is None:
        make_dirs(mail, BOX)
    else:
        activate(mail, script)
    trace = os.path.join(mail.top, "strace.out")
    with open(trace, "w"):
        pass
    os.chown(trace, mail.user.pw_uid, mail.user.pw_gid)
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,open,stat,newfstatat,statx",
                           "-o", trace] + mail.command("-f", "s@x", "--", "bob@example.com"),
                          input=MESSAGE, capture_output=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          user=mail.user.pw_uid, group=mail.user.pw_gid, extra_groups=[], timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b""), proc
    assert sum(folders_of(mail).values()) == 1
    calls = read(trace).decode("utf-8", "replace")
    assert "vdeliver/cli.py" in calls or "_image.marshal" in calls, "the trace saw the command start"
    assert '".dovecot.sieve"' in calls, "the trace saw the script being looked for"
    sieve_paths = SIEVE_PACKAGE.findall(calls)
    assert bool(sieve_paths) == loads_sieve, [m for m in calls.splitlines() if "vdeliver/sieve" in m][:5]
    assert bool(RE2.search(calls)) == loads_re2
    assert bool(OUTGOING.search(calls)) == loads_outgoing, OUTGOING.findall(calls)[:5]
    assert bool(HEADEREDIT.search(calls)) == loads_edits, HEADEREDIT.findall(calls)[:5]


# --------------------------------------------------------------------------- more of the layout and the Plan

def test_a_plain_dovecot_sieve_file_is_the_active_script(mail):
    """Not every user has ManageSieve: ~/.dovecot.sieve may be the script itself."""
    write(mail, f"{BOX}/.dovecot.sieve", FILEINTO + 'fileinto :create "Plain";\n')
    line = delivered(deliver(mail))
    assert folders_of(mail) == {".Plain": 1}
    assert f"sieve: ran {BOX}/.dovecot.sieve" in line, line


@pytest.mark.parametrize("script", [
    pytest.param('require ["reject", "fileinto"]; fileinto "A"; reject "no";', id="fileinto then reject"),
    pytest.param('require "reject"; keep; reject "no";', id="keep then reject"),
    pytest.param('require ["reject", "fileinto"]; reject "no"; fileinto "A";', id="reject then fileinto"),
])
def test_reject_conflicting_with_a_store_is_an_error_that_keeps(mail, script):
    activate(mail, script + "\n")
    make_folder(mail, ".A")
    line = delivered(deliver(mail))
    assert folders_of(mail) == {"": 1}
    assert "conflicts with other action" in line, line


def test_ereject_bounces_like_reject_when_enabled(mail):
    mail.write_config("sieve_extensions = +ereject\n")
    activate(mail, 'require "ereject";\nereject "Go away.";\n')
    result = deliver(mail)
    assert (result.code, result.stdout) == (69, b"5.7.1 Go away."), result
    assert stored(mail) == {}


EDIT = 'require ["editheader", "fileinto", "copy", "variables", "reject"];\n'


def header_of(data):
    return data.split(b"\n\n", 1)[0] + b"\n"


def test_editheader_edits_the_copies_stored_after_them(mail):
    """As Pigeonhole: the copy filed before an edit is the message as it came (the
    one tmp file, linked), the keep after it is a file of its own with the edit."""
    mail.write_config("sieve_extensions = +editheader\n")
    activate(mail, EDIT + 'fileinto "A";\naddheader "x-filtered" "yes";\ndeleteheader "subject";\n'
             'addheader :last "Subject" "[tagged] hello";\nkeep;\n')
    make_folder(mail, ".A")
    line = delivered(deliver(mail))
    files = stored(mail)
    (inbox,) = [path for path in files if path.startswith("new/")]
    (folder,) = [path for path in files if path.startswith(".A/")]
    original, edited = read(mail.path(f"{BOX}/{folder}")), read(mail.path(f"{BOX}/{inbox}"))
    assert original.endswith(MESSAGE)
    prefix = original[:-len(MESSAGE)]  # the delivery headers vdeliver wrote (Delivered-To ...)
    assert edited == (b"X-Filtered: yes\n" + prefix + b"From: sender@example.net\n"
                      b"To: bob@example.com\nSubject: [tagged] hello\n\nbody line\n"), edited
    assert inbox.split(",S=")[1] == str(len(edited)), "the size in the name is the edited copy's"
    assert all(st.st_nlink == 1 for st in files.values()), "two contents, two inodes, tmp/ gone"
    assert tmp_empty(mail)
    assert "not applied" not in line, line


@pytest.mark.parametrize("script, inodes", [
    pytest.param('fileinto "A"; keep;', 1, id="no edit: one file"),
    pytest.param('addheader "X-A" "1"; fileinto "A"; keep;', 1, id="the same edits: one file"),
    pytest.param('addheader "X-A" "1"; fileinto :copy "A"; deleteheader "x-a"; fileinto "B";', 2,
                 id="an edit undone: the message's own file again"),
    pytest.param('fileinto :copy "A"; addheader "X-A" "1"; fileinto :copy "B"; addheader "X-B" "2";',
                 3, id="three contents"),
    pytest.param('deleteheader "x-nothing"; fileinto "A"; keep;', 1, id="nothing deleted: no copy"),
])
def test_editheader_writes_one_file_per_distinct_content(mail, script, inodes):
    mail.write_config("sieve_extensions = +editheader\n")
    activate(mail, EDIT + script + "\n")
    make_folder(mail, ".A")
    make_folder(mail, ".B")
    delivered(deliver(mail))
    files = stored(mail)
    assert len({(st.st_dev, st.st_ino) for st in files.values()}) == inodes, files
    assert sum(st.st_nlink for st in {(st.st_ino): st for st in files.values()}.values()) \
        == len(files), "no link left in tmp/"
    assert tmp_empty(mail)


@pytest.mark.parametrize("value, wanted", [
    pytest.param("a\r\nBcc: evil@example.net\n", b"X-A: a\n\tBcc: evil@example.net\n",
                 id="a line break in a literal"),
    pytest.param("${v}", b"X-A: x\n\tTo: victim@example.net\n", id="a line break from a variable"),
    pytest.param("Gr\u00fc\u00dfe aus K\u00f6ln", b"X-A: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\n",
                 id="not ASCII: RFC 2047"),
])
def test_an_added_value_never_makes_a_field_of_its_own(mail, value, wanted):
    mail.write_config("sieve_extensions = +editheader\n")
    activate(mail, EDIT + 'set "v" "x\nTo: victim@example.net";\naddheader "X-A" "' + value + '";\n')
    delivered(deliver(mail))
    (path,) = stored(mail)
    data = read(mail.path(f"{BOX}/{path}"))
    assert data.startswith(wanted), data
    fields = mailbox.Maildir(mail.path(BOX), create=False).get_message(path.split("/")[1])
    assert fields.get_all("Bcc") is None and fields.get_all("To") == ["bob@example.com"]


def test_editheader_needs_the_extension_enabled(mail):
    activate(mail, EDIT + 'addheader "X-A" "1";\n')
    line = delivered(deliver(mail))
    (path,) = stored(mail)
    assert read(mail.path(f"{BOX}/{path}")).endswith(MESSAGE)
    assert "failed" in line and "kept in INBOX" in line, line


def test_editheader_protected_fields_and_max_size_from_the_config(mail):
    mail.write_config("sieve_extensions = +editheader\nsieve_editheader_protected = X-Spam-Flag\n"
                      "sieve_editheader_max_header_size = 1k\n")
    activate(mail, EDIT + 'addheader "X-Spam-Flag" "NO";\naddheader "X-Ok" "1";\n')
    delivered(deliver(mail, stdin=message(headers=b"X-Spam-Flag: YES\n")))
    (path,) = stored(mail)
    head = header_of(read(mail.path(f"{BOX}/{path}")))
    assert head.startswith(b"X-Ok: 1\n") and head.count(b"X-Spam-Flag") == 1, head
    activate(mail, EDIT + 'set "v" "' + "a" * 1025 + '";\naddheader "X-Big" "${v}";\n')
    line = delivered(deliver(mail))
    assert "too large" in line and "kept in INBOX" in line, line


def test_editheader_in_an_admin_script_carries_into_the_users_script(mail):
    """A sequence runs on one message, as Pigeonhole's: the personal script sees the
    field sieve_before added, and every copy stored after it has it."""
    before = os.path.join(mail.top, "before.sieve")
    with open(before, "w") as fh:
        fh.write('require "editheader";\naddheader "X-Checked" "by the admin";\n')
    mail.write_config(f"sieve_extensions = +editheader\nsieve_before = {before}\n")
    activate(mail, EDIT + 'if header :is "x-checked" "by the admin" { fileinto "A"; }\n'
             'addheader "X-User" "1";\nkeep;\n')
    make_folder(mail, ".A")
    delivered(deliver(mail))
    files = stored(mail)
    (folder,) = [path for path in files if path.startswith(".A/")]
    (inbox,) = [path for path in files if path.startswith("new/")]
    assert header_of(read(mail.path(f"{BOX}/{folder}"))).startswith(b"X-Checked: by the admin\n")
    assert header_of(read(mail.path(f"{BOX}/{inbox}"))).startswith(
        b"X-User: 1\nX-Checked: by the admin\n")


def test_quota_charges_the_bytes_each_copy_has(mail):
    mail.write_config("sieve_extensions = +editheader\nvirtual_mailbox_quota_default = 10M,100C\n")
    activate(mail, EDIT + 'fileinto "A";\naddheader "X-Filtered" "a long value to make it longer";\n'
             'keep;\n')
    make_folder(mail, ".A")
    delivered(deliver(mail))
    sizes = [st.st_size for st in stored(mail).values()]
    assert len(set(sizes)) == 2, sizes
    lines = read(mail.path(f"{BOX}/maildirsize")).decode().splitlines()
    assert lines[-1] == f"{sum(sizes)} 2", lines


def test_reject_after_an_edit_leaves_no_copy_behind(mail):
    mail.write_config("sieve_extensions = +editheader\n")
    activate(mail, EDIT + 'addheader "X-A" "1";\nreject "no";\n')
    result = deliver(mail)
    assert (result.code, result.stdout) == (69, b"5.7.1 no"), result
    assert stored(mail) == {} and tmp_empty(mail)


def test_more_than_26_keywords_in_a_folder_are_dropped_and_logged(mail):
    words = [f"kw{n:02d}" for n in range(30)]
    activate(mail, 'require "imap4flags";\naddflag [' + ", ".join(f'"{w}"' for w in words) + "];\n")
    line = delivered(deliver(mail))
    (path,) = stored(mail)
    assert path.endswith(":2," + "abcdefghijklmnopqrstuvwxyz"), path
    table = read(mail.path(f"{BOX}/dovecot-keywords")).decode().splitlines()
    assert table == [f"{n} {word}" for n, word in enumerate(words[:26])]
    assert "keywords not stored in example.com/bob (26 in use): kw26, kw27, kw28, kw29" in line, line


def test_the_user_log_starts_again_past_64_kib(mail):
    activate(mail, "frobnicate;\n")
    write(mail, f"{BOX}/.dovecot.sieve.log", b"old line\n" * 8000)
    delivered(deliver(mail))
    log = user_log(mail)
    assert "old line" not in log and "frobnicate" in log, log[:200]
    delivered(deliver(mail))
    assert user_log(mail).count("frobnicate") == 2, "appended below the limit"


@pytest.mark.parametrize("home, code, status", [
    pytest.param("../../etc/", 75, b"4.3.5 ", id="dotdot"),
    pytest.param("/etc/", 75, b"4.3.5 ", id="absolute"),
])
def test_an_unsafe_virtual_home_maps_result_defers_like_a_mailbox_result(mail, home, code, status):
    homes = os.path.join(mail.top, "homes")
    mail.write_table(f"bob@example.com {home}\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\n")
    result = deliver(mail)
    assert result.code == code and result.stdout.startswith(status), result
    assert stored(mail) == {}


def test_a_home_elsewhere_for_a_mailbox_not_yet_made(mail):
    """The first message of a new mailbox: the Maildir and the script's folder are made."""
    homes = os.path.join(mail.top, "homes")
    mail.write_table("bob@example.com homes/bob\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\n")
    activate(mail, FILEINTO + 'fileinto :create "First";\n', box="homes/bob")
    assert not os.path.exists(mail.path(BOX))
    delivered(deliver(mail))
    assert folders_of(mail) == {".First": 1}
    for sub in ("tmp", "new", "cur"):
        assert os.path.isdir(mail.path(f"{BOX}/{sub}"))


@pytest.mark.parametrize("encoding, directory", [
    pytest.param("utf7", ".Entw&APw-rfe.&AMk-t&AOk-", id="modified UTF-7 (Dovecot's default)"),
    pytest.param("utf8", ".Entwürfe.Été", id="UTF-8 (Dovecot's UTF-8 layout option)"),
])
def test_folder_name_encoding_applies_to_sieve_folders(mail, encoding, directory):
    mail.write_config(f"folder_name_encoding = {encoding}\n")
    activate(mail, FILEINTO + 'fileinto :create "Entwürfe.Été";\n')
    delivered(deliver(mail))
    assert folders_of(mail) == {directory: 1}
    activate(mail, FILEINTO + 'fileinto "Entwürfe.Été";\n')  # now it exists: no :create needed
    delivered(deliver(mail))
    assert folders_of(mail)[directory] == 2


def test_a_body_test_reads_the_message_in_tmp(mail):
    activate(mail, 'require ["body", "fileinto"];\nif body :contains "body line" { fileinto "A"; }\n')
    make_folder(mail, ".A")
    delivered(deliver(mail))
    assert folders_of(mail) == {".A": 1}
