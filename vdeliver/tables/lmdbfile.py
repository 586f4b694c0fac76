"""lmdb: the LMDB files `postmap lmdb:file` writes (file.lmdb), read natively.

An LMDB data file is a B+tree of pages (liblmdb's mdb.c): pages 0 and 1 are
meta pages, the one with the larger transaction id is current, and its main
database names the root page. Branch pages hold (key, child page) nodes, the
first key standing for "less than all"; leaf pages hold (key, value) nodes;
a value that does not fit a page lives in overflow pages (F_BIGDATA). Keys
are ordered as memcmp(), the shorter first. A lookup pread()s the two meta
pages and the pages on one root-to-leaf path: no library to load (py-lmdb's
start-up cost about 2 ms of every pipe delivery), nothing mapped.

As dict_lmdb.c: the environment is the file itself (MDB_NOSUBDIR), read
without LMDB's lock file (MDB_NOLOCK: postmap uses none); instead a shared
fcntl() lock on the file is held during each lookup, as postmap holds an
exclusive one while it writes; the meta pages are read again each time, so
a long-lived reader (the LMTP daemon) sees what postmap wrote last. Keys and
values are stored with a trailing NUL; a lookup tries with it, then without;
a value ends at its first NUL.

Threads (the LMTP daemon): an fcntl() lock belongs to the process, not to
a thread, so one thread's unlock would end another's lookup under the lock;
the table's own lock lets one lookup at a time hold it (a lookup is a few
pread()s).

Never: return a value for a key it does not hold, or guess: a bad magic or
version, a database flag that changes the key order or allows duplicates
(postmap sets none), a page or node out of range or of an unexpected kind is
a TableError (defer), as is a missing or unreadable file; under
smtputf8_enable = yes a value that is not valid UTF-8 is a TableError
(dict_utf8.c).
"""
import _thread
import posix

from vdeliver.address import table_key
from vdeliver.errors import TableError
from vdeliver.tables.cdb import decode, get_stored

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
PAGE_HEADER = 16        # mp_pgno (8), mp_pad (2), mp_flags (2), mp_lower (2), mp_upper (2)
NODE_HEADER = 8         # mn_lo (2), mn_hi (2), mn_flags (2), mn_ksize (2)
META_AT = PAGE_HEADER   # MDB_meta follows the page header of pages 0 and 1
P_BRANCH, P_LEAF, P_OVERFLOW, P_META, P_LEAF2 = 0x01, 0x02, 0x04, 0x08, 0x20
F_BIGDATA, F_SUBDATA, F_DUPDATA = 0x01, 0x02, 0x04
P_INVALID = (1 << 64) - 1
MAX_DEPTH = 64
FIRST_READ = 1 << 16    # enough for meta page 0 of any page size postmap uses


def u16(data, at):
    return data[at] | data[at + 1] << 8


def u64(data, at):
    return int.from_bytes(data[at:at + 8], "little")


