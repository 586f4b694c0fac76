"""The per-user database of what was already seen or sent: vacation responses,
redirect ids, Sieve duplicate ids and duplicate_suppression's Message-IDs, in
one SQLite file in the recipient's home (`~/.vdeliver.db`, as Dovecot keeps
`~/.dovecot.lda-dupes`).

One table (kind, key, expires, stamp). Keys are SHA-256 digests of what
identifies an entry, so hostile header text never reaches the schema and every
row is small. Each write transaction (BEGIN IMMEDIATE) also drops expired rows
and keeps at most MAX_ENTRIES per kind, the oldest dropped first (RFC 5230 §4.6
asks for at least 1000 responses). SQLite's own locking, with a busy timeout,
makes concurrent deliveries for one user (pipe commands and the LMTP daemon at
once) safe: claim() is one transaction, so of 200 deliveries at once exactly
one wins a vacation response.

Never: follow a symlink or use a file with another link, another owner or of
another type (the file is made and checked through the home's directory fd,
O_NOFOLLOW, before SQLite opens the same inode); fail a delivery: a damaged
file is renamed aside (`.vdeliver.db.damaged`) and rebuilt, and anything else
(a read-only home, a lock held past the busy timeout) raises UserDBError,
which the caller turns into a note for the log line; take the time limit or a
signal (DeliveryError, raised by the pipe command's handlers wherever it is)
for one of sqlite3's errors: they end the delivery.
"""
import posix

from vdeliver.errors import DeliveryError

FILE = ".vdeliver.db"
JOURNAL = FILE + "-journal"
DAMAGED = FILE + ".damaged"
MAX_ENTRIES = 10000
BUSY_TIMEOUT = 15.0    # seconds; well inside sendmail_timeout + time_limit
OPEN_FLAGS = posix.O_RDWR | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_CLOEXEC | posix.O_NONBLOCK
SCHEMA = ("CREATE TABLE IF NOT EXISTS seen (kind TEXT NOT NULL, key TEXT NOT NULL,"
          " expires INTEGER NOT NULL, stamp INTEGER NOT NULL, PRIMARY KEY (kind, key))")


class UserDBError(Exception):
    """The database cannot be used now (its text is for the log line)."""


def key_of(*parts):
    import hashlib
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


