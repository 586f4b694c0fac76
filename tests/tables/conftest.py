"""Fixtures of the lookup-table tests: Postfix's postmap, private database servers.

Outside CI a missing prerequisite (root, a Debian package, a Python driver)
skips with the reason; in CI (CI=true) it fails (support.require). Run
scripts/setup-databases (as root) to install them. The differential tests
record how many answers they compared; the summary prints the counts.
"""
import os
import shutil
import subprocess

import pytest

from support import require
from tables_support import require_module

COMPARED = {}


def pytest_terminal_summary(terminalreporter):
    if COMPARED:
        terminalreporter.section("differential: answers compared with postmap -q")
        for name, count in sorted(COMPARED.items()):
            terminalreporter.write_line(f"{name:40} {count:6d}")
        terminalreporter.write_line(f"{'total':40} {sum(COMPARED.values()):6d}")


@pytest.fixture(scope="session")
def compared():
    return COMPARED


@pytest.fixture(scope="session")
def postmap_types():
    """The table types this Postfix supports (postconf -m)."""
    require(os.access("/usr/sbin/postmap", os.X_OK),
            "needs Postfix's postmap (scripts/setup-databases installs it)")
    done = subprocess.run(["/usr/sbin/postconf", "-m"], stdout=subprocess.PIPE, text=True)
    return set(done.stdout.split())


@pytest.fixture(scope="session")
def pg_server():
    from servers import PG_BIN, PostgresServer
    require(os.geteuid() == 0, "starting a private PostgreSQL needs root (to run it as postgres)")
    require(os.access(f"{PG_BIN}/postgres", os.X_OK), "PostgreSQL 15 server is not installed")
    require_module("psycopg", "pgsql")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_server():
    from servers import MARIADBD, MariadbServer
    require(os.geteuid() == 0, "starting a private MariaDB needs root (to run it as mysql)")
    require(os.access(MARIADBD, os.X_OK) and shutil.which("mariadb-install-db"),
            "MariaDB server is not installed")
    require_module("pymysql", "mysql")
    server = MariadbServer().start()
    yield server
    server.stop()
