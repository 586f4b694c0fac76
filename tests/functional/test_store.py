"""Mailbox store features through the installed command: mbox, Maildir++ folders, quota."""
import fcntl
import mailbox
import os
import signal
import subprocess
import time

import pytest


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


# --- mbox -------------------------------------------------------------------------------------

MBOX_MESSAGES = [
    b"Subject: one\n\nFrom the start\n>From quoted\nplain\n",
    b"Subject: two \xe9\n\nno final newline",
    b"Subject: three\r\n\r\ncrlf body\r\nFrom x\r\n",
]


def test_mbox_append_parses_back_with_quoting(mail):
    for message in MBOX_MESSAGES:
        result = mail.run("-f", "sender@example.net", "--", "mbox@example.com", stdin=message)
        assert result.code == 0, result
    path = mail.path("example.com/mbox")
    assert os.stat(path).st_uid == mail.user.pw_uid and (os.stat(path).st_mode & 0o777) == 0o600
    box = mailbox.mbox(path, create=False)
    parsed = [box.get_bytes(key) for key in box.keys()]
    assert len(parsed) == 3
    headers = b"Return-Path: <sender@example.net>\nDelivered-To: mbox@example.com\n"
    assert parsed[0] == headers + b"Subject: one\n\n>From the start\n>>From quoted\nplain\n"
    assert parsed[1] == headers + b"Subject: two \xe9\n\nno final newline\n"
    assert parsed[2] == headers + b"Subject: three\r\n\r\ncrlf body\r\n>From x\r\n"
    assert box.get_message(box.keys()[0]).get_from().startswith("sender@example.net ")
    data = read(path)
    assert data.startswith(b"From sender@example.net ") and data.endswith(b"\n\n")
    assert "delivered to mbox example.com/mbox" in mail.log_lines()[0]


def test_mbox_leaves_out_the_fields_readers_take_as_the_mboxs_own(mail):
    """A sender's Content-Length: 156 made Dovecot take the next delivery (149 bytes in the
    mbox) as the rest of this one's body: it listed one message of two. Status/X-Status
    would set flags, X-UID/X-IMAPbase the UIDs. They are left out, as dovecot-lda leaves
    them out; the same words in the body stay."""
    first = (b"Subject: A\nContent-Length: 156\nStatus: RO\nX-Status: D\nX-Keywords: $x\n"
             b"X-UID: 7\nX-IMAPbase: 1 99\nX-IMAP: 1 99\ncontent-length :\n 12\nX-Other: y\n"
             b"\nbody A\nContent-Length: 3\nStatus: RO\n")
    assert mail.run("-f", "s@x", "--", "mbox@example.com", stdin=first).code == 0
    assert mail.run("-f", "s@x", "--", "mbox@example.com", stdin=b"Subject: B\n\nbody B\n").code == 0
    box = mailbox.mbox(mail.path("example.com/mbox"), create=False)
    parsed = [box.get_bytes(key) for key in box.keys()]
    headers = b"Return-Path: <s@x>\nDelivered-To: mbox@example.com\n"
    assert parsed == [headers + b"Subject: A\nX-Other: y\n\nbody A\nContent-Length: 3\nStatus: RO\n",
                      headers + b"Subject: B\n\nbody B\n"]


def test_a_delivered_to_folded_over_millions_of_lines_stays_in_bounded_memory(mail):
    """Every folded line of a Delivered-To field was kept for the loop check: 10 MB of
    " a" lines made a 481 MB process (the LMTP daemon's threads, each that much)."""
    message = b"Delivered-To: x@y\n" + b" a\n" * 3_500_000 + b"Subject: big\n\nbody\n"
    # a fresh parent that runs only this delivery and prints its child's peak RSS (KB)
    measure = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode;"
               " print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run(["/usr/bin/python3", "-c", measure,
                           *mail.command("-f", "s@x", "--", "bob@example.com")], input=message,
                          capture_output=True, user=mail.user.pw_uid, group=mail.user.pw_gid,
                          extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"}, timeout=120)
    code, peak = proc.stdout.split()[-2:]
    assert code == b"0", proc
    assert int(peak) < 100_000, proc  # it was 481 MB
    assert len(mail.new_files("example.com/bob")) == 1


