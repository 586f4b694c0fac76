"""The installed vdeliver as pipe(8) runs it: bytes on disk, exit codes, status lines, logs."""
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from support import VDELIVER, assert_public, require

HEADERS = b"Return-Path: <sender@example.net>\nDelivered-To: bob@example.com\n"
MESSAGE = b"From: sender@example.net\nSubject: hello\n\nbody line\n"


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_delivers_exact_bytes_with_headers_and_logs(mail):
    result = mail.run("-f", "sender@example.net", "-a", "Bob@Example.com", "--", "bob@example.com",
                      stdin=MESSAGE)
    assert (result.code, result.stdout) == (0, b"")
    (path,) = mail.new_files("example.com/bob")
    assert read(path) == (b"Return-Path: <sender@example.net>\nX-Original-To: Bob@Example.com\n"
                          b"Delivered-To: bob@example.com\n" + MESSAGE)
    assert path.endswith(f",S={os.path.getsize(path)}")
    assert os.stat(path).st_uid == mail.user.pw_uid
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert mail.tmp_files("example.com/bob") == []
    (line,) = mail.log_lines()
    assert " vdeliver/pipe[" in line and "to=<bob@example.com>, orig_to=<Bob@Example.com>" in line
    assert "dsn=2.0.0, status=sent (delivered to maildir example.com/bob/new/" in line


def test_null_sender_and_no_original_recipient(mail):
    assert mail.run("-f", "", "--", "bob@example.com", stdin=MESSAGE).code == 0
    (path,) = mail.new_files("example.com/bob")
    assert read(path) == b"Return-Path: <>\nDelivered-To: bob@example.com\n" + MESSAGE


def test_write_delivery_headers_no_leaves_them_to_pipe_flags(mail):
    """For a master.cf entry with flags=DR (pipe(8) writes Delivered-To and Return-Path and
    checks for the loop): the message alone, no second copy of the headers, no loop check."""
    mail.write_config("write_delivery_headers = no\n")
    stdin = b"Delivered-To: bob@example.com\nReturn-Path: <s@x>\n" + MESSAGE  # as pipe(8) D, R give it
    assert mail.run("-f", "s@x", "-a", "bob@example.com", "--", "bob@example.com", stdin=stdin).code == 0
    (path,) = mail.new_files("example.com/bob")
    assert read(path) == stdin
    assert mail.run("-f", "s@x", "--", "mbox@example.com", stdin=stdin).code == 0
    data = read(mail.path("example.com/mbox"))
    assert data.startswith(b"From s@x ") and data.split(b"\n", 1)[1] == stdin + b"\n"


@pytest.mark.parametrize("message", [
    pytest.param(b"Subject: \xe9t\xe9 \xff\n\n\x00binary\x80\r\nbare\rcr\n", id="8-bit NUL bare CR"),
    pytest.param(b"Subject: crlf\r\n\r\nbody\r\n", id="CRLF"),
    pytest.param(b"Subject: x\n\nno final newline", id="no final newline"),
    pytest.param(b"", id="empty message"),
    pytest.param(b"From someone Mon Jan 1\nSubject: x\n\n>From\n", id="leading From line"),
])
def test_message_bytes_preserved(mail, message):
    assert mail.run("-f", "sender@example.net", "--", "bob@example.com", stdin=message).code == 0
    (path,) = mail.new_files("example.com/bob")
    data = read(path)
    assert data.endswith(message)
    assert data[:len(data) - len(message)].replace(b"\r\n", b"\n") == HEADERS


@pytest.mark.parametrize("recipient, mailbox", [
    pytest.param("bob+tag@example.com", "example.com/bob", id="plus extension"),
    pytest.param("BOB@EXAMPLE.COM", "example.com/bob", id="case folded"),
    pytest.param("anyone@catchall.example", "catchall", id="catch-all"),
])
def test_lookup_order(mail, recipient, mailbox):
    assert mail.run("-f", "s@x", "--", recipient).code == 0
    assert len(mail.new_files(mailbox)) == 1


