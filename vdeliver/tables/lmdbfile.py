"""lmdb: the LMDB files `postmap lmdb:file` writes (file.lmdb), via the `lmdb` extra.

As dict_lmdb.c: the environment is the file itself (MDB_NOSUBDIR), opened
read-only without LMDB's lock file (MDB_NOLOCK: postmap uses none); instead a
shared fcntl() lock on the file is held during each lookup, as postmap holds
an exclusive one while it writes. Keys and values are stored with a trailing
NUL; a lookup tries with it, then without; a value ends at its first NUL.

Never: return a value for a key it does not hold; a missing or unreadable
file is a TableError (defer); a missing `lmdb` module is a ConfigError whose
reason names the extra to install; a value that is not valid UTF-8 is a
TableError (dict_utf8.c).
"""
import posix

from vdeliver.errors import ConfigError, TableError
from vdeliver.tables.cdb import decode


class LmdbTable:
    fixed_keys = True
    note = None

    def __init__(self, spec, path):
        from vdeliver.tables.extension import load
        try:
            lmdb = load("lmdb", "cpython")
        except ImportError:
            raise ConfigError(f"{spec}: the lmdb module is not installed"
                              " (pip install vdeliver[lmdb])") from None
        import fcntl
        self.spec = spec
        self.lockf = fcntl.lockf
        self.shared, self.unlock = fcntl.LOCK_SH, fcntl.LOCK_UN
        try:
            self.lock_fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as err:
            raise TableError(f"cannot open {spec}: open database {path}: {err.strerror}") from None
        try:
            self.lockf(self.lock_fd, self.shared)
            try:
                self.env = lmdb.open(path, subdir=False, readonly=True, lock=False,
                                     max_dbs=0, create=False)
            finally:
                self.lockf(self.lock_fd, self.unlock)
        except (OSError, lmdb.Error) as err:
            posix.close(self.lock_fd)
            raise TableError(f"cannot open {spec}: open database {path}: {err}") from None
        self.error = lmdb.Error

    def lookup(self, key):
        try:
            data = key.encode("utf-8")
        except UnicodeEncodeError:
            return None  # not UTF-8: Postfix skips the lookup (dict_utf8.c)
        try:
            self.lockf(self.lock_fd, self.shared)
            try:
                with self.env.begin(buffers=False) as txn:
                    value = txn.get(data + b"\0")
                    if value is None:
                        value = txn.get(data)
            finally:
                self.lockf(self.lock_fd, self.unlock)
        except (OSError, self.error) as err:
            raise TableError(f"{self.spec}: error reading database: {err}") from None
        return None if value is None else decode(value, self.spec, key)


def open_table(name, spec):
    return LmdbTable(spec, name + ".lmdb")
