"""Quota warnings: a message into the user's INBOX when a delivery crosses a threshold.

quota_warning_thresholds (e.g. `80, 95`) are percentages of the byte limit
(or of the message limit, whichever is fuller). When a delivery takes usage
from below a threshold to or above it, a warning made from
quota_warning_template (or the built-in text) is delivered into INBOX, once
per crossing and at most once per 24 hours: the mtime of the `quotawarn`
file in the Maildir root records the last one (as Courier does). The warning
counts towards the quota like any message.

Never: fail or defer the delivery it follows: every error here is returned
as text for the log.
"""
import posix
import time

from vdeliver import maildir
from vdeliver.message import write_all

ONCE_PER_SECONDS = 24 * 3600

DEFAULT_TEMPLATE = """\
From: Mail Delivery System <MAILER-DAEMON>
To: {recipient}
Subject: Your mailbox is {percent}% full
Auto-Submitted: auto-generated
Precedence: bulk
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Your mailbox {recipient} now uses {used} of its {limit} ({percent}%).

When it is full, new mail to you will be held back or returned to its
senders. Please delete or archive old messages, or empty your Trash.
"""


def percent_used(usage_bytes, usage_messages, limit):
    values = []
    if limit.bytes:
        values.append(100 * usage_bytes / limit.bytes)
    if limit.messages:
        values.append(100 * usage_messages / limit.messages)
    return max(values) if values else 0


def crossed(thresholds, before, after):
    """The highest threshold t with before < t <= after, or None."""
    hits = [t for t in thresholds if before < t <= after]
    return max(hits) if hits else None


def human(size):
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def maybe_warn(root_fd, shown, gate, recipient, thresholds, template_path):
    """After a delivery through gate: deliver a warning if a threshold was crossed.

    Returns a line for the log, or "" when nothing happened.
    """
    limit, before = gate.limit, gate.before
    start = percent_used(before.bytes, before.messages, limit)
    end = percent_used(before.bytes + gate.size, before.messages + gate.copies, limit)
    threshold = crossed(thresholds, start, end)
    if threshold is None:
        return ""
    try:
        try:
            last = posix.stat("quotawarn", dir_fd=root_fd, follow_symlinks=False).st_mtime
            if time.time() - last < ONCE_PER_SECONDS:
                return f"quota warning {threshold}% skipped: one was sent in the last 24 hours"
        except FileNotFoundError:
            pass
        text = render(template_path, recipient, end, before.bytes + gate.size, limit)
        data = text.encode("utf-8")

        def write(fd):
            return write_all(fd, data)

        from vdeliver.commitpoint import CommitPoint
        name = maildir.deliver(root_fd, shown, write, point=CommitPoint())  # not the message's
        gate.append(len(data), 1)
        fd = posix.open("quotawarn", posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC
                        | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=root_fd)
        posix.close(fd)
        posix.utime("quotawarn", dir_fd=root_fd, follow_symlinks=False)
        return f"quota warning {threshold}% delivered to maildir as new/{name}"
    # Deliberately broad: this runs after the commit point (the message is durable), where
    # nothing -- not even the time limit -- may turn the delivery into a deferral.
    except Exception as error:  # noqa: BLE001 - after the commit point (see above)
        return f"quota warning {threshold}% not delivered: {error}"


def render(template_path, recipient, percent, used, limit):
    template = DEFAULT_TEMPLATE
    if template_path:
        with open(template_path, encoding="utf-8") as fh:
            template = fh.read()
    limit_text = " and ".join(part for part in (
        human(limit.bytes) if limit.bytes else "", f"{limit.messages} messages" if limit.messages else "") if part)
    text = template.format(recipient=recipient, percent=int(percent), used=human(used),
                           limit=limit_text)
    headers, _, body = text.partition("\n\n")
    extra = []
    lowered = headers.lower()
    if "\ndate:" not in "\n" + lowered:
        extra.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S %z"))
    if "\nmessage-id:" not in "\n" + lowered:
        host = maildir.hostname()
        extra.append(f"Message-ID: <{time.time_ns()}.{posix.getpid()}.quotawarn@{host}>")
    return "\n".join([headers] + extra) + "\n\n" + body