def test_quoted_local_part_keys_as_virtual8(mail):
    """A local part that needs quotes matches the table's quoted key first, then the bare one."""
    mail.write_table('"john doe"@example.com  example.com/spaced/\n'
                     '"a..b"@example.com      example.com/quoted/\n'
                     'a..b@example.com        example.com/bare/\n'
                     'c..d@example.com        example.com/unquoted/\n')
    assert mail.run("-f", "s x@example.net", "-a", "John Doe@example.com", "--",
                    "John Doe@example.com", stdin=b"Subject: q\n\nbody\n").code == 0
    (spaced,) = mail.new_files("example.com/spaced")
    with open(spaced, "rb") as fh:  # external form in the headers, as Postfix's mail_copy() writes
        assert fh.read() == (b'Return-Path: <"s x"@example.net>\nX-Original-To: "John Doe"@example.com\n'
                             b'Delivered-To: "john doe"@example.com\nSubject: q\n\nbody\n')
    loop = mail.run("-f", "s@x", "--", "john doe@example.com",
                    stdin=b'Delivered-To: "John Doe"@example.com\nSubject: q\n\nbody\n')
    assert (loop.code, loop.stdout[:6]) == (65, b"5.4.6 "), loop
    assert mail.run("-f", "s@x", "--", "a..b+tag@example.com").code == 0
    assert mail.run("-f", "s@x", "--", "c..d@example.com").code == 0
    assert len(mail.new_files("example.com/spaced")) == 1
    assert len(mail.new_files("example.com/quoted")) == 1
    assert len(mail.new_files("example.com/unquoted")) == 1
    assert not os.path.exists(mail.path("example.com/bare"))
    dry = mail.run("-n", "--", "a..b+tag@example.com")
    assert dry.code == 0, dry
    assert (b'lookup keys: "a..b+tag"@example.com, a..b+tag@example.com, "a..b"@example.com, '
            b'a..b@example.com, @example.com\n') in dry.stdout
    assert b'matched key: "a..b"@example.com\n' in dry.stdout


def test_unknown_user_bounces_5_1_1(mail):
    result = mail.run("-f", "s@x", "--", "nobody@example.com")
    assert result.code == 67
    assert result.stdout == b"5.1.1 user unknown: nobody@example.com"  # no newline: pipe(8) would log a space
    assert mail.all_files() == ["mailboxes", "maillog", "vdeliver.cf"]
    assert "dsn=5.1.1, status=bounced (user unknown: nobody@example.com)" in mail.log_lines()[0]


def test_mail_loop_bounces_5_4_6(mail):
    message = b"Received: by x\nDelivered-To: Bob@Example.COM\nSubject: loop\n\nbody\n"
    result = mail.run("-f", "s@x", "--", "bob@example.com", stdin=message)
    assert result.code == 65
    assert result.stdout == b"5.4.6 mail forwarding loop for bob@example.com"  # no mailbox: a bounce
    assert mail.new_files("example.com/bob") == [] and mail.tmp_files("example.com/bob") == []


def test_delivered_to_in_body_is_not_a_loop(mail):
    message = b"Subject: x\n\nDelivered-To: bob@example.com\n"
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message).code == 0


def test_regexp_substitution_cannot_leave_the_base(mail):
    rules = os.path.join(mail.top, "rules")
    mail.write_table("/^(.*)@example\\.net$/ example.net/$1/\n", rules)
    mail.write_config(maps=f"regexp:{rules}")
    assert mail.run("-f", "s@x", "--", "joe@example.net").code == 0
    assert len(mail.new_files("example.net/joe")) == 1
    for evil in ("../../x@example.net", "a/../../b@example.net", "a/../b@example.net"):
        result = mail.run("-f", "s@x", "--", evil)
        assert result.code == 75 and result.stdout.startswith(b"4.3.5 unsafe mailbox path")
    # As virtual(8), regexp: sees the quoted form first ("..", a local part that needs quotes):
    # $1 is `".."`, an ordinary name, not the parent directory.
    assert mail.run("-f", "s@x", "--", "..@example.net").code == 0
    assert sorted(os.listdir(mail.path("example.net"))) == ['".."', "joe"]
    assert sorted(os.listdir(mail.top)) == ["mail", "mailboxes", "maillog", "rules", "vdeliver.cf"]
    assert os.listdir(mail.base) == ["example.net"]


