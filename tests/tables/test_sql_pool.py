"""One pgsql:/sqlite: table shared by several threads, as the LMTP daemon shares it (issue 14):
at most tables.POOL_SIZE connections, each serving one lookup at a time; a broken one
dropped, never handed out again; close() closes the connection of a lookup still in flight
when that lookup ends. The pipe command's size 0 keeps exactly one connection.

Real PostgreSQL (the session's private server); what is asserted is what the server saw in
pg_stat_activity, never a time."""
import sqlite3
import threading

import pytest

from servers import DATABASE, PASSWORD, USER, ActivityWatcher
from support import side_by_side, wait_until
from tables_support import require_module
from vdeliver import tables
from vdeliver.tables import open_table

ROWS = 12
SLOW = ("DROP TABLE IF EXISTS pool_mailbox; CREATE TABLE pool_mailbox (email TEXT, maildir TEXT);"
        " INSERT INTO pool_mailbox SELECT 'u' || n || '@example.com', 'example.com/u' || n || '/'"
        f" FROM generate_series(1, {ROWS}) n;"
        " CREATE OR REPLACE FUNCTION pool_slow(key TEXT, pause FLOAT) RETURNS SETOF TEXT"
        " LANGUAGE sql AS $$ SELECT pg_sleep(pause); SELECT maildir FROM pool_mailbox"
        " WHERE email = key $$;")


@pytest.fixture(scope="module")
def slow_rows(pg_server):
    pg_server.sql(SLOW, user=USER)
    return pg_server


def table_config(tmp_path, server, pause):
    path = tmp_path / "pool.cf"
    path.write_text(f"hosts = {server.hosts()}\nuser = {USER}\npassword = {PASSWORD}\n"
                    f"dbname = {DATABASE}\nquery_timeout = 20\n"
                    f"query = SELECT pool_slow('%s', {pause})\n")
    return path


def look_up_side_by_side(table, keys):
    return dict(zip(keys, side_by_side(table.lookup, keys)))


@pytest.mark.parametrize("size", [1, 3])
def test_threads_share_at_most_pool_size_connections(tmp_path, slow_rows, monkeypatch, size):
    """Before issue 14 two threads shared one psycopg connection (the daemon allowed only
    one lookup thread): with the pool, `size` queries run side by side and never more."""
    require_module("psycopg", "pgsql")
    monkeypatch.setattr(tables, "POOL_SIZE", size)
    table = open_table(f"pgsql:{table_config(tmp_path, slow_rows, 0.3)}")
    watcher = ActivityWatcher(slow_rows)
    try:
        keys = [f"u{n}@example.com" for n in range(1, 2 * size + 3)] + ["nobody@example.com"]
        answers = look_up_side_by_side(table, keys)
        assert answers == {key: (None if key.startswith("nobody") else
                                 f"example.com/{key.split('@')[0]}/") for key in keys}
        assert (watcher.most_connections, watcher.most_active) == (size, size)
        assert len(table.pool) == size and len(watcher.backends()) == size  # kept, idle
        table.close()
        assert wait_until(lambda: not watcher.backends())
    finally:
        watcher.stop()
        table.close()


def test_the_pipe_command_keeps_one_connection(tmp_path, slow_rows, monkeypatch):
    require_module("psycopg", "pgsql")
    monkeypatch.setattr(tables, "POOL_SIZE", 0)
    table = open_table(f"pgsql:{table_config(tmp_path, slow_rows, 0)}")
    watcher = ActivityWatcher(slow_rows)
    try:
        for n in range(1, 6):
            assert table.lookup(f"u{n}@example.com") == f"example.com/u{n}/"
        assert len(table.pool) == 1 and len(watcher.backends()) == 1
        assert type(table.pool.changed).__name__ == "OneThread"  # no lock, no threading
    finally:
        watcher.stop()
        table.close()


def test_connections_the_server_dropped_are_replaced_within_the_lookup(
        tmp_path, slow_rows, monkeypatch):
    """Every idle connection of the pool broke (a restart); the next lookup answers on a
    new one, and none of the broken ones is handed out again."""
    require_module("psycopg", "pgsql")
    monkeypatch.setattr(tables, "POOL_SIZE", 3)
    table = open_table(f"pgsql:{table_config(tmp_path, slow_rows, 0.2)}")
    watcher = ActivityWatcher(slow_rows)
    try:
        look_up_side_by_side(table, [f"u{n}@example.com" for n in range(1, 7)])
        before = watcher.backends()
        assert len(before) == 3
        slow_rows.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      f" WHERE usename = '{USER}'")
        assert wait_until(lambda: not watcher.backends())
        answers = look_up_side_by_side(table, [f"u{n}@example.com" for n in range(1, 7)])
        assert set(answers.values()) == {f"example.com/u{n}/" for n in range(1, 7)}
        after = watcher.backends()
        assert after and not after & before and len(table.pool) <= 3
    finally:
        watcher.stop()
        table.close()


def test_close_during_a_lookup_closes_its_connection_when_it_ends(tmp_path, slow_rows, monkeypatch):
    """A reload closes the old tables; a lookup still running on one of their connections
    gets its answer, and then that connection is closed, not kept."""
    require_module("psycopg", "pgsql")
    monkeypatch.setattr(tables, "POOL_SIZE", 2)
    table = open_table(f"pgsql:{table_config(tmp_path, slow_rows, 1.0)}")
    watcher = ActivityWatcher(slow_rows)
    try:
        answer = []
        thread = threading.Thread(target=lambda: answer.append(table.lookup("u1@example.com")))
        thread.start()
        assert wait_until(lambda: watcher.sample()[1] == 1)  # the query is running
        table.close()
        assert len(watcher.backends()) == 1  # not taken from under the lookup
        thread.join()
        assert answer == ["example.com/u1/"]
        assert len(table.pool) == 0
        assert wait_until(lambda: not watcher.backends())
    finally:
        watcher.stop()
        table.close()


def test_sqlite_connections_are_shared_by_threads(tmp_path, monkeypatch):
    """sqlite3 refuses a connection used from a thread other than its creator's, unless
    opened with check_same_thread=False; each pooled connection serves one thread at a time."""
    database = tmp_path / "mailbox.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE mailbox (email TEXT, maildir TEXT)")
        connection.executemany("INSERT INTO mailbox VALUES (?, ?)",
                               [(f"u{n}@example.com", f"example.com/u{n}/") for n in range(40)])
    connection.close()
    (tmp_path / "t.cf").write_text(f"dbpath = {database}\n"
                                   "query = SELECT maildir FROM mailbox WHERE email='%s'\n")
    monkeypatch.setattr(tables, "POOL_SIZE", 4)
    table = open_table(f"sqlite:{tmp_path / 't.cf'}")
    try:
        assert table.lookup("u0@example.com") == "example.com/u0/"  # opened on this thread
        answers = look_up_side_by_side(table, [f"u{n}@example.com" for n in range(40)])
        assert answers == {f"u{n}@example.com": f"example.com/u{n}/" for n in range(40)}
        assert 1 <= len(table.pool) <= 4
    finally:
        table.close()
    assert len(table.pool) == 0