def test_mbox_null_sender_is_mailer_daemon_in_from_line(mail):
    assert mail.run("-f", "", "--", "mbox@example.com").code == 0
    assert read(mail.path("example.com/mbox")).startswith(b"From MAILER-DAEMON ")


def test_mbox_loop_truncates_back(mail):
    assert mail.run("-f", "s@x", "--", "mbox@example.com").code == 0
    before = read(mail.path("example.com/mbox"))
    loop = b"Subject: x\nDelivered-To: mbox@example.com\n\nbody\n"
    result = mail.run("-f", "s@x", "--", "mbox@example.com", stdin=loop)
    assert result.code == 65 and result.stdout.startswith(b"5.4.6")
    assert read(mail.path("example.com/mbox")) == before


@pytest.mark.parametrize("lock", ["dotlock", "fcntl"])
def test_mbox_held_lock_defers_after_timeout(mail, lock):
    mail.write_config("mbox_lock_timeout = 1s\n")
    assert mail.run("-f", "s@x", "--", "mbox@example.com").code == 0
    path = mail.path("example.com/mbox")
    before = read(path)
    holder = None
    if lock == "dotlock":
        open(path + ".lock", "w").close()
    else:
        holder = open(path, "r+b")
        fcntl.lockf(holder, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        result = mail.run("-f", "s@x", "--", "mbox@example.com")
        assert 0.9 < time.monotonic() - started < 10
    finally:
        if holder:
            holder.close()
    assert result.code == 75 and result.stdout.startswith(b"4.2.0 ") and b"locked" in result.log
    assert read(path) == before


def test_stale_dotlock_is_broken(mail):
    assert mail.run("-f", "s@x", "--", "mbox@example.com").code == 0
    lock = mail.path("example.com/mbox.lock")
    open(lock, "w").close()
    os.utime(lock, (time.time() - 600, time.time() - 600))
    assert mail.run("-f", "s@x", "--", "mbox@example.com").code == 0
    assert len(mailbox.mbox(mail.path("example.com/mbox"))) == 2
    assert not os.path.exists(lock)


def test_mbox_where_a_maildir_is_and_the_reverse(mail):
    os.makedirs(mail.path("example.com/mbox/new"))
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
    result = mail.run("-f", "s@x", "--", "mbox@example.com")
    assert result.code == 75 and b"is a directory" in result.log
    with open(mail.path("example.com/bob"), "w") as fh:
        fh.write("a file where a Maildir belongs\n")
    result = mail.run("-f", "s@x", "--", "bob@example.com")
    assert result.code == 75 and b"not a directory" in result.log
    assert read(mail.path("example.com/bob")) == b"a file where a Maildir belongs\n"


def test_mbox_symlink_refused(mail):
    os.makedirs(mail.path("example.com"))
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
    target = os.path.join(mail.top, "target")
    open(target, "w").close()
    os.chown(target, mail.user.pw_uid, mail.user.pw_gid)
    os.symlink(target, mail.path("example.com/mbox"))
    result = mail.run("-f", "s@x", "--", "mbox@example.com")
    assert result.code == 75 and b"symlink" in result.log
    assert read(target) == b""


def test_kill_9_mid_append_keeps_earlier_messages(mail):
    for number in range(3):
        assert mail.run("-f", "s@x", "--", "mbox@example.com", stdin=b"Subject: %d\n\nok\n" % number).code == 0
    path = mail.path("example.com/mbox")
    proc = mail.popen("-f", "s@x", "--", "mbox@example.com")
    proc.stdin.write(b"Subject: big\n\n" + b"x" * 1_000_000)
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while os.path.getsize(path) < 1000 * 3 + 200_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdin.close()
    box = mailbox.mbox(path)
    subjects = [box.get_message(key)["Subject"] for key in box.keys()]
    assert subjects[:3] == ["0", "1", "2"]
    for key in box.keys()[:3]:
        assert box.get_bytes(key).endswith(b"\n\nok\n")


# --- Maildir++ folders for +extension ---------------------------------------------------------

def make_folder(mail, name):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(mail.path(f"example.com/bob/{name}/{sub}"), exist_ok=True)
    open(mail.path(f"example.com/bob/{name}/maildirfolder"), "w").close()
    for root, dirs, files in os.walk(mail.base):
        for entry in dirs + files:
            os.chown(os.path.join(root, entry), mail.user.pw_uid, mail.user.pw_gid)


def test_extension_goes_to_inbox_by_default(mail):
    make_folder(mail, ".lists")
    assert mail.run("-f", "s@x", "--", "bob+lists@example.com").code == 0
    assert len(mail.new_files("example.com/bob")) == 1
    assert mail.new_files("example.com/bob/.lists") == []


def test_existing_folder_matched_ignoring_case(mail):
    mail.write_config("extension_folder = existing\n")
    make_folder(mail, ".Lists")
    assert mail.run("-f", "s@x", "--", "bob+LISTS@example.com").code == 0
    assert len(mail.new_files("example.com/bob/.Lists")) == 1
    assert mail.new_files("example.com/bob") == []
    assert "delivered to maildir example.com/bob/.Lists/new/" in mail.log_lines()[0]


def test_missing_folder_falls_back_to_inbox_with_a_log_note(mail):
    mail.write_config("extension_folder = existing\n")
    assert mail.run("-f", "s@x", "--", "bob+nosuch@example.com").code == 0
    assert len(mail.new_files("example.com/bob")) == 1
    assert "no folder .nosuch: delivered to INBOX" in mail.log_lines()[0]
    assert not os.path.exists(mail.path("example.com/bob/.nosuch"))


@pytest.mark.parametrize("encoding, directory", [("utf7", ".R&AOk-sum&AOk-"), ("utf8", ".Résumé")])
def test_create_folder_with_encoding(mail, encoding, directory):
    mail.write_config(f"extension_folder = create\nfolder_name_encoding = {encoding}\n")
    assert mail.run("-f", "s@x", "--", "bob+Résumé@example.com").code == 0
    folder = f"example.com/bob/{directory}"
    assert len(mail.new_files(folder)) == 1
    assert os.path.isfile(mail.path(folder + "/maildirfolder"))
    assert sorted(os.listdir(mail.path(folder))) == ["cur", "maildirfolder", "new", "tmp"]
    assert mail.run("-f", "s@x", "--", "bob+RÉSUMÉ@example.com").code == 0
    assert len(mail.new_files(folder)) == 2


@pytest.mark.parametrize("prefix, extension, folder", [
    ("", "inbox", ""), ("", "INBOX", ""), ("", "Inbox.Sub", ".INBOX.Sub"),
    ("INBOX.", "inbox", ""), ("INBOX.", "inbox.Sub", ".Sub"),
], ids=["+inbox", "+INBOX", "+Inbox.Sub: INBOX's child, as Dovecot stores it",
        "Courier namespace: +inbox", "Courier namespace: +inbox.Sub"])
def test_an_inbox_extension_is_the_inbox_or_its_child(mail, prefix, extension, folder):
    """As dovecot-lda -m takes it. `+inbox` made a folder .inbox that Dovecot does not list
    (the mail was invisible), and +inbox.Sub one (.inbox.Sub) it lists but cannot open."""
    mail.write_config("extension_folder = create\n"
                      + (f"imap_namespace_prefix = {prefix}\n" if prefix else ""))
    assert mail.run("-f", "s@x", "--", f"bob+{extension}@example.com").code == 0
    assert len(mail.new_files(f"example.com/bob/{folder}".rstrip("/"))) == 1
    assert sorted(entry for entry in os.listdir(mail.path("example.com/bob"))
                  if entry.startswith(".")) == ([folder] if folder else [])
    assert "delivered to INBOX" not in mail.log_lines()[0]


@pytest.mark.parametrize("extension", [".hidden", "a..b", "a/b", "x\udcff"])  # last: invalid UTF-8
def test_unusable_extension_goes_to_inbox(mail, extension):
    mail.write_config("extension_folder = create\n")
    assert mail.run("-f", "s@x", "--", f"bob+{extension}@example.com").code == 0
    assert len(mail.new_files("example.com/bob")) == 1
    assert [entry for entry in os.listdir(mail.path("example.com/bob"))
            if entry.startswith(".")] == []


# --- quota ------------------------------------------------------------------------------------

def quota_config(mail, extra=""):
    mail.write_table(f"bob@example.com {mail.top}/quota-placeholder\n", os.path.join(mail.top, "unused"))
    with open(os.path.join(mail.top, "quotas"), "w") as fh:
        fh.write("bob@example.com 10000S\nalice@example.com 3C\n")
    os.chmod(os.path.join(mail.top, "quotas"), 0o644)
    mail.write_config(f"virtual_mailbox_quota_maps = texthash:{mail.top}/quotas\n" + extra)


def maildirsize(mail, box="example.com/bob"):
    lines = read(mail.path(f"{box}/maildirsize")).decode().splitlines()
    total_bytes = sum(int(line.split()[0]) for line in lines[1:])
    total_count = sum(int(line.split()[1]) for line in lines[1:])
    return lines[0], total_bytes, total_count


def real_usage(mail, box="example.com/bob"):
    files = mail.new_files(box)
    return sum(os.path.getsize(f) for f in files), len(files)


def message_of(total):
    """A message that is exactly `total` bytes once delivered with sender s@x to bob."""
    headers = len(b"Return-Path: <s@x>\nDelivered-To: bob@example.com\n")
    return b"Subject: q\n\n" + b"x" * (total - headers - len(b"Subject: q\n\n"))


def test_no_quota_configured_touches_no_file(mail):
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    assert not os.path.exists(mail.path("example.com/bob/maildirsize"))


def test_quota_defers_by_default_and_maildirsize_is_exact(mail):
    quota_config(mail)
    for _ in range(4):
        assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2400)).code == 0
    result = mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2400))
    assert result.code == 75 and result.stdout.startswith(b"4.2.2 mailbox full")
    assert mail.tmp_files("example.com/bob") == []
    definition, used, count = maildirsize(mail)
    assert definition == "10000S" and (used, count) == real_usage(mail) == (9600, 4)
    assert "dsn=4.2.2, status=deferred" in mail.log_lines()[-1]


