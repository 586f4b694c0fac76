"""A table that hangs: vdeliver gives up within its own timeout and defers, long before Postfix.

The hung database is a TCP server on 127.0.0.1 that accepts and never says a
word (the handshake of pgsql, mysql and ldap waits for the server to speak,
or to answer the bind). Each table type's own timeout ends the wait
(TableError, 4.3.0); with those set high, vdeliver's time_limit ends it
(4.3.0 "delivery time limit exceeded"). A texthash: table that is a FIFO
nobody writes blocks in open() itself, where only time_limit can help.
All of this must end far below pipe(8)'s command_time_limit (1000 s), after
which Postfix would kill vdeliver and bounce the mail (5.3.0).
"""
import importlib.util
import os
import socket
import threading
import time

import pytest

from outcomes import assert_deferred, maildir_state
from support import VDELIVER, require

COMMAND_TIME_LIMIT = 1000  # Postfix's default for pipe(8)


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


DRIVERS = {"pgsql": "psycopg", "mysql": "pymysql", "ldap": "ldap3"}


def table_config(kind, port, timeout):
    if kind == "pgsql":
        return (f"hosts = 127.0.0.1:{port}\ndbname = vmail\nuser = vmail\npassword = x\n"
                f"query = SELECT path FROM mailbox WHERE address = '%s'\n"
                f"connect_timeout = {timeout}\nquery_timeout = {timeout}\n")
    if kind == "mysql":
        return (f"hosts = inet:127.0.0.1:{port}\ndbname = vmail\nuser = vmail\npassword = x\n"
                f"query = SELECT path FROM mailbox WHERE address = '%s'\n"
                f"connect_timeout = {timeout}\nquery_timeout = {timeout}\n")
    return (f"server_host = ldap://127.0.0.1:{port}\nsearch_base = dc=example,dc=com\n"
            f"query_filter = (mail=%s)\nresult_attribute = mailbox\nbind = no\n"
            f"timeout = {timeout}\n")


def use_table(mail, kind, text):
    path = os.path.join(mail.top, f"{kind}.cf")
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
    mail.write_config(maps=f"{kind}:{path}")


def timed_delivery(mail, *options):
    started = time.monotonic()
    result = mail.run(*options, "-f", "s@x", "--", "bob@example.com", timeout=120)
    return result, time.monotonic() - started


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_hung_database_defers_within_the_table_timeout(mail, silent_server, kind):
    require(importlib.util.find_spec(DRIVERS[kind]), f"needs the {DRIVERS[kind]} module (vdeliver[{kind}])")
    timeout = 1  # seconds; libpq makes it 2
    use_table(mail, kind, table_config(kind, silent_server.port, timeout))
    result, elapsed = timed_delivery(mail)
    assert_deferred(result, "4.3.0", "temporary lookup failure", f"{kind}:")
    assert silent_server.connections, "vdeliver never connected"
    assert elapsed < 5, f"took {elapsed:.1f} s with a {timeout} s timeout"
    assert maildir_state(mail, "example.com/bob") == ([], [])


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_hung_database_with_long_timeouts_ends_at_time_limit(mail, silent_server, kind):
    require(importlib.util.find_spec(DRIVERS[kind]), f"needs the {DRIVERS[kind]} module (vdeliver[{kind}])")
    use_table(mail, kind, table_config(kind, silent_server.port, 900))
    result, elapsed = timed_delivery(mail, "-o", "time_limit=1s")
    assert_deferred(result, "4.3.0", "delivery time limit exceeded")
    assert silent_server.connections, "vdeliver never connected"
    assert 0.9 < elapsed < 5, f"took {elapsed:.1f} s with time_limit = 1s"
    assert maildir_state(mail, "example.com/bob") == ([], [])


@pytest.mark.parametrize("map_name", ["virtual_mailbox_maps", "virtual_mailbox_quota_maps"])
def test_table_file_that_blocks_on_open_ends_at_time_limit(mail, map_name):
    """texthash: on a FIFO nobody writes: open() blocks; only time_limit ends it."""
    fifo = os.path.join(mail.top, "fifo")
    os.mkfifo(fifo, 0o644)
    if map_name == "virtual_mailbox_maps":
        mail.write_config("time_limit = 1s\n", maps=f"texthash:{fifo}")
    else:
        mail.write_config(f"time_limit = 1s\nvirtual_mailbox_quota_maps = texthash:{fifo}\n")
    result, elapsed = timed_delivery(mail)
    assert_deferred(result, "4.3.0", "delivery time limit exceeded")
    assert 0.9 < elapsed < 5
    assert mail.tmp_files("example.com/bob") == [] and mail.new_files("example.com/bob") == []


def test_time_limit_fires_under_an_inherited_blocked_sigalrm(mail):
    """A parent that blocks SIGALRM (a wrapper, a supervisor) passes the mask on through
    exec: time_limit never fired, and only Postfix's kill (a bounce) ended the delivery."""
    fifo = os.path.join(mail.top, "fifo")
    os.mkfifo(fifo, 0o644)
    mail.write_config("time_limit = 1s\n", maps=f"texthash:{fifo}")
    blocked = ["/usr/bin/python3", "-c", "import os, signal, sys;"
               " signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM});"
               " os.execv(sys.argv[1], sys.argv[1:])", VDELIVER]
    started = time.monotonic()
    result = mail.run("-f", "s@x", "--", "bob@example.com", command=blocked, timeout=20)
    assert_deferred(result, "4.3.0", "delivery time limit exceeded")
    assert time.monotonic() - started < 5


def test_default_time_limit_is_far_below_postfix_command_time_limit():
    from vdeliver.config import DEFAULTS, from_text
    assert from_text("", "defaults").get_time("time_limit") <= COMMAND_TIME_LIMIT * 0.6
    assert DEFAULTS["time_limit"] == "600s"
