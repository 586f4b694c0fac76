"""LMTP mode under faults and hostile input: the real daemon, real faults, nothing lost.

The pipe-mode fault suite (test_fault_space, _permissions, _crash, _races,
_stdin) and the fuzz suite, over `vdeliver --lmtp` (the Daemon of
tests/functional/test_lmtp.py) as Postfix's lmtp client drives it:

- a full ext4 (ENOSPC) and a read-only tmpfs (EROFS) over the mail base,
  with the DATA spool (an O_TMPFILE file in lmtp_spool_directory, by default
  virtual_mailbox_base) on that filesystem and elsewhere; a mailbox or base
  with the wrong owner or mode; new/ unwritable for one recipient only;
- kill -9 of the daemon at random moments of a 12 MB DATA and its delivery,
  then a restart over the pid file the killed daemon left;
- 200 deliveries at once from 20 sessions, with and without a quota;
- a client that goes away mid-DATA (EOF, no final dot, RST), or while the
  daemon delivers;
- hypothesis: arbitrary message bytes (NUL, bare CR, lines of ".", From_,
  8-bit, no blank line), cut into TCP segments at arbitrary places, and
  hostile RCPT addresses.

What every test holds the daemon to (RFC 2033 4.2, lmtp.py's "Never:"):
after the final dot one reply per accepted recipient, in RCPT order; a 250
only for a copy on disk, byte for byte the message with Return-Path and
Delivered-To prepended; a fault the admin can fix is a 4xx naming the path
and the errno text, never 5xx, never "internal software error" (that is a
bug: errors.internal_error); nothing left in tmp/ and no partial file in new/
(kill -9 excepted for tmp/: maildir(5) readers ignore it); the daemon goes on
serving.

Found here, and fixed: an OSError on the DATA spool itself (ENOSPC writing it,
EROFS or EACCES creating it, with the spool on the mail base as by default)
was answered "421 4.3.0 internal software error" mid-DATA. Now a spool that
cannot be created refuses DATA with errors.from_os_error's reply, and a
write that fails is answered after the final dot, per recipient (452 4.3.1
for a full disk), naming the directory and the errno text.
"""
import collections
import concurrent.futures
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from functional.test_lmtp import daemon, read_until_closed, stuffed  # noqa: F401  (the fixture, shared)
from outcomes import delivered, message, read, regular_files
from support import assert_public, require

SENDER = "s@example.net"
# A reply line: code, enhanced status (RFC 3463), text.
REPLY_TEXT = re.compile(rb"[245]\.\d{1,3}\.\d{1,3} [^\r\n]*")
CHUNK = 1 << 16  # the daemon reads the spool in 64 KiB chunks (spool.CHUNK_SIZE)


# --- helpers ----------------------------------------------------------------------------------

def text_of(size, subject=b"fault"):
    """A message of exactly `size` bytes ending in a newline (DATA can only carry whole lines)."""
    return message(size - 1, subject) + b"\n"


def expected_file(recipient, text, sender=SENDER):
    """The Maildir file for `text` as the LMTP client meant it (message.copy_message): the
    prepended headers end in CRLF when the spooled message's first line does, else LF."""
    first = text[:CHUNK]
    newline = first.find(b"\n")
    if newline > 0 and first[newline - 1:newline] == b"\r":
        return delivered(sender, recipient, b"").replace(b"\n", b"\r\n") + text
    return delivered(sender, recipient, text)


def spool_elsewhere(mail):
    """lmtp_spool_directory on the root filesystem, owned by the delivery user."""
    spool = os.path.join(mail.top, "spool")
    os.mkdir(spool, 0o700)
    os.chown(spool, mail.user.pw_uid, mail.user.pw_gid)
    return f"lmtp_spool_directory = {spool}\n"


def data_replies(lmtp, accepted, text):
    """DATA for `accepted` recipients: the reply for each, in RCPT order. A refused DATA
    (no 354) answers for every recipient, and the message is not sent; a 421 (the daemon
    closes the connection) answers for itself and every recipient after it."""
    lmtp.putcmd("DATA")
    code, line = lmtp.getreply()
    if code != 354:
        return [(code, line)] * accepted
    lmtp.send(stuffed(text) + b".\r\n")
    replies = []
    while len(replies) < accepted:
        replies.append(lmtp.getreply())
        if replies[-1][0] == 421:
            replies += replies[-1:] * (accepted - len(replies))
    return replies


def send_transaction(lmtp, recipients, text):
    """MAIL, RCPTs (each must be accepted), DATA: the DATA replies."""
    assert lmtp.mail(SENDER)[0] == 250
    for recipient in recipients:
        assert lmtp.rcpt(recipient) == (250, b"2.1.5 Ok")
    return data_replies(lmtp, len(recipients), text)


