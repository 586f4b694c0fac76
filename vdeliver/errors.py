"""Every way a delivery can fail, as exceptions that carry what Postfix needs.

Each class fixes an exit status for pipe(8), an RFC 3463 enhanced status code
and a public reason (it reaches the sender's DSN, so it says little); the
instance may add a detail for the log and the queue. The exit status and the
status line come from the same object, so they never disagree. cli.main() and
the LMTP front end are the only places that turn them into an exit status or
a reply (the reply codes and texts: lmtptext.py, which the pipe command never
loads).

Never: give a 5.x.x status to a fault the admin can fix (configuration,
tables, permissions, disk, a bug). Those defer with 75 and 4.x.x.
"""
# sysexits.h: the only codes pipe(8) defers on are 71 and 75 (sys_exits.c).
EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75


class DeliveryError(Exception):
    """A delivery that did not happen. Subclasses fix the code and reason.

    Public reason, private detail: the status line (which pipe(8) and the LMTP
    reply put into the queue, delay warnings and the sender's DSN) carries the
    class reason, an optional hint the code chose to make public (what the
    admin must change, with no path, errno or server text in it) and the
    mailbox relative to virtual_mailbox_base; the detail (absolute paths,
    errno names, SQL text, exception classes and source lines) goes only to
    the log line, which the queue id joins to the delivery."""
    exit_code = EX_TEMPFAIL
    status = "4.3.0"
    reason = "temporary failure"

    def __init__(self, detail="", status=None, reason=None, hint=""):
        super().__init__(detail or self.reason)
        self.detail = detail
        self.hint = hint
        self.mailbox = ""  # relative to virtual_mailbox_base, set by the delivery core
        if status:
            self.status = status
        if reason:
            self.reason = reason

    @property
    def is_bounce(self):
        return self.status.startswith("5")

    def text(self):
        """`reason: detail`, on one printable line: for the log."""
        text = self.reason if not self.detail else f"{self.reason}: {self.detail}"
        if self.mailbox:
            text += f" (mailbox {self.mailbox})"
        return one_line(text)

    def public_text(self):
        """What Postfix puts in the queue and the DSN: reason, hint, and for a
        deferral the mailbox (mailq is the admin's; a bounce goes to the sender)."""
        text = self.reason if not self.hint else f"{self.reason}: {self.hint}"
        if self.mailbox and not self.is_bounce:
            text += f" (mailbox {self.mailbox})"
        return one_line(text)

    def status_line(self):
        """`4.3.5 reason` — one line, as pipe(8) reads it into the DSN."""
        return f"{self.status} {self.public_text()}"


# --- temporary: the admin (or time) can fix these; Postfix keeps the mail ---

class TemporaryFailure(DeliveryError):
    exit_code, status, reason = EX_TEMPFAIL, "4.3.0", "temporary failure"


class ConfigError(TemporaryFailure):
    status, reason = "4.3.5", "mail system configuration error"


class TableError(TemporaryFailure):
    status, reason = "4.3.0", "temporary lookup failure"


class UnsafeMailboxPath(ConfigError):
    reason = "unsafe mailbox path"


class MailboxUnavailable(TemporaryFailure):
    status, reason = "4.2.0", "mailbox temporarily unavailable"


class MailSystemFull(TemporaryFailure):
    status, reason = "4.3.1", "mail system full"


class MailboxFullDeferred(TemporaryFailure):
    status, reason = "4.2.2", "mailbox full"


class StoreNotMounted(TemporaryFailure):
    """virtual_mailbox_base_mounted = yes and the base is not mounted (deliver.check_mounted)."""
    status, reason = "4.3.0", "mail store not mounted"


class InputError(TemporaryFailure):
    status, reason = "4.3.0", "error reading the message"


class TimeLimitExceeded(TemporaryFailure):
    status, reason = "4.3.0", "delivery time limit exceeded"


class Interrupted(TemporaryFailure):
    status, reason = "4.3.0", "delivery interrupted"


class InternalError(TemporaryFailure):
    status, reason = "4.3.0", "internal software error"


