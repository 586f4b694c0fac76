"""hash: and btree: -- the Berkeley DB files `postmap hash:file` writes (file.db).

A hash: file of the shape postmap writes is read natively (bdbhash.py: no
libdb to load, about 1 ms of every pipe delivery); any other, and every
btree:, with the `berkeleydb` binding (the `bdb` extra: `pip install
vdeliver[bdb]`, built against Debian's libdb5.3-dev), as dict_db.c does:
open read-only with the table's own access method (a hash: name on a btree
file is an error, as in Postfix), hold a shared flock() on the file while
opening and during each lookup (postmap rewrites the file in place under an
exclusive one), try the key with its trailing NUL (postmap on Linux stores
one), then without; a value ends at its first NUL.

Without the binding, lookups go to `/usr/sbin/postmap -q` (postmap.py); the
table's `note` says so, for the caller to log once.

Threads (the LMTP daemon): the flock() belongs to the table's one open file,
shared by all threads, so one thread's unlock would end another's lookup
under the lock, and a handle the binding opened without DB_THREAD must not
serve two threads; the table's own lock lets one lookup at a time in.

Never: return a value for a key it does not hold; a missing or unreadable
.db file is a TableError (defer); under smtputf8_enable = yes a value that
is not valid UTF-8 is a TableError (dict_utf8.c).
"""
import _thread
import posix

from vdeliver.address import table_key
from vdeliver.errors import DeliveryError, TableError
from vdeliver.tables.bdbhash import HashFile, Unsupported
from vdeliver.tables.cdb import decode, get_stored


def load_binding():
    """The berkeleydb C module, or None when the extra is not installed."""
    from vdeliver.tables.extension import load
    try:
        return load("berkeleydb", "_berkeleydb")
    except ImportError:
        return None


class BerkeleyTable:
    """A .db file under postmap's locking; `open_reader(path, fd)` returns (get, error class)."""
    fixed_keys = True
    note = None

    def __init__(self, spec, path, open_reader):
        import fcntl
        self.spec = spec
        self.flock = fcntl.flock
        self.shared, self.unlock = fcntl.LOCK_SH, fcntl.LOCK_UN
        self.lock = _thread.allocate_lock()  # see the top: threads
        try:
            self.lock_fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as err:
            raise TableError(f"cannot open {spec}: open database {path}: {err.strerror}") from None
        try:
            self.flock(self.lock_fd, self.shared)
            try:
                self.get, self.error = open_reader(path, self.lock_fd)
            finally:
                self.flock(self.lock_fd, self.unlock)
        except Exception as err:
            posix.close(self.lock_fd)
            if isinstance(err, (DeliveryError, Unsupported)):  # TableError, the time limit
                raise
            raise TableError(f"cannot open {spec}: open database {path}: {describe(err)}") from None

    def close(self):
        if self.lock_fd >= 0:
            posix.close(self.lock_fd)
            self.lock_fd = -1

    def lookup(self, key):
        data = table_key(key)
        if data is None:
            return None  # not UTF-8 under smtputf8_enable = yes: Postfix skips the lookup
        try:
            with self.lock:
                self.flock(self.lock_fd, self.shared)
                try:
                    value = get_stored(self.get, data)
                finally:
                    self.flock(self.lock_fd, self.unlock)
        except (OSError, self.error) as err:
            raise TableError(f"{self.spec}: error reading database: {describe(err)}") from None
        return None if value is None else decode(value, self.spec, key)


def native_hash_reader(spec):
    def open_reader(path, fd):
        return HashFile(fd, spec).get, TableError
    return open_reader


def binding_reader(binding, access_method):
    def open_reader(path, fd):
        db = binding.DB()
        db.open(path, None, access_method, binding.DB_RDONLY)
        return db.get, binding.DBError
    return open_reader


def describe(err):
    args = getattr(err, "args", ())
    if len(args) == 2 and isinstance(args[1], str):
        return args[1]
    return getattr(err, "strerror", None) or str(err)


def open_table(name, spec):
    table_type = spec.partition(":")[0]
    if table_type == "hash":
        try:  # libdb costs ~1 ms to load; the files postmap writes need none of it
            return BerkeleyTable(spec, name + ".db", native_hash_reader(spec))
        except Unsupported:
            pass
    binding = load_binding()
    if binding is None:
        from vdeliver.tables.postmap import PostmapTable
        return PostmapTable(spec, f"{table_type}:{name}", note=(
            f"{spec}: the Berkeley DB module is not installed (pip install vdeliver[bdb]);"
            " looking up with /usr/sbin/postmap -q"))
    access_method = binding.DB_BTREE if table_type == "btree" else binding.DB_HASH
    return BerkeleyTable(spec, name + ".db", binding_reader(binding, access_method))