def assert_deferred_reply(mail, reply, *needles, code=None, status=None):
    """A 4xx with an enhanced status and a public text; no bug, no bounce. Each needle
    (a path, an errno text: private detail) is in the daemon's log line, not the reply."""
    number, line = reply
    assert 400 <= number < 500, reply
    assert REPLY_TEXT.fullmatch(line) and line.startswith(b"4."), reply
    assert b"internal software error" not in line, reply
    assert_public(line)
    if code is not None:
        assert number == code, reply
    if status is not None:
        assert line.startswith(status.encode() + b" "), reply
    log = read(mail.maillog)
    for needle in needles:
        assert needle.encode() in line or needle.encode() in log, (reply, needle)


def assert_no_bug_logged(mail):
    """No unexpected exception in the log (read as bytes: it holds 8-bit addresses)."""
    bugs = [line for line in read(mail.maillog).splitlines() if b"internal software error" in line]
    assert bugs == []


def wait_spool_closed(lmtpd, mail):
    """Until the daemon holds no file below the base open: its sessions' spools are closed
    (a session closes its spool only after it has sent 221 to QUIT)."""
    fds = f"/proc/{lmtpd.proc.pid}/fd"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        targets = []
        for fd in os.listdir(fds):
            try:
                targets.append(os.readlink(os.path.join(fds, fd)))
            except OSError:
                pass
        if not any(target.startswith(mail.base + "/") for target in targets):
            return
        time.sleep(0.01)
    raise AssertionError(f"the daemon still holds files below {mail.base} open")


def assert_serving(lmtpd):
    assert lmtpd.proc.poll() is None, "the daemon died"
    lmtp = lmtpd.client()
    assert lmtp.noop()[0] == 250
    lmtp.quit()


def maildir_files(mail, box):
    """(paths in new/, names in tmp/)."""
    return mail.new_files(box), sorted(mail.tmp_files(box))


def make_maildir(mail, box, uid=None, mode=0o700):
    """A Maildir and its parents, owned by uid (default: the delivery user)."""
    uid = mail.user.pw_uid if uid is None else uid
    for sub in ("tmp", "new", "cur"):
        os.makedirs(mail.path(f"{box}/{sub}"), exist_ok=True)
    parts = box.split("/")
    for depth in range(1, len(parts) + 1):
        top = mail.path("/".join(parts[:depth]))
        os.chown(top, uid, uid)
        os.chmod(top, mode)
    for sub in ("tmp", "new", "cur"):
        os.chown(mail.path(f"{box}/{sub}"), uid, uid)
        os.chmod(mail.path(f"{box}/{sub}"), mode)


# --- 1. disk full -----------------------------------------------------------------------------

@pytest.mark.parametrize("spool", [pytest.param("on the base", id="spool on the full mail base"),
                                   pytest.param("elsewhere", id="spool on another filesystem")])
def test_full_disk_gets_452_4_3_1_per_recipient_then_delivers(mail, filesystem, daemon, spool):
    """A full ext4 over the base: after the final dot, one 452 4.3.1 per recipient, whatever
    the message size; nothing lands; once space is back, the same session delivers."""
    filesystem.ext4()
    lmtpd = daemon(spool_elsewhere(mail) if spool == "elsewhere" else "")
    first = lmtpd.client()
    assert send_transaction(first, ["bob@example.com"], text_of(100)) == [
        (250, b"2.0.0 <bob@example.com> delivered")]  # example.com/bob exists; catchall/ does not
    first.quit()
    # A session's spool keeps the blocks of its last message until the next DATA truncates
    # it: that would make room on the "full" disk. This session's spool is closed.
    wait_spool_closed(lmtpd, mail)
    (old,) = mail.new_files("example.com/bob")
    before = regular_files(mail.base)
    filesystem.fill()
    assert filesystem.free_bytes() == 0
    lmtp = lmtpd.client()
    recipients = ["bob@example.com", "x@catchall.example"]
    for text in (b"", text_of(300), text_of(1 << 20)):
        replies = send_transaction(lmtp, recipients, text)
        assert len(replies) == 2
        for reply in replies:
            assert_deferred_reply(mail, reply, mail.base, "No space left on device", code=452, status="4.3.1")
            assert b"mail system full" in reply[1]
        assert regular_files(mail.base) == before  # nothing in new/ or tmp/, no partial file
    filesystem.free()
    text = text_of(5000)
    assert send_transaction(lmtp, recipients, text) == [
        (250, b"2.0.0 <bob@example.com> delivered"), (250, b"2.0.0 <x@catchall.example> delivered")]
    (bob,) = set(mail.new_files("example.com/bob")) - {old}
    (catchall,) = mail.new_files("catchall")
    assert read(bob) == expected_file("bob@example.com", text)
    assert read(catchall) == expected_file("x@catchall.example", text)
    assert mail.tmp_files("example.com/bob") == mail.tmp_files("catchall") == []
    assert any("dsn=4.3.1, status=deferred (mail system full: " in line for line in mail.log_lines())
    assert_no_bug_logged(mail)
    assert_serving(lmtpd)
    lmtp.quit()
    assert lmtpd.stop() == 0


# --- 2. one recipient's fault is that recipient's only ------------------------------------------

