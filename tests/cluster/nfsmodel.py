#!/usr/bin/python3
"""nfsmodel.py - a MODEL of NFS's failure modes that matter to a delivery agent, as a FUSE
filesystem (fusepy, Debian's python3-fusepy) passing everything through to a backing
directory. It is not NFS: the test machines' kernel has no NFS client or server. One mount
per delivery host, each its own process, models one NFS client each.

Faults (--faults, comma-separated):
  link-eexist   link(2) into a new/ directory is performed, then answered EEXIST: the
                reply of a link whose first transmission succeeded is lost, the client
                retransmits, and the server (no duplicate request cache hit) says the name
                exists (link(2), BUGS: "the return code may be wrong").
  append-race   a write to a file opened O_APPEND lands at the offset the client's cached
                size says, after a short delay, not at the server's end of file: O_APPEND
                is not atomic on NFS (open(2)); two clients appending at once overwrite
                each other.
Always: POSIX (fcntl) and flock locks are not passed on; the kernel keeps them per mount,
as NFS mounted with `local_lock=all` (or `nolock`) does: locks that do not span hosts.
Inode numbers are the backing files' (use_ino), as NFS file handles are stable.

Usage: /usr/bin/python3 nfsmodel.py BACKING MOUNTPOINT [--faults link-eexist,append-race]
(foreground; unmount with umount MOUNTPOINT or by killing it).
Never: write outside BACKING; follow a symlink out of it (paths are joined below BACKING
and every call passes the caller's flags through, O_NOFOLLOW included).
"""
import argparse
import errno
import os
import sys
import threading
import time

try:
    import fusepy as fuse  # Debian's python3-fusepy
except ImportError:  # PyPI's fusepy
    import fuse


class Model(fuse.Operations):
    # No lock operations: fusepy leaves them unregistered, so the kernel keeps POSIX and
    # flock locks on each mount by itself (NFS with local_lock=all).
    lock = None
    flock = None

    def __init__(self, root, faults):
        self.root = os.path.realpath(root)
        self.faults = set(faults)
        self.append_fds = set()
        self.mutex = threading.Lock()
        self.lies = 0

    def path(self, partial):
        return os.path.join(self.root, partial.lstrip("/"))

    # -- metadata
    def getattr(self, path, fh=None):
        st = os.lstat(self.path(path))
        return {key: getattr(st, key) for key in (
            "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size",
            "st_uid", "st_ino")}

    def access(self, path, mode):
        if not os.access(self.path(path), mode):
            raise fuse.FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self.path(path), mode)

    def chown(self, path, uid, gid):
        os.lchown(self.path(path), uid, gid)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.path(path))

    def readlink(self, path):
        return os.readlink(self.path(path))

    def mkdir(self, path, mode):
        os.mkdir(self.path(path), mode)
        self.own(self.path(path))

    def own(self, real):
        """What an NFS server does with the caller's credentials: the new file is theirs."""
        uid, gid, _ = fuse.fuse_get_context()
        os.lchown(real, uid, gid)

    def rmdir(self, path):
        os.rmdir(self.path(path))

    def unlink(self, path):
        os.unlink(self.path(path))

    def symlink(self, target, source):
        os.symlink(source, self.path(target))
        self.own(self.path(target))

    def rename(self, old, new):
        os.rename(self.path(old), self.path(new))

    def link(self, target, source):
        os.link(self.path(source), self.path(target))
        if "link-eexist" in self.faults and "/new/" in target:
            with self.mutex:
                self.lies += 1
            raise fuse.FuseOSError(errno.EEXIST)  # made, but the reply says otherwise

    def utimens(self, path, times=None):
        os.utime(self.path(path), times, follow_symlinks=False)

    def statfs(self, path):
        st = os.statvfs(self.path(path))
        return {key: getattr(st, key) for key in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
            "f_flag", "f_frsize", "f_namemax")}

    # -- data
    def open(self, path, flags):
        fd = os.open(self.path(path), self.backing_flags(flags))
        self.note_append(fd, flags)
        return fd

    def create(self, path, mode, fi=None):
        # fusepy does not pass create()'s flags: read-write, so that any use works (the
        # kernel has looked the name up first; O_EXCL across mounts is the server's job,
        # and vdeliver's names are unique anyway).
        fd = os.open(self.path(path), os.O_RDWR | os.O_CREAT, mode)
        self.own(self.path(path))
        return fd

    def backing_flags(self, flags):
        if "append-race" in self.faults:
            flags &= ~os.O_APPEND  # the offset the kernel computed from its cached size
        return flags

    def note_append(self, fd, flags):
        if flags & os.O_APPEND:
            with self.mutex:
                self.append_fds.add(fd)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        if "append-race" in self.faults and fh in self.append_fds:
            offset = os.fstat(fh).st_size   # the size as this client last saw it ...
            time.sleep(0.05)                # ... and the write reaches the server later
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self.path(path), length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def release(self, path, fh):
        with self.mutex:
            self.append_fds.discard(fh)
        os.close(fh)
        return 0


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--faults", default="")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - {"link-eexist", "append-race"}
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}")
    fuse.FUSE(Model(args.backing, faults), args.mountpoint, foreground=True, nothreads=False,
              allow_other=True, use_ino=True, default_permissions=True, fsname="nfsmodel")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
