"""Pipe mode with a database: the mailbox comes from PostgreSQL through the LMTP daemon's
socketmap service, as README's "Pipe mode with a database" sets it up (one vdeliver.cf
for both; the daemon gets the real table with -o), and the faults of that path: a
stopped daemon, a hung one, a socket that accepts but never answers, a database that
hangs or drops the connection behind the daemon. Each defers 4.3.0, never bounces, and
leaves nothing in the mailbox.
"""
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from socketmap_daemon import LookupDaemon
from support import VDELIVER, assert_public, require

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tables"))
from servers import DATABASE, PASSWORD, PG_BIN, USER, PostgresServer  # noqa: E402

MESSAGE = b"From: sender@example.net\nSubject: via socketmap\n\nbody\n"


@pytest.fixture(scope="module")
def pg():
    require(os.geteuid() == 0, "starting a private PostgreSQL needs root (to run it as postgres)")
    require(os.access(f"{PG_BIN}/postgres", os.X_OK), "PostgreSQL 15 server is not installed"
            " (scripts/setup-databases)")
    server = PostgresServer().start()
    server.sql("CREATE TABLE mailbox (email TEXT, maildir TEXT);"
               " INSERT INTO mailbox VALUES ('bob@example.com', 'example.com/bob/'),"
               " ('@catchall.example', 'catchall/');", user=USER)
    yield server
    server.stop()


@pytest.fixture
def lookupd(mail, pg):
    """The daemon of README's setup: vdeliver.cf names its socket, -o gives it the table."""
    cf = os.path.join(mail.top, "pgsql-mailbox.cf")
    with open(cf, "w") as fh:
        fh.write(f"hosts = {pg.hosts()}\nuser = {USER}\npassword = {PASSWORD}\ndbname = {DATABASE}\n"
                 "query = SELECT maildir FROM mailbox WHERE email='%s'\n")
    os.chmod(cf, 0o644)
    daemon = LookupDaemon(mail.top, mail.user, f"pgsql:{cf}")
    mail.write_config(daemon.settings() + "socketmap_timeout = 2s\nsocketmap_lookup_timeout = 1s\n",
                      maps=daemon.spec("virtual_mailbox_maps"))
    daemon.config_path, daemon.maillog = mail.config_path, mail.maillog
    daemon.overrides = [f"virtual_mailbox_maps=pgsql:{cf}"]
    daemon.start()
    yield daemon
    daemon.stop()


def assert_deferred_and_nothing_delivered(mail, result):
    assert result.code == 75, result
    assert result.status_line == "4.3.0 temporary lookup failure: lookup service not answering"
    assert_public(result.status_line)
    assert mail.new_files("example.com/bob") == [] and mail.tmp_files("example.com/bob") == []
    assert b"status=deferred" in result.log, result.log


def test_pipe_delivery_with_the_mailbox_from_postgresql_through_the_socket(mail, lookupd):
    require(shutil.which("strace"), "needs strace (scripts/setup-e2e installs it)")
    trace = os.path.join(mail.top, "trace")
    with open(trace, "w"):
        pass
    os.chown(trace, mail.user.pw_uid, mail.user.pw_gid)
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,connect", "-o", trace,
                           *mail.command("-f", "sender@example.net", "--", "bob+news@example.com")],
                          input=MESSAGE, capture_output=True, env={"PATH": "/usr/bin:/bin"},
                          cwd="/", umask=0o077, user=mail.user.pw_uid, group=mail.user.pw_gid,
                          extra_groups=[], timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b""), proc
    (path,) = mail.new_files("example.com/bob")
    with open(path, "rb") as fh:
        assert fh.read().endswith(b"Delivered-To: bob+news@example.com\n" + MESSAGE)
    with open(trace) as fh:
        syscalls = fh.read()
    assert lookupd.socket_path in syscalls  # asked the daemon ...
    assert "psycopg" not in syscalls and "tables/pgsql" not in syscalls  # ... and loaded no driver
    assert "status=sent" in mail.log_lines()[-1]
    assert mail.run("--", "someone@catchall.example", stdin=MESSAGE).code == 0  # @domain, server-side
    assert len(mail.new_files("catchall")) == 1


def test_unknown_user_through_the_socket_bounces_5_1_1(mail, lookupd):
    result = mail.run("--", "nobody@example.com", stdin=MESSAGE)
    assert (result.code, result.status_line) == (67, "5.1.1 user unknown: nobody@example.com")


def test_a_stopped_daemon_defers(mail, lookupd):
    assert lookupd.stop() == 0  # SIGTERM: the socket file stays, nobody listens on it
    result = mail.run("--", "bob@example.com", stdin=MESSAGE)
    assert_deferred_and_nothing_delivered(mail, result)
    assert b"connect: Connection refused" in result.log


def test_a_daemon_never_started_defers(mail, lookupd):
    lookupd.stop()
    os.unlink(lookupd.socket_path)
    result = mail.run("--", "bob@example.com", stdin=MESSAGE)
    assert_deferred_and_nothing_delivered(mail, result)
    assert b"connect: No such file or directory" in result.log


def test_a_hung_daemon_defers_within_socketmap_timeout(mail, lookupd):
    lookupd.pause()  # SIGSTOP: the kernel still accepts the connection, nothing answers
    try:
        started = time.monotonic()
        result = mail.run("--", "bob@example.com", stdin=MESSAGE)
        elapsed = time.monotonic() - started
    finally:
        lookupd.resume()
    assert_deferred_and_nothing_delivered(mail, result)
    assert b"no reply within 2s" in result.log
    assert 1.9 < elapsed < 5, elapsed
    assert mail.run("--", "bob@example.com", stdin=MESSAGE).code == 0  # and after it resumes


