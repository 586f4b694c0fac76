"""Maildir++ folders for +extension delivery: bob+Lists@example.com -> .Lists/.

extension_folder decides: `no` (INBOX, as virtual(8)), `existing` (the
folder `.name` when it exists), `create` (also make it: tmp/, new/, cur/ and
the empty `maildirfolder` marker Courier and Dovecot use). The name is the
extension as given (case kept), validated, encoded as the IMAP server stores
it (folder_name_encoding: `utf7`, IMAP modified UTF-7 of RFC 3501 5.1.3,
Dovecot's default; or `utf8`), and matched against existing folders
case-insensitively.

Never: raise for a bad or unusable folder: everything unusable (no `/`, no
leading `.`, no `..`, no control characters, undecodable bytes, a folder that
cannot be made) falls back to INBOX, and the caller logs why; never catch a
time limit or a signal (TimeLimitExceeded, Interrupted): they end the delivery.
"""
import binascii
import posix

from vdeliver import safepath
from vdeliver.errors import (MailboxFullDeferred, MailboxUnavailable, MailSystemFull,
                             UnsafeMailboxPath)

# What safepath raises for a folder it cannot open or make (errors.from_os_error's classes).
# Not DeliveryError as a whole: TimeLimitExceeded and Interrupted must end the delivery.
UNUSABLE = (OSError, UnsafeMailboxPath, MailboxUnavailable, MailSystemFull, MailboxFullDeferred)


class Choice:
    __slots__ = ("name", "fd", "why")

    def __init__(self, name=None, fd=None, why=""):
        self.name, self.fd, self.why = name, fd, why  # name None: INBOX


def choose(root_fd, shown, extension, mode, encoding, courier=False):
    """Return a Choice: an open folder, or INBOX with the reason. `+inbox` (any case) is
    the inbox and `+inbox.x` its child, as dovecot-lda -m takes them (inbox_relative)."""
    if mode == "no" or extension is None:
        return Choice()
    extension = inbox_relative(extension, ".", courier)
    if extension is None:
        return Choice()
    problem = check_name(extension)
    if problem:
        return Choice(why=f"extension {extension!r} {problem}: delivered to INBOX")
    try:
        encoded = encode_name(extension, encoding)
    except UnicodeError:
        return Choice(why=f"extension {extension!r} is not valid UTF-8: delivered to INBOX")
    directory = find_existing(root_fd, extension, encoding) or "." + encoded
    try:
        fd = safepath.open_subdir(root_fd, directory, f"{shown}/{directory}", create=False)
    except FileNotFoundError:
        if mode != "create":
            return Choice(why=f"no folder {directory}: delivered to INBOX")
        try:
            fd = create_folder(root_fd, directory, shown)
        except UNUSABLE as error:
            return Choice(why=f"cannot create folder {directory} ({error}): delivered to INBOX")
    except UNUSABLE as error:
        return Choice(why=f"folder {directory} unusable ({error}): delivered to INBOX")
    return Choice(directory, fd)


def check_name(name):
    if not name:
        return "is empty"
    if "/" in name:
        return "contains '/'"
    if name.startswith("."):
        return "starts with '.'"
    if ".." in name:
        return "contains '..'"
    if any(ch < " " or ch == "\x7f" for ch in name):
        return "contains a control character"
    return ""


def create_folder(root_fd, directory, shown):
    fd = safepath.open_subdir(root_fd, directory, f"{shown}/{directory}", create=True)
    try:
        for sub in ("tmp", "new", "cur"):
            posix.close(safepath.open_subdir(fd, sub, f"{shown}/{directory}/{sub}"))
        marker = posix.open("maildirfolder", posix.O_WRONLY | posix.O_CREAT | posix.O_NOFOLLOW
                            | posix.O_CLOEXEC, 0o600, dir_fd=fd)
        posix.close(marker)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def find_existing(root_fd, name, encoding):
    """The directory of an existing folder whose name equals `name` ignoring case."""
    wanted = name.casefold()
    for entry in posix.listdir(root_fd):
        if not entry.startswith(".") or entry in (".", ".."):
            continue
        try:
            if decode_name(entry[1:], encoding).casefold() == wanted:
                return entry
        except (UnicodeError, ValueError, binascii.Error):
            continue
    return None


