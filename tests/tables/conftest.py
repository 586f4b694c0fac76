"""Fixtures of the lookup-table tests: Postfix's postmap, private database servers.

Outside CI a missing prerequisite (root, a Debian package, a Python driver)
skips with the reason; in CI (CI=true) it fails (support.require). Run
scripts/setup-databases (as root) to install them. The differential tests
record how many answers they compared; the summary prints the counts.

Postfix's commands run only through tests/postfix_config.py, with private
configuration directories: `postfix` (smtputf8_enable = yes, what most tests
compare with) and `postfix_mode`, each test once per smtputf8_enable value,
with vdeliver's own smtputf8_enable set to the same.
"""
import os
import shutil

import pytest

from postfix_config import MODES, POSTMAP, PostfixConfig
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
def postfix_configs(tmp_path_factory):
    """{smtputf8_enable value: PostfixConfig}, private configuration directories."""
    require(os.access(POSTMAP, os.X_OK),
            "needs Postfix's postmap (scripts/setup-databases installs it)")
    root = tmp_path_factory.mktemp("postfix-config")
    return {mode: PostfixConfig(root / f"smtputf8-{mode}", mode) for mode in MODES}


@pytest.fixture(scope="session")
def postfix(postfix_configs):
    """The private configuration most tests compare with: smtputf8_enable = yes."""
    return postfix_configs["yes"]


@pytest.fixture(params=MODES, ids=lambda mode: f"smtputf8_enable={mode}")
def postfix_mode(request, postfix_configs, monkeypatch):
    """Each test once per smtputf8_enable value, postmap's and vdeliver's the same."""
    from vdeliver import address
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", request.param == "yes")
    return postfix_configs[request.param]


@pytest.fixture(scope="session")
def postmap_types(postfix):
    """The table types this Postfix supports (postconf -m)."""
    return postfix.supported


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


@pytest.fixture(scope="session")
def slapd_server():
    """A private slapd (servers.SlapdServer) with only the suffix entry; tests add theirs."""
    from servers import SLAPD, SlapdServer
    require(os.geteuid() == 0, "starting a private slapd needs root (to run it as openldap)")
    require(os.access(SLAPD, os.X_OK) and shutil.which("ldapadd"),
            "slapd and ldap-utils are not installed (scripts/setup-databases)")
    require_module("ldap3", "ldap")
    server = SlapdServer().start()
    yield server
    server.stop()