@pytest.mark.parametrize("recipient, reason", [
    pytest.param("abs@example.com", b"4.3.5 unsafe mailbox path", id="absolute result"),
])
def test_results_that_defer(mail, recipient, reason):
    result = mail.run("-f", "s@x", "--", recipient)
    assert result.code == 75 and result.stdout.startswith(reason)
    assert os.listdir(mail.base) == []


@pytest.mark.parametrize("config_text, expected", [
    pytest.param(None, b"4.3.5 mail system configuration error", id="missing config"),
    pytest.param("this is not a config\n", b"4.3.5 mail system configuration error", id="garbled"),
    pytest.param("virtual_mailbox_maps = nosuch:/x\n", b"4.3.5 mail system configuration error", id="unknown table type"),
    pytest.param("virtual_mailbox_maps = texthash:/nonexistent\n", b"4.3.0 temporary lookup failure", id="missing table"),
    pytest.param("virtual_mailbox_maps =\n", b"4.3.5 mail system configuration error", id="no tables"),
    pytest.param("virtual_mailbox_base = relative\n", b"4.3.5", id="relative base"),
    pytest.param("time_limit = never\n", b"4.3.5", id="bad parameter value"),
    pytest.param("virtual_mailbox_mpas = typo\n", b"4.3.5 mail system configuration error", id="unknown parameter"),
])
def test_config_problems_defer(mail, config_text, expected):
    if config_text is None:
        os.unlink(mail.config_path)
    else:
        with open(mail.config_path, "a") as fh:
            fh.write(config_text)
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75, result
    assert result.stdout.startswith(expected) and b"\n" not in result.stdout
    assert_public(result.stdout)
    assert mail.new_files("example.com/bob") == []


@pytest.mark.parametrize("config_text, public, private", [
    pytest.param("virtual_mailbox_maps = nosuch:/x\n", b"4.3.5 mail system configuration error",
                 b"table nosuch:/x: unsupported", id="unknown table type"),
    pytest.param("virtual_mailbox_maps =\n", b"4.3.5 mail system configuration error",
                 b"virtual_mailbox_maps is empty", id="no tables"),
    pytest.param("virtual_mailbox_maps = texthash:/nonexistent\n", b"4.3.0 temporary lookup failure",
                 b"/nonexistent", id="missing table"),
])
def test_the_detail_of_a_deferral_goes_to_the_log_only(mail, config_text, public, private):
    with open(mail.config_path, "a") as fh:
        fh.write(config_text)
    result = mail.run("-i", "4XyZ1", "-f", "s@x", "--", "bob@example.com")
    assert result.stdout == public, result
    assert private not in result.stdout
    (line,) = result.log.splitlines()
    assert b"4XyZ1: to=<bob@example.com>" in line and private in line, line


def test_unreadable_table_defers(mail):
    os.chmod(mail.table_path, 0o600)  # owned by root: vmail cannot read it
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.stdout == b"4.3.0 temporary lookup failure", result
    assert b"Permission denied" in result.log


def test_more_than_one_recipient_defers_with_advice(mail):
    result = mail.run("-f", "s@x", "--", "bob@example.com", "alice@example.com")
    assert result.code == 75
    assert result.stdout.startswith(b"4.3.5 ")
    assert b"vdeliver_destination_recipient_limit = 1" in result.stdout
    assert mail.new_files("example.com/bob") == []


@pytest.mark.parametrize("args", [
    pytest.param(["-x", "bob@example.com"], id="unknown option"),
    pytest.param(["-f"], id="missing value"),
    pytest.param([], id="no recipient"),
])
def test_usage_errors_defer_never_bounce(mail, args):
    result = mail.run(*args)
    assert result.code == 75 and result.stdout.startswith(b"4.3.5 ")


@pytest.mark.parametrize("recipient", ["bob\n@example.com", "bob@example.com\rX", "b\x01b@example.com"])
def test_recipient_with_control_characters_bounces_5_1_3(mail, recipient):
    result = mail.run("-f", "s@x", "--", recipient)
    assert result.code == 67 and result.stdout.startswith(b"5.1.3 ")
    assert os.listdir(mail.base) == []


