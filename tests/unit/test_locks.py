"""The locks that must span hosts (issue 15): maildirsize.lock and the mbox's fcntl lock are
POSIX (fcntl) locks, which NFS with NLM/NFSv4 and cluster filesystems carry between hosts,
where flock(2) stays on one host; and they belong to the open file, so the LMTP daemon's
threads exclude each other too."""
import fcntl
import os
import subprocess
import sys
import time

import pytest

from vdeliver import locks, mbox, quota
from vdeliver.errors import MailboxUnavailable

HOLD = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding a classic fcntl (lockf) lock on a file, as a delivery on
    another host does through NLM, or mutt and Dovecot do on an mbox."""
    procs = []

    def hold(path):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline() == b"held\n"
        return proc
    yield hold
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_an_fcntl_lock_held_by_another_process_blocks_the_quota_lock(tmp_path, holder):
    """Before issue 15 quota.py took a flock, which a POSIX lock does not conflict with:
    this delivery would have gone ahead while another host's delivery held the lock."""
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    (tmp_path / "maildirsize.lock").write_bytes(b"")
    proc = holder(tmp_path / "maildirsize.lock")
    root_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    gate = quota.Gate(root_fd, "bob", quota.Limit(10000, 0), 0, False, lock_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(MailboxUnavailable, match="locked by another process"):
            with gate(10):
                pass
        assert 0.4 < time.monotonic() - started < 5
        assert not (tmp_path / "maildirsize").exists()  # nothing read or written under no lock
        proc.stdin.close()
        proc.wait(timeout=10)
        with gate(10):
            pass
        assert (tmp_path / "maildirsize").read_bytes() == b"10000S\n0 0\n10 1\n"
    finally:
        os.close(root_fd)


def test_the_quota_lock_excludes_another_descriptor_of_the_same_process(tmp_path):
    """Two delivery threads of one daemon: a classic fcntl lock would be granted to both
    (it belongs to the process); the OFD lock belongs to the open file."""
    path = tmp_path / "maildirsize.lock"
    path.write_bytes(b"")
    first, second = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    try:
        assert locks.fcntl_attempt(first)()
        assert not locks.fcntl_attempt(second)()
        os.close(first)
        first = None
        assert locks.fcntl_attempt(second)()
    finally:
        for fd in (first, second):
            if fd is not None:
                os.close(fd)


def test_the_ofd_lock_conflicts_with_lockf_in_another_process(tmp_path, holder):
    """And the other way round: a program taking lockf() sees vdeliver's lock."""
    path = tmp_path / "box"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    try:
        assert locks.fcntl_attempt(fd)()
        probe = subprocess.run([sys.executable, "-c", "import fcntl, os, sys\n"
                                "fd = os.open(sys.argv[1], os.O_RDWR)\n"
                                "try:\n fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                                "except OSError:\n sys.exit(3)\n", str(path)], timeout=10)
        assert probe.returncode == 3
    finally:
        os.close(fd)


def test_mbox_fcntl_lock_excludes_another_descriptor_of_the_same_process(tmp_path):
    """virtual_mailbox_lock = fcntl in the LMTP daemon: two threads appending to one mbox.
    Before issue 15 mbox.py used lockf(), granted to both."""
    path = tmp_path / "mbox"
    path.write_bytes(b"")
    first, second = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    try:
        mbox.acquire_kernel_lock(first, ("fcntl",), "mbox", time.monotonic() + 1)
        with pytest.raises(MailboxUnavailable, match="locked by another process"):
            mbox.acquire_kernel_lock(second, ("fcntl",), "mbox", time.monotonic() + 0.3)
    finally:
        os.close(first)
        os.close(second)


def test_mbox_fcntl_lock_waits_for_another_process(tmp_path, holder):
    path = tmp_path / "mbox"
    path.write_bytes(b"")
    holder(path)
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(MailboxUnavailable):
            mbox.acquire_kernel_lock(fd, ("fcntl",), "mbox", time.monotonic() + 0.3)
        assert fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) is None  # flock: a separate world
    finally:
        os.close(fd)
