"""The native lmdb: reader against py-lmdb (liblmdb itself) on files postmap wrote.

test_differential.py compares answers with postmap -q for the shared corpus; this
goes below the answers: every stored key, its neighbours and random misses must
give the same bytes as liblmdb, on a table with values that need overflow pages
(larger than a page) and a tree with branch pages, and on an empty table; a file
that is not LMDB, or a database with sorted duplicates, is a TableError.
"""
import random

import pytest

from tables_support import postmap_table, require_module
from vdeliver.errors import TableError
from vdeliver.tables import open_table


def postmap_lmdb(tmp_path, postfix, name, lines):
    return postmap_table(tmp_path, postfix, "lmdb", name, lines, "postfix-lmdb")


def test_every_key_neighbour_and_miss_reads_as_liblmdb_does(tmp_path, postfix):
    require_module("lmdb", "test")
    import lmdb
    chooser = random.Random(20261125)
    sizes = [1, 10, 100, 1500, 2100, 3000, 9000, 40000]  # a 4 KiB page: > ~2000 bytes overflow
    lines = [f"key{number}@example.com {'v' * chooser.choice(sizes)}{number}\n" for number in range(3000)]
    source = postmap_lmdb(tmp_path, postfix, "big", lines)
    table = open_table(f"lmdb:{source}")
    env = lmdb.open(f"{source}.lmdb", subdir=False, readonly=True, lock=False)
    checked = overflowed = 0
    with env.begin() as txn:
        stored = [key for key, _ in txn.cursor()]
        assert len(stored) == 3000
        probes = list(stored)
        for key in stored[::7]:
            probes += [key[:-1], key + b"\0", key + b"x", key[:-2] + b"\xff"]
        probes += [bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 30)))
                   for _ in range(3000)]
        for key in probes:
            wanted = txn.get(key)
            page_size, root = table.root()
            assert table.find(key, page_size, root) == wanted, key
            checked += 1
            overflowed += wanted is not None and len(wanted) > 4096
    assert checked == len(probes) > 7000 and overflowed > 300
    # and through the table interface: the value without its NUL
    assert table.lookup("key7@example.com") == lines[7].split(" ", 1)[1].rstrip("\n")
    assert table.lookup("KEY7@example.com") is None  # folding is resolve's job, not the reader's


def test_an_empty_table_finds_nothing(tmp_path, postfix):
    source = postmap_lmdb(tmp_path, postfix, "empty", [])
    assert open_table(f"lmdb:{source}").lookup("anyone@example.com") is None


@pytest.mark.parametrize("content", [b"", b"not lmdb" * 1000, bytes(8192)])
def test_a_file_that_is_not_lmdb_is_a_table_error(tmp_path, content):
    (tmp_path / "t.lmdb").write_bytes(content)
    with pytest.raises(TableError):
        open_table(f"lmdb:{tmp_path / 't'}")


def test_sorted_duplicates_are_refused_not_misread(tmp_path, postfix):
    """A main database flagged MDB_DUPSORT (postmap never sets it) defers rather than guess."""
    source = postmap_lmdb(tmp_path, postfix, "dup", ["a@example.com 1\n"])
    assert open_table(f"lmdb:{source}").lookup("a@example.com") == "1"
    data = bytearray((tmp_path / "dup.lmdb").read_bytes())
    page_size = int.from_bytes(data[16 + 24:16 + 28], "little")
    for meta_page in (0, 1):  # mm_dbs[MAIN_DBI].md_flags
        flags_at = meta_page * page_size + 16 + 24 + 48 + 4
        data[flags_at:flags_at + 2] = (0x04).to_bytes(2, "little")
    (tmp_path / "dup.lmdb").write_bytes(bytes(data))
    with pytest.raises(TableError) as caught:
        open_table(f"lmdb:{source}")
    assert "main database flags 0x4" in caught.value.detail