@pytest.mark.parametrize("original", ["bob\x01@example.com", "bob@example.com\nX-Injected: yes",
                                      "x" * 5000 + "@example.com"])
def test_a_malformed_original_recipient_only_loses_its_header(mail, original):
    """-a only decides X-Original-To: dropped and logged, the message delivered."""
    result = mail.run("-f", "s@x", "-a", original, "--", "bob@example.com")
    assert (result.code, result.stdout) == (0, b""), result
    (path,) = mail.new_files("example.com/bob")
    with open(path, "rb") as fh:
        data = fh.read()
    assert b"X-Original-To" not in data and b"X-Injected" not in data
    assert data.startswith(b"Return-Path: <s@x>\nDelivered-To: bob@example.com\nSubject: test")
    assert b"malformed original recipient" in result.log and b"status=sent" in result.log


def test_as_root_the_maillog_is_never_created_root_owned(mail):
    """A failure by hand as root before privileges drop must not leave a root-owned
    maillog that the delivery user's later lines cannot be appended to."""
    os.unlink(mail.maillog)
    os.chown(mail.base, 0, 0)
    failed = mail.run("-f", "s@x", "--", "bob@example.com", as_root=True)
    assert failed.code == 75, failed
    assert not os.path.exists(mail.maillog)
    os.chown(mail.base, mail.user.pw_uid, mail.user.pw_gid)
    os.chmod(mail.top, 0o777)  # the delivery user may create the maillog in its directory
    try:
        done = mail.run("-f", "s@x", "--", "bob@example.com")
    finally:
        os.chmod(mail.top, 0o755)
    assert done.code == 0, done
    assert os.stat(mail.maillog).st_uid == mail.user.pw_uid
    assert any("status=sent" in line for line in mail.log_lines())


@pytest.mark.parametrize("kind", ["hard link", "fifo"])
def test_as_root_a_maillog_replaced_by_a_link_or_a_fifo_gets_no_write(mail, kind):
    """Run by hand as root, failing before privileges drop (the line is logged as root):
    a maillog the delivery user replaced by a hard link to another file, or by a FIFO,
    is not written (nor blocks the run)."""
    victim = os.path.join(mail.top, "victim")
    with open(victim, "w") as fh:
        fh.write("precious\n")
    os.unlink(mail.maillog)
    if kind == "hard link":
        os.link(victim, mail.maillog)
    else:
        os.mkfifo(mail.maillog, 0o600)
    os.chown(mail.base, 0, 0)
    result = mail.run("-f", "s@x", "--", "bob@example.com", as_root=True, timeout=20)
    assert result.code == 75, result
    with open(victim) as fh:
        assert fh.read() == "precious\n"


def test_a_symlinked_maillog_is_not_followed(mail):
    target = os.path.join(mail.top, "elsewhere.log")
    with open(target, "w"):
        pass
    os.chown(target, mail.user.pw_uid, mail.user.pw_gid)
    os.unlink(mail.maillog)
    os.symlink(target, mail.maillog)
    for as_root in (True, False):
        assert mail.run("-f", "s@x", "--", "bob@example.com", as_root=as_root).code == 0
    assert os.path.getsize(target) == 0


def test_sender_with_newline_never_reaches_a_header(mail):
    result = mail.run("-f", "s@x\nX-Injected: yes", "--", "bob@example.com")
    assert result.code == 65 and result.stdout.startswith(b"5.1.7 ")
    assert mail.new_files("example.com/bob") == []


@pytest.mark.parametrize("link_at", ["example.com", "example.com/bob", "example.com/bob/new", "example.com/bob/tmp"])
def test_symlink_in_mailbox_path_defers_and_writes_nothing(mail, link_at):
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    target = os.path.join(mail.top, "elsewhere")
    os.mkdir(target)
    os.chown(target, mail.user.pw_uid, mail.user.pw_gid)
    os.rename(mail.path(link_at), os.path.join(mail.top, "moved"))
    os.symlink(target, mail.path(link_at))
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75
    assert result.stdout == b"4.3.5 unsafe mailbox path (mailbox example.com/bob)"
    assert link_at.encode() in result.log
    assert os.listdir(target) == []


