"""The bounded pool of one database table's connections (pgsql:, mysql:, sqlite:).

The LMTP daemon looks tables up on lmtp_delivery_threads lookup threads, and
its delivery threads ask the quota and home maps themselves; a driver's
connection (psycopg, PyMySQL, sqlite3) must serve one of them at a time. So a
table keeps up to `size` connections: take() hands out an idle one (the one
given back last: the others may be closed by the server's idle timeout
first, and fewer stay open), or None, having reserved room for the caller to
open one, while fewer than `size` exist; else it waits for one to come back,
at most `timeout` seconds (then TableError: defer, as for a slow server).
give() puts a connection back after a query; drop() closes one that broke
(or releases the room when opening failed): a broken connection never goes
back. drop_idle() closes the idle ones (a server restart broke them all).
close() closes the idle ones at once and each one still in use when it is
given back, so tables a reload replaced hold no connection after their last
lookup.

The pipe command (size 0: tables.POOL_SIZE, the daemon sets it): one thread,
at most one connection, no lock and no wait, and no `threading` to import
(the pipe path's start-up time).

Never: hold more than `size` connections; hand one connection to two
threads; put back a connection that failed; wait without a bound; let a
driver's error from closing a connection escape.
"""
from vdeliver.errors import DeliveryError, TableError


class Pool:
    def __init__(self, size, timeout, spec):
        self.spec = spec
        self.timeout = timeout
        self.idle = []    # connections not in use, the last given back last
        self.count = 0    # connections open, idle or in use (or being opened)
        self.closed = False
        if size:
            from threading import Condition  # the daemon's: loaded already
            self.size, self.changed = size, Condition()
        else:
            self.size, self.changed = 1, OneThread()

    def room(self):
        return bool(self.idle) or self.count < self.size

    def take(self):
        """An idle connection, or None: the caller opens one, then give()s or drop()s it."""
        with self.changed:
            if not self.changed.wait_for(self.room, self.timeout):
                raise TableError(f"{self.spec}: all {self.size} connections busy for"
                                 f" {self.timeout}s")
            if self.idle:
                return self.idle.pop()
            self.count += 1
            return None

    def give(self, connection):
        with self.changed:
            if not self.closed:
                self.idle.append(connection)
                self.changed.notify()
                return
            self.count -= 1
        close_quietly(connection)

    def drop(self, connection):
        """A connection that failed (None: one that could not be opened) is gone."""
        with self.changed:
            self.count -= 1
            self.changed.notify()
        if connection is not None:
            close_quietly(connection)

    def drop_idle(self):
        with self.changed:
            stale, self.idle = self.idle, []
            self.count -= len(stale)
            self.changed.notify(len(stale))
        for connection in stale:
            close_quietly(connection)

    def close(self):
        """Close every connection: the idle ones now, those in use when given back."""
        with self.changed:
            self.closed = True
        self.drop_idle()

    def __len__(self):
        """Connections open, idle or in use."""
        return self.count


class OneThread:
    """The Condition of a pool used by one thread only (the pipe command): there is never
    anyone to wait for, nor to wake."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def wait_for(self, predicate, timeout):
        return predicate()

    def notify(self, n=1):
        pass


def close_quietly(connection):
    try:
        connection.close()
    except DeliveryError:  # the time limit, a signal: they end the delivery
        raise
    except Exception:  # noqa: BLE001 - whatever the driver raises: the connection is dropped anyway
        pass
