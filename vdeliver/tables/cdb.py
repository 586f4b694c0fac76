"""cdb: tables that `postmap cdb:file` wrote (file.cdb), read in pure Python.

The cdb format (cr.yp.to/cdb/cdb.txt): a 2048-byte header of 256 (position,
slot count) pairs, little-endian uint32; records (key length, value length,
key, value); then 256 open-addressed hash tables of (hash, record position)
slots. hash = djb: h = 5381; h = ((h << 5) + h) ^ byte (mod 2**32); table =
h & 255; first slot = (h >> 8) % slots.

As dict_cdb.c, a lookup tries the key with a trailing NUL, then without
(postmap writes cdb keys and values without one); a value ends at its first
NUL. A cdb file is never rewritten in place (postmap renames a new one over
it), so no lock is needed. Also used by texthash.py for its compiled cache
(write()).

Threads: a lookup is pread()s at offsets on a descriptor opened once, which
keeps no file position: threads share a table without a lock.


Never: return a value for a key it does not hold; a missing, unreadable or
truncated file is a TableError (defer), not "not found"; under
smtputf8_enable = yes a value that is not valid UTF-8 is a TableError
(dict_utf8.c), under no it is returned as it is. Imports only builtins and
vdeliver.address.
"""
import posix

from vdeliver.address import table_key, table_value
from vdeliver.errors import TableError

MASK = 0xFFFFFFFF


def djb_hash(data):
    h = 5381
    for byte in data:
        h = (((h << 5) + h) & MASK) ^ byte
    return h


class CdbFile:
    """Low-level reader: get(bytes) -> bytes or None; OSError/ValueError on trouble."""

    def __init__(self, path):
        self.path = path
        self.fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)

    def close(self):
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def read(self, length, offset):
        data = posix.pread(self.fd, length, offset)
        if len(data) != length:
            raise ValueError(f"{self.path}: truncated cdb file")
        return data

    def get(self, key):
        h = djb_hash(key)
        entry = self.read(8, (h & 255) << 3)
        table = int.from_bytes(entry[:4], "little")
        slots = int.from_bytes(entry[4:], "little")
        if not slots:
            return None
        slot = (h >> 8) % slots
        # One read for the whole table when it is small; slot by slot otherwise.
        if slots <= 512:
            data = self.read(slots << 3, table)
            for probe in range(slots):
                at = ((slot + probe) % slots) << 3
                position = int.from_bytes(data[at + 4:at + 8], "little")
                if not position:
                    return None
                if int.from_bytes(data[at:at + 4], "little") == h:
                    value = self.record(position, key)
                    if value is not None:
                        return value
            return None
        for probe in range(slots):
            pair = self.read(8, table + (((slot + probe) % slots) << 3))
            position = int.from_bytes(pair[4:], "little")
            if not position:
                return None
            if int.from_bytes(pair[:4], "little") == h:
                value = self.record(position, key)
                if value is not None:
                    return value
        return None

    def record(self, position, key):
        head = self.read(8 + len(key), position)
        if int.from_bytes(head[:4], "little") != len(key) or head[8:] != key:
            return None
        length = int.from_bytes(head[4:8], "little")
        return self.read(length, position + 8 + len(key)) if length else b""


class CdbTable:
    fixed_keys = True

    def __init__(self, spec, path):
        self.spec = spec
        try:
            self.file = CdbFile(path)
        except OSError as err:
            raise TableError(f"cannot open {spec}: {path}: {err.strerror}") from None

    def close(self):
        self.file.close()

    def lookup(self, key):
        data = table_key(key)
        if data is None:
            return None  # not UTF-8 under smtputf8_enable = yes: Postfix skips the lookup
        try:
            value = get_stored(self.file.get, data)
        except (OSError, ValueError) as err:
            raise TableError(f"{self.spec}: read error: {err}") from None
        return None if value is None else decode(value, self.spec, key)


def get_stored(get, data):
    """postmap stores keys with their trailing NUL on Linux (dict_db.c, dict_cdb.c,
    dict_lmdb.c): look for that first, then for the key as it is."""
    value = get(data + b"\0")
    return value if value is not None else get(data)


def decode(value, spec, key):
    """A stored C string -> str: up to the first NUL; strict UTF-8 under
    smtputf8_enable = yes (address.table_value())."""
    text = table_value(value.partition(b"\0")[0])
    if text is None:
        raise TableError(f"{spec}: key {key!r}: value is not valid UTF-8")
    return text


def open_table(name, spec):
    return CdbTable(spec, name + ".cdb")


def write(path, items):
    """Write a cdb file of (key bytes, value bytes) pairs to `path` (the caller
    renames it into place). Later duplicates are stored but never found."""
    import struct
    tables = [[] for _ in range(256)]
    chunks = []
    position = 2048
    pack_record = struct.Struct("<II").pack
    for key, value in items:
        h = djb_hash(key)
        tables[h & 255].append((h, position))
        chunks.append(pack_record(len(key), len(value)))
        chunks.append(key)
        chunks.append(value)
        position += 8 + len(key) + len(value)
    header = []
    for entries in tables:
        slots = len(entries) * 2
        header.append((position, slots))
        if not slots:
            continue
        table = [(0, 0)] * slots
        for h, record in entries:
            at = (h >> 8) % slots
            while table[at][1]:
                at = (at + 1) % slots
            table[at] = (h, record)
        chunks.append(b"".join(pack_record(h, record) for h, record in table))
        position += slots * 8
    if position > MASK:
        raise ValueError("cdb file would exceed 4 GB")
    fd = posix.open(path, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o600)
    try:
        data = b"".join(pack_record(pos, slots) for pos, slots in header) + b"".join(chunks)
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
    finally:
        posix.close(fd)
