"""Maildir++ quota: the `maildirsize` file Courier and Dovecot's maildir quota share.

The limit comes from virtual_mailbox_quota_maps (looked up like the
mailbox, by resolve.search(): user+ext@domain, user@domain, @domain; opened
once per configuration in the LMTP daemon) or virtual_mailbox_quota_default,
e.g. `1G,10000C`: bytes (`S`, the default; K/M/G suffixes, powers of 1024)
and/or messages (`C`). No limit configured: no quota file is touched.

maildirsize (README.maildirquota): line 1 is the definition (`10000000S,1000C`),
each further line `<bytes> <count>` (Courier pads them, Dovecot does not; both
are read). It is recalculated (sum of new/ and cur/ of INBOX and every
folder but .Trash, from `,S=` or stat) when missing, >= 5120 bytes, corrupt,
when its definition differs from the limit, or when over quota with more than
one usage line or older than 15 minutes; rewritten via tmp/ + rename.

One delivery: the message is written to tmp/ first, so its size is exact;
then, under an exclusive fcntl lock of `maildirsize.lock` (locks.fcntl_attempt:
an open file description lock, so it spans hosts where POSIX locks do, NFS
with NLM/NFSv4, CephFS, MooseFS, and excludes the daemon's own threads too;
waited for at most quota_lock_timeout, then the delivery defers 4.2.0:
locks.py), usage is read (or recalculated), checked (quota_grace lets the
last message overshoot the byte limit), the message is linked into new/, and
`<size> 1` is appended in one O_APPEND write. The lock makes concurrent
deliveries exact, from one host or several: O_APPEND is not atomic on NFS
(open(2)), so the append is safe only because it is made under the lock. A
separate lock file, never the data file (maildirsize is replaced by rename
when recalculated); before issue 15 this was a flock(2), which is local to
one host on shared filesystems.

Never: let a delivery over the limit (beyond grace) succeed; fail a delivery
that is already durable because the usage line could not be appended (the
next recalculation repairs it). Over quota raises MailboxFull (5.2.2) or
MailboxFullDeferred (4.2.2) as quota_exceeded_action says.
"""
import posix
import time

from vdeliver import address, locks
from vdeliver.errors import ConfigError, MailboxFull, MailboxFullDeferred, from_os_error

MAX_FILE_SIZE = 5120
STALE_SECONDS = 15 * 60
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Limit:
    __slots__ = ("bytes", "messages")

    def __init__(self, bytes_=0, messages=0):
        self.bytes, self.messages = bytes_, messages  # 0: no limit of that kind

    def definition(self):
        """The maildirsize first line, e.g. `1073741824S,10000C`."""
        parts = []
        if self.bytes:
            parts.append(f"{self.bytes}S")
        if self.messages:
            parts.append(f"{self.messages}C")
        return ",".join(parts) or "0S"

    def __bool__(self):
        return bool(self.bytes or self.messages)


def parse_limit(text, where="quota"):
    """`1G,10000C`, `500M`, `1000000S`, `0` -> Limit. ConfigError when garbled."""
    limit = Limit()
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        kind = "S"
        if item[-1] in "SsCc":
            kind, item = item[-1].upper(), item[:-1]
        unit = ""
        if item and item[-1].upper() in UNITS:
            unit, item = item[-1].upper(), item[:-1]
        # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
        if not (item.isascii() and item.isdigit()):
            raise ConfigError(f"{where}: bad quota {text!r} (expected e.g. 1G,10000C)")
        value = int(item) * UNITS[unit]
        if kind == "S":
            limit.bytes = value
        else:
            limit.messages = value
    return limit


def parse_grace(text, limit):
    """quota_grace: bytes (K/M/G) or a percentage of the byte limit."""
    text = text.strip()
    if text.endswith("%"):
        # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
        if not (text[:-1].isascii() and text[:-1].isdigit()):
            raise ConfigError(f"quota_grace = {text}: expected e.g. 10% or 1M")
        return limit.bytes * int(text[:-1]) // 100
    return parse_limit(text or "0", "quota_grace").bytes


