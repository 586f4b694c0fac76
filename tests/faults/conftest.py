"""Fixtures of the fault tests: faults produced for real, not mocked.

- mail: the functional tests' mail base and runner (tests/functional/conftest.py),
  imported from there, not copied.
- Filesystem: a filesystem of its own (a sparse image on a loop device)
  mounted over mail.base for one test: a small ext4 to fill up (ENOSPC), a
  btrfs with a qgroup limit (EDQUOT), a tmpfs remounted read-only (EROFS).

Mounting needs root and the kernel's loop device, ext4, btrfs (mkfs.btrfs is
Debian's btrfs-progs); outside CI a missing piece skips with the reason, in
CI it fails (support.require).
"""
import errno
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from functional.conftest import mail  # noqa: F401  (the fixture, shared)
from support import require


class Filesystem:
    """A real filesystem mounted over `mountpoint` (owned by `owner`, mode 0700)."""

    def __init__(self, mountpoint, owner):
        self.mountpoint = mountpoint
        self.owner = owner
        self.workdir = tempfile.mkdtemp(prefix="vdeliver-fs-", dir="/var/tmp")
        self.image = os.path.join(self.workdir, "fs.img")
        self.mounted = False
        self.fillers = 0

    def run(self, *command):
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        require(done.returncode == 0, f"{' '.join(command)} failed: {done.stdout.decode(errors='replace').strip()}")

    def make_image(self, size):
        with open(self.image, "wb") as fh:
            fh.truncate(size)

    def mount(self, *command):
        self.run(*command)
        self.mounted = True
        os.chown(self.mountpoint, self.owner.pw_uid, self.owner.pw_gid)
        os.chmod(self.mountpoint, 0o700)

    def ext4(self, size=8 << 20, inodes=None):
        """A small ext4: no blocks reserved for root (-m 0), so full is full for everyone."""
        require(shutil.which("mkfs.ext4"), "needs mkfs.ext4 (e2fsprogs)")
        self.make_image(size)
        self.run("mkfs.ext4", "-q", "-F", "-m", "0", *(["-N", str(inodes)] if inodes else []), self.image)
        self.mount("mount", "-o", "loop,nosuid,nodev", self.image, self.mountpoint)
        return self

    def btrfs_with_quota(self, limit):
        """A btrfs whose top-level subvolume has a qgroup limit: writes past it get EDQUOT.

        (This kernel has no ext4 or tmpfs quota support; btrfs qgroups need no
        quota tools, only btrfs-progs.)
        """
        require(shutil.which("mkfs.btrfs") and shutil.which("btrfs"),
                "needs mkfs.btrfs and btrfs (Debian's btrfs-progs)")
        self.make_image(128 << 20)  # btrfs's minimum; sparse, a few MB on disk
        self.run("mkfs.btrfs", "-q", "-f", self.image)
        self.mount("mount", "-o", "loop,nosuid,nodev", self.image, self.mountpoint)
        self.run("btrfs", "quota", "enable", self.mountpoint)
        self.set_quota(limit)
        return self

    def set_quota(self, limit):
        self.run("btrfs", "qgroup", "limit", str(limit), self.mountpoint)

    def tmpfs(self, size=4 << 20):
        self.mount("mount", "-t", "tmpfs", "-o", f"size={size},nosuid,nodev", "tmpfs", self.mountpoint)
        return self

    def remount_read_only(self):
        self.run("mount", "-o", "remount,ro", self.mountpoint)

    def filler_path(self):
        directory = os.path.join(self.mountpoint, "lost+found")
        if not os.path.isdir(directory):
            directory = self.mountpoint
        self.fillers += 1
        return os.path.join(directory, f".filler{self.fillers}")

    def fill(self, leave=0):
        """Write root-owned data until the filesystem is full, then free `leave` bytes."""
        for _ in range(5):  # delayed allocation may hand back blocks at sync: fill again
            path = self.filler_path()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for chunk in (1 << 20, 4096, 1):
                    data = b"\0" * chunk
                    try:
                        while True:
                            os.write(fd, data)
                    except OSError as err:
                        if err.errno != errno.ENOSPC:
                            raise
                try:
                    os.fsync(fd)
                except OSError:
                    pass
            finally:
                os.close(fd)
            os.sync()
            if os.statvfs(self.mountpoint).f_bavail == 0:
                break
        if leave:
            # Make room by shortening the last filler: the free space is then
            # at least `leave` (whole blocks), less than what the test writes.
            size = os.path.getsize(path)
            os.truncate(path, max(size - leave, 0))
            os.sync()

    def fill_inodes(self):
        """Create empty root-owned files until no inode is left."""
        directory = os.path.join(self.mountpoint, "lost+found", "inodes")
        os.mkdir(directory, 0o700)
        number = 0
        try:
            while True:
                os.close(os.open(os.path.join(directory, str(number)), os.O_WRONLY | os.O_CREAT, 0o600))
                number += 1
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
        os.sync()
        return number

    def free(self):
        """Remove everything fill() and fill_inodes() wrote."""
        for root, _, files in os.walk(self.mountpoint):
            for name in files:
                if name.startswith(".filler") or root.endswith("/lost+found/inodes"):
                    os.unlink(os.path.join(root, name))
        os.sync()

    def free_bytes(self):
        st = os.statvfs(self.mountpoint)
        return st.f_bavail * st.f_frsize

    def unmount(self):
        if self.mounted:
            for _attempt in range(20):
                done = subprocess.run(["umount", self.mountpoint], stderr=subprocess.DEVNULL)
                if done.returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", self.mountpoint])
            self.mounted = False
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def filesystem(mail):
    """Call .ext4(), .btrfs_with_quota() or .tmpfs() on it; unmounted after the test."""
    require(os.geteuid() == 0, "needs root to mount a filesystem")
    fs = Filesystem(mail.base, mail.user)
    try:
        yield fs
    finally:
        fs.unmount()
