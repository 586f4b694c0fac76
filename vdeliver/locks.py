"""Bounded lock waits: try without blocking, retry until a deadline, then defer.

mbox.py (a dotlock, then fcntl and/or flock on the mbox) and quota.py (an
fcntl lock of `maildirsize.lock`) take their locks through wait(): each attempt is
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

fcntl_attempt() takes an open file description lock (F_OFD_SETLK, Linux
3.15): a whole-file POSIX write lock, so it is carried where POSIX locks
are (NFSv4, NFSv3 with NLM, CephFS, MooseFS, GlusterFS) and conflicts with
the classic fcntl()/lockf() locks of mutt, Dovecot and Postfix; but it
belongs to the open file, not the process, so two delivery threads of the
LMTP daemon exclude each other (a classic fcntl lock would be granted to
both: it is the process's). POSIX locks are the one kind every network and
cluster filesystem that has locks at all carries between hosts; flock(2)
spans hosts only where the filesystem supports or emulates it (the Linux
NFS client emulates it with a POSIX lock, unless mounted local_lock=flock
or all; then it stays on one host) and never conflicts with other
programs' fcntl locks, so nothing that must span hosts relies on it.
"""
import struct
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


# struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid;}
# (Linux, 64-bit off_t); l_pid must be 0 for an OFD lock. Whole file: start 0, len 0.
FLOCK_FORMAT = "hhqqi4x"


def fcntl_attempt(fd):
    """An attempt for wait(): a non-blocking exclusive OFD fcntl lock of the whole of fd."""
    import fcntl
    request = struct.pack(FLOCK_FORMAT, fcntl.F_WRLCK, 0, 0, 0, 0)

    def attempt():
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)
        except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: held elsewhere
            return False
        return True
    return attempt
