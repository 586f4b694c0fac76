"""The LMTP daemon's lookups side by side (issue 14): lmtp_delivery_threads lookup threads
and as many connections per database table, never more, whatever the number of sessions;
a reload closes the old connections once the lookups in flight have their answers.

A private PostgreSQL whose mailbox query sleeps (pg_sleep), so that lookups overlap;
what is asserted is what the server saw (pg_stat_activity) and the replies, never a time.
"""
import os
import signal
import smtplib
import sys
import threading

import pytest

from functional.test_lmtp import daemon  # noqa: F401  (the fixture, shared)
from support import require, side_by_side, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tables"))
from servers import DATABASE, PASSWORD, PG_BIN, USER, ActivityWatcher, PostgresServer  # noqa: E402

THREADS = 4
SESSIONS = 8
PAUSE = 0.3  # seconds each lookup sleeps in the server


@pytest.fixture(scope="module")
def pg():
    require(os.geteuid() == 0, "starting a private PostgreSQL needs root (to run it as postgres)")
    require(os.access(f"{PG_BIN}/postgres", os.X_OK), "PostgreSQL 15 server is not installed"
            " (scripts/setup-databases)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "needs psycopg (vdeliver[pgsql])")
    server = PostgresServer().start()
    server.sql("CREATE TABLE mailbox (email TEXT, maildir TEXT);"
               " INSERT INTO mailbox SELECT 'u' || n || '@example.com', 'example.com/u' || n || '/'"
               " FROM generate_series(1, 100) n;"
               " CREATE FUNCTION slow_maildir(key TEXT) RETURNS SETOF TEXT LANGUAGE sql AS"
               f" $$ SELECT pg_sleep({PAUSE}); SELECT maildir FROM mailbox WHERE email = key $$;",
               user=USER)
    yield server
    server.stop()


@pytest.fixture
def activity(pg):
    watcher = ActivityWatcher(pg)
    yield watcher
    watcher.stop()


def start_daemon(mail, daemon, pg):  # noqa: F811 - the fixture's function, passed in
    """The daemon with lmtp_delivery_threads = THREADS and the slow pgsql table."""
    cf = os.path.join(mail.top, "pgsql-mailbox.cf")
    with open(cf, "w") as fh:
        fh.write(f"hosts = {pg.hosts()}\nuser = {USER}\npassword = {PASSWORD}\n"
                 f"dbname = {DATABASE}\nquery_timeout = 30\n"
                 "query = SELECT slow_maildir('%s')\n")
    os.chmod(cf, 0o644)
    # test_lmtp.Daemon appends `extra` to mail.write_config()'s lines: the later
    # virtual_mailbox_maps wins, as in main.cf.
    return daemon(f"lmtp_delivery_threads = {THREADS}\nvirtual_mailbox_maps = pgsql:{cf}\n")


def rcpt_replies(port, recipients, hold=None):
    """One session: MAIL, the RCPTs; the replies. hold: an Event to wait for before QUIT."""
    lmtp = smtplib.LMTP("127.0.0.1", port, timeout=60)
    try:
        assert lmtp.docmd("LHLO", "client.example")[0] == 250
        assert lmtp.mail("sender@example.net")[0] == 250
        replies = [lmtp.rcpt(recipient) for recipient in recipients]
        if hold is not None:
            hold.wait(60)
        lmtp.quit()
        return replies
    finally:
        lmtp.close()


def sessions_side_by_side(port, sessions):
    """Each element of sessions: a list of recipients for one session, all at once."""
    return side_by_side(lambda recipients: rcpt_replies(port, recipients), sessions)


def test_eight_sessions_share_four_connections_and_all_get_their_answers(
        mail, daemon, pg, activity):  # noqa: F811
    """Before issue 14 one lookup thread (and one connection) served every session: the
    server never saw more than one query of the daemon at a time."""
    lmtpd = start_daemon(mail, daemon, pg)
    sessions = [[f"u{1 + 2 * n}@example.com", f"nobody{n}@example.com", f"u{2 + 2 * n}@example.com"]
                for n in range(SESSIONS)]
    results = sessions_side_by_side(lmtpd.port, sessions)
    for recipients, replies in zip(sessions, results):
        for recipient, (code, text) in zip(recipients, replies):
            if recipient.startswith("nobody"):
                assert code == 550 and text.startswith(b"5.1.1 "), (recipient, code, text)
            else:
                assert code == 250, (recipient, code, text)
    assert (activity.most_connections, activity.most_active) == (THREADS, THREADS)
    assert len(activity.backends()) == THREADS  # kept open, idle, for the next lookups
    assert lmtpd.stop() == 0
    assert wait_until(lambda: not activity.backends())


def test_a_reload_closes_the_old_connections_after_the_lookups_in_flight(
        mail, daemon, pg, activity):  # noqa: F811
    lmtpd = start_daemon(mail, daemon, pg)
    sessions_side_by_side(lmtpd.port, [[f"u{n}@example.com"] for n in range(1, 2 * THREADS + 1)])
    old = activity.backends()
    assert len(old) == THREADS
    # A session whose lookup is running when SIGHUP comes, and that stays open after it
    # (its transaction keeps the old tables).
    hold, answers = threading.Event(), []
    session = threading.Thread(target=lambda: answers.append(
        rcpt_replies(lmtpd.port, ["u50@example.com", "u51@example.com"], hold)))
    session.start()
    assert wait_until(lambda: activity.sample()[1] >= 1)  # its first lookup is in the server
    os.kill(lmtpd.pid, signal.SIGHUP)
    assert wait_until(lambda: any("reloaded its configuration" in line
                                  for line in mail.log_lines()))
    # New sessions use the new tables: new connections, the old ones still open.
    results = sessions_side_by_side(lmtpd.port, [[f"u{n}@example.com"] for n in range(60, 64)])
    assert [replies[0][0] for replies in results] == [250] * 4
    assert wait_until(lambda: activity.backends() - old)
    assert activity.backends() & old  # the session in flight still holds the old tables
    hold.set()
    session.join()
    assert [code for code, _ in answers[0]] == [250, 250]
    assert wait_until(lambda: not activity.backends() & old)  # gone once it ended
    assert len(activity.backends()) <= THREADS
    assert lmtpd.stop() == 0
