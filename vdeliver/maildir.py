"""Atomic, durable delivery of one message into a Maildir (maildir(5)).

Steps: walk from virtual_mailbox_base to the mailbox one component at a time
through directory file descriptors (O_NOFOLLOW, created 0700 when missing);
create tmp/NAME with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600; write; fsync;
close and check; link to new/NAME,S=<size> (a fresh name on EEXIST); fsync
new/; unlink tmp/NAME. The message counts as delivered only after the fsync
of new/ (marlam/mpop#8: an unlink may reach the disk before the link).

NAME is `<sec>.M<usec>P<pid>Q<n>R<random hex>.<host>`, host from
gethostname() with `/` -> `\\057` and `:` -> `\\072`; `,S=` is the exact file
size, which Dovecot trusts.

Never: follow a symlink below the base; write outside it; leave a file in
tmp/ or a partial file in new/ on any failure; report success before the
fsyncs. Uses `posix` directly (what `os` wraps) to keep the pipe command's
start-up small. Raises DeliveryError subclasses (errors.from_os_error).
"""
import posix
import time

from vdeliver.errors import MailboxUnavailable, UnsafeMailboxPath, from_os_error

DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
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


def open_base(base):
    """The base itself may be a symlink (the admin chose it); nothing below it may."""
    try:
        fd = posix.open(base, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as err:
        raise from_os_error(err, f"virtual_mailbox_base {base}") from None
    try:
        if posix.fstat(fd).st_mode & 0o002:
            raise MailboxUnavailable(f"virtual_mailbox_base {base} is world-writable")
    except BaseException:
        posix.close(fd)
        raise
    return fd


def open_subdir(parent_fd, name, shown_path, create=True):
    """Open (creating with mode 0700 if missing) one directory below parent_fd."""
    for attempt in (1, 2):
        try:
            return posix.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if create and attempt == 1:
                try:
                    posix.mkdir(name, 0o700, dir_fd=parent_fd)
                except FileExistsError:
                    pass  # a concurrent delivery made it
                except OSError as mkdir_err:
                    raise from_os_error(mkdir_err, f"create {shown_path}") from None
                continue
            raise MailboxUnavailable(f"{shown_path} vanished while being created") from None
        except OSError as err:
            import errno  # only on failure (see errors.from_os_error)
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeMailboxPath(f"{shown_path} is a symlink or not a directory") from None
            raise from_os_error(err, f"open {shown_path}") from None
    raise MailboxUnavailable(f"cannot open {shown_path}")


def open_maildir(base, relative_path):
    """Return (mailbox fd, tmp fd, new fd) for base/relative_path, made if missing."""
    fds = [open_base(base)]
    try:
        shown = base.rstrip("/")
        for part in relative_path.split("/"):
            if part in ("", "."):
                continue
            shown = f"{shown}/{part}"
            fd = open_subdir(fds[-1], part, shown)
            posix.close(fds.pop())
            fds.append(fd)
        for sub in ("tmp", "new", "cur"):
            fds.append(open_subdir(fds[0], sub, f"{shown}/{sub}"))
        posix.close(fds.pop())  # cur/: only made, never written by a delivery agent
        return fds[0], fds[1], fds[2], shown
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


def deliver(base, relative_path, write_message):
    """Deliver one message; write_message(fd) writes it and returns its size.

    Returns the path of the new file relative to the base. On any exception
    nothing is left in tmp/ or new/.
    """
    mailbox_fd, tmp_fd, new_fd, shown = open_maildir(base, relative_path)
    name = target = None
    try:
        name, fd = create_tmp_file(tmp_fd, shown)
        size = write_and_close(fd, write_message, f"{shown}/tmp/{name}")
        target = link_into_new(tmp_fd, new_fd, name, size, shown)
        try:
            posix.fsync(new_fd)
        except OSError as err:
            raise from_os_error(err, f"fsync {shown}/new") from None
        remove(tmp_fd, name)
        name = None
        return f"{relative_path.rstrip('/')}/new/{target}"
    except BaseException:
        if target is not None:
            remove(new_fd, target)  # not durable: take it back, Postfix will retry
        if name is not None:
            remove(tmp_fd, name)
        raise
    finally:
        for fd in (mailbox_fd, tmp_fd, new_fd):
            posix.close(fd)


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