def test_quota_bounce_when_configured(mail):
    quota_config(mail, "quota_exceeded_action = bounce\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(9000)).code == 0
    result = mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2000))
    # the bounce reaches the sender at once: no path, no usage; those go to the log
    assert (result.code, result.stdout) == (69, b"5.2.2 mailbox full")
    assert any(f"dsn=5.2.2, status=bounced (mailbox full: {mail.base}/example.com/bob: " in line
               for line in mail.log_lines()), mail.log_lines()


def test_message_count_limit(mail):
    quota_config(mail)
    for _ in range(3):
        assert mail.run("-f", "s@x", "--", "alice@example.com").code == 0
    result = mail.run("-f", "s@x", "--", "alice@example.com")
    assert result.code == 75 and b"3 of 3 messages" in result.log
    assert result.stdout == b"4.2.2 mailbox full (mailbox example.com/alice)"


@pytest.mark.parametrize("grace, second_ok", [("0", False), ("20%", True), ("500", False), ("1K", True)])
def test_grace_lets_the_last_message_overshoot(mail, grace, second_ok):
    quota_config(mail, f"quota_grace = {grace}\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(9000)).code == 0
    assert (mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2000)).code == 0) == second_ok
    # Once over the limit, grace admits nothing more.
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(100)).code == (75 if second_ok else 0)


