"""vdeliver's table readers against Postfix's own postmap -q, answer for answer.

For each file-based type the table is built from the same source by the
real postmap (or, for texthash, regexp and pcre, read by it directly) and
every key of corpus.keys() is asked of both: the value, "not found" and
"error" must agree. pcre and regexp get the key as given, the others fold
it, as postmap -q does.
"""
import sqlite3

import pytest

import corpus
from tables_support import require_type
from vdeliver.address import is_utf8
from vdeliver.tables import open_table
from vdeliver.tables.textfile import parse_entries

INDEXED = [
    pytest.param("hash", "postfix", id="hash"),
    pytest.param("btree", "postfix", id="btree"),
    pytest.param("cdb", "postfix-cdb", id="cdb"),
    pytest.param("lmdb", "postfix-lmdb", id="lmdb"),
]


def compare(postfix, spec, table, keys, compared, name):
    expected = corpus.postmap_answers(postfix, spec, keys)
    actual = corpus.vdeliver_answers(table, keys)
    assert corpus.differences(expected, actual) == {}
    name = f"{name} (smtputf8_enable={postfix.smtputf8_enable})"
    compared[name] = compared.get(name, 0) + len(keys)
    hits = sum(1 for value in expected.values() if value not in (None, "error"))
    assert hits >= 10, f"{name}: the key set should hit the table ({hits} hits)"
    return expected


@pytest.mark.parametrize("table_type, package", INDEXED)
def test_indexed_tables_agree_with_postmap(tmp_path, postfix_mode, compared, table_type,
                                           package):
    require_type(postfix_mode.supported, table_type, package)
    source = tmp_path / "vmailbox"
    source.write_bytes(corpus.source_bytes())
    corpus.cool(source)
    postfix_mode.build(table_type, source)
    spec = f"{table_type}:{source}"
    expected = compare(postfix_mode, spec, open_table(spec), corpus.keys(), compared, table_type)
    # The duplicate keeps its first value (postmap), folded keys find it.
    assert expected[b"DUP@example.com".lower()] == b"example.com/dup-first/"


def test_hash_fallback_through_postmap_agrees(tmp_path, postfix_mode, compared):
    """Without the Berkeley DB module, hash: asks /usr/sbin/postmap -q: same answers."""
    from vdeliver.tables.postmap import PostmapTable
    source = tmp_path / "vmailbox"
    source.write_bytes(corpus.source_bytes(generated=50))
    corpus.cool(source)
    postfix_mode.build("hash", source)
    spec = f"hash:{source}"
    table = PostmapTable(spec, spec, note="fallback")
    compare(postfix_mode, spec, table, corpus.keys(generated=50), compared, "hash via postmap -q")


def test_texthash_agrees_with_postmap(tmp_path, postfix_mode, compared, monkeypatch):
    from vdeliver.tables import texthash
    monkeypatch.setattr(texthash, "CACHE_DIRECTORY", "")  # the parser itself
    source = tmp_path / "vmailbox"
    source.write_bytes(corpus.unique_source_bytes())
    corpus.cool(source)
    spec = f"texthash:{source}"
    compare(postfix_mode, spec, open_table(spec), corpus.keys(), compared, "texthash")


def test_texthash_cache_agrees_with_postmap(tmp_path, postfix_mode, compared, monkeypatch):
    from vdeliver.tables import texthash
    cache = tmp_path / "cache"
    monkeypatch.setattr(texthash, "CACHE_DIRECTORY", str(cache))
    source = tmp_path / "vmailbox"
    source.write_bytes(corpus.unique_source_bytes())
    corpus.cool(source)
    spec = f"texthash:{source}"
    assert isinstance(open_table(spec), texthash.TextHashTable)  # parses, writes the cache
    table = open_table(spec)
    assert isinstance(table, texthash.CachedTextHashTable)
    compare(postfix_mode, spec, table, corpus.keys(), compared, "texthash (cached)")