def limit_for(recipient, config, tables=None):
    """The recipient's Limit, or None when no quota applies.

    tables: the resolve.Tables the LMTP daemon keeps (its quota maps opened
    once, with the mailbox tables); None (the pipe command): open them now."""
    if config.get_list("virtual_mailbox_quota_maps"):
        from vdeliver import resolve
        folded, delimiter = address.fold(recipient), config.get("recipient_delimiter")
        if tables is None:
            found = resolve.search(resolve.open_maps(config, "virtual_mailbox_quota_maps"),
                                   folded, delimiter)
        else:  # the daemon's delivery threads side by side: each table is safe for that
            found = resolve.search(tables.quota, folded, delimiter)
        if found is not None:
            table, key, value = found
            return parse_limit(value, f"{table.spec} {key}") or None
    default = config.get("virtual_mailbox_quota_default").strip()
    return parse_limit(default, "virtual_mailbox_quota_default") or None


class Usage:
    __slots__ = ("bytes", "messages", "lines", "definition", "mtime", "file_size", "corrupt")

    def __init__(self):
        self.bytes = self.messages = self.lines = self.file_size = 0
        self.definition, self.mtime, self.corrupt = None, 0, False


def read_maildirsize(root_fd):
    """Usage from maildirsize, or None when it does not exist."""
    try:
        fd = posix.open("maildirsize", posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                        dir_fd=root_fd)
    except FileNotFoundError:
        return None
    try:
        st = posix.fstat(fd)
        data = posix.read(fd, MAX_FILE_SIZE)
    finally:
        posix.close(fd)
    usage = Usage()
    usage.file_size, usage.mtime = max(st.st_size, len(data)), st.st_mtime
    if b"\0" in data:
        usage.corrupt = True
        return usage
    lines = data.decode("ascii", "replace").split("\n")
    usage.definition = lines[0].strip()
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        try:
            usage.bytes += int(fields[0])
            usage.messages += int(fields[1]) if len(fields) > 1 else 0
        except ValueError:
            usage.corrupt = True
        usage.lines += 1
    if usage.bytes < 0 or usage.messages < 0:
        usage.corrupt = True
    return usage


def needs_recalculation(usage, limit):
    if usage is None or usage.corrupt or usage.file_size >= MAX_FILE_SIZE:
        return True
    if usage.definition != limit.definition():
        return True
    over = ((limit.bytes and usage.bytes > limit.bytes)
            or (limit.messages and usage.messages > limit.messages))
    return bool(over and (usage.lines > 1 or time.time() - usage.mtime > STALE_SECONDS))


def message_size(name, dir_fd):
    """From `,S=<size>` in the name (Maildir++), else stat."""
    marker = name.find(",S=")
    if marker >= 0:
        digits = name[marker + 3:].split(",")[0].split(":")[0]
        if digits.isascii() and digits.isdigit():  # a file named ',S=²' must not stop deliveries
            return int(digits)
    try:
        return posix.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
    except FileNotFoundError:
        return None  # moved or expunged meanwhile


def count_directory(parent_fd, name):
    """(bytes, messages) in parent/name/new and parent/name/cur ('' = parent itself)."""
    total_bytes = total_messages = 0
    for sub in ("new", "cur"):
        path = f"{name}/{sub}" if name else sub
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW
                            | posix.O_CLOEXEC, dir_fd=parent_fd)
        except OSError:
            continue
        try:
            for entry in posix.listdir(fd):
                if entry.startswith("."):
                    continue
                size = message_size(entry, fd)
                if size is not None:
                    total_bytes += size
                    total_messages += 1
        finally:
            posix.close(fd)
    return total_bytes, total_messages


