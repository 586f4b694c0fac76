"""pgsql: and mysql: against real private servers, compared with Postfix's own
postfix-pgsql and postfix-mysql through postmap -q on the same config file.

Also: addresses built to inject SQL are "not found" (and the table is still
there), a server that stops answering (SIGSTOP) defers within the connect
timeout, a refused port defers at once, and a dead first host fails over.
"""
import time

import pytest

import corpus
from tables_support import require_type
from servers import DATABASE, PASSWORD, USER
from vdeliver.errors import TableError
from vdeliver.tables import open_table
from vdeliver.tables.textfile import parse_entries

INJECTIONS = [b"o'brien@example.com", b"%", b"\\", b"'; drop table mailbox; --",
              b"x' OR '1'='1", b"%@example.com", b"_@example.com", b"a\\'b@example.com",
              b'"quoted"@example.com', b"\\'; drop table mailbox; --@example.com"]

CONFIGS = {
    "plain": "query = SELECT maildir FROM mailbox WHERE email='%s'\n",
    "parts": ("query = SELECT maildir FROM mailbox WHERE email LIKE '%u@%%' AND domain='%d'\n"
              "result_format = %D/%s/%U\n"),
    "several columns and rows": (
        "query = SELECT maildir, email FROM mailbox WHERE domain='%d'"
        " AND email LIKE '%%2%%' ORDER BY email\n"),
    "labels and domain list": (
        "query = SELECT maildir FROM mailbox WHERE domain='%2.%1' AND email = '%U@%D'\n"
        "domain = example.com, example0.com, !example1.com, example2.com\n"),
}


def rows():
    entries = parse_entries(corpus.source_bytes(generated=100).decode("utf-8", "surrogateescape"))
    out = [(key, value, key.rpartition("@")[2] if "@" in key else "")
           for key, value in entries.items() if key.isascii() and value.isascii()]
    out += [("null@example.com", None, "example.com"), ("empty@example.com", "", "example.com")]
    return out


def sql_literal(text):
    return "NULL" if text is None else "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def load(server, backslash):
    statements = ["DROP TABLE IF EXISTS mailbox;",
                  "CREATE TABLE mailbox (email VARCHAR(255), maildir VARCHAR(255),"
                  " domain VARCHAR(255));"]
    for email, maildir, domain in rows():
        values = [email, maildir, domain]
        if not backslash:
            literal = ", ".join("NULL" if v is None else "'" + v.replace("'", "''") + "'"
                                for v in values)
        else:
            literal = ", ".join(sql_literal(v) for v in values)
        statements.append(f"INSERT INTO mailbox VALUES ({literal});")
    return "\n".join(statements)


@pytest.fixture(scope="module")
def pg(pg_server):
    pg_server.sql(load(pg_server, backslash=False), user=USER)
    return pg_server


@pytest.fixture(scope="module")
def maria(mariadb_server):
    mariadb_server.sql(load(mariadb_server, backslash=True))
    return mariadb_server


def write_config(path, server, body, hosts=None, extra=""):
    path.write_text(f"hosts = {hosts or server.hosts()}\nuser = {USER}\npassword = {PASSWORD}\n"
                    f"dbname = {DATABASE}\n{body}{extra}")
    corpus.cool(path)
    return path


def keys_for(kind):
    keys = corpus.keys(generated=100) + INJECTIONS + [b"null@example.com", b"empty@example.com"]
    if kind == "pgsql":
        # Postfix 3.7 talks LATIN1 to PostgreSQL (dict_pgsql.c): non-ASCII keys differ by design.
        keys = [key for key in keys if key.isascii()]
    return keys


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_sql_agrees_with_postmap(request, tmp_path, postfix_mode, compared, kind, name):
    require_type(postfix_mode.supported, kind, f"postfix-{kind}")
    server = request.getfixturevalue("pg" if kind == "pgsql" else "maria")
    config = write_config(tmp_path / f"{kind}.cf", server, CONFIGS[name])
    spec = f"{kind}:{config}"
    keys = keys_for(kind)
    expected = corpus.postmap_answers(postfix_mode, spec, keys)
    table = open_table(spec)
    actual = corpus.vdeliver_answers(table, keys)
    assert corpus.differences(expected, actual) == {}
    assert sum(1 for value in expected.values() if value not in (None, "error")) >= 10
    label = f"{kind} ({name}, smtputf8_enable={postfix_mode.smtputf8_enable})"
    compared[label] = len(keys)


@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_injection_attempts_are_not_found(request, tmp_path, kind):
    server = request.getfixturevalue("pg" if kind == "pgsql" else "maria")
    config = write_config(tmp_path / f"{kind}.cf", server, CONFIGS["plain"])
    table = open_table(f"{kind}:{config}")
    for key in INJECTIONS:
        text = key.decode()
        expected = "example.com/obrien/" if text == "o'brien@example.com" else None
        assert table.lookup(text) == expected, text
    assert table.lookup("bob@example.com") == "example.com/bob/"  # the table is still there


@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_a_server_that_stops_answering_defers_within_the_timeout(request, tmp_path, kind):
    server = request.getfixturevalue("pg" if kind == "pgsql" else "maria")
    config = write_config(tmp_path / f"{kind}.cf", server, CONFIGS["plain"],
                          extra="connect_timeout = 2\nquery_timeout = 2\n")
    table = open_table(f"{kind}:{config}")
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(TableError) as caught:
            table.lookup("bob@example.com")
        elapsed = time.monotonic() - started
    finally:
        server.resume()
    assert caught.value.exit_code == 75 and caught.value.status.startswith("4.")
    assert elapsed < 6, f"took {elapsed:.1f}s"
    assert open_table(f"{kind}:{config}").lookup("bob@example.com") == "example.com/bob/"


@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_a_refused_port_defers_and_a_live_second_host_answers(request, tmp_path, kind):
    from servers import free_port
    server = request.getfixturevalue("pg" if kind == "pgsql" else "maria")
    dead = f"inet:127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "dead.cf", server, CONFIGS["plain"], hosts=dead)
    started = time.monotonic()
    with pytest.raises(TableError):
        open_table(f"{kind}:{config}").lookup("bob@example.com")
    assert time.monotonic() - started < 3
    config = write_config(tmp_path / "failover.cf", server, CONFIGS["plain"],
                          hosts=f"{dead}, {server.hosts()}")
    assert open_table(f"{kind}:{config}").lookup("bob@example.com") == "example.com/bob/"


@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_expansion_limit_and_a_bad_query_defer(request, tmp_path, kind):
    server = request.getfixturevalue("pg" if kind == "pgsql" else "maria")
    config = write_config(tmp_path / "limit.cf", server,
                          "query = SELECT maildir FROM mailbox WHERE domain='%d'\n",
                          extra="expansion_limit = 2\n")
    with pytest.raises(TableError):
        open_table(f"{kind}:{config}").lookup("someone@example0.com")
    config = write_config(tmp_path / "bad.cf", server,
                          "query = SELECT maildir FROM no_such_table WHERE email='%s'\n")
    with pytest.raises(TableError):
        open_table(f"{kind}:{config}").lookup("bob@example.com")
