"""Bounded lock waits: try without blocking, retry until a deadline, then defer.

mbox.py (a dotlock, then fcntl and/or flock on the mbox) and quota.py (flock
of `maildirsize.lock`) take their locks through wait(): each attempt is
non-blocking, attempts repeat every RETRY_SECONDS, and when the deadline
(mbox_lock_timeout, quota_lock_timeout) passes the delivery defers 4.2.0
(MailboxUnavailable) and Postfix tries again later, as virtual(8) does for
a busy mbox.

Never: block in the kernel waiting for a lock (a lock held by a hung
process, an IMAP server or a stuck delivery would hold this delivery, or an
LMTP delivery thread, until Postfix gives up and bounces); never wait past
the deadline. Raises MailboxUnavailable when the deadline passes; whatever
an attempt raises (an OSError turned into a DeliveryError by its caller)
goes through unchanged.
"""
import time

from vdeliver.errors import MailboxUnavailable

RETRY_SECONDS = 0.2


def wait(attempt, deadline, busy):
    """Call attempt() until it returns True (the lock is ours); by time.monotonic() `deadline`
    raise MailboxUnavailable(busy). attempt() returns False while someone else holds the lock."""
    while not attempt():
        left = deadline - time.monotonic()
        if left <= 0:
            raise MailboxUnavailable(busy)
        time.sleep(min(RETRY_SECONDS, left))


def flock_attempt(fd):
    """An attempt for wait(): a non-blocking exclusive flock(2) of fd."""
    import fcntl

    def attempt():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    return attempt
