"""Locked, truncate-on-failure delivery of one message to an mbox file.

As Postfix's virtual(8) for a result without a trailing `/`: the file is
opened below a safepath-walked directory with O_APPEND|O_CREAT|O_NOFOLLOW,
mode 0600; locked as virtual_mailbox_lock says (default `fcntl, dotlock`,
Linux's Postfix default: a `NAME.lock` dotlock that Dovecot and mutt honour,
then an fcntl lock on the file itself, an OFD lock: locks.py), each with a bounded wait
(locks.py: mbox_lock_timeout; then defer 4.2.0); then a `From sender date` line, the
delivery headers, the message with mboxrd `>From ` quoting, a final newline
if missing and a blank separator line are appended; fsync, the commit point
(commitpoint.py). On any failure before it the file is truncated back to its
size before the delivery; after it, nothing changes the outcome.

Never: create an mbox where a Maildir (a directory) exists, or deliver to a
file that is not a regular file owned by us; leave a partial message; lock
the mbox with filelock (it may truncate what it locks); hold the lock past
the delivery. Raises DeliveryError subclasses.
"""
import posix
import time

from vdeliver import locks, safepath
from vdeliver.address import quote_local_part, to_bytes
from vdeliver.errors import MailboxUnavailable, UnsafeMailboxPath, from_os_error
from vdeliver.message import HeaderScanner, delivery_headers, write_all

FILE_FLAGS = (posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_NOFOLLOW
              | posix.O_CLOEXEC)
STALE_DOTLOCK_SECONDS = 500  # Postfix's dot_lockfile.c


def deliver(base, relative_path, read_chunk, sender, recipient, original_recipient,
            lock_methods=("fcntl", "dotlock"), lock_timeout=20, headers=True, point=None):
    """Append one message to base/relative_path; return the mbox path relative to the base.

    point: the delivery's commitpoint.CommitPoint (default: the pipe command's).
    Once the appended message is fsynced (point.committed) nothing here raises."""
    from vdeliver import commitpoint
    point = point or commitpoint.PROCESS
    try:
        return deliver_locked(base, relative_path, read_chunk, sender, recipient,
                              original_recipient, lock_methods, lock_timeout, headers, point)
    except BaseException:
        if point.committed:
            return relative_path  # durable: a failure to unlock or close changes nothing
        raise


def deliver_locked(base, relative_path, read_chunk, sender, recipient, original_recipient,
                   lock_methods, lock_timeout, headers, point):
    parent, name = safepath.split_parent(relative_path)
    dir_fd, shown_dir = safepath.open_directory(base, parent)
    shown = f"{shown_dir}/{name}"
    dotlock = None
    try:
        deadline = time.monotonic() + lock_timeout
        if "dotlock" in lock_methods:
            dotlock = acquire_dotlock(dir_fd, name, shown, deadline)
        fd, created = open_mbox(dir_fd, name, shown)
        try:
            if "fcntl" in lock_methods or "flock" in lock_methods:
                acquire_kernel_lock(fd, lock_methods, shown, deadline)
            # A new mbox file is durable only once its directory entry is.
            append(fd, shown, read_chunk, sender, recipient, original_recipient, headers, point,
                   dir_fd if created else None)
        finally:
            posix.close(fd)  # also releases the fcntl/flock lock
    finally:
        if dotlock is not None:
            release_dotlock(dir_fd, dotlock)
        posix.close(dir_fd)
    return relative_path