@pytest.mark.parametrize("order", [
    pytest.param(["bob@example.com", "alice@example.com"], id="broken one first"),
    pytest.param(["alice@example.com", "bob@example.com"], id="broken one last"),
])
def test_unwritable_new_defers_one_recipient_and_delivers_the_other(mail, daemon, order):
    make_maildir(mail, "example.com/bob")
    make_maildir(mail, "example.com/alice")
    os.chmod(mail.path("example.com/bob/new"), 0o500)
    lmtp = daemon().client()
    text = text_of(2000)
    replies = dict(zip(order, send_transaction(lmtp, order, text)))
    assert_deferred_reply(mail, replies["bob@example.com"], f"{mail.base}/example.com/bob/new",
                          "Permission denied", code=451, status="4.2.0")
    assert replies["alice@example.com"] == (250, b"2.0.0 <alice@example.com> delivered")
    assert maildir_files(mail, "example.com/bob") == ([], [])
    (path,), tmp = maildir_files(mail, "example.com/alice")
    assert tmp == [] and read(path) == expected_file("alice@example.com", text)
    assert lmtp.noop()[0] == 250  # the session goes on
    assert_no_bug_logged(mail)


# --- 3. permissions and a read-only filesystem ---------------------------------------------

ROOT = 0


def break_permissions(mail, filesystem, case):
    """Set up one misconfiguration; return (recipients, words every reply must hold)."""
    base = mail.base
    if case == "read-only filesystem":
        return ["bob@example.com", "alice@example.com"], [base, "Read-only file system"]
    if case == "mailbox owned by root, 0700":
        make_maildir(mail, "example.com/bob")
        for sub in ("", "/tmp", "/new", "/cur"):
            os.chown(mail.path("example.com/bob" + sub), ROOT, ROOT)
        return ["bob@example.com"], [f"{base}/example.com/bob", "Permission denied"]
    if case == "mailbox owned by another user":
        make_maildir(mail, "example.com/bob", mode=0o755)
        for sub in ("", "/tmp", "/new", "/cur"):
            os.chown(mail.path("example.com/bob" + sub), 65534, 65534)  # nobody
        return ["bob@example.com"], [f"{base}/example.com/bob ", "owned by uid 65534"]
    if case == "world-writable base":
        make_maildir(mail, "example.com/bob")
        os.chmod(base, 0o757)
        return ["bob@example.com", "alice@example.com"], [base, "world-writable"]
    if case == "base owned by root, 0700":
        os.chown(base, ROOT, ROOT)
        return ["bob@example.com", "alice@example.com"], [base, "Permission denied"]
    raise AssertionError(case)


@pytest.mark.parametrize("case, spool", [
    pytest.param("read-only filesystem", "elsewhere", id="read-only filesystem, spool elsewhere"),
    pytest.param("read-only filesystem", "on the base", id="read-only filesystem, spool on it"),
    pytest.param("mailbox owned by root, 0700", "on the base", id="mailbox owned by root, 0700"),
    pytest.param("mailbox owned by another user", "on the base", id="mailbox owned by another user"),
    pytest.param("world-writable base", "on the base", id="world-writable base"),
    pytest.param("base owned by root, 0700", "elsewhere", id="base owned by root, spool elsewhere"),
    pytest.param("base owned by root, 0700", "on the base", id="base owned by root, spool in it"),
])
def test_misconfigured_permissions_get_4xx_naming_the_path(mail, filesystem, daemon, case, spool):
    read_only = case == "read-only filesystem"
    if read_only:
        filesystem.tmpfs()
    lmtpd = daemon(spool_elsewhere(mail) if spool == "elsewhere" else "")
    if read_only:
        first = lmtpd.client()
        assert send_transaction(first, ["bob@example.com"], text_of(100))[0][0] == 250
        first.quit()
        wait_spool_closed(lmtpd, mail)  # a file open for writing keeps the remount from working
        filesystem.remount_read_only()
    lmtp = lmtpd.client()
    recipients, words = break_permissions(mail, filesystem, case)
    before = regular_files(mail.top)
    contents = {path: read(os.path.join(mail.top, path)) for path in before if path.startswith("mail/")}
    replies = send_transaction(lmtp, recipients, text_of(3000))
    assert len(replies) == len(recipients)
    for reply in replies:
        assert_deferred_reply(mail, reply, *words)
        if spool == "elsewhere" or not (read_only or case == "base owned by root, 0700"):
            assert reply[0] == 451 and reply[1].startswith(b"4.2.0 "), reply  # as pipe mode
    assert regular_files(mail.top) == before
    for path, data in contents.items():
        assert read(os.path.join(mail.top, path)) == data
    assert_no_bug_logged(mail)
    assert_serving(lmtpd)


# --- 4. kill -9 ---------------------------------------------------------------------------

KILL_RUNS = 30
KILL_SIZE = 12 << 20


