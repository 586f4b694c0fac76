"""The native hash: reader (bdbhash.py) against libdb itself on files postmap wrote.

test_differential.py compares answers with postmap -q on the shared corpus; this
goes below the answers: every stored key, its neighbours and random misses give the
same bytes as libdb (the berkeleydb binding), with keys and values that need
overflow pages and buckets that chain; an empty table finds nothing; a file of
another shape (btree, another hash function) is left to the binding; a damaged
page is a TableError, never a wrong answer.
"""
import posix
import random

import pytest

from tables_support import postmap_table, require_module
from vdeliver.errors import TableError
from vdeliver.tables import open_table
from vdeliver.tables.bdbhash import HashFile, Unsupported


def postmap(tmp_path, postfix, kind, name, lines):
    return postmap_table(tmp_path, postfix, kind, name, lines)


def test_every_key_neighbour_and_miss_reads_as_libdb_does(tmp_path, postfix):
    require_module("berkeleydb", "bdb")
    import berkeleydb
    chooser = random.Random(20261125)
    sizes = [1, 10, 100, 1500, 3000, 9000]  # > about 1000 bytes: an overflow item on 4 KiB pages
    lines = [f"{'k' * chooser.choice(sizes)}{number}@example.com {'v' * chooser.choice(sizes)}{number}\n"
             for number in range(3000)]
    source = postmap(tmp_path, postfix, "hash", "big", lines)
    path = f"{source}.db"
    db = berkeleydb.db.DB()
    db.open(path, None, berkeleydb.db.DB_HASH, berkeleydb.db.DB_RDONLY)
    cursor, stored = db.cursor(), []
    record = cursor.first()
    while record:
        stored.append(record[0])
        record = cursor.next()
    assert len(stored) == 3000
    probes = list(stored)
    for key in stored[::7]:
        probes += [key[:-1], key + b"\0", key + b"x"]
    probes += [bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 30))) for _ in range(3000)]
    fd = posix.open(path, posix.O_RDONLY)
    try:
        native = HashFile(fd, f"hash:{source}")
        big = 0
        for key in probes:
            wanted = db.get(key)
            assert native.get(key) == wanted, key
            big += len(key) > 1000 and wanted is not None
    finally:
        posix.close(fd)
    assert big > 300
    table = open_table(f"hash:{source}")
    assert table.get.__qualname__ == "HashFile.get"
    assert table.lookup(lines[5].split(" ")[0]) == lines[5].split(" ", 1)[1].rstrip("\n")


def test_an_empty_table_finds_nothing(tmp_path, postfix):
    source = postmap(tmp_path, postfix, "hash", "empty", [])
    table = open_table(f"hash:{source}")
    assert table.get.__qualname__ == "HashFile.get" and table.lookup("anyone@example.com") is None


def test_other_shapes_go_to_the_binding(tmp_path, postfix):
    require_module("berkeleydb", "bdb")
    source = postmap(tmp_path, postfix, "hash", "charkey", ["a@example.com 1\n"])
    data = bytearray((tmp_path / "charkey.db").read_bytes())
    fd = posix.open(str(tmp_path / "charkey.db"), posix.O_RDONLY)
    try:
        HashFile(fd, "hash:charkey")
        data[92:96] = b"\0\0\0\0"  # h_charkey: as if another hash function wrote it
        (tmp_path / "other.db").write_bytes(bytes(data))
        other = posix.open(str(tmp_path / "other.db"), posix.O_RDONLY)
        with pytest.raises(Unsupported):
            HashFile(other, "hash:other")
        posix.close(other)
    finally:
        posix.close(fd)
    btree = postmap(tmp_path, postfix, "btree", "tree", ["a@example.com 1\n"])
    with pytest.raises(TableError):  # a btree named hash: is an error, as in Postfix (libdb says so)
        open_table(f"hash:{btree}")
    assert open_table(f"hash:{source}").lookup("a@example.com") == "1"


def test_a_damaged_bucket_page_is_a_table_error(tmp_path, postfix):
    source = postmap(tmp_path, postfix, "hash", "damaged",
                     [f"user{number}@example.com box{number}/\n" for number in range(200)])
    data = bytearray((tmp_path / "damaged.db").read_bytes())
    page_size = int.from_bytes(data[20:24], "little")
    for number in range(1, len(data) // page_size):  # every hash page claims to be another page
        data[number * page_size + 8:number * page_size + 12] = (9999).to_bytes(4, "little")
    (tmp_path / "damaged.db").write_bytes(bytes(data))
    table = open_table(f"hash:{source}")
    with pytest.raises(TableError):
        table.lookup("user7@example.com")


def test_a_file_cut_short_is_a_table_error_not_an_unknown_user(tmp_path, postfix):
    """A bucket page past the end (a truncated copy) must defer: 'not found' would bounce 5.1.1."""
    source = postmap(tmp_path, postfix, "hash", "cut",
                     [f"user{number}@example.com box{number}/\n" for number in range(500)])
    data = (tmp_path / "cut.db").read_bytes()
    page_size = int.from_bytes(data[20:24], "little")
    (tmp_path / "cut.db").write_bytes(data[:page_size])  # the meta page alone
    table = open_table(f"hash:{source}")
    assert table.get.__qualname__ == "HashFile.get"
    with pytest.raises(TableError):
        table.lookup("user7@example.com")