def test_reads_padded_courier_lines(mail):
    quota_config(mail)
    os.makedirs(mail.path("example.com/bob/new"))
    for root, dirs, _ in os.walk(mail.base):
        for entry in dirs:
            os.chown(os.path.join(root, entry), mail.user.pw_uid, mail.user.pw_gid)
    path = mail.path("example.com/bob/maildirsize")
    with open(path, "w") as fh:
        fh.write("10000S\n%12s %12s\n" % (9000, 1))
    os.chown(path, mail.user.pw_uid, mail.user.pw_gid)
    result = mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2000))
    assert result.code == 75, "the padded 9000-byte line was not counted"


def test_recalculation_counts_folders_but_not_trash(mail):
    quota_config(mail)
    for box, size in (("", 1000), ("/.Sent", 2000), ("/.Trash", 50000)):
        directory = mail.path(f"example.com/bob{box}/cur")
        os.makedirs(directory)
        with open(os.path.join(directory, f"1.M1P1.host,S={size}:2,S"), "wb") as fh:
            fh.write(b"x" * size)
    os.makedirs(mail.path("example.com/bob/.Sent/new"))
    with open(mail.path("example.com/bob/.Sent/new/2.M2P2.host"), "wb") as fh:
        fh.write(b"y" * 500)  # no ,S=: sized by stat
    for root, dirs, files in os.walk(mail.base):
        for entry in dirs + files:
            os.chown(os.path.join(root, entry), mail.user.pw_uid, mail.user.pw_gid)
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(1000)).code == 0
    assert maildirsize(mail) == ("10000S", 1000 + 2000 + 500 + 1000, 4)