def open_data(lmtpd, *recipients):
    """A raw connection through LHLO, MAIL, RCPTs (pipelined) and DATA, up to the 354."""
    sock = socket.create_connection(("127.0.0.1", lmtpd.port), timeout=60)
    sock.sendall(b"LHLO x\r\nMAIL FROM:<" + SENDER.encode() + b">\r\n"
                 + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients) + b"DATA\r\n")
    got = b""
    while b"\r\n354 " not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    assert got.count(b"\n250 2.1.5 Ok\r") == len(recipients), got
    return sock


def read_to_eof(sock):
    rest = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return rest
        rest += chunk


def reset(sock):
    """close() with SO_LINGER {on, 0}: an RST, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_reply_or_eof(sock):
    """The first reply line, or b"" when the connection ends first."""
    got = b""
    try:
        while b"\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                return b""
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return b""
    return got.split(b"\r\n", 1)[0]


def run_and_maybe_kill(lmtpd, wire, delay):
    """One transaction with `wire` as DATA; kill -9 the daemon `delay` seconds after the DATA
    starts (None: no kill). Returns (the client's reply or b"", seconds to the reply)."""
    sock = open_data(lmtpd, "bob@example.com")
    try:
        outcome = {}

        def client():
            started = time.monotonic()
            try:
                sock.sendall(wire)
            except (ConnectionResetError, BrokenPipeError):
                outcome["reply"] = b""
                return
            outcome["reply"] = read_reply_or_eof(sock)
            outcome["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=client)
        thread.start()
        if delay is not None:
            time.sleep(delay)
            lmtpd.proc.send_signal(signal.SIGKILL)
        thread.join(60)
        assert not thread.is_alive()
        return outcome["reply"], outcome.get("seconds")
    finally:
        sock.close()


def test_kill_9_at_random_moments_never_acknowledges_a_message_not_on_disk(mail, daemon):
    text = text_of(KILL_SIZE, b"crash")
    wire = stuffed(text) + b".\r\n"
    expected = expected_file("bob@example.com", text)
    ok = b"250 2.0.0 <bob@example.com> delivered"
    new_directory = mail.path("example.com/bob/new")
    tmp_directory = mail.path("example.com/bob/tmp")

    def check_and_clear_new():
        names = os.listdir(new_directory) if os.path.isdir(new_directory) else []
        for name in names:
            path = os.path.join(new_directory, name)
            assert read(path) == expected, f"partial or altered message in new/: {name}"
            assert name.endswith(f",S={len(expected)}")
            os.unlink(path)
        return len(names)

    def count_and_clear_tmp():
        names = os.listdir(tmp_directory) if os.path.isdir(tmp_directory) else []
        for name in names:
            path = os.path.join(tmp_directory, name)
            assert os.path.getsize(path) <= len(expected)
            os.unlink(path)
        return len(names)

    lmtpd = daemon()
    durations = []
    for _ in range(3):
        reply, seconds = run_and_maybe_kill(lmtpd, wire, None)
        assert reply == ok
        durations.append(seconds)
    assert check_and_clear_new() == 3 and count_and_clear_tmp() == 0
    duration = statistics.median(durations)

    chooser = random.Random(20261125)
    outcomes = {"250": 0, "killed, no message": 0, "killed, message on disk without 250": 0}
    leftovers = 0
    started_all = time.monotonic()
    for run in range(KILL_RUNS):
        reply, _ = run_and_maybe_kill(lmtpd, wire, chooser.uniform(0, 1.2 * duration))
        assert lmtpd.proc.wait(timeout=30) == -signal.SIGKILL
        with open(lmtpd.pid_file) as fh:  # kill -9 leaves the pid file behind
            assert int(fh.read()) == lmtpd.proc.pid
        count = check_and_clear_new()
        leftovers += count_and_clear_tmp()
        assert reply in (ok, b""), f"run {run}: unexpected reply {reply!r}"
        if reply == ok:
            assert count == 1, f"run {run}: 250 sent but {count} messages in new/"
            outcomes["250"] += 1
        else:
            assert count in (0, 1), f"run {run}: {count} messages in new/"
            outcomes["killed, message on disk without 250" if count else "killed, no message"] += 1
        lmtpd = daemon()  # a restart over the stale pid file: the flock decides, not the file
        with open(lmtpd.pid_file) as fh:
            assert int(fh.read()) == lmtpd.proc.pid
    elapsed = time.monotonic() - started_all
    print(f"{KILL_RUNS} kills of the LMTP daemon, median transaction {duration * 1000:.0f} ms,"
          f" {elapsed:.1f} s: {outcomes}; {leftovers} partial files left in tmp/")
    assert outcomes["killed, no message"] >= KILL_RUNS // 5
    assert leftovers >= 1, "no kill landed while a copy was being written: make the message larger"
    # the restarted daemon delivers
    reply, _ = run_and_maybe_kill(lmtpd, wire, None)
    assert reply == ok and check_and_clear_new() == 1
    assert lmtpd.stop() == 0


# --- 5. races -----------------------------------------------------------------------------

SESSIONS, PER_SESSION = 20, 10


def numbered(number):
    head = b"Subject: %d\n\n" % number
    return head + b"x" * (1000 + 97 * number - len(head) - 1) + b"\n"


@pytest.mark.parametrize("quota", [pytest.param(None, id="no quota"),
                                   pytest.param("100M", id="quota that holds them all")])
def test_200_concurrent_lmtp_deliveries_all_arrive_whole(mail, daemon, quota):
    extra = ""
    if quota:
        quotas = os.path.join(mail.top, "quotas")
        with open(quotas, "w") as fh:
            fh.write(f"bob@example.com {quota}\n")
        os.chmod(quotas, 0o644)
        extra = f"virtual_mailbox_quota_maps = texthash:{quotas}\n"
    lmtpd = daemon(extra)
    total = SESSIONS * PER_SESSION
    messages = [numbered(number) for number in range(total)]
    clients = [lmtpd.client() for _ in range(SESSIONS)]
    barrier = threading.Barrier(SESSIONS)

    def session(index):
        lmtp = clients[index]
        barrier.wait()
        replies = []
        for number in range(index * PER_SESSION, (index + 1) * PER_SESSION):
            replies += send_transaction(lmtp, ["bob@example.com"], messages[number])
        lmtp.quit()
        return replies

    with concurrent.futures.ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(session, range(SESSIONS)))
    assert results == [[(250, b"2.0.0 <bob@example.com> delivered")] * PER_SESSION] * SESSIONS
    files = mail.new_files("example.com/bob")
    assert len(files) == total
    assert len({os.path.basename(path) for path in files}) == total
    seen = []
    for path in files:
        data = read(path)
        number = int(data.split(b"Subject: ", 1)[1].split(b"\n", 1)[0])
        assert data == expected_file("bob@example.com", messages[number])
        assert path.endswith(f",S={len(data)}")
        seen.append(number)
    assert sorted(seen) == list(range(total))
    assert mail.tmp_files("example.com/bob") == []
    if quota:
        lines = read(mail.path("example.com/bob/maildirsize")).decode().splitlines()
        used = (sum(int(line.split()[0]) for line in lines[1:]), sum(int(line.split()[1]) for line in lines[1:]))
        assert used == (sum(map(os.path.getsize, files)), total)
    assert_no_bug_logged(mail)
    assert lmtpd.stop() == 0


# --- 6. the client goes away mid-DATA ---------------------------------------------------------

@pytest.mark.parametrize("how", [pytest.param("half", id="EOF half-way through DATA"),
                                 pytest.param("no dot", id="whole message, no final dot, EOF"),
                                 pytest.param("reset", id="RST half-way through DATA")])
def test_client_gone_mid_data_delivers_nothing(mail, daemon, how):
    lmtpd = daemon()
    wire = stuffed(text_of(1 << 20, b"cut")) + b".\r\n"
    sock = open_data(lmtpd, "bob@example.com", "alice@example.com")
    sock.sendall(wire[:-3] if how == "no dot" else wire[:len(wire) // 2])
    if how == "reset":
        reset(sock)
    else:
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b""  # the daemon closes without a reply
        sock.close()
    wait_spool_closed(lmtpd, mail)  # the session is over
    assert lmtpd.proc.poll() is None
    assert regular_files(mail.base) == []  # no Maildir was even made
    lmtp = lmtpd.client()  # the next session is served
    text = text_of(500, b"next")
    assert send_transaction(lmtp, ["bob@example.com"], text) == [(250, b"2.0.0 <bob@example.com> delivered")]
    (path,), tmp = maildir_files(mail, "example.com/bob")
    assert tmp == [] and read(path) == expected_file("bob@example.com", text)
    assert maildir_files(mail, "example.com/alice") == ([], [])
    assert_no_bug_logged(mail)
    lmtp.quit()
    assert lmtpd.stop() == 0


def test_client_gone_while_the_daemon_delivers_loses_nothing(mail, daemon):
    """The final dot arrived and the first copy is being written when the client resets the
    connection: what the daemon delivers it delivers whole (Postfix got no reply and sends
    again: a duplicate at worst, never a loss), and it leaves nothing in tmp/."""
    lmtpd = daemon()
    recipients = ["bob@example.com", "alice@example.com"]
    text = text_of(8 << 20, b"gone")
    sock = open_data(lmtpd, *recipients)
    sock.sendall(stuffed(text) + b".\r\n")
    deadline = time.monotonic() + 10
    while not any(maildir_files(mail, "example.com/bob")) and time.monotonic() < deadline:
        time.sleep(0.0005)
    reset(sock)
    assert time.monotonic() < deadline, "the daemon never began to deliver"
    wait_spool_closed(lmtpd, mail)  # deliveries finished, the session is over
    copies = []
    for recipient in recipients:
        new, tmp = maildir_files(mail, "example.com/" + recipient.split("@")[0])
        assert tmp == [] and len(new) <= 1, (new, tmp)
        for path in new:
            assert read(path) == expected_file(recipient, text)
        copies.append(len(new))
    print(f"RST while delivering: copies delivered (bob, alice): {copies}")
    assert copies[0] == 1  # its delivery had begun: nothing cancels it
    lmtp = lmtpd.client()
    assert send_transaction(lmtp, ["bob@example.com"], text_of(100)) == [
        (250, b"2.0.0 <bob@example.com> delivered")]
    assert_no_bug_logged(mail)
    lmtp.quit()
    assert lmtpd.stop() == 0


# --- 7. hostile input, with hypothesis ----------------------------------------------------------

def fuzz_settings(count):
    """tests/fuzz/conftest.py's `ci` profile: the same examples every run, no deadline."""
    return settings(derandomize=True, max_examples=count, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.function_scoped_fixture])


NASTY_LINES = [b"", b".", b"..", b"...", b". ", b".\r", b"\r.", b"\r", b"\r\r", b"\x00", b"\x00.\x00",
               b"From someone Mon Jan  1 00:00:00 2026", b"From ", b">From x", b"Subject: x",
               b"no colon here", b" folded", b"\xe9t\xe9: \xff\xfe\x80", b"a\rb", b"Delivered-To: bob@example.com",
               b"X-Long: " + b"y" * 3000]
line = st.one_of(st.sampled_from(NASTY_LINES), st.binary(max_size=100).map(lambda b: b.replace(b"\n", b"")))
messages = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda lines, eol: eol.join(lines), st.lists(line, max_size=40),
              st.sampled_from([b"\n", b"\r\n", b"\r\r\n"])),
    st.builds(lambda unit, size: (unit * (size // len(unit) + 1))[:size],  # past the 64 KiB chunks
              st.sampled_from([b".\n", b"..\n", b"\r\n.\r\n", b"\r", b".\r\n", b"x" * 70 + b"\n"]),
              st.integers(60_000, 200_000)))


def as_meant(raw):
    """DATA carries whole lines: the client means `raw` with a final newline."""
    return raw if raw == b"" or raw.endswith(b"\n") else raw + b"\n"


def send_in_pieces(sock, wire, cuts):
    """Send `wire` cut at `cuts` (fractions), pausing between pieces so that the daemon
    reads them apart: a CR, CRLF or CRLF.CRLF split across reads."""
    points = sorted({int(len(wire) * cut) for cut in cuts} | {0, len(wire)})
    for start, end in zip(points, points[1:]):
        sock.sendall(wire[start:end])
        time.sleep(0.002)


def test_any_message_bytes_are_delivered_exactly(mail, daemon):
    lmtpd = daemon()
    outside = {path: read(os.path.join(mail.top, path)) for path in regular_files(mail.top)
               if not path.startswith("mail/") and path not in ("maillog", "lmtp.sock")}

    seen = collections.Counter()

    @fuzz_settings(150)
    @given(raw=messages, cuts=st.lists(st.floats(0, 1), max_size=4))
    def check(raw, cuts):
        text = as_meant(raw)
        lmtp = lmtpd.client()
        assert lmtp.mail(SENDER)[0] == 250 and lmtp.rcpt("bob@example.com")[0] == 250
        lmtp.putcmd("DATA")
        assert lmtp.getreply()[0] == 354
        send_in_pieces(lmtp.sock, stuffed(text) + b".\r\n", cuts)
        code, reply = lmtp.getreply()
        lmtp.quit()
        event(f"{code} {reply[:5].decode()}")
        seen[f"{code} {reply[:5].decode()}"] += 1
        seen[f"{'over' if len(text) > CHUNK else 'under'} 64 KiB"] += 1
        seen["bare CR" if re.search(rb"\r(?!\n)", text) else "no bare CR"] += 1
        seen["dot lines" if re.search(rb"(?m)^\.", text) else "no dot line"] += 1
        seen["CRLF headers" if expected_file("bob@example.com", text).startswith(b"Return-Path: <s@example.net>\r\n")
             else "LF headers"] += 1
        assert REPLY_TEXT.fullmatch(reply), (code, reply)
        new, tmp = maildir_files(mail, "example.com/bob")
        assert tmp == []
        if code == 250:
            assert reply == b"2.0.0 <bob@example.com> delivered"
            (path,) = new
            assert read(path) == expected_file("bob@example.com", text)
            os.unlink(path)
        else:
            # the only refusal this message can earn: its header block says it was here before
            assert (code, reply[:6]) == (554, b"5.4.6 ") and b"delivered-to" in text.lower(), (code, reply)
            assert new == []

    check()
    print(f"message fuzz: {dict(seen)}")
    assert {path: read(os.path.join(mail.top, path)) for path in outside} == outside
    assert_no_bug_logged(mail)
    assert lmtpd.stop() == 0


ADDRESS_TOKENS = [b"bob", b"BOB", b"alice", b"mbox", b"abs", b"x", b".", b"..", b"../", b"/", b"%", b"%2e%2e",
                  b"\\", b'"', b"@", b"+", b"+tag", b"+..", b"+a/b", b" ", b"\t", b"~", b"$1", b"<", b">",
                  b"(", b")", b",", b":", b";", b"[", b"]", b"'", b"*", b"|",
                  b"\xc3\xbc", b"\xe4\xbe\x8b", b"\xe2\x80\xae", b"\xff", b"\xc3",  # UTF-8, invalid UTF-8
                  b"\x00", b"\x01", b"\x1f", b"\x7f", b"\r", b"\x1b[31m"]        # control bytes (no LF)
DOMAINS = [b"example.com", b"EXAMPLE.COM", b"example.net", b"catchall.example", b"", b"..",
           b"example.net/../x", b"[127.0.0.1]", b"\xff.example"]
local_part = st.one_of(st.lists(st.sampled_from(ADDRESS_TOKENS), max_size=12).map(b"".join),
                       st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
                       st.integers(60, 20000).map(lambda n: b"a" * n))
domain = st.one_of(st.sampled_from(DOMAINS), st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")))
hostile_address = st.one_of(
    st.builds(lambda local, dom: local + b"@" + dom, local_part, domain),
    st.builds(lambda local, dom: b'"' + local + b'"@' + dom, local_part, domain),
    st.builds(lambda dom: b"@" + dom, domain),
    local_part,
    st.sampled_from([b"", b"@", b"@@", b"abs@example.com", b"../../x@example.net", b"..@example.net",
                     b"a/../../b@example.net", b"/etc/passwd@example.net", b"%2e%2e/x@example.net",
                     b'"a@b"@example.net', b'"../.."@example.net', b'"x\\"y"@example.net',
                     b"bob@example.com@example.net", b"b\xc3\xbccher@example.com", b"@example.net:bob@x",
                     b"\xc4\xb0@catchall.example", b'"\x00"@catchall.example']))
RCPT_CODES = {250, 550, 501, 451, 452, 500}


def writable_outside(mail):
    """Entries the delivery user owns next to the base's ancestors and in the usual
    world-writable places: where an escape from the base could land."""
    found = set()
    places = {"/", "/tmp", "/var/tmp", "/dev/shm", "/var", os.path.dirname(mail.top)}
    for place in places:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        for name in names:
            path = os.path.join(place, name)
            try:
                if os.lstat(path).st_uid == mail.user.pw_uid:
                    found.add(path)
            except OSError:
                pass
    return found


def test_hostile_rcpt_addresses_never_write_outside_the_base(mail, daemon):
    rules = os.path.join(mail.top, "rules")
    mail.write_table("/^(.*)@example\\.net$/ example.net/$1/\n", rules)
    lmtpd = daemon(f"virtual_mailbox_maps = texthash:{mail.table_path}, regexp:{rules}\n"
                   "extension_folder = create\n")
    top_before = {path: read(os.path.join(mail.top, path)) for path in regular_files(mail.top)
                  if not path.startswith("mail/") and path not in ("maillog", "lmtp.sock")}
    owned_before = writable_outside(mail)
    body = b"Subject: address fuzz\n\nbody\n"

    seen = collections.Counter()

    @fuzz_settings(200)
    @given(addresses=st.lists(hostile_address, min_size=1, max_size=4))
    def check(addresses):
        lmtp = lmtpd.client()
        assert lmtp.mail(SENDER)[0] == 250
        accepted = 0
        for raw in addresses + [b"bob@example.com"]:
            lmtp.send(b"RCPT TO:<" + raw + b">\r\n")
            code, reply = lmtp.getreply()
            event(f"RCPT {code} {reply[:5].decode(errors='replace')}")
            seen[f"RCPT {code} {reply[:5].decode(errors='replace')}"] += 1
            assert code in RCPT_CODES and REPLY_TEXT.fullmatch(reply), (raw, code, reply)
            assert b"internal software error" not in reply, (raw, reply)
            if code == 250:  # no control byte in the path (it ends at the first '>' or later)
                assert not re.search(rb"[\x00-\x1f\x7f]", raw.split(b">")[0]), (raw, "control byte accepted")
                accepted += 1
            if code == 500:  # a line over lmtp.MAX_COMMAND_LINE: one reply, the session goes on
                assert reply.startswith(b"5.5.2 line too long") and len(raw) > 16000, (raw, reply)
        assert code == 250  # bob@example.com, after whatever came before
        for code, reply in data_replies(lmtp, accepted, body):
            event(f"DATA {code} {reply[:5].decode()}")
            seen[f"DATA {code} {reply[:5].decode()}"] += 1
            assert REPLY_TEXT.fullmatch(reply) and b"internal software error" not in reply, (code, reply)
            assert code == 250 or 400 <= code < 500, (addresses, code, reply)
        lmtp.quit()
        # whatever was written is a whole message in a new/ below the base, nothing else
        for root, _, names in os.walk(mail.base):
            for name in names:
                path = os.path.join(root, name)
                if name in ("maildirsize", "maildirfolder"):
                    continue
                assert os.path.basename(root) == "new", path
                data = read(path)
                assert data.startswith(b"Return-Path: <s@example.net>\n") and data.endswith(b"\n" + body), path
        assert {path: read(os.path.join(mail.top, path)) for path in top_before} == top_before
        assert sorted(path for path in regular_files(mail.top) if not path.startswith("mail/")
                      and path not in ("maillog", "lmtp.sock")) == sorted(top_before)
        assert writable_outside(mail) == owned_before
        shutil.rmtree(mail.path("example.net"), ignore_errors=True)

    check()
    print(f"address fuzz: {dict(seen)}")
    assert_no_bug_logged(mail)
    assert lmtpd.stop() == 0


# --- 8. shutdown and the spool under injected syscall faults (strace) ----------------------

def strace(*injections):
    """Run the daemon under strace with these -e inject= rules (counted per thread)."""
    require(shutil.which("strace"), "needs strace")
    rules = []
    for rule in injections:
        rules += ["-e", f"trace={rule.split(':', 1)[0]}", "-e", f"inject={rule}"]
    return ["strace", "-f", "-qq", "-o", "/dev/null", *rules]


def wait_for(predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_delivery_committed_before_shutdown_timeout_gets_its_250_after_it(mail, daemon):
    """SIGTERM while a delivery sits just after its link into new/ (strace holds linkat()
    for 3 s, past lmtp_shutdown_timeout = 1s): it is committed, so its 250 must reach the
    client before the connection closes, and the file is in new/ exactly once."""
    lmtpd = daemon("lmtp_shutdown_timeout = 1s\nlmtp_delivery_threads = 1\n",
                   wrap=strace("linkat:delay_exit=3000000"))
    text = text_of(3000)
    sock = open_data(lmtpd, "bob@example.com")
    sock.sendall(stuffed(text) + b".\r\n")
    wait_for(lambda: mail.new_files("example.com/bob"), "the link into new/")
    os.kill(lmtpd.pid, signal.SIGTERM)
    rest = read_until_closed(sock)
    sock.close()
    assert rest.startswith(b"250 2.0.0 <bob@example.com> delivered\r\n"), rest
    assert lmtpd.stop() == 0
    (path,), tmp = maildir_files(mail, "example.com/bob")
    assert tmp == [] and read(path) == expected_file("bob@example.com", text)
    assert_no_bug_logged(mail)


def test_delivery_not_committed_at_shutdown_timeout_is_abandoned_without_a_reply(mail, daemon):
    """SIGTERM while a delivery is held in the fsync of its tmp file (strace: 4 s, the first
    fsync of the delivery thread), lmtp_shutdown_timeout = 1s: past the timeout the delivery
    is abandoned before its commit point: no reply, no file in new/, its tmp file removed.
    The Maildir exists already: making it would fsync each new directory's parent first."""
    for sub in ("example.com", "example.com/bob", "example.com/bob/tmp", "example.com/bob/new",
                "example.com/bob/cur"):
        os.mkdir(mail.path(sub), 0o700)
        os.chown(mail.path(sub), mail.user.pw_uid, mail.user.pw_gid)
    lmtpd = daemon("lmtp_shutdown_timeout = 1s\nlmtp_delivery_threads = 1\n",
                   wrap=strace("fsync:delay_enter=4000000:when=1"))
    sock = open_data(lmtpd, "bob@example.com")
    sock.sendall(stuffed(text_of(3000)) + b".\r\n")
    wait_for(lambda: mail.tmp_files("example.com/bob"), "the tmp file")
    pid = lmtpd.pid
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    rest = read_until_closed(sock)
    sock.close()
    assert rest == b""
    assert lmtpd.stop() == 0
    assert time.monotonic() - started >= 1  # the delivery had its lmtp_shutdown_timeout
    assert maildir_files(mail, "example.com/bob") == ([], [])
    assert any("dsn=4.3.0, status=deferred (delivery abandoned at shutdown" in line
               for line in mail.log_lines()), mail.log_lines()
    assert_no_bug_logged(mail)


def test_failed_spool_truncate_never_leaks_the_previous_message_into_the_next(mail, daemon):
    """Every ftruncate() of the event loop's thread fails with EIO but the first (the pid
    file's): a long message, then a short one in the same session (the same spool). The
    short one's copy must be exactly the short message, not followed by the long one's tail."""
    lmtpd = daemon(wrap=strace("ftruncate:error=EIO:when=2+"))
    lmtp = lmtpd.client()
    long_text, short_text = text_of(200_000, b"long"), text_of(500, b"short")
    assert send_transaction(lmtp, ["bob@example.com"], long_text) == [
        (250, b"2.0.0 <bob@example.com> delivered")]
    assert send_transaction(lmtp, ["alice@example.com"], short_text) == [
        (250, b"2.0.0 <alice@example.com> delivered")]
    (long_copy,) = mail.new_files("example.com/bob")
    (short_copy,) = mail.new_files("example.com/alice")
    assert read(long_copy) == expected_file("bob@example.com", long_text)
    assert read(short_copy) == expected_file("alice@example.com", short_text)
    lmtp.quit()
    assert_no_bug_logged(mail)