def open_mbox(dir_fd, name, shown):
    """Return (fd, created): created when this open made the file."""
    created = False
    try:
        try:
            fd = posix.open(name, FILE_FLAGS | posix.O_EXCL, 0o600, dir_fd=dir_fd)
            created = True
        except FileExistsError:
            fd = posix.open(name, FILE_FLAGS & ~posix.O_CREAT, dir_fd=dir_fd)
    except IsADirectoryError:
        raise UnsafeMailboxPath(f"{shown} is a directory (a Maildir?), not an mbox file") from None
    except OSError as err:
        import errno
        if err.errno == errno.ELOOP:
            raise UnsafeMailboxPath(f"{shown} is a symlink") from None
        raise from_os_error(err, f"open {shown}") from None
    st = posix.fstat(fd)
    if (st.st_mode & 0o170000) != 0o100000:
        posix.close(fd)
        raise UnsafeMailboxPath(f"{shown} is not a regular file")
    if st.st_uid != posix.geteuid():
        posix.close(fd)
        raise MailboxUnavailable(f"{shown} is owned by uid {st.st_uid}, not by the delivery user")
    return fd, created


def acquire_dotlock(dir_fd, name, shown, deadline):
    """Create NAME.lock with O_EXCL (dot_lockfile.c); remove one older than 500 s."""
    lock_name = f"{name}.lock"

    def attempt():
        for _ in range(3):  # again at once after a stale lock was removed or vanished
            try:
                fd = posix.open(lock_name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL
                                | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
            except FileExistsError:
                try:
                    age = time.time() - posix.stat(lock_name, dir_fd=dir_fd,
                                                   follow_symlinks=False).st_mtime
                    if age <= STALE_DOTLOCK_SECONDS:
                        return False
                    posix.unlink(lock_name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                continue
            except OSError as err:
                raise from_os_error(err, f"create {shown}.lock") from None
            try:
                posix.write(fd, f"{posix.getpid()}\n".encode())
            except BaseException as error:
                # Made but not written (ENOSPC on a full disk): remove it, or it
                # locks the mbox for STALE_DOTLOCK_SECONDS (tests/faults/test_fault_space.py).
                posix.close(fd)
                release_dotlock(dir_fd, lock_name)
                if isinstance(error, OSError):
                    raise from_os_error(error, f"create {shown}.lock") from None
                raise
            posix.close(fd)
            return True
        return False

    locks.wait(attempt, deadline, f"{shown} is locked ({shown}.lock)")
    return lock_name


def release_dotlock(dir_fd, lock_name):
    try:
        posix.unlink(lock_name, dir_fd=dir_fd)
    except OSError:
        pass


def acquire_kernel_lock(fd, lock_methods, shown, deadline):
    """fcntl: an OFD lock (locks.fcntl_attempt), which conflicts with other programs' fcntl
    locks, spans hosts where POSIX locks do, and excludes the LMTP daemon's own threads (a
    classic lockf() lock is the process's: two threads both got it). flock spans hosts
    only where the filesystem carries it (see README, Several hosts)."""
    import fcntl
    fcntl_attempt = locks.fcntl_attempt(fd)

    def attempt():
        try:
            if "fcntl" in lock_methods and not fcntl_attempt():
                return False
            if "flock" in lock_methods:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return False
        return True

    locks.wait(attempt, deadline, f"{shown} is locked by another process")


def from_line(sender):
    """`From sender  asctime` as Postfix writes it; the null sender is MAILER-DAEMON."""
    name = quote_local_part(sender) if sender else "MAILER-DAEMON"
    return b"From " + to_bytes(name) + b" " + time.asctime().encode() + b"\n"


def append(fd, shown, read_chunk, sender, recipient, original_recipient, headers, point,
           new_file_dir_fd=None):
    """Write and fsync the message (and the directory of a file just created); the
    fsync is the commit point. On any failure before it ends, truncate back (with
    signals held, so the truncation finishes)."""
    original_size = posix.fstat(fd).st_size
    try:
        write_message(fd, read_chunk, sender, recipient, original_recipient, headers)
        point.enter()
        posix.fsync(fd)
        if new_file_dir_fd is not None:
            posix.fsync(new_file_dir_fd)
    except BaseException as error:
        point.hold()
        try:
            posix.ftruncate(fd, original_size)
            posix.fsync(fd)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise from_os_error(error, f"write {shown}") from None
        raise
    point.done()


# Fields a mail reader takes as the mbox's own state, not the message's: Dovecot's mbox save
# and dovecot-lda leave the message's own out. A sender's Content-Length: makes Dovecot and
# mutt take that many bytes as the body, so a forged one hides the next message inside it;
# Status:/X-Status:/X-Keywords: would set flags, X-IMAP/X-IMAPbase/X-UID the UIDs.
STATE_FIELDS = frozenset({b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imap",
                          b"x-imapbase", b"content-length"})


class StateFieldFilter:
    """Drops STATE_FIELDS (with their continuation lines) from the header section of a
    message fed in pieces; the body passes untouched."""

    def __init__(self):
        self.in_header = True
        self.dropping = False

    def feed(self, data, starts_line):
        """(what to write, whether it starts a line). data ends a line unless it is the
        start of a very long one (write_message's 64 KiB pieces)."""
        if not self.in_header:
            return data, starts_line
        out, out_starts_line = [], None
        pieces = data.split(b"\n")
        for index, piece in enumerate(pieces):
            complete = index < len(pieces) - 1
            if not complete and not piece:
                break  # the split's empty tail after data's last newline
            line_start = index > 0 or starts_line
            if line_start:
                if piece in (b"", b"\r"):  # the blank line: the body follows, unfiltered
                    self.in_header = False
                    if out_starts_line is None:
                        out_starts_line = True
                    out.append(b"\n".join(pieces[index:]))
                    break
                if piece[:1] not in (b" ", b"\t"):
                    name = piece.partition(b":")[0].rstrip().lower()
                    self.dropping = b":" in piece and name in STATE_FIELDS
            if self.dropping:
                continue
            if out_starts_line is None:
                out_starts_line = line_start
            out.append(piece + b"\n" if complete else piece)
        return b"".join(out), (starts_line if out_starts_line is None else out_starts_line)


def write_message(fd, read_chunk, sender, recipient, original_recipient, headers=True, state=b""):
    """From_ line, headers (LF: mbox lines end in LF), the fields of `state` (the copy's
    flags, mboxroute.py), the mboxrd-quoted message without its own STATE_FIELDS, blank
    line. headers=False: no delivery headers and no loop check (see message.copy_message)."""
    added = delivery_headers(sender, recipient, original_recipient) if headers else b""
    write_all(fd, from_line(sender) + added + state)
    scanner = HeaderScanner(recipient)
    scanning = headers
    fields = StateFieldFilter()
    carry = b""            # the incomplete last line, not yet written
    carry_is_line_start = True
    last_byte = b"\n"

    def write(data, starts_line):
        data, starts_line = fields.feed(data, starts_line)
        if data:
            write_all(fd, quote_from_lines(data, starts_line))
    chunk = read_chunk()
    while chunk:
        if scanning:
            scanning = scanner.feed(chunk)
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            write(data[:cut], carry_is_line_start)
            last_byte, carry, carry_is_line_start = b"\n", data[cut:], True
        else:
            carry = data
        if len(carry) > 65536:  # bounded memory: write the start of a very long line now
            write(carry, carry_is_line_start)
            last_byte, carry, carry_is_line_start = carry[-1:], b"", False
        chunk = read_chunk()
    if scanning:
        scanner.finish()
    if carry:
        write(carry, carry_is_line_start)
        last_byte = carry[-1:]
    write_all(fd, b"\n\n" if last_byte != b"\n" else b"\n")


def quote_from_lines(data, starts_line=True):
    """mboxrd: a line matching ^>*From gets one more '>'.

    starts_line is False when data continues a line already written: its first
    piece is not the start of a line.
    """
    if b"From " not in data:
        return data
    lines = data.split(b"\n")
    for index in range(0 if starts_line else 1, len(lines)):
        if lines[index].lstrip(b">").startswith(b"From "):
            lines[index] = b">" + lines[index]
    return b"\n".join(lines)


def deliver_copies(base, copies, lock_methods=("fcntl", "dotlock"), lock_timeout=20, point=None):
    """Append one message to several mbox files, all or none (Sieve: INBOX and folders).

    copies: [(relative path, create, write(fd))]: create makes the file and its
    missing directories (fileinto :create; INBOX always, as deliver() does);
    write(fd) appends the From_ line and the message. Every file is locked (in
    path order, so two deliveries never wait on each other in a circle) before
    the first byte is written; all are written, then the commit point: every
    file (and the directory of a file just made) is fsynced. A failure before
    its end truncates every file back to its size before the delivery and
    defers; once point.done() has run, nothing here raises. Returns the paths."""
    from vdeliver import commitpoint
    point = point or commitpoint.PROCESS
    held = []   # [dir_fd, name, shown, dotlock, fd, created, size before]
    deadline = time.monotonic() + lock_timeout
    try:
        for relative_path, create, _write in sorted(copies, key=lambda c: c[0]):
            parent, name = safepath.split_parent(relative_path)
            dir_fd, shown_dir = safepath.open_directory(base, parent, create=create)
            entry = [dir_fd, name, f"{shown_dir}/{name}", None, None, False, 0]
            held.append(entry)
            if "dotlock" in lock_methods:
                entry[3] = acquire_dotlock(dir_fd, name, entry[2], deadline)
            if create:
                entry[4], entry[5] = open_mbox(dir_fd, name, entry[2])
            else:
                entry[4] = open_existing(dir_fd, name, entry[2])
            if "fcntl" in lock_methods or "flock" in lock_methods:
                acquire_kernel_lock(entry[4], lock_methods, entry[2], deadline)
            entry[6] = posix.fstat(entry[4]).st_size
        by_path = {c[0]: c[2] for c in copies}
        append_all(held, [by_path[path] for path, _c, _w in sorted(copies, key=lambda c: c[0])],
                   point)
        return [path for path, _c, _w in copies]
    except BaseException:
        if point.committed:
            return [path for path, _c, _w in copies]
        raise
    finally:
        for dir_fd, _name, _shown, dotlock, fd, _created, _size in held:
            if fd is not None:
                posix.close(fd)
            if dotlock is not None:
                release_dotlock(dir_fd, dotlock)
            posix.close(dir_fd)


def open_existing(dir_fd, name, shown):
    """An mbox that must exist already (fileinto without :create)."""
    try:
        fd = posix.open(name, FILE_FLAGS & ~posix.O_CREAT, dir_fd=dir_fd)
    except FileNotFoundError:
        raise MailboxUnavailable(f"{shown} does not exist") from None
    except IsADirectoryError:
        raise UnsafeMailboxPath(f"{shown} is a directory, not an mbox file") from None
    except OSError as err:
        import errno
        if err.errno == errno.ELOOP:
            raise UnsafeMailboxPath(f"{shown} is a symlink") from None
        raise from_os_error(err, f"open {shown}") from None
    st = posix.fstat(fd)
    if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != posix.geteuid():
        posix.close(fd)
        raise UnsafeMailboxPath(f"{shown} is not a regular file of the delivery user")
    return fd


def append_all(held, writers, point):
    """Write every copy, then fsync them all (the commit point); on a failure before
    the end, truncate every file back, with signals held so the truncation finishes."""
    doing = ""
    try:
        for (_d, _n, shown, _l, fd, _c, _s), write in zip(held, writers):
            doing = f"write {shown}"
            write(fd)
        point.enter()
        for dir_fd, _n, shown, _l, fd, created, _s in held:
            doing = f"fsync {shown}"
            posix.fsync(fd)
            if created:
                posix.fsync(dir_fd)
    except BaseException as error:
        point.hold()
        for _d, _n, _shown, _l, fd, _c, size in held:
            try:
                posix.ftruncate(fd, size)
                posix.fsync(fd)
            except OSError:
                pass
        if isinstance(error, OSError):
            raise from_os_error(error, doing) from None
        raise
    point.done()