def encode_name(name, encoding):
    name.encode("utf-8")  # raises for surrogate-escaped (invalid UTF-8) bytes
    return name if encoding == "utf8" else encode_mutf7(name)


def decode_name(name, encoding):
    return name if encoding == "utf8" else decode_mutf7(name)


def encode_mutf7(text):
    """IMAP modified UTF-7 (RFC 3501 5.1.3): printable ASCII as is, '&' as '&-'."""
    out, pending = [], []

    def flush():
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + binascii.b2a_base64(raw, newline=False).decode()
                       .rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in text:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mutf7(text):
    out, index = [], 0
    while index < len(text):
        ch = text[index]
        if ch != "&":
            out.append(ch)
            index += 1
            continue
        end = text.index("-", index)
        chunk = text[index + 1:end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            out.append(binascii.a2b_base64(padded).decode("utf-16-be"))
        index = end + 1
    return "".join(out)


def courier_namespace(config):
    """imap_namespace_prefix: "" (Dovecot's default namespace: INBOX's children are
    INBOX.x, stored as .INBOX.x) or INBOX. / INBOX/ (a Courier-style namespace with
    that prefix: INBOX.x is the folder .x)."""
    return config.get_choice("imap_namespace_prefix", ("", "inbox.", "inbox/")) != ""


def inbox_relative(name, separator, courier=False):
    """A mailbox name with INBOX as the IMAP server spells it: None for INBOX itself (any
    case); INBOX + separator + x (INBOX in any case) is INBOX<sep>x, as Dovecot stores it
    (.INBOX.x), or x under a Courier-style namespace; any other name as it is."""
    if not name or name.upper() == "INBOX":
        return None
    prefix = "INBOX" + separator
    if name[:len(prefix)].upper() == prefix:
        return name[len(prefix):] if courier else prefix + name[len(prefix):]
    return name


def sieve_folder_name(name, separator=".", encoding="utf7", courier=False):
    """A Sieve mailbox name (UTF-8, RFC 5228 §4.1) -> its Maildir++ directory.

    `INBOX` (any case) is the inbox; `INBOX.x` (INBOX in any case) is the inbox's
    child, stored as Dovecot's default namespace stores it (`.INBOX.x`), or as `.x`
    under a Courier-style one (courier: imap_namespace_prefix = INBOX.);
    `Work.Urgent` (separator `.`, Dovecot's default for Maildir++) or `Work/Urgent`
    (separator `/`) -> `.Work.Urgent` with each component encoded as
    folder_name_encoding says. Returns "INBOX", the directory name, or None when
    the layout refuses the name (an empty component, the other separator inside a
    component, control characters, invalid UTF-8): then the fileinto fails, as in
    Dovecot.
    """
    name = inbox_relative(name, separator, courier)
    if name is None:
        return "INBOX"
    other = "/" if separator == "." else "."
    encoded = []
    for part in name.split(separator):
        if not part or other in part or check_name(part):
            return None
        try:
            encoded.append(encode_name(part, encoding))
        except UnicodeError:
            return None
    return "." + ".".join(encoded)


def open_folder(root_fd, shown, directory, create):
    """Open the Maildir++ folder `directory` (from sieve_folder_name), creating it
    (tmp/, new/, cur/, maildirfolder) when create is true. FileNotFoundError when
    it is missing and create is false; DeliveryError for anything else."""
    try:
        return safepath.open_subdir(root_fd, directory, f"{shown}/{directory}", create=False)
    except FileNotFoundError:
        if not create:
            raise
    return create_folder(root_fd, directory, shown)