@pytest.mark.parametrize("table_type, rules, package", [
    pytest.param("regexp", corpus.REGEXP_SOURCE, "postfix", id="regexp"),
    pytest.param("pcre", corpus.PCRE_SOURCE, "postfix-pcre", id="pcre"),
])
def test_pattern_tables_agree_with_postmap(tmp_path, postfix_mode, compared, table_type, rules,
                                           package):
    require_type(postfix_mode.supported, table_type, package)
    path = tmp_path / f"rules.{table_type}"
    path.write_bytes(rules)
    corpus.cool(path)
    spec = f"{table_type}:{path}"
    compare(postfix_mode, spec, open_table(spec), corpus.keys(), compared, table_type)


SQLITE_CONFIGS = {
    "plain": "query = SELECT maildir FROM mailbox WHERE email='%s'\n",
    "legacy": ("table = mailbox\nselect_field = maildir\nwhere_field = email\n"
               "additional_conditions = AND active = 1\n"),
    "parts": ("query = SELECT maildir FROM mailbox WHERE email LIKE '%u@%%' AND domain='%d'\n"
              "result_format = %D/%s/%U\n"),
    "labels": ("query = SELECT maildir FROM mailbox WHERE domain='%2.%1'"
               " AND email = '%U@%D'\n"),
    "domain list": ("query = SELECT maildir FROM mailbox WHERE email='%s'\n"
                    "domain = example.com, !example3.com, example0.com example3.com\n"),
    "several rows": ("query = SELECT maildir FROM mailbox WHERE domain='%d'"
                     " AND email LIKE '%%1%%' ORDER BY email\n"
                     "expansion_limit = 400\n"),
    "over the limit": ("query = SELECT maildir FROM mailbox WHERE domain='%d' ORDER BY email\n"
                       "expansion_limit = 2\n"),
    "numbers": "query = SELECT active + 0.5 FROM mailbox WHERE email='%s'\nresult_format = n=%s\n",
    "result at": "query = SELECT email FROM mailbox WHERE email='%s'\nresult_format = %u at %d\n",
}


def sqlite_database(path, source):
    rows = []
    for key, value in parse_entries(source.decode("utf-8", "surrogateescape")).items():
        if not (is_utf8(key) and is_utf8(value)):
            continue  # kept under smtputf8_enable = no; SQL text is UTF-8
        domain = key.rpartition("@")[2] if "@" in key else None
        rows.append((key, value, domain, 1))
    rows.append(("null@example.com", None, "example.com", 1))
    rows.append(("empty@example.com", "", "example.com", 1))
    rows.append(("inactive@example.com", "example.com/inactive/", "example.com", 0))
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE mailbox (email TEXT, maildir TEXT, domain TEXT,"
                       " active INTEGER)")
    connection.executemany("INSERT INTO mailbox VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()


def sql_keys():
    return corpus.keys(generated=200) + [b"null@example.com", b"empty@example.com",
                                         b"inactive@example.com", b"@example0.com",
                                         b"a@b@example.com", b"x@example.com.", b"x@.com"]


@pytest.mark.parametrize("name", list(SQLITE_CONFIGS))
def test_sqlite_agrees_with_postmap(tmp_path, postfix_mode, compared, name):
    require_type(postfix_mode.supported, "sqlite", "postfix-sqlite")
    database = tmp_path / "mailbox.sqlite"
    sqlite_database(database, corpus.source_bytes(generated=200))
    config = tmp_path / "mailbox.cf"
    config.write_text(f"dbpath = {database}\n{SQLITE_CONFIGS[name]}")
    corpus.cool(config, database)
    spec = f"sqlite:{config}"
    keys = sql_keys()
    if name == "over the limit":
        # postmap dies on each key over the limit, and msg_fatal() sleeps 1 s first.
        keys = [key for key in keys if b"@" not in key][:10] + [
            b"bob@example.com", b"user7@example0.com", b"nobody@example.org", b"x@nowhere"]
    expected = corpus.postmap_answers(postfix_mode, spec, keys)
    actual = corpus.vdeliver_answers(open_table(spec), keys)
    assert corpus.differences(expected, actual) == {}
    compared[f"sqlite ({name}, smtputf8_enable={postfix_mode.smtputf8_enable})"] = len(expected)
