"""Atomic, durable delivery of one message into a Maildir (maildir(5)).

Steps, in a mailbox directory opened by safepath (no symlinks): make tmp/,
new/ and cur/ (0700) when missing; create tmp/NAME with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600; write; fsync;
close and check; link to new/NAME,S=<size> (a fresh name on EEXIST); fsync
new/; unlink tmp/NAME. The message counts as delivered only after the fsync
of new/ (marlam/mpop#8: an unlink may reach the disk before the link). The
link and that fsync are the commit point (commitpoint.py): no signal handler
raises inside it, and once new/ is durable nothing changes the outcome.

NAME is `<sec>.M<usec>P<pid>Q<n>R<random hex>.<host>`, host from
gethostname() with `/` -> `\\057` and `:` -> `\\072`; `,S=` is the exact file
size, which Dovecot trusts.

Never: follow a symlink below the base; write outside it; leave a file in
tmp/ or a partial file in new/ on any failure; report success before the
fsyncs; fail a delivery whose file is durable in new/. Uses `posix` directly (what `os` wraps) to keep the pipe command's
start-up small. Raises DeliveryError subclasses (errors.from_os_error).
"""
import posix
import time

from vdeliver import safepath
from vdeliver.errors import MailboxUnavailable, from_os_error

FILE_FLAGS = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
NAME_ATTEMPTS = 5
_deliveries = 0  # Q<n>: deliveries made by this process


def hostname():
    name = posix.uname().nodename or "localhost"
    return name.replace("/", "\\057").replace(":", "\\072")


def unique_name():
    global _deliveries
    _deliveries += 1
    now = time.time_ns()
    seconds, micro = divmod(now // 1000, 1_000_000)
    return (f"{seconds}.M{micro}P{posix.getpid()}Q{_deliveries}"
            f"R{posix.urandom(8).hex()}.{hostname()}")


def open_maildir_dirs(mailbox_fd, shown):
    """Return (tmp fd, new fd) of the Maildir at mailbox_fd; tmp, new, cur made if missing."""
    fds = []
    try:
        for sub in ("tmp", "new", "cur"):
            fds.append(safepath.open_subdir(mailbox_fd, sub, f"{shown}/{sub}"))
        posix.close(fds.pop())  # cur/: only made, never written by a delivery agent
        return fds[0], fds[1]
    except BaseException:
        for fd in fds:
            posix.close(fd)
        raise


def create_tmp_file(tmp_fd, shown):
    for _ in range(NAME_ATTEMPTS):
        name = unique_name()
        try:
            return name, posix.open(name, FILE_FLAGS, 0o600, dir_fd=tmp_fd)
        except FileExistsError:
            continue
        except OSError as err:
            raise from_os_error(err, f"create {shown}/tmp/{name}") from None
    raise MailboxUnavailable(f"no unique file name in {shown}/tmp")


def link_into_new(tmp_fd, new_fd, name, size, shown):
    """Link tmp/name to new/name,S=size; on EEXIST retry with a fresh name."""
    target = f"{name},S={size}"
    for _ in range(NAME_ATTEMPTS):
        try:
            posix.link(name, target, src_dir_fd=tmp_fd, dst_dir_fd=new_fd)
            return target
        except FileExistsError:
            target = f"{unique_name()},S={size}"
        except OSError as err:
            raise from_os_error(err, f"link into {shown}/new") from None
    raise MailboxUnavailable(f"no unique file name in {shown}/new")


def deliver(mailbox_fd, shown, write_message, gate=None, point=None):
    """Deliver one message into the Maildir open at mailbox_fd (INBOX or a folder).

    write_message(fd) writes the message and returns its size. gate, when
    given, is called as gate(size) and returns a context manager held around
    the commit (the quota check and update); its exit must not raise. point is
    the delivery's commitpoint.CommitPoint (default: the pipe command's).
    Returns the file's name in new/. On any exception nothing is left in tmp/
    or new/; once commit() has linked the file and made new/ durable, nothing
    here raises.
    """
    from vdeliver import commitpoint
    point = point or commitpoint.PROCESS
    tmp_fd, new_fd = open_maildir_dirs(mailbox_fd, shown)
    name = target = None
    try:
        name, fd = create_tmp_file(tmp_fd, shown)
        size = write_and_close(fd, write_message, f"{shown}/tmp/{name}")
        if gate is None:
            target = commit(tmp_fd, new_fd, name, size, shown, point)
        else:
            with gate(size):
                target = commit(tmp_fd, new_fd, name, size, shown, point)
    except BaseException:
        point.hold()  # the cleanup must finish: nothing left in tmp/
        if name is not None:
            remove(tmp_fd, name)
        close_quietly(tmp_fd)
        close_quietly(new_fd)
        if target is not None and point.committed:
            return target  # durable in new/: whatever failed after the commit, it is delivered
        raise
    remove(tmp_fd, name)
    close_quietly(tmp_fd)
    close_quietly(new_fd)
    return target


def commit(tmp_fd, new_fd, name, size, shown, point):
    """The commit point (commitpoint.py): link tmp/name into new/, fsync new/.

    From point.enter() on no signal handler raises; the only failure left is
    a new/ that cannot be made durable, and then the link is taken back
    (marlam/mpop#8: an unlink may reach the disk before the link)."""
    point.enter()
    target = link_into_new(tmp_fd, new_fd, name, size, shown)
    try:
        posix.fsync(new_fd)
    except OSError as err:
        remove(new_fd, target)
        raise from_os_error(err, f"fsync {shown}/new") from None
    point.done()
    return target


def write_and_close(fd, write_message, shown):
    """Write, fsync, close: each checked, the fd closed on every path."""
    try:
        size = write_message(fd)
        posix.fsync(fd)
    except OSError as err:
        close_quietly(fd)
        raise from_os_error(err, f"write {shown}") from None
    except BaseException:
        close_quietly(fd)
        raise
    try:
        posix.close(fd)  # NFS reports some write errors only at close (maildir(5))
    except OSError as err:
        raise from_os_error(err, f"close {shown}") from None
    return size


def close_quietly(fd):
    try:
        posix.close(fd)
    except OSError:
        pass


def remove(dir_fd, name):
    try:
        posix.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
