"""duplicate_suppression = yes, outside Sieve: a message whose Message-ID was
delivered into the same mailbox (the same home's userdb.py database) within
duplicate_suppression_period is discarded (a success; the log line says so).
The common case: one message sent to two aliases of the same mailbox.

A Suppressor wraps the delivery's route (sieveroute.SieveRoute, or None for the
plain INBOX target) for maildir.store(): it reads the Message-ID of the message
in tmp/, asks the database, and returns no Target for a duplicate. The
Message-ID is recorded only in after_commit(), once the message is durable, so
a delivery that fails and is retried is never taken for its own duplicate (two
copies arriving at the very same moment may both be delivered).

Never: discard a message without a Message-ID; defer or bounce because of the
database (unusable: the message is delivered, with a note); raise from
after_commit().
"""
from vdeliver import maildir
from vdeliver.errors import one_line

KIND = "message-id"
MAX_HEADER = 256 << 10


def message_id(fh):
    """The first Message-ID field's value (unfolded, stripped), or "" ."""
    found, value = False, []
    read = 0
    for line in fh:
        read += len(line)
        if read > MAX_HEADER or line in (b"\n", b"\r\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if found:
                value.append(line.strip())
            continue
        if found:
            break
        name, colon, rest = line.partition(b":")
        if colon and name.strip().lower() == b"message-id":
            found = True
            value.append(rest.strip())
    return b" ".join(value).decode("utf-8", "replace").strip()


class Suppressor:
    def __init__(self, inner, home, box_fd, box_shown, relative, config, notes):
        self.inner, self.home = inner, home
        self.box_fd, self.box_shown, self.relative = box_fd, box_shown, relative
        self.config, self.notes = config, notes
        self.key = None

    def __call__(self, open_message, size, copy=None):
        from vdeliver import userdb
        with open_message() as fh:
            msgid = message_id(fh)
        if msgid:
            self.key = userdb.key_of(msgid)
            try:
                with userdb.UserDB.open(self.home.fd, self.home.shown) as db:
                    if db.seen(KIND, self.key):
                        self.notes.append(f"duplicate of a message delivered before:"
                                          f" discarded (Message-ID {one_line(msgid, 200)})")
                        self.key = None
                        return []
            except userdb.UserDBError as error:
                self.notes.append(f"duplicate_suppression: {one_line(str(error), 300)}")
                self.key = None
        if self.inner is not None:
            return self.inner(open_message, size, copy)
        return [maildir.Target(self.box_fd, self.box_shown)]

    def after_commit(self):
        if self.inner is not None:
            self.inner.after_commit()
        if self.key is None:
            return
        from vdeliver import userdb
        try:
            with userdb.UserDB.open(self.home.fd, self.home.shown) as db:
                db.record(KIND, self.key, self.config.get_time("duplicate_suppression_period"))
        except Exception as error:  # noqa: BLE001 - delivered already: only report
            self.notes.append(f"duplicate_suppression: not recorded: {one_line(str(error), 300)}")

    def files(self, stored):
        if self.inner is not None:
            return self.inner.files(stored)
        return [f"{self.relative}/{name}" for name in stored]

    def close(self):
        if self.inner is not None:
            self.inner.close()