def recalculate(root_fd, limit, shown):
    """Sum INBOX and folders (not .Trash); rewrite maildirsize via tmp/ + rename."""
    total_bytes, total_messages = count_directory(root_fd, "")
    for entry in posix.listdir(root_fd):
        if entry.startswith(".") and entry not in (".", "..", ".Trash"):
            folder_bytes, folder_messages = count_directory(root_fd, entry)
            total_bytes += folder_bytes
            total_messages += folder_messages
    text = f"{limit.definition()}\n{total_bytes} {total_messages}\n".encode()
    temporary = f"tmp/{time.time_ns()}.P{posix.getpid()}.maildirsize"
    try:
        fd = posix.open(temporary, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL
                        | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=root_fd)
        try:
            posix.write(fd, text)
        finally:
            posix.close(fd)
        posix.rename(temporary, "maildirsize", src_dir_fd=root_fd, dst_dir_fd=root_fd)
    except OSError as err:
        try:
            posix.unlink(temporary, dir_fd=root_fd)
        except OSError:
            pass
        raise from_os_error(err, f"rewrite {shown}/maildirsize") from None
    usage = Usage()
    usage.bytes, usage.messages, usage.lines = total_bytes, total_messages, 1
    usage.definition = limit.definition()
    return usage


class Gate:
    """gate(size) -> context manager around the link into new/ (see maildir.deliver)."""

    def __init__(self, root_fd, shown, limit, grace, bounce, lock_timeout=20):
        self.root_fd, self.shown, self.limit = root_fd, shown, limit
        self.grace, self.bounce = grace, bounce
        self.lock_timeout = lock_timeout  # quota_lock_timeout, seconds
        self.size = 0
        self.copies = 1
        self.before = None  # Usage before this delivery, for the warnings
        self.lock_fd = None

    def __call__(self, size, copies=1, total=None):
        """One message of `size` bytes stored `copies` times (Sieve: INBOX and folders;
        each copy counts, as in Dovecot); total: the bytes of all copies when they
        differ (Sieve's editheader changed some)."""
        self.size, self.copies = size * copies if total is None else total, copies
        return self

    def __enter__(self):
        deadline = time.monotonic() + self.lock_timeout
        try:
            self.lock_fd = posix.open("maildirsize.lock", posix.O_RDWR | posix.O_CREAT
                                      | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600,
                                      dir_fd=self.root_fd)
            # Bounded (locks.py): a process that holds the lock and hangs must not hold
            # this delivery, or an LMTP delivery thread, for ever. Expired: defer 4.2.0.
            locks.wait(locks.fcntl_attempt(self.lock_fd), deadline,
                       f"{self.shown}/maildirsize.lock is locked by another process")
        except OSError as err:
            self.release()
            raise from_os_error(err, f"lock {self.shown}/maildirsize.lock") from None
        except BaseException:
            self.release()
            raise
        try:
            usage = read_maildirsize(self.root_fd)
            if needs_recalculation(usage, self.limit):
                usage = recalculate(self.root_fd, self.limit, self.shown)
            self.before = usage
            self.check(usage)
        except OSError as err:  # maildirsize unreadable, a folder that cannot be listed
            self.release()
            raise from_os_error(err, f"read the quota usage of {self.shown} (maildirsize)") from None
        except BaseException:
            self.release()
            raise
        return self

    def check(self, usage):
        limit, size = self.limit, self.size
        over = ""
        if limit.messages and usage.messages + self.copies > limit.messages:
            over = f"{usage.messages} of {limit.messages} messages"
        elif limit.bytes and usage.bytes + size > limit.bytes and (
                usage.bytes >= limit.bytes or usage.bytes + size > limit.bytes + self.grace):
            over = f"{usage.bytes} + {size} bytes over the limit of {limit.bytes}"
        if over:
            error = MailboxFull if self.bounce else MailboxFullDeferred
            raise error(f"{self.shown}: {over}")

    def __exit__(self, kind, value, traceback):
        """Never raises: after the commit nothing may fail the delivery."""
        if kind is None:
            self.append(self.size, self.copies)
        self.release()
        return False

    def append(self, size, count):
        """One O_APPEND write; a failure only leaves the file to be recalculated."""
        try:
            fd = posix.open("maildirsize", posix.O_WRONLY | posix.O_APPEND | posix.O_NOFOLLOW
                            | posix.O_CLOEXEC, dir_fd=self.root_fd)
            try:
                posix.write(fd, f"{size} {count}\n".encode())
            finally:
                posix.close(fd)
        except OSError:
            pass

    def release(self):
        if self.lock_fd is not None:
            fd, self.lock_fd = self.lock_fd, None
            try:
                posix.close(fd)  # releases the lock (an OFD lock: only this descriptor held it)
            except OSError:
                pass