def test_a_socket_that_accepts_but_never_answers_defers(mail):
    path = os.path.join(mail.top, "silent.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(4)
    held = []

    def accept_and_read():
        conn, _ = listener.accept()
        held.append(conn)
        conn.recv(65536)  # the request, never answered

    thread = threading.Thread(target=accept_and_read, daemon=True)
    thread.start()
    mail.write_config("socketmap_timeout = 2s\n", maps=f"socketmap:unix:{path}:virtual_mailbox_maps")
    try:
        started = time.monotonic()
        result = mail.run("--", "bob@example.com", stdin=MESSAGE)
        elapsed = time.monotonic() - started
    finally:
        for conn in held:
            conn.close()
        listener.close()
    assert_deferred_and_nothing_delivered(mail, result)
    assert held, "the request never reached the socket"
    assert 1.9 < elapsed < 5, elapsed


def postgres_processes(pg):
    children = subprocess.run(["pgrep", "-P", str(pg.process.pid)], capture_output=True,
                              text=True).stdout.split()
    return [pg.process.pid] + [int(pid) for pid in children]


def test_a_database_that_hangs_behind_the_daemon_defers(mail, lookupd, pg):
    assert mail.run("--", "bob@example.com", stdin=MESSAGE).code == 0  # connected
    processes = postgres_processes(pg)
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        result = mail.run("--", "bob@example.com", stdin=MESSAGE)
    finally:
        for pid in processes:
            os.kill(pid, signal.SIGCONT)
    assert result.code == 75 and result.status_line.startswith("4.3.0 temporary lookup failure")
    assert b"socketmap server timeout error: lookup not done within 1s" in result.log
    assert len(mail.new_files("example.com/bob")) == 1  # only the first


def test_a_database_connection_lost_behind_the_daemon_is_replaced_within_the_lookup(mail, lookupd, pg):
    """The daemon's pgsql table replaces a connection the server dropped while it was
    idle, within the same lookup (tables/dbcommon.py): the delivery does not even defer."""
    assert mail.run("--", "bob@example.com", stdin=MESSAGE).code == 0
    before = backends(pg)
    assert before, "the daemon holds no connection"
    pg.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{USER}'"
           " AND pid <> pg_backend_pid()")
    result = mail.run("--", "bob@example.com", stdin=MESSAGE)
    assert (result.code, result.stdout) == (0, b""), result
    assert len(mail.new_files("example.com/bob")) == 2
    after = backends(pg)
    assert after and not set(after) & set(before), (before, after)  # a new connection


def backends(pg):
    """The pids of the database connections of the table user (the daemon's)."""
    from tables.servers import PG_BIN
    out = subprocess.run([f"{PG_BIN}/psql", "-X", "-At", "-h", pg.directory, "-p", str(pg.port),
                          "-U", "postgres", "-d", "postgres", "-c",
                          f"SELECT pid FROM pg_stat_activity WHERE usename = '{USER}'"],
                         user="postgres", group="postgres", check=True, capture_output=True,
                         cwd=pg.directory).stdout
    return out.decode().split()


def test_the_daemon_refuses_to_ask_its_own_socket(mail, lookupd):
    lookupd.stop()
    proc = subprocess.run([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                          capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert b"is this daemon's own socketmap_listen" in proc.stderr + open(mail.maillog, "rb").read()


def test_socket_mode_and_owner(mail, lookupd):
    st = os.lstat(lookupd.socket_path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (mail.user.pw_uid, mail.user.pw_gid, 0o660)


def test_symlink_planted_at_the_socket_path_is_refused(mail):
    victim = os.path.join(mail.top, "victim")
    with open(victim, "wb") as fh:
        fh.write(b"precious\n")
    os.chmod(victim, 0o644)
    daemon = LookupDaemon(mail.top, mail.user, f"texthash:{mail.table_path}")
    os.symlink(victim, daemon.socket_path)
    proc = subprocess.run([VDELIVER, "--lmtp", "--foreground", "-c", daemon.config_path],
                          capture_output=True, timeout=30)
    assert proc.returncode == 1 and f"socketmap_listen unix:{daemon.socket_path}".encode() in proc.stderr
    st = os.lstat(victim)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o644)
    assert os.readlink(daemon.socket_path) == victim


def test_socket_swapped_for_a_symlink_after_bind_is_never_chowned(mail):
    """As test_lmtp's case for lmtp_listen: whoever can write in the socket's directory
    replaces it by a symlink between bind() and the chown (strace holds bind() for 2 s)."""
    require(shutil.which("strace"), "needs strace")
    victim = os.path.join(mail.top, "victim")
    with open(victim, "wb") as fh:
        fh.write(b"precious\n")
    os.chmod(victim, 0o644)
    daemon = LookupDaemon(mail.top, mail.user, f"texthash:{mail.table_path}")
    proc = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=bind",
                             "-e", "inject=bind:delay_exit=2000000", VDELIVER, "--lmtp",
                             "--foreground", "-c", daemon.config_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if stat.S_ISSOCK(os.lstat(daemon.socket_path).st_mode):
                    break
            except FileNotFoundError:
                time.sleep(0.01)
        else:
            raise AssertionError("the daemon never bound its socket")
        os.symlink(victim, daemon.socket_path + ".new")
        os.replace(daemon.socket_path + ".new", daemon.socket_path)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # it started: stop the daemon itself, then strace
            for line in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                       text=True).stdout.split():
                os.kill(int(line), signal.SIGTERM)
            proc.terminate()
            proc.wait(timeout=30)
    assert proc.returncode == 1 and f"socketmap_listen unix:{daemon.socket_path}".encode() in err, err
    st = os.lstat(victim)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o644)