def test_stale_over_quota_file_is_recalculated(mail):
    quota_config(mail)
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(1000)).code == 0
    path = mail.path("example.com/bob/maildirsize")
    with open(path, "a") as fh:
        fh.write("50000 5\n")  # usage that no longer exists (deleted by a client)
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(1000)).code == 0
    assert maildirsize(mail)[1:] == real_usage(mail)


def test_warning_once_per_crossing_and_day(mail):
    quota_config(mail, "quota_warning_thresholds = 50, 90\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(4000)).code == 0
    assert len(mail.new_files("example.com/bob")) == 1
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2000)).code == 0
    files = mail.new_files("example.com/bob")
    warnings = [f for f in files if b"Subject: Your mailbox is" in read(f)]
    assert len(files) == 3 and len(warnings) == 1
    text = read(warnings[0])
    assert b"To: bob@example.com" in text and b"Message-ID: <" in text and b"Date: " in text
    assert "quota warning 50.0% delivered" in mail.log_lines()[-1]
    assert os.path.exists(mail.path("example.com/bob/quotawarn"))
    assert maildirsize(mail)[1:] == real_usage(mail)
    # Crossing 90% within 24 hours: no second warning.
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2000)).code == 0
    assert len([f for f in mail.new_files("example.com/bob") if b"Subject: Your mailbox is" in read(f)]) == 1


def test_warning_template_file(mail):
    template = os.path.join(mail.top, "warn.txt")
    with open(template, "w") as fh:
        fh.write("From: postmaster@example.com\nSubject: Quota {percent}%\n\nHi {recipient}, {used} of {limit}.\n")
    os.chmod(template, 0o644)
    quota_config(mail, f"quota_warning_thresholds = 10\nquota_warning_template = {template}\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com", stdin=message_of(2000)).code == 0
    (warning,) = [f for f in mail.new_files("example.com/bob") if b"Subject: Quota" in read(f)]
    assert b"Hi bob@example.com, 2.0 KB of 9.8 KB." in read(warning)


def test_fifty_concurrent_deliveries_respect_the_quota(mail):
    quota_config(mail)
    procs = [mail.popen("-f", "s@x", "--", "bob@example.com") for _ in range(50)]
    for proc in procs:
        proc.stdin.write(message_of(700))
        proc.stdin.close()
    codes = [proc.wait(timeout=60) for proc in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    assert set(codes) == {0, 75}
    used, count = real_usage(mail)
    assert count == codes.count(0) == 14 and used <= 10000
    assert maildirsize(mail)[1:] == (used, count)


@pytest.mark.parametrize("timeout", ["1s", "3s"])
def test_held_maildirsize_lock_defers_4_2_0_after_quota_lock_timeout(mail, timeout):
    """Another process (a hung delivery, an IMAP server) holds maildirsize.lock: the delivery
    waits quota_lock_timeout, no longer, and defers 4.2.0 with nothing written. Before
    locks.py the flock had no timeout: the delivery hung until time_limit (4.3.0), and an
    LMTP delivery thread for ever."""
    quota_config(mail, f"quota_lock_timeout = {timeout}\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    before = read(mail.path("example.com/bob/maildirsize"))
    holder = os.open(mail.path("example.com/bob/maildirsize.lock"), os.O_RDWR)
    fcntl.lockf(holder, fcntl.LOCK_EX)  # a POSIX lock, as another host holds it (issue 15)
    try:
        started = time.monotonic()
        result = mail.run("-o", "time_limit=30s", "-f", "s@x", "--", "bob@example.com", timeout=60)
        elapsed = time.monotonic() - started
    finally:
        os.close(holder)
    seconds = int(timeout[:-1])
    assert result.code == 75 and result.stdout.startswith(b"4.2.0 "), result
    assert b"maildirsize.lock is locked by another process" in result.log, result
    assert seconds - 0.1 < elapsed < seconds + 5, elapsed
    assert len(mail.new_files("example.com/bob")) == 1 and mail.tmp_files("example.com/bob") == []
    assert read(mail.path("example.com/bob/maildirsize")) == before
    assert "dsn=4.2.0, status=deferred" in mail.log_lines()[-1]
    # the lock released: the next delivery goes through
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
