"""The commit point: the moment a delivery becomes a success that nothing may undo.

For a Maildir it is the link of tmp/NAME into new/ and the fsync of new/; for
an mbox, the fsync of the appended message (maildir.py, mbox.py). Before it,
any failure (a time limit, a signal, an error) removes what was written and
defers. From the moment the store calls enter(), only the store's own result
decides: a failed fsync of new/ takes the message back and defers; otherwise
the delivery succeeded, and a signal, a log write, a quota warning or a
timeout that comes later cannot turn it into a deferral (Postfix would
deliver the message a second time).

A CommitPoint is handed down from the front end with each delivery:
- the pipe command uses PROCESS: its signal handlers (cli.py) raise
  TimeLimitExceeded/Interrupted only while PROCESS is not holding, and
  its last resort exits 0 once PROCESS.committed is set;
- the LMTP daemon gives each delivery its own point (lmtp.Ticket) whose enter()
  refuses (errors.Abandoned) once the daemon has given up waiting for it at
  shutdown, so a message is never linked without its 250 being sendable.

Never: let the committed flag be set before the store is durable; raise
from hold() or done().
"""
class CommitPoint:
    """holding: no signal handler may raise now (the commit, or a failure's cleanup,
    is under way); committed: the message is durable in the mailbox (success,
    whatever follows)."""
    __slots__ = ("holding", "committed")

    def __init__(self):
        self.holding = False
        self.committed = False

    def enter(self):
        """Called by the store just before its first irreversible step."""
        self.holding = True

    def hold(self):
        """Called by a store cleaning up after a failure: the cleanup must finish
        (no partial message, nothing left in tmp/); never raises."""
        self.holding = True

    def done(self):
        """Called by the store once the message is durable."""
        self.committed = True


# The pipe command's one delivery (one per process).
PROCESS = CommitPoint()