class LmdbTable:
    fixed_keys = True
    note = None

    def __init__(self, spec, path):
        import fcntl
        self.spec = spec
        self.lockf = fcntl.lockf
        self.shared, self.unlock = fcntl.LOCK_SH, fcntl.LOCK_UN
        self.lock = _thread.allocate_lock()  # see the top: threads
        try:
            self.fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as err:
            raise TableError(f"cannot open {spec}: open database {path}: {err.strerror}") from None
        try:
            self.locked(self.root)  # a file that is not LMDB fails here, not at the first lookup
        except TableError:
            posix.close(self.fd)
            raise

    def close(self):
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def lookup(self, key):
        data = table_key(key)
        if data is None:
            return None  # not UTF-8 under smtputf8_enable = yes: Postfix skips the lookup
        value = self.locked(self.find_both, data)
        return None if value is None else decode(value, self.spec, key)

    def locked(self, function, *args):
        try:
            with self.lock:
                self.lockf(self.fd, self.shared)
                try:
                    return function(*args)
                finally:
                    self.lockf(self.fd, self.unlock)
        except OSError as err:
            raise TableError(f"{self.spec}: error reading database: {err.strerror}") from None

    def find_both(self, data):
        page_size, root = self.root()
        return get_stored(lambda key: self.find(key, page_size, root), data)

    # --- the file format -------------------------------------------------------------------

    def bad(self, what):
        return TableError(f"{self.spec}: not an LMDB file postmap wrote: {what}")

    def root(self):
        """(page size, root page of the main database) from the current meta page."""
        first = posix.pread(self.fd, FIRST_READ, 0)
        if len(first) < META_AT + 136:
            raise self.bad("too short")
        page_size = int.from_bytes(first[META_AT + 24:META_AT + 28], "little")  # free DB's md_pad
        if page_size < 512 or page_size & (page_size - 1) or page_size > FIRST_READ:
            raise self.bad(f"page size {page_size}")
        metas = [self.meta(first[:page_size], 0)]
        second = posix.pread(self.fd, page_size, page_size)
        if len(second) == page_size:
            metas.append(self.meta(second, 1))
        valid = [meta for meta in metas if meta is not None]
        if not valid:
            raise self.bad("no valid meta page")
        txnid, flags, root = max(valid)
        if flags:
            raise self.bad(f"main database flags {flags:#x} (sorted duplicates or another key order)")
        return page_size, root

    def meta(self, page, number):
        """(txnid, main DB flags, main DB root) of meta page `number`, or None if it is not one."""
        if u64(page, 0) != number or not u16(page, 10) & P_META:
            return None
        if int.from_bytes(page[META_AT:META_AT + 4], "little") != MAGIC:
            return None
        if int.from_bytes(page[META_AT + 4:META_AT + 8], "little") != DATA_VERSION:
            raise self.bad("unknown data version")
        main = META_AT + 24 + 48  # mm_dbs[MAIN_DBI]: md_pad, md_flags, md_depth, 4 counts, md_root
        return u64(page, META_AT + 128), u16(page, main + 4), u64(page, main + 40)

    def page(self, number, page_size):
        page = posix.pread(self.fd, page_size, number * page_size)
        if len(page) != page_size or u64(page, 0) != number:
            raise self.bad(f"page {number} is missing or misplaced")
        return page

    def node(self, page, index, page_size):
        """(offset of node `index`, its key)."""
        at = u16(page, PAGE_HEADER + 2 * index)
        if at < PAGE_HEADER or at + NODE_HEADER > page_size:
            raise self.bad("node out of its page")
        end = at + NODE_HEADER + u16(page, at + 6)
        if end > page_size:
            raise self.bad("key out of its page")
        return at, page[at + NODE_HEADER:end]

    def find(self, key, page_size, number):
        """The value stored under `key` (bytes), or None."""
        if number == P_INVALID:
            return None  # an empty database
        for _ in range(MAX_DEPTH):
            page = self.page(number, page_size)
            flags = u16(page, 10)
            count = (u16(page, 12) - PAGE_HEADER) >> 1
            if count < 1 or PAGE_HEADER + 2 * count > page_size:
                raise self.bad(f"page {number} has {count} nodes")
            if flags & P_BRANCH:
                number = self.child(page, count, key, page_size)
            elif flags & P_LEAF and not flags & P_LEAF2:
                return self.leaf_value(page, count, key, page_size)
            else:
                raise self.bad(f"page {number} has flags {flags:#x}")
        raise self.bad("tree deeper than any LMDB file")

    def child(self, page, count, key, page_size):
        """The child page whose key range holds `key`: the last node with a key <= it."""
        low, high, pick = 1, count - 1, 0
        while low <= high:
            middle = (low + high) // 2
            if self.node(page, middle, page_size)[1] <= key:
                pick, low = middle, middle + 1
            else:
                high = middle - 1
        at, _ = self.node(page, pick, page_size)
        return u16(page, at) | u16(page, at + 2) << 16 | u16(page, at + 4) << 32

    def leaf_value(self, page, count, key, page_size):
        low, high = 0, count - 1
        while low <= high:
            middle = (low + high) // 2
            at, found = self.node(page, middle, page_size)
            if found == key:
                return self.value(page, at, len(found), page_size)
            if found < key:
                low = middle + 1
            else:
                high = middle - 1
        return None

    def value(self, page, at, key_size, page_size):
        size = u16(page, at) | u16(page, at + 2) << 16
        flags = u16(page, at + 4)
        start = at + NODE_HEADER + key_size
        if flags & (F_SUBDATA | F_DUPDATA):
            raise self.bad("duplicate values")
        if not flags & F_BIGDATA:
            if start + size > page_size:
                raise self.bad("value out of its page")
            return page[start:start + size]
        number = u64(page, start)
        data = posix.pread(self.fd, PAGE_HEADER + size, number * page_size)
        if len(data) != PAGE_HEADER + size or u64(data, 0) != number or not u16(data, 10) & P_OVERFLOW:
            raise self.bad(f"overflow page {number}")
        return data[PAGE_HEADER:]


def open_table(name, spec):
    return LmdbTable(spec, name + ".lmdb")