class UserDB:
    """open(home_fd, shown) -> UserDB; use as a context manager."""

    def __init__(self, connection, fd, shown, home_fd):
        self.connection, self.fd, self.shown, self.home_fd = connection, fd, shown, home_fd

    @classmethod
    def open(cls, home_fd, shown, busy_timeout=BUSY_TIMEOUT):
        try:
            return cls._open(home_fd, shown, busy_timeout)
        except (UserDBError, DeliveryError):  # the time limit, a signal: not sqlite3's
            raise
        except Exception as error:  # noqa: BLE001 - sqlite3.DatabaseError: a damaged file
            if not damaged(error):
                raise UserDBError(f"{shown}/{FILE}: {error}") from None
        set_aside(home_fd, shown)
        try:
            return cls._open(home_fd, shown, busy_timeout)
        except (UserDBError, DeliveryError):
            raise
        except Exception as error:  # noqa: BLE001 - still unusable: no database this time
            raise UserDBError(f"{shown}/{FILE}: {error}") from None

    @classmethod
    def _open(cls, home_fd, shown, busy_timeout):
        import sqlite3
        if home_fd is None:
            raise UserDBError(f"no home directory {shown}")
        check_entry(home_fd, JOURNAL, shown)
        try:
            fd = posix.open(FILE, OPEN_FLAGS, 0o600, dir_fd=home_fd)
        except OSError as err:
            raise UserDBError(f"open {shown}/{FILE}: {err.strerror}") from None
        try:
            st = posix.fstat(fd)
            if (st.st_mode & 0o170000) != 0o100000 or st.st_nlink != 1 or st.st_uid != posix.geteuid():
                raise UserDBError(f"{shown}/{FILE} is not a plain file of this user with one link:"
                                  " not used")
            # SQLite opens by name: the home through its open fd, then the same inode checked.
            path = f"/proc/self/fd/{home_fd}/{FILE}"
            if not posix.access("/proc/self/fd", posix.F_OK):  # no /proc: by name, checked below
                path = f"{shown}/{FILE}"
            connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            try:
                name = connection.execute("PRAGMA database_list").fetchone()[2]
                there = posix.stat(name, follow_symlinks=False)
                if (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino):
                    raise UserDBError(f"{shown}/{FILE} changed while it was opened: not used")
                connection.execute(SCHEMA)
                connection.execute("SELECT count(*) FROM seen WHERE kind = ''").fetchone()
            except BaseException:
                connection.close()
                raise
        except BaseException:
            posix.close(fd)
            raise
        return cls(connection, fd, shown, home_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.connection.close()
        finally:
            posix.close(self.fd)

    def seen(self, kind, key, now=None):
        """True when an unexpired entry (kind, key) exists."""
        now = now_of(now)
        row = self.run(lambda c: c.execute("SELECT expires FROM seen WHERE kind = ? AND key = ?",
                                           (kind, key)).fetchone())
        return row is not None and row[0] > now

    def claim(self, kind, key, period, now=None):
        """Record (kind, key) for `period` seconds unless an unexpired entry exists: True
        when this caller claimed it (and should act), False when it was there already."""
        now = now_of(now)

        def step(c):
            row = c.execute("SELECT expires FROM seen WHERE kind = ? AND key = ?",
                            (kind, key)).fetchone()
            if row is not None and row[0] > now:
                return False
            c.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)", (kind, key, now + period, now))
            prune(c, kind, now)
            return True
        return self.write(step)

    def record(self, kind, key, period, last=False, now=None):
        """Mark (kind, key) seen for `period` seconds from now; an unexpired entry keeps
        its expiry unless last (RFC 7352 :last: the period runs from the last one)."""
        now = now_of(now)

        def step(c):
            row = c.execute("SELECT expires FROM seen WHERE kind = ? AND key = ?",
                            (kind, key)).fetchone()
            if row is None or row[0] <= now or last:
                c.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)",
                          (kind, key, now + period, now))
                prune(c, kind, now)
        self.write(step)

    def forget(self, kind, key):
        self.write(lambda c: c.execute("DELETE FROM seen WHERE kind = ? AND key = ?", (kind, key)))

    def write(self, step):
        def transaction(c):
            c.execute("BEGIN IMMEDIATE")
            try:
                out = step(c)
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            return out
        return self.run(transaction)

    def run(self, step):
        try:
            return step(self.connection)
        except (UserDBError, DeliveryError):
            raise
        except Exception as error:  # noqa: BLE001 - sqlite3's errors: the caller notes them
            if damaged(error):
                # Found damaged in use: set aside, so the next delivery starts afresh.
                try:
                    set_aside(self.home_fd, self.shown)
                    done = f"set aside as {DAMAGED}"
                except UserDBError as failed:
                    done = str(failed)
                raise UserDBError(f"{self.shown}/{FILE} is damaged ({error}): {done}") from None
            raise UserDBError(f"{self.shown}/{FILE}: {error}") from None



def prune(c, kind, now):
    c.execute("DELETE FROM seen WHERE kind = ? AND expires <= ?", (kind, now))
    c.execute("DELETE FROM seen WHERE kind = ? AND rowid IN (SELECT rowid FROM seen WHERE kind = ?"
              " ORDER BY stamp DESC LIMIT -1 OFFSET ?)", (kind, kind, MAX_ENTRIES))


def now_of(now):
    if now is None:
        import time
        return int(time.time())
    return int(now)


def damaged(error):
    """A sqlite3.DatabaseError that says the file is not (or no longer) a database;
    OperationalError (locked, read-only, cannot open) is not damage."""
    import sqlite3
    return (isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError)) \
        or "malformed" in str(error) or "not a database" in str(error)


def check_entry(home_fd, name, shown):
    """A name SQLite will open beside the database: absent, or a plain file with one link."""
    try:
        st = posix.stat(name, dir_fd=home_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as err:
        raise UserDBError(f"{shown}/{name}: {err.strerror}") from None
    if (st.st_mode & 0o170000) != 0o100000 or st.st_nlink != 1:
        raise UserDBError(f"{shown}/{name} is not a plain file with one link: no database used")


def set_aside(home_fd, shown):
    """Rename the damaged database (and its journal) aside; the next open makes a new one."""
    for name, to in ((FILE, DAMAGED), (JOURNAL, DAMAGED + "-journal")):
        try:
            posix.rename(name, to, src_dir_fd=home_fd, dst_dir_fd=home_fd)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise UserDBError(f"{shown}/{FILE} is damaged and cannot be set aside:"
                              f" {err.strerror}") from None