class Abandoned(TemporaryFailure):
    """LMTP only, never a reply: a delivery the daemon's shutdown stopped before its commit
    point (lmtp_shutdown_timeout); the client got no reply, so Postfix retries."""
    status, reason = "4.3.0", "delivery abandoned at shutdown"


# --- permanent: facts about the recipient or the message itself ---

class Bounce(DeliveryError):
    exit_code, status, reason = EX_DATAERR, "5.3.0", "delivery failed"


class UnknownUser(Bounce):
    exit_code, status, reason = EX_NOUSER, "5.1.1", "user unknown"


class BadRecipientAddress(Bounce):
    exit_code, status, reason = EX_NOUSER, "5.1.3", "bad recipient address syntax"


class BadSenderAddress(Bounce):
    exit_code, status, reason = EX_DATAERR, "5.1.7", "bad sender address syntax"


class MailLoop(Bounce):
    exit_code, status, reason = EX_DATAERR, "5.4.6", "mail forwarding loop"


class MessageTooBig(Bounce):
    """LMTP only (lmtp_message_size_limit): pipe(8) gets what Postfix's own
    message_size_limit let through."""
    exit_code, status, reason = EX_DATAERR, "5.3.4", "message size exceeds fixed limit"


class MailboxFull(Bounce):
    """Only when quota_exceeded_action = bounce; the default defers (4.2.2).
    The bounce goes to the sender at once: the mailbox path and its usage stay in the log."""
    exit_code, status, reason = EX_UNAVAILABLE, "5.2.2", "mailbox full"

    def public_text(self):
        return one_line(self.reason)  # not even the mailbox: the sender reads this at once


class SieveReject(Bounce):
    """The recipient's own Sieve script said `reject` or `ereject` (RFC 5429): the
    reason is the user's, made one printable line (never a header or a DSN field
    of its own)."""
    exit_code, status, reason = EX_UNAVAILABLE, "5.7.1", "rejected by the recipient's filter"

    def __init__(self, text):
        text = " ".join(str(text).split())
        text = "".join(ch if " " <= ch <= "~" or ch > "\xa0" else "?" for ch in text)
        super().__init__(reason=one_line(text, 300) or self.reason)


# The table the man page's DIAGNOSTICS section documents (a test checks they agree).
CATALOGUE = (
    ConfigError, TableError, UnsafeMailboxPath, MailboxUnavailable, MailSystemFull, StoreNotMounted,
    MailboxFullDeferred, InputError, TimeLimitExceeded, Interrupted, InternalError,
    TemporaryFailure, UnknownUser, BadRecipientAddress, BadSenderAddress, MailLoop, MessageTooBig,
    MailboxFull, SieveReject,
)


def from_os_error(err, doing):
    """Classify an OSError met while `doing` something to a mailbox (cf. mbox_dsn()).

    ENOSPC: the disk is full (4.3.1). EDQUOT/EFBIG: the mailbox is full, which
    defers until quota policy says otherwise. Everything else defers 4.2.0 with
    the errno text, so the admin sees in the queue what to fix.
    """
    import errno  # only on failure: building its name table costs 70 us per message
    text = f"{doing}: {err.strerror or err}"
    if err.errno == errno.ENOSPC:
        return MailSystemFull(text)
    if err.errno in (errno.EDQUOT, errno.EFBIG):
        return MailboxFullDeferred(text)
    return MailboxUnavailable(text)


def internal_error(error):
    """An unexpected exception (a bug) as a deferral: 4.3.0 with the place it happened."""
    if isinstance(error, KeyboardInterrupt):
        return Interrupted("interrupted")
    import traceback
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    place = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
    return InternalError(f"{type(error).__name__}{place}: {error}")


def one_line(text, limit=400):
    """Printable single line: pipe(8) keeps 4 KB and mangles control bytes anyway."""
    if text.isprintable():  # fast path: no Cc character at all
        out = text
    else:
        out = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)
    return out if len(out) <= limit else out[:limit - 3] + "..."

