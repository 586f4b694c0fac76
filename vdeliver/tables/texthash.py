"""texthash: a postmap source file read at open (dict_thash.c), with a compiled cache.

Parsing a 100,000-line file costs ~100 ms, and pipe(8) starts vdeliver once
per message. So the parsed table is kept as a cdb file (cdb.py) in
CACHE_DIRECTORY (default /var/cache/vdeliver, which the delivery user must
own; "" turns the cache off), named after the table's path, and used only
while its recorded identity -- path, device, inode, size and mtime in
nanoseconds, and smtputf8_enable (address.py: the parse depends on it) --
still matches. Opening it and one lookup cost a few system calls, whatever
the table's size.

A miss parses the file and, when the file has not changed for
HOT_SECONDS (dict_thash.c re-reads a file that is still being written),
rebuilds the cache under a filelock on a separate `.lock` file: write a
temporary file, rename it into place. A busy lock, an unwritable directory or
any other trouble with the cache just means this delivery parses the file.

As virtual(8) (which opens maps without DICT_FLAG_DUP_WARN), a duplicate key
makes the table fail: every lookup is a TableError (postmap -q instead warns
and keeps the first; query.py says so).

Threads (the LMTP daemon): lookups only read -- a dict built at open, or the
cache through cdb.py's pread() -- so threads share a table without a lock.


Never: return a value for a key it does not hold; never let trouble with the
cache hide a time limit or a signal (only OSError and ValueError mean "parse
this time"); never trust a cache file
that is not owned by the delivery user (or root), is group- or
world-writable, or whose identity does not match; a missing or unreadable
table file is a TableError (defer), not "not found".
"""
import posix

from vdeliver import address
from vdeliver.errors import TableError

CACHE_DIRECTORY = "/var/cache/vdeliver"
HOT_SECONDS = 2
LOCK_TIMEOUT = 0  # seconds: a busy lock means "parse this time", never "wait"
IDENTITY_KEY = b"\0identity"  # real keys never hold a NUL
ERROR_KEY = b"\0error"


class TextHashTable:
    fixed_keys = True
    note = None

    def __init__(self, spec, entries, error=None):
        self.spec = spec
        self.entries = entries
        self.error = error

    def lookup(self, key):
        if self.error:
            raise TableError(self.error)
        return self.entries.get(key)


class CachedTextHashTable:
    """The same answers as TextHashTable, from the compiled cdb cache."""
    fixed_keys = True
    note = None

    def __init__(self, spec, cdb_file):
        self.spec = spec
        self.file = cdb_file

    def close(self):
        self.file.close()

    def lookup(self, key):
        data = address.table_key(key)
        if data is None:
            return None  # such a key is never in the table (invalid lines are skipped)
        try:
            value = self.file.get(data)
        except (OSError, ValueError) as err:
            raise TableError(f"{self.spec}: cache {self.file.path}: {err}") from None
        return None if value is None else value.decode("utf-8", "surrogateescape")


def open_table(name, spec):
    try:
        fd = posix.open(name, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as err:
        raise TableError(f"cannot open {spec}: {err.strerror}") from None
    try:
        st = posix.fstat(fd)
        identity = identity_of(name, st)
        cache = cache_path(name) if CACHE_DIRECTORY else ""
        if cache:
            table = open_cache(spec, cache, identity)
            if table is not None:
                return table
        data = read_all(fd, st.st_size)
        after = posix.fstat(fd)
    except OSError as err:
        raise TableError(f"cannot read {spec}: {err.strerror}") from None
    finally:
        posix.close(fd)
    # The parser only on a miss: with a current cache a delivery never loads it.
    from vdeliver.tables.textfile import parse
    entries, duplicate = parse(data.decode("utf-8", "surrogateescape"))
    error = None
    if duplicate is not None:
        error = f"{spec}, line {duplicate[0]}: duplicate entry: \"{duplicate[1]}\""
    if cache and identity_of(name, after) == identity and not is_hot(after):
        write_cache(cache, identity, entries, error)
    return TextHashTable(spec, entries, error)


def read_all(fd, size):
    chunks = []
    while True:
        chunk = posix.read(fd, max(size + 1, 65536))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def identity_of(name, st):
    utf8 = "yes" if address.SMTPUTF8_ENABLE else "no"
    return (f"{name}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
            f"\0smtputf8_enable={utf8}").encode("utf-8", "surrogateescape")


def is_hot(st):
    import time
    return time.time_ns() - st.st_mtime_ns < HOT_SECONDS * 1_000_000_000 or \
        st.st_mtime_ns > time.time_ns()


def cache_path(name):
    """The cache file of table file `name`: its path, escaped, under CACHE_DIRECTORY."""
    escaped = name.replace("%", "%25").replace("/", "%2F")
    if len(escaped) > 200:
        from vdeliver.tables.cdb import djb_hash
        escaped = f"{djb_hash(escaped.encode('utf-8', 'surrogateescape')):08x}{escaped[-100:]}"
    return f"{CACHE_DIRECTORY}/texthash-{escaped}.cdb"


def open_cache(spec, cache, identity):
    """The cached table when `cache` is trustworthy and current, else None."""
    from vdeliver.tables.cdb import CdbFile
    try:
        cdb_file = CdbFile(cache)
    except OSError:
        return None
    try:
        st = posix.fstat(cdb_file.fd)
        if st.st_uid not in (0, posix.geteuid()) or st.st_mode & 0o022:
            cdb_file.close()
            return None
        if cdb_file.get(IDENTITY_KEY) != identity:
            cdb_file.close()
            return None
        error = cdb_file.get(ERROR_KEY)
    except (OSError, ValueError):
        cdb_file.close()
        return None
    if error is not None:
        cdb_file.close()
        return TextHashTable(spec, {}, error.decode("utf-8", "surrogateescape"))
    return CachedTextHashTable(spec, cdb_file)


def write_cache(cache, identity, entries, error):
    """Best effort: any failure leaves the old cache (or none) and no temporary file."""
    try:
        posix.mkdir(CACHE_DIRECTORY, 0o700)
    except OSError:
        pass
    # filelock costs ~30 ms to import: only when the cache can be written at all.
    if not posix.access(CACHE_DIRECTORY, posix.W_OK | posix.X_OK, effective_ids=True):
        return
    try:
        import filelock
    except ImportError:
        return
    temporary = f"{cache}.{posix.getpid()}.tmp"
    try:
        with filelock.FileLock(cache + ".lock", timeout=LOCK_TIMEOUT):
            items = [(IDENTITY_KEY, identity)]
            if error:
                items.append((ERROR_KEY, error.encode("utf-8", "surrogateescape")))
            else:
                items.extend((key.encode("utf-8", "surrogateescape"),
                              value.encode("utf-8", "surrogateescape"))
                             for key, value in entries.items())
            from vdeliver.tables.cdb import write
            write(temporary, items)
            posix.rename(temporary, cache)
    except BaseException as error:
        try:
            posix.unlink(temporary)
        except OSError:
            pass
        # A busy lock (filelock.Timeout is an OSError), a full disk, a table too big for
        # cdb (ValueError): parse next time again. Anything else, above all the time
        # limit (TimeLimitExceeded) or a signal (Interrupted), ends the delivery: caught
        # here, the rest of it would run without a limit until Postfix's bounces.
        if not isinstance(error, (OSError, ValueError)):
            raise