def test_unwritable_new_directory_defers_naming_the_path(mail):
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    os.chmod(mail.path("example.com/bob/new"), 0o500)
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75
    assert result.stdout == b"4.2.0 mailbox temporarily unavailable (mailbox example.com/bob)"
    assert b"example.com/bob/new" in result.log and b"Permission denied" in result.log
    assert mail.tmp_files("example.com/bob") == []
    assert len(mail.new_files("example.com/bob")) == 1


@pytest.mark.parametrize("mode", [0o777, 0o755])
def test_a_mailbox_owned_by_another_user_defers_even_if_writable(mail, mode):
    os.makedirs(mail.path("example.com/bob/new"))
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
    for sub in ("new", "tmp", "cur", ""):
        os.makedirs(mail.path(f"example.com/bob/{sub}"), exist_ok=True)
        os.chmod(mail.path(f"example.com/bob/{sub}"), 0o777)
    os.chmod(mail.path("example.com/bob"), mode)
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75 and result.stdout.startswith(b"4.2.0 ")
    assert b"(mailbox example.com/bob)" in result.stdout and b"owned by uid 0" in result.log
    assert mail.new_files("example.com/bob") == []


def test_read_only_base_defers(mail):
    os.chmod(mail.base, 0o500)
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75 and result.stdout.startswith(b"4.2.0 ")
    assert mail.base.encode() in result.log and mail.base.encode() not in result.stdout


def test_an_unmounted_base_defers_when_it_must_be_mounted(mail):
    """virtual_mailbox_base_mounted = yes: a plain directory (an unmounted NFS mount point
    looks just like one) defers 4.3.0; the marker file, or a real mount, lets mail in."""
    mail.write_config("virtual_mailbox_base_mounted = yes\n")
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert (result.code, result.stdout) == (75, b"4.3.0 mail store not mounted"), result
    assert b"is not a mount point" in result.log and os.listdir(mail.base) == []
    marker = mail.path(".vdeliver-mounted")
    with open(marker, "w"):
        pass
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    os.unlink(marker)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", mail.base], check=True)
    try:
        os.chown(mail.base, mail.user.pw_uid, mail.user.pw_gid)
        assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
        assert len(mail.new_files("example.com/bob")) == 1
    finally:
        subprocess.run(["umount", mail.base], check=True)


