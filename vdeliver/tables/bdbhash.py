"""hash: read natively: the Berkeley DB hash file `postmap hash:file` writes, without libdb.

Loading libdb through the `berkeleydb` binding costs about 1 ms of every pipe
delivery, whatever the table's size. A lookup needs little of it (Berkeley DB
5.3's hash access method, db_page.h and hash.c): the meta page (page 0) gives
the page size, the bucket masks and the spares table; the key's bucket is
`FNV(key) & high_mask` (`& low_mask` when above max_bucket), on page
`bucket + spares[log2(bucket + 1)]`; a bucket is a chain of pages of
(key, data) item pairs, an item too large for a page is a chain of overflow
pages (H_OFFPAGE).

Used only for a file this reader fully understands: little-endian hash meta
page of version 8 to 10, no encryption, checksums, partitions or duplicates,
and the default hash function (h_charkey checks it). Anything else raises
Unsupported and berkeley.py reads the file with the binding, as before. The
caller holds the same shared flock() as for the binding.

Never: return a value for a key it does not hold; a page or item out of
place is a TableError (defer), never a guess.
"""
import posix

from vdeliver.errors import TableError

HASH_MAGIC = 0x061561
VERSIONS = (8, 9, 10)
CHARKEY = b"%$sniglet^&\0"  # sizeof(CHARKEY): with its NUL
PAGE_HEADER = 26         # lsn 8, pgno 4, prev 4, next 4, entries 2, hf_offset 2, level 1, type 1
P_HASH_UNSORTED, P_OVERFLOW, P_HASHMETA, P_HASH = 2, 7, 8, 13
H_KEYDATA, H_OFFPAGE = 1, 3


class Unsupported(Exception):
    """The file is valid Berkeley DB, but not a shape this reader handles."""


def u16(data, at):
    return data[at] | data[at + 1] << 8


def u32(data, at):
    return int.from_bytes(data[at:at + 4], "little")


def fnv(data):
    """Berkeley DB's default hash (__ham_func5): FNV-1 from 0, 32 bits."""
    value = 0
    for byte in data:
        value = ((value * 16777619) & 0xFFFFFFFF) ^ byte
    return value


def log2(number):
    """__db_log2(): the smallest i with 2**i >= number."""
    return max(number - 1, 0).bit_length()


class HashFile:
    def __init__(self, fd, spec):
        self.fd, self.spec = fd, spec
        self.meta()  # Unsupported before anyone relies on this reader

    def bad(self, what):
        return TableError(f"{self.spec}: damaged hash database: {what}")

    def meta(self):
        """(page size, max_bucket, high_mask, low_mask, spares) from page 0, checked; also sets
        self.pages, the most pages a chain can visit (more is a loop in a damaged file)."""
        page = posix.pread(self.fd, 512, 0)
        if len(page) < 224:
            raise Unsupported("too short for a hash meta page")
        if u32(page, 12) != HASH_MAGIC or page[25] != P_HASHMETA:
            raise Unsupported("not a little-endian hash database")
        if u32(page, 16) not in VERSIONS:
            raise Unsupported(f"hash version {u32(page, 16)}")
        page_size = u32(page, 20)
        if page_size < 512 or page_size & (page_size - 1) or page_size > 65536:
            raise Unsupported(f"page size {page_size}")
        if page[24] or page[26] or u32(page, 36) or u32(page, 48):
            raise Unsupported("encrypted, checksummed, partitioned or with duplicates")
        if u32(page, 92) != fnv(CHARKEY):
            raise Unsupported("not the default hash function")
        spares = [u32(page, 96 + 4 * index) for index in range(32)]
        self.pages = min(u32(page, 32), posix.fstat(self.fd).st_size // page_size) + 1  # last_pgno
        return page_size, u32(page, 72), u32(page, 76), u32(page, 80), spares

    def get(self, key):
        """The data stored under `key` (bytes), or None."""
        page_size, max_bucket, high_mask, low_mask, spares = self.meta()
        bucket = fnv(key) & high_mask
        if bucket > max_bucket:
            bucket &= low_mask
        number = bucket + spares[log2(bucket + 1)]
        first = posix.pread(self.fd, PAGE_HEADER, number * page_size)
        if number >= self.pages or len(first) < PAGE_HEADER:
            raise self.bad(f"bucket page {number} is past the end of the file")  # cut short: defer
        if u32(first, 8) == 0 and first[25] == 0:
            return None  # a bucket page allocated but never written (zeros): empty, as libdb has it
        for _ in range(self.pages):
            page = self.page(number, page_size, (P_HASH, P_HASH_UNSORTED))
            entries = u16(page, 20)
            if entries & 1 or PAGE_HEADER + 2 * entries > page_size:
                raise self.bad(f"page {number} has {entries} items")
            for index in range(0, entries, 2):
                if self.item(page, index, page_size) == key:
                    return self.item(page, index + 1, page_size)
            number = u32(page, 16)
            if number == 0:
                return None
        raise self.bad("endless bucket chain")

    def page(self, number, page_size, kinds):
        page = posix.pread(self.fd, page_size, number * page_size)
        if len(page) != page_size or u32(page, 8) != number or page[25] not in kinds:
            raise self.bad(f"page {number} is missing or of the wrong kind")
        return page

    def item(self, page, index, page_size):
        """Item `index` of a hash page: its bytes, following an overflow chain if need be."""
        start = u16(page, PAGE_HEADER + 2 * index)
        end = page_size if index == 0 else u16(page, PAGE_HEADER + 2 * index - 2)
        if not PAGE_HEADER < start < end <= page_size:
            raise self.bad(f"item {index} out of its page")
        kind = page[start]
        if kind == H_KEYDATA:
            return page[start + 1:end]
        if kind == H_OFFPAGE and end - start >= 12:
            return self.overflow(u32(page, start + 4), u32(page, start + 8), page_size)
        raise self.bad(f"item of type {kind}")

    def overflow(self, number, total, page_size):
        parts, length = [], 0
        for _ in range(self.pages):
            page = self.page(number, page_size, (P_OVERFLOW,))
            size = u16(page, 22)  # OV_LEN: the bytes of data on this page
            if PAGE_HEADER + size > page_size:
                raise self.bad(f"overflow page {number}")
            parts.append(page[PAGE_HEADER:PAGE_HEADER + size])
            length += size
            number = u32(page, 16)
            if number == 0 or length >= total:
                break
        data = b"".join(parts)
        if len(data) != total:
            raise self.bad("overflow chain of the wrong length")
        return data
