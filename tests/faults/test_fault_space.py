"""Out of space, for real: a full ext4 (ENOSPC), a btrfs qgroup limit (EDQUOT), RLIMIT_FSIZE (EFBIG).

The mail base is a filesystem of its own (conftest.Filesystem), filled by
root to the brim. Every delivery must defer (75) with the status README
gives: 4.3.1 for a full disk, 4.2.2 for a full mailbox; leave no file in
tmp/, nothing new in new/, an mbox exactly as it was; and the first delivery
after space returns must succeed with the exact bytes.

Found here: on a full disk the mbox dotlock was created but its pid could
not be written, and the lock file was left behind, locking the mbox for
500 s; mbox.acquire_dotlock now removes it.
"""
import mailbox
import os
import resource

import pytest

from outcomes import (assert_bounced, assert_deferred, delivered, maildir_state, message, read,
                      regular_files, run_as_pipe)

SENDER = "s@example.net"
MESSAGES = [pytest.param(b"", id="empty message"), pytest.param(message(300), id="300 bytes"),
            pytest.param(message(1 << 20), id="1 MB")]


def deliver(mail, recipient, text, *options):
    return mail.run(*options, "-f", SENDER, "--", recipient, stdin=text)


@pytest.mark.parametrize("recipient, box", [
    pytest.param("bob@example.com", "example.com/bob", id="existing Maildir"),
    pytest.param("alice@example.com", "example.com/alice", id="new Maildir in an existing domain"),
    pytest.param("x@catchall.example", "catchall", id="new domain directory"),
])
def test_full_disk_defers_4_3_1_every_time_then_delivers(mail, filesystem, recipient, box):
    filesystem.ext4()
    assert deliver(mail, "bob@example.com", message(100)).code == 0  # example.com/bob exists
    before = regular_files(mail.base)
    old = set(mail.new_files(box))
    filesystem.fill()
    assert filesystem.free_bytes() == 0
    for text in (param.values[0] for param in MESSAGES):
        result = deliver(mail, recipient, text)
        assert_deferred(result, "4.3.1", "mail system full", mail.base, "No space left on device")
        assert regular_files(mail.base) == before  # nothing in new/ or tmp/, no partial file
    filesystem.free()
    text = message(5000)
    assert deliver(mail, recipient, text).code == 0
    (path,) = set(mail.new_files(box)) - old
    assert read(path) == delivered(SENDER, recipient, text)
    assert mail.tmp_files(box) == []
    assert "dsn=4.3.1, status=deferred (mail system full: " in mail.log_lines()[1]


@pytest.mark.parametrize("leave", [pytest.param(8 << 10, id="8 KB free"),
                                   pytest.param(200 << 10, id="200 KB free")])
