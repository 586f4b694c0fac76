"""Walk from virtual_mailbox_base to a mailbox through directory file descriptors.

Each component below the base is opened with O_NOFOLLOW|O_DIRECTORY relative
to its parent's descriptor, and created with mode 0700 when missing (then the
parent is fsynced, so the new directory survives a power loss), so a
symlink (or a file where a directory belongs) anywhere below the base stops
the delivery, and nothing can be redirected between check and use.

Never: follow a symlink below the base; accept a world-writable base.
Raises UnsafeMailboxPath, MailboxUnavailable or another DeliveryError
(errors.from_os_error); the caller owns and closes every descriptor returned.
"""
import posix

from vdeliver.errors import MailboxUnavailable, UnsafeMailboxPath, from_os_error

DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC


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
                    # The new entry is durable only once its parent is: the first
                    # message to a new mailbox must survive a power loss too.
                    posix.fsync(parent_fd)
                except FileExistsError:
                    pass  # a concurrent delivery made it
                except OSError as mkdir_err:
                    raise from_os_error(mkdir_err, f"create {shown_path}") from None
                continue
            if not create:
                raise
            raise MailboxUnavailable(f"{shown_path} vanished while being created") from None
        except OSError as err:
            import errno  # only on failure (see errors.from_os_error)
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeMailboxPath(f"{shown_path} is a symlink or not a directory") from None
            raise from_os_error(err, f"open {shown_path}") from None
    raise MailboxUnavailable(f"cannot open {shown_path}")


def open_directory(base, relative_path, create=True):
    """Return (fd, shown path) of base/relative_path, each missing component made 0700."""
    fd = open_base(base)
    shown = base.rstrip("/")
    try:
        for part in relative_path.split("/"):
            if part in ("", "."):
                continue
            shown = f"{shown}/{part}"
            child = open_subdir(fd, part, shown, create)
            posix.close(fd)
            fd = child
    except BaseException:
        posix.close(fd)
        raise
    return fd, shown


def check_mailbox_owner(fd, shown):
    """The mailbox directory must be the delivery user's and not writable by others:
    otherwise another local user could read or plant mail (defer, naming the path)."""
    st = posix.fstat(fd)
    if st.st_uid != posix.geteuid():
        raise MailboxUnavailable(f"{shown} is owned by uid {st.st_uid}, not by the delivery user")
    if st.st_mode & 0o022:
        raise MailboxUnavailable(f"{shown} is writable by group or others")


def split_parent(relative_path):
    """'example.com/bob/mbox' -> ('example.com/bob', 'mbox')."""
    parent, _, name = relative_path.rstrip("/").rpartition("/")
    return parent, name
