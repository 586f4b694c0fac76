"""pgsql:/mysql: tables shared by several delivery hosts (issue 15): `hosts = a b` fails
over as pgsql_table(5) and mysql_table(5) say, a host that failed is skipped for
retry_interval, a server restart defers only while the server is down, and the same table
object (the LMTP daemon keeps it open) reconnects by itself.

Real servers: two private PostgreSQL clusters on two ports, the session's MariaDB
(restarted in place)."""
import socket
import threading
import time

import pytest

from servers import DATABASE, PASSWORD, USER, PostgresServer
from vdeliver.errors import TableError
from vdeliver.tables import open_table

QUERY = "query = SELECT maildir FROM mailbox WHERE email='%s'\n"
ROWS = ("CREATE TABLE mailbox (email VARCHAR(255), maildir VARCHAR(255));"
        " INSERT INTO mailbox VALUES ('bob@example.com', 'example.com/bob/');")


def write_config(path, hosts, extra=""):
    path.write_text(f"hosts = {hosts}\nuser = {USER}\npassword = {PASSWORD}\ndbname = {DATABASE}\n"
                    f"connect_timeout = 2\nquery_timeout = 2\n{QUERY}{extra}")
    return path


@pytest.fixture(scope="module")
def two_pg(pg_server):
    """The session's PostgreSQL and a second cluster on another port, the same rows in each."""
    second = PostgresServer().start()
    try:
        for server in (pg_server, second):
            server.sql("DROP TABLE IF EXISTS failover_mailbox;"
                       + ROWS.replace("mailbox", "failover_mailbox"), user=USER)
        yield pg_server, second
    finally:
        second.stop()


@pytest.fixture(scope="module")
def maria_rows(mariadb_server):
    mariadb_server.sql("DROP TABLE IF EXISTS failover_mailbox;"
                       + ROWS.replace("mailbox", "failover_mailbox"))
    return mariadb_server


def failover_config(path, hosts, extra=""):
    config = write_config(path, hosts, extra)
    config.write_text(config.read_text().replace("FROM mailbox", "FROM failover_mailbox"))
    return config


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never says a word: a host that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"inet:127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_a_hung_host_is_skipped_for_retry_interval(request, tmp_path, silent_port, kind):
    """Before issue 15 every new connection tried the hung first host again: each lookup
    after a dropped connection paid connect_timeout."""
    server = request.getfixturevalue("two_pg")[0] if kind == "pgsql" else \
        request.getfixturevalue("maria_rows")
    config = failover_config(tmp_path / "t.cf", f"{silent_port} {server.hosts()}",
                             "host_order = listed\n")
    table = open_table(f"{kind}:{config}")
    started = time.monotonic()
    assert table.lookup("bob@example.com") == "example.com/bob/"
    assert 1.5 < time.monotonic() - started < 6  # the hung host cost connect_timeout once
    table.close()
    started = time.monotonic()
    assert table.lookup("bob@example.com") == "example.com/bob/"
    assert time.monotonic() - started < 1.0  # ... and is skipped now


def test_random_order_spreads_the_first_choice():
    from vdeliver.tables.dbcommon import HostList
    hosts = HostList({"hosts": "a b c"}, "test")
    firsts = {hosts.candidates()[0] for _ in range(200)}
    assert firsts == {"a", "b", "c"}
    assert HostList({"hosts": "a b c", "host_order": "listed"}, "t").candidates() == ["a", "b", "c"]
    hosts.failed("a")
    hosts.failed("b")
    assert hosts.candidates() == ["c"]
    hosts.failed("c")
    assert hosts.candidates() == ["a", "b", "c"]  # all down: all again, oldest failure first


def test_the_primary_stopping_fails_over_to_the_second_cluster_without_a_deferral(
        tmp_path, two_pg):
    first, second = two_pg
    config = failover_config(tmp_path / "t.cf", f"{first.hosts()} {second.hosts()}",
                             "host_order = listed\n")
    table = open_table(f"pgsql:{config}")
    assert table.lookup("bob@example.com") == "example.com/bob/"
    assert table.connection.info.port == first.port
    answers = []
    first.restart(during=lambda: answers.append(table.lookup("bob@example.com")))
    assert answers == ["example.com/bob/"]  # the broken connection replaced by the second's
    assert table.connection.info.port == second.port


@pytest.mark.parametrize("kind", ["pgsql", "mysql"])
def test_a_restart_defers_while_down_and_the_same_table_reconnects(request, tmp_path, kind):
    """The LMTP daemon keeps its tables open: while the only server is down a lookup defers
    (75, 4.3.0), never "not found"; the first lookup after the restart answers on a new
    connection. Before issue 15 that first lookup failed on the dead connection (a needless
    deferral of every message in flight)."""
    server = request.getfixturevalue("two_pg")[0] if kind == "pgsql" else \
        request.getfixturevalue("maria_rows")
    config = failover_config(tmp_path / "t.cf", server.hosts(), "retry_interval = 60\n")
    table = open_table(f"{kind}:{config}")
    assert table.lookup("bob@example.com") == "example.com/bob/"
    errors = []

    def while_down():
        with pytest.raises(TableError) as caught:
            table.lookup("bob@example.com")
        errors.append(caught.value)
    server.restart(during=while_down)
    assert errors[0].exit_code == 75 and errors[0].status == "4.3.0"
    # retry_interval does not hold back the only host: all down means all are tried again.
    assert table.lookup("bob@example.com") == "example.com/bob/"
    server.restart()
    assert table.lookup("bob@example.com") == "example.com/bob/"  # the idle connection broke


def test_lookups_from_threads_during_a_restart_never_say_not_found(tmp_path, two_pg):
    """A burst of lookups (one table per thread, as pipe processes) across a restart: each
    answer is the mailbox or a deferral, never None (which would bounce as unknown)."""
    server = two_pg[0]
    config = failover_config(tmp_path / "t.cf", server.hosts())
    outcomes, stop = [], threading.Event()

    def worker():
        table = open_table(f"pgsql:{config}")
        while not stop.is_set():
            try:
                outcomes.append(table.lookup("bob@example.com"))
            except TableError as err:
                outcomes.append(err.exit_code)
            time.sleep(0.01)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    server.restart(during=lambda: time.sleep(0.5))
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert set(outcomes) <= {"example.com/bob/", 75}, set(outcomes)
    assert 75 in outcomes and outcomes[-1] == "example.com/bob/"
