"""LMTP mode: a hung database answers 451 4.3.0 at RCPT within the table's timeout.

The same silent TCP server as test_fault_hung_tables.py (accepts, never speaks)
stands in for the database behind virtual_mailbox_maps. The daemon must start
without it (a database down at start-up must not keep Postfix from getting
answers), answer each RCPT with 451 4.3.0 once the table's own timeout ends
the wait, keep serving the session and other sessions, and deliver nothing;
when a table in memory comes first, its recipients still get 250.
"""
import importlib.util
import os
import time

import pytest

from functional.test_lmtp import daemon  # noqa: F401  (the fixture, shared)
from outcomes import maildir_state
from support import require
from test_fault_hung_tables import DRIVERS, silent_server, table_config, use_table  # noqa: F401


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_hung_database_gets_451_at_rcpt_and_the_daemon_keeps_serving(mail, daemon, silent_server, kind):
    require(importlib.util.find_spec(DRIVERS[kind]), f"needs the {DRIVERS[kind]} module (vdeliver[{kind}])")
    use_table(mail, kind, table_config(kind, silent_server.port, 1))
    path = os.path.join(mail.top, f"{kind}.cf")
    lmtpd = daemon(f"virtual_mailbox_maps = texthash:{mail.table_path}, {kind}:{path}\n")
    lmtp = lmtpd.client()
    assert lmtp.mail("s@example.net")[0] == 250
    started = time.monotonic()
    code, text = lmtp.rcpt("nobody@example.com")  # not in texthash: the database is asked
    elapsed = time.monotonic() - started
    assert code == 451 and text.startswith(b"4.3.0 ") and b"temporary lookup failure" in text, (code, text)
    assert f"{kind}:".encode() not in text  # the table is a private detail: the log has it
    assert any(f"{kind}:" in line and "status=deferred" in line for line in mail.log_lines())
    assert elapsed < 5, f"RCPT took {elapsed:.1f} s with a 1 s table timeout"
    assert silent_server.connections, "the daemon never connected"
    # the same session goes on: a recipient the first table knows is delivered
    assert lmtp.rcpt("bob@example.com")[0] == 250
    lmtp.putcmd("DATA")
    assert lmtp.getreply()[0] == 354
    lmtp.send(b"Subject: t\r\n\r\nbody\r\n.\r\n")
    assert lmtp.getreply() == (250, b"2.0.0 <bob@example.com> delivered")
    assert len(mail.new_files("example.com/bob")) == 1
    assert maildir_state(mail, "example.com/alice") == ([], [])
    lmtp.quit()
    # and a new session still gets answers
    second = lmtpd.client()
    assert second.mail("s@example.net")[0] == 250
    assert second.rcpt("ghost@example.com")[0] == 451
    second.quit()
    assert lmtpd.stop() == 0