def test_space_runs_out_mid_message(mail, filesystem, leave):
    filesystem.ext4()
    assert deliver(mail, "bob@example.com", message(100)).code == 0
    before = maildir_state(mail, "example.com/bob")
    filesystem.fill(leave=leave)
    free = filesystem.free_bytes()
    assert 0 < free < (1 << 20)
    result = deliver(mail, "bob@example.com", message(2 << 20))
    assert_deferred(result, "4.3.1", "example.com/bob/tmp/", "No space left on device")
    assert maildir_state(mail, "example.com/bob") == before
    assert filesystem.free_bytes() == free  # the partial tmp file's blocks came back
    small = message(free // 2)
    assert deliver(mail, "bob@example.com", small).code == 0
    assert len(mail.new_files("example.com/bob")) == 2


def test_no_inode_left_defers_4_3_1(mail, filesystem):
    filesystem.ext4(inodes=64)
    assert deliver(mail, "bob@example.com", message(100)).code == 0
    before = maildir_state(mail, "example.com/bob")
    assert filesystem.fill_inodes() > 0
    assert_deferred(deliver(mail, "bob@example.com", message(100)), "4.3.1", "example.com/bob/tmp/")
    assert maildir_state(mail, "example.com/bob") == before
    filesystem.free()
    assert deliver(mail, "bob@example.com", message(100)).code == 0


@pytest.mark.parametrize("leave", [pytest.param(0, id="full"), pytest.param(64 << 10, id="64 KB free")])
def test_mbox_on_a_full_disk_is_truncated_back(mail, filesystem, leave):
    filesystem.ext4()
    for number in range(2):
        assert deliver(mail, "mbox@example.com", message(2000, b"%d" % number)).code == 0
    path = mail.path("example.com/mbox")
    before = read(path)
    filesystem.fill(leave=leave)
    result = deliver(mail, "mbox@example.com", message(1 << 20, b"big"))
    assert_deferred(result, "4.3.1", "example.com/mbox", "No space left on device")
    assert read(path) == before
    assert sorted(os.listdir(mail.path("example.com"))) == ["mbox"]  # no mbox.lock left
    filesystem.free()
    assert deliver(mail, "mbox@example.com", message(1 << 20, b"big")).code == 0
    box = mailbox.mbox(path, create=False)
    assert [box.get_message(key)["Subject"] for key in box.keys()] == ["0", "1", "big"]


def test_full_disk_with_a_quota_keeps_maildirsize_exact(mail, filesystem):
    quotas = os.path.join(mail.top, "quotas")
    with open(quotas, "w") as fh:
        fh.write("bob@example.com 10M\n")
    os.chmod(quotas, 0o644)
    mail.write_config(f"virtual_mailbox_quota_maps = texthash:{quotas}\n")
    filesystem.ext4()
    assert deliver(mail, "bob@example.com", message(3000)).code == 0
    filesystem.fill()
    assert_deferred(deliver(mail, "bob@example.com", message(3000)), "4.3.1")
    filesystem.free()
    assert deliver(mail, "bob@example.com", message(4000)).code == 0
    lines = read(mail.path("example.com/bob/maildirsize")).decode().splitlines()
    files = mail.new_files("example.com/bob")
    assert sum(int(line.split()[0]) for line in lines[1:]) == sum(map(os.path.getsize, files))
    assert sum(int(line.split()[1]) for line in lines[1:]) == len(files) == 2


# --- EDQUOT: a quota-limited filesystem -----------------------------------------------------

def test_filesystem_quota_defers_4_2_2_or_bounces_as_configured(mail, filesystem):
    filesystem.btrfs_with_quota("1M")
    assert deliver(mail, "bob@example.com", message(10_000)).code == 0
    before = maildir_state(mail, "example.com/bob")
    result = deliver(mail, "bob@example.com", message(4 << 20))
    assert_deferred(result, "4.2.2", "mailbox full", "example.com/bob/tmp/", "Disk quota exceeded")
    assert maildir_state(mail, "example.com/bob") == before
    bounced = deliver(mail, "bob@example.com", message(4 << 20), "-o", "quota_exceeded_action=bounce")
    assert_bounced(bounced, 69, "5.2.2 mailbox full")
    assert bounced.stdout == b"5.2.2 mailbox full"  # the sender's DSN: the errno and path go to the log
    assert "status=bounced (mailbox full: " in mail.log_lines()[-1]
    assert "Disk quota exceeded" in mail.log_lines()[-1]
    assert maildir_state(mail, "example.com/bob") == before
    filesystem.set_quota("none")
    text = message(4 << 20)
    assert deliver(mail, "bob@example.com", text).code == 0
    new = [p for p in mail.new_files("example.com/bob") if os.path.basename(p) not in before[0]]
    assert [read(p) for p in new] == [delivered(SENDER, "bob@example.com", text)]


# --- EFBIG: a file size limit -------------------------------------------------------------

def test_file_size_limit_defers_4_2_2(mail):
    """RLIMIT_FSIZE with SIGXFSZ ignored (pipe(8)'s children inherit it ignored): EFBIG."""
    assert deliver(mail, "bob@example.com", message(100)).code == 0
    before = maildir_state(mail, "example.com/bob")

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = run_as_pipe(mail, "-f", SENDER, "--", "bob@example.com", stdin=message(1 << 20),
                         preexec_fn=limit_file_size)
    assert_deferred(result, "4.2.2", "mailbox full", "example.com/bob/tmp/", "File too large")
    assert maildir_state(mail, "example.com/bob") == before
