"""Damaged and truncated table files through the native readers: an answer or a TableError.

cdb:, lmdb: and hash: files are parsed by vdeliver itself (no library to trust),
so a file cut short or with bytes changed anywhere must never raise anything but
TableError, hang, or read outside the file: hypothesis mutates small files that
postmap wrote, and every lookup must return None, a string, or raise TableError
(hash: may also hand a shape it does not know to the berkeleydb binding, which
must then fail the same way). Fixed seed (derandomized), as tests/fuzz's ci profile.
"""
import os
import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import corpus
from tables_support import require_type
from vdeliver.errors import TableError
from vdeliver.tables import open_table

KEYS = ["user1@example.com", "user77@example.com", "nobody@example.com", "k" * 300 + "@x"]
LINES = [f"user{number}@example.com example.com/user{number}/\n" for number in range(150)]
LINES += ["k" * 300 + "@x " + "v" * 9000 + "\n"]  # overflow pages (LMDB keys stop at 511 bytes)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, postfix):
    directory = tmp_path_factory.mktemp("pristine")
    source = directory / "t"
    source.write_text("".join(LINES))
    corpus.cool(source)
    files = {}
    for kind, suffix in (("cdb", ".cdb"), ("lmdb", ".lmdb"), ("hash", ".db")):
        require_type(postfix.supported, kind, "postfix-" + kind if kind != "hash" else "postfix")
        postfix.build(kind, source)
        assert open_table(f"{kind}:{source}").lookup(KEYS[0]) == "example.com/user1/"
        assert open_table(f"{kind}:{source}").lookup(KEYS[3]) == "v" * 9000
        with open(f"{source}{suffix}", "rb") as fh:
            files[kind] = (suffix, fh.read())
    shutil.rmtree(directory)
    return files


mutation = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=40)


@pytest.mark.parametrize("kind", ["cdb", "lmdb", "hash"])
@settings(derandomize=True, max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cut=st.one_of(st.none(), st.floats(0, 1)), changes=mutation)
def test_a_damaged_file_gives_an_answer_or_a_table_error(tmp_path, pristine, kind, cut, changes):
    suffix, data = pristine[kind]
    data = bytearray(data)
    for where, byte in changes:
        data[int(where * len(data))] = byte
    if cut is not None:
        data = data[:int(cut * len(data))]
    path = tmp_path / "t"
    with open(f"{path}{suffix}", "wb") as fh:
        fh.write(data)
    try:
        table = open_table(f"{kind}:{path}")
        for key in KEYS:
            value = table.lookup(key)
            assert value is None or isinstance(value, str)
        event("answered")
    except TableError:
        event("TableError")
    finally:
        os.unlink(f"{path}{suffix}")
