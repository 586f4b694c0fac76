"""One log line per delivery, in Postfix's style, to syslog or maillog_file.

`to=<rcpt>, orig_to=<orig>, relay=vdeliver, delay=0.02, dsn=2.0.0,
status=sent (delivered to maildir ...)`. The destination is syslog (facility
syslog_facility, ident syslog_name/SERVICE: `vdeliver/pipe` for the command,
`vdeliver/lmtp` for the daemon, as Postfix's `postfix/pipe`; pflogsumm reads only
lines whose program is NAME/SERVICE), or the file named by maillog_file when
set (appended in one write, as Postfix's postlogd does); also stderr when
stderr is a terminal (an admin running vdeliver by hand).

Never: raise. A log that cannot be written must not turn a delivery into a
failure (the mail is already on disk); never write control characters; never
follow a symlink to the maillog, nor create it as root (it would then be
root's, and the delivery user's later lines lost); swallow a time limit or a
signal that fires while a line is written before the commit point (a
DeliveryError passes; after the commit point the handlers raise nothing).
"""
import posix
import time

from vdeliver.errors import ConfigError, DeliveryError, one_line

FACILITIES = ("mail", "daemon", "user", "local0", "local1", "local2", "local3",
              "local4", "local5", "local6", "local7")
PRIORITIES = {"info": 6, "warning": 4, "error": 3}
_process = {}  # facts that do not change in a process (the LMTP daemon logs many lines)
SERVICE = "pipe"  # the ident's second part; daemon.py sets "lmtp"


def process_fact(name, compute):
    if name not in _process:
        _process[name] = compute()
    return _process[name]


def log(config, text, priority="info"):
    """Write one line; never raises (a delivery may already be durable)."""
    try:
        write_line(config, text, priority)
    except DeliveryError:
        raise  # a time limit or a signal (cli.py): it ends the delivery, before the commit
    except Exception:  # noqa: BLE001 - a log that fails must not fail the delivery
        pass


def write_line(config, text, priority):
    ident = f"{get(config, 'syslog_name', 'vdeliver')}/{SERVICE}"
    text = one_line(text, 2000)
    if process_fact("stderr_is_tty", lambda: posix.isatty(2)):
        write_quietly(2, f"{ident}: {text}\n")
    maillog_file = get(config, "maillog_file", "")
    if maillog_file:
        stamp = time.strftime("%b %e %H:%M:%S")
        host = process_fact("hostname", lambda: posix.uname().nodename)
        line = f"{stamp} {host} {ident}[{posix.getpid()}]: {text}\n"
        fd = open_maillog(maillog_file)
        if fd is not None:
            write_quietly(fd, line)
            close_quietly(fd)
        return
    to_syslog(ident, get(config, "syslog_facility", "mail"), priority, text)


# O_NONBLOCK: a FIFO put in the maillog's place fails the open (ENXIO) instead of
# blocking the delivery; a regular file's writes are not affected.
MAILLOG_FLAGS = posix.O_WRONLY | posix.O_APPEND | posix.O_NOFOLLOW | posix.O_CLOEXEC | posix.O_NONBLOCK


def open_maillog(path):
    """O_APPEND, never through a symlink; as root only a plain file that exists, with one
    link: a maillog that root created would be root's (the delivery user's later lines
    lost), and one the delivery user replaced by a FIFO or a hard link to another file
    must not get root's writes."""
    root = posix.geteuid() == 0
    flags = MAILLOG_FLAGS | (0 if root else posix.O_CREAT)
    try:
        fd = posix.open(path, flags, 0o600)
    except OSError:
        return None
    if root:
        st = posix.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_nlink != 1:
            close_quietly(fd)
            return None
    return fd


def close_quietly(fd):
    try:
        posix.close(fd)
    except OSError:
        pass


def to_syslog(ident, facility, priority, text):
    try:
        import syslog
        code = getattr(syslog, f"LOG_{facility.upper()}", syslog.LOG_MAIL)
        syslog.openlog(ident, syslog.LOG_PID, code)
        syslog.syslog(PRIORITIES.get(priority, 6), text)
    except (ImportError, OSError, ValueError):
        pass


def get(config, name, default):
    if config is None:
        return default
    try:
        return config.get(name)
    except ConfigError:
        return default


def write_quietly(fd, text):
    try:
        posix.write(fd, text.encode("utf-8", "surrogateescape"))
    except OSError:
        pass


def delivery_line(recipient, original_recipient, started, status, outcome, text, queue_id=""):
    """The Postfix-style summary line of one delivery attempt (`QUEUEID: to=<...>, ...`)."""
    queue_id = "".join(ch for ch in queue_id if ch.isalnum())[:40]
    fields = [f"{queue_id + ': ' if queue_id else ''}to=<{recipient}>"]
    if original_recipient and original_recipient != recipient:
        fields.append(f"orig_to=<{original_recipient}>")
    fields.append("relay=vdeliver")
    fields.append(f"delay={max(time.monotonic() - started, 0):.2f}")
    fields.append(f"dsn={status}")
    fields.append(f"status={outcome} ({text})")
    return ", ".join(fields)