def test_maildir_hostname_names_the_files(mail):
    mail.write_config("maildir_hostname = box/7:a\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    (path,) = mail.new_files("example.com/bob")
    assert os.path.basename(path).split(",S=")[0].endswith(".box\\0577\\072a"), path


def test_world_writable_base_defers(mail):
    os.chmod(mail.base, 0o777)
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75 and b"world-writable" in result.log


def test_forty_concurrent_deliveries_to_one_mailbox(mail):
    procs = []
    for number in range(40):
        proc = mail.popen("-f", "s@x", "--", "bob@example.com")
        procs.append((number, proc))
    for number, proc in procs:
        proc.communicate(b"Subject: %d\n\n" % number + b"x" * 5000 * number + b"\n", timeout=60)
        assert proc.returncode == 0
    files = mail.new_files("example.com/bob")
    assert len(files) == 40 and len({os.path.basename(f) for f in files}) == 40
    subjects = set()
    for path in files:
        data = read(path)
        number = int(data.split(b"Subject: ")[1].split(b"\n")[0])
        assert data.endswith(b"x" * 5000 * number + b"\n")
        assert path.endswith(f",S={len(data)}")
        subjects.add(number)
    assert subjects == set(range(40))
    assert mail.tmp_files("example.com/bob") == []


# On Linux a child's ru_maxrss starts from the high-water mark of the process it was forked
# from, even across execve: forked from pytest, vdeliver would report pytest's size. So a small
# Python forks and execs it, as the delivery user, and reports the child's own peak.
SPAWN_MEASURED = """
import os, sys
uid, gid, stdin_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pid = os.fork()
if pid == 0:
    fd = os.open(stdin_path, os.O_RDONLY)
    os.dup2(fd, 0)
    os.setgroups([]); os.setgid(gid); os.setuid(uid); os.umask(0o077)
    os.execve(sys.argv[4], sys.argv[4:], {"PATH": "/usr/bin:/bin"})
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_large_message_streams_in_bounded_memory(mail):
    big = os.path.join(mail.top, "big")
    line = b"0123456789" * 7 + b"\n"
    with open(big, "wb") as fh:
        fh.write(b"Subject: big\n\n")
        for _ in range(60 * 1024 * 1024 // len(line) + 1):
            fh.write(line)
    size = os.path.getsize(big)
    out = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", SPAWN_MEASURED, str(mail.user.pw_uid),
                          str(mail.user.pw_gid), big] + mail.command("-f", "s@x", "--", "bob@example.com"),
                         capture_output=True, text=True, check=True, cwd="/").stdout.split()
    code, peak_kb = int(out[0]), int(out[1])
    assert code == 0
    (path,) = mail.new_files("example.com/bob")
    assert os.path.getsize(path) == size + len(HEADERS.replace(b"sender@example.net", b"s@x"))
    print(f"60 MB message: peak RSS {peak_kb / 1024:.1f} MB")
    assert peak_kb / 1024 < 48


def test_as_root_it_writes_as_the_owner_of_the_base(mail):
    result = mail.run("-f", "s@x", "--", "bob@example.com", as_root=True)
    assert result.code == 0, result
    (path,) = mail.new_files("example.com/bob")
    for checked in (path, mail.path("example.com"), mail.path("example.com/bob/new")):
        assert os.stat(checked).st_uid == mail.user.pw_uid


def test_as_root_with_a_root_owned_base_defers(mail):
    os.chown(mail.base, 0, 0)
    result = mail.run("-f", "s@x", "--", "bob@example.com", as_root=True)
    assert result.code == 75 and b"refusing to write mail as root" in result.log
    assert result.stdout == b"4.3.5 mail system configuration error"
    assert os.listdir(mail.base) == []


def test_time_limit_defers_and_cleans_up(mail):
    mail.write_config("time_limit = 2s\n")
    proc = mail.popen("-f", "s@x", "--", "bob@example.com")
    proc.stdin.write(b"Subject: slow\n\npartial")
    proc.stdin.flush()
    started = time.monotonic()
    out = proc.stdout.read()  # EOF when vdeliver exits; its stdin stays open
    proc.wait(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 75
    assert out.startswith(b"4.3.0 delivery time limit exceeded")
    assert mail.tmp_files("example.com/bob") == [] and mail.new_files("example.com/bob") == []
    proc.stdin.close()


def test_sigterm_mid_delivery_defers_and_cleans_up(mail):
    proc = mail.popen("-f", "s@x", "--", "bob@example.com")
    proc.stdin.write(b"Subject: x\n\n" + b"y" * 100000)
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while not mail.tmp_files("example.com/bob") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mail.tmp_files("example.com/bob"), "delivery never started"
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read()
    proc.wait(timeout=10)
    proc.stdin.close()
    assert proc.returncode == 75 and out.startswith(b"4.3.0 delivery interrupted")
    assert mail.tmp_files("example.com/bob") == [] and mail.new_files("example.com/bob") == []


def test_dry_run_prints_resolution_and_writes_nothing(mail):
    proc = mail.popen("-n", "Bob+Tag@example.com")  # stdin left open: it must not read it
    out = proc.stdout.read()
    proc.wait(timeout=10)
    proc.stdin.close()
    text = out.decode()
    assert proc.returncode == 0
    assert f"table: texthash:{mail.table_path}" in text
    assert "matched key: bob@example.com" in text
    assert "result: example.com/bob/" in text
    assert f"mailbox: {mail.base}/example.com/bob/" in text
    assert "format: maildir" in text
    assert os.listdir(mail.base) == [] and mail.log_lines() == []


@pytest.mark.parametrize("recipient, code, status", [
    pytest.param("nobody@example.com", 67, "5.1.1", id="unknown"),
    pytest.param("abs@example.com", 75, "4.3.5", id="unsafe result"),
])
def test_dry_run_exits_as_delivery_would(mail, recipient, code, status):
    result = mail.run("-n", recipient, stdin=b"")
    assert result.code == code
    assert result.status_line.splitlines()[-1].startswith(status)
    assert os.listdir(mail.base) == []


def test_python_dash_m_is_the_same_command(mail):
    python = os.path.join(os.path.dirname(mail.command()[0]), "python3")
    proc = subprocess.run([python, "-m", "vdeliver", "-c", mail.config_path, "-f", "s@x", "--",
                           "bob@example.com"], input=MESSAGE, capture_output=True, cwd="/",
                          user=mail.user.pw_uid, group=mail.user.pw_gid, extra_groups=[])
    assert (proc.returncode, proc.stdout) == (0, b"")
    assert read(mail.new_files("example.com/bob")[0]).endswith(MESSAGE)


@pytest.mark.parametrize("broken", [
    pytest.param({"__init__.py": "def (\n"}, id="syntax error"),
    pytest.param({"__init__.py": ""}, id="half-installed package without cli.py"),
])
def test_a_broken_install_defers_never_bounces(mail, broken):
    """The launcher beside a broken vdeliver package (as during a pip upgrade in place):
    Python alone would exit 1, which pipe(8) bounces (5.3.0); the launcher defers."""
    root = os.path.join(mail.top, "broken")
    package = os.path.join(root, "lib", "python%d.%d" % sys.version_info[:2], "site-packages", "vdeliver")
    os.makedirs(package)
    os.makedirs(os.path.join(root, "bin"))
    for name, text in broken.items():
        with open(os.path.join(package, name), "w") as fh:
            fh.write(text)
    launcher = os.path.join(root, "bin", "vdeliver")
    shutil.copy(mail.command()[0], launcher)
    for top, _dirs, files in os.walk(root):
        os.chmod(top, 0o755)
        for name in files:
            os.chmod(os.path.join(top, name), 0o755)
    proc = subprocess.run([launcher, "-c", mail.config_path, "-f", "s@x", "--", "bob@example.com"],
                          input=MESSAGE, capture_output=True, cwd="/", env={"PATH": "/usr/bin:/bin"},
                          user=mail.user.pw_uid, group=mail.user.pw_gid, extra_groups=[])
    assert proc.returncode == 75, proc
    assert proc.stdout.startswith(b"4.3.0 vdeliver cannot start: ") and b"\n" not in proc.stdout, proc
    assert not os.path.exists(mail.path("example.com/bob/new"))


def test_a_launcher_with_no_package_anywhere_defers_once_site_cannot_find_it(mail):
    """The launcher alone (no package beside it, no python3 beside it): it starts itself
    again with site, in /usr/bin/python3, which finds no vdeliver either; that second
    start defers (75) instead of starting a third."""
    require(shutil.which("strace"), "needs strace (scripts/setup-e2e installs it)")
    root = os.path.join(mail.top, "alone")
    os.makedirs(os.path.join(root, "bin"))
    launcher = os.path.join(root, "bin", "vdeliver")
    shutil.copy(mail.command()[0], launcher)
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "bin"), 0o755)
    os.chmod(launcher, 0o755)
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", launcher, "-c",
                           mail.config_path, "-f", "s@x", "--", "bob@example.com"],
                          input=MESSAGE, capture_output=True, cwd="/", env={"PATH": "/usr/bin:/bin"},
                          user=mail.user.pw_uid, group=mail.user.pw_gid, extra_groups=[], timeout=60)
    assert proc.returncode == 75, proc
    assert proc.stdout == b"4.3.0 vdeliver cannot start: ModuleNotFoundError: \"No module named" \
        b" 'vdeliver'\"", proc
    assert proc.stderr.count(b"execve(") == 2, proc.stderr  # the launcher, then python3 -I once
    assert not os.path.exists(mail.path("example.com/bob/new"))


def test_dry_run_shows_mbox_format(mail):
    result = mail.run("-n", "mbox@example.com", stdin=b"")
    assert result.code == 0 and "format: mbox" in result.status_line
    assert os.listdir(mail.base) == []


def test_queue_id_in_the_log_line(mail):
    assert mail.run("-i", "4F2A31C0D5", "-f", "s@x", "--", "bob@example.com").code == 0
    assert mail.run("-i", "4F2A31C0D6", "-f", "s@x", "--", "nobody@example.com").code == 67
    first, second = mail.log_lines()
    assert " vdeliver/pipe[" in first and "]: 4F2A31C0D5: to=<bob@example.com>, " in first
    assert "]: 4F2A31C0D6: to=<nobody@example.com>, " in second


def test_query_through_the_installed_command(mail):
    result = mail.run("-q", "BOB@example.com", f"texthash:{mail.table_path}", config=False)
    assert (result.code, result.stdout) == (0, b"example.com/bob/\n")
    assert mail.run("-q", "nobody@example.com", f"texthash:{mail.table_path}", config=False).code == 1
    trace = mail.run("-q", "bob+x@example.com")
    assert trace.code == 0 and b"example.com/bob/" in trace.stdout


def test_help_and_version(mail):
    assert mail.run("--version").stdout.startswith(b"vdeliver ")
    assert b"usage: vdeliver" in mail.run("-h").stdout


@pytest.mark.parametrize("how", ["bin/vdeliver", "python -m vdeliver"])
def test_a_latin1_lang_changes_no_byte_of_address_path_or_log(mail, latin1_locale, how):
    """pipe(8) exports LANG. Under a Latin-1 one, a Python outside UTF-8 mode reads argv and
    writes paths in Latin-1: `jörg@example.com` was looked up as `jÃ¶rg` and bounced 5.1.1.
    bin/vdeliver starts in UTF-8 mode; `python -m vdeliver` starts again in it."""
    command = None if how == "bin/vdeliver" else [
        os.path.join(os.path.dirname(VDELIVER), "python3"), "-I", "-m", "vdeliver"]
    mail.write_table("jörg@example.com example.com/jörg/\n")
    result = mail.run("-f", "sénder@example.net", "-a", "Jörg@example.com", "--", "jörg@example.com",
                      stdin=MESSAGE, env=latin1_locale, command=command)
    assert (result.code, result.stdout) == (0, b""), result
    (path,) = mail.new_files("example.com/jörg")  # the bytes j\xc3\xb6rg: the table's
    assert os.listdir(mail.base.encode() + b"/example.com") == [b"j\xc3\xb6rg"]
    assert read(path) == ("Return-Path: <sénder@example.net>\nX-Original-To: Jörg@example.com\n"
                          "Delivered-To: jörg@example.com\n").encode() + MESSAGE
    assert "to=<jörg@example.com>, orig_to=<Jörg@example.com>".encode() in result.log, result.log
    unknown = mail.run("--", "jö@example.com", env=latin1_locale, command=command)
    assert (unknown.code, unknown.stdout) == (67, "5.1.1 user unknown: jö@example.com".encode())


@pytest.mark.parametrize("smtputf8_enable, recipient, found", [
    pytest.param("yes", "STRASSE@example.com", "example.com/strasse/", id="yes: full folding, ss"),
    pytest.param("yes", "JÖRG@example.com", "example.com/joerg/", id="yes: UTF-8 folds"),
    pytest.param("no", "STRASSE@example.com", None, id="no: ASCII only, ss is not ß"),
    pytest.param("no", "STRAßE@example.com", "example.com/strasse/", id="no: ASCII folds"),
    pytest.param("no", "JÖRG@example.com", None, id="no: Ö does not fold"),
])
def test_smtputf8_enable_decides_how_the_recipient_folds(mail, smtputf8_enable, recipient, found):
    """As Postfix's casefold() under the same main.cf setting; the texthash cache of one
    setting is never used under the other (both runs see the same cooled-down file)."""
    mail.write_table("straße@example.com example.com/strasse/\njörg@example.com example.com/joerg/\n")
    past = time.time() - 60
    os.utime(mail.table_path, (past, past))  # cool: the cache is written
    other = "no" if smtputf8_enable == "yes" else "yes"
    mail.run("-o", f"smtputf8_enable={other}", "-n", "--", recipient, stdin=b"")
    result = mail.run("-o", f"smtputf8_enable={smtputf8_enable}", "-n", "--", recipient, stdin=b"")
    if found:
        assert result.code == 0 and f"result: {found}\n".encode() in result.stdout, result
    else:
        assert result.code == 67, result
