"""Faults of Sieve's outgoing mail, produced for real: sendmail_path missing or exiting
75, the response database unwritable, corrupt or a symlink, 200 deliveries at once to
one vacation-enabled mailbox. Every original is delivered (exit 0, one file in new/),
nothing bounces or defers, and no vacation response is ever sent twice.
"""
import os
import sqlite3
import time

import pytest

from functional.outbox import Outbox, envelope, parse
from functional.sievelayout import BOX, activate, stored, tmp_empty, write

VACATION = 'require ["vacation"];\nvacation :days 1 "I am away.";\n'
SENDER = "sender@example.net"


def original(n=1, sender=SENDER):
    return (f"From: {sender}\nTo: bob@example.com\nSubject: message {n}\n"
            f"Message-ID: <m{n}@example.net>\n\nbody {n}\n").encode()


def deliver(mail, data, sender=SENDER):
    return mail.run("-i", "4FAULT", "-f", sender, "--", "bob@example.com", stdin=data)


def delivered(result):
    assert (result.code, result.stdout, result.stderr) == (0, b"", b""), result
    (line,) = result.log.decode("utf-8", "replace").splitlines()
    assert "dsn=2.0.0, status=sent (delivered to maildir example.com/bob/new/" in line, line
    return line


@pytest.fixture
def outbox(mail):
    box = Outbox(mail)
    mail.write_config(box.config())
    activate(mail, VACATION)
    return box


def db_path(mail):
    return mail.path(f"{BOX}/.vdeliver.db")


def test_sendmail_missing(mail, outbox):
    mail.write_config(f"sendmail_path = {mail.top}/no/such/sendmail -t\n")
    line = delivered(deliver(mail, original()))
    assert "vacation response to <sender@example.net> failed: cannot run" in line, line
    activate(mail, 'redirect "target@example.org";\n')
    line = delivered(deliver(mail, original(2)))
    assert "redirect to <target@example.org> failed" in line and "kept in INBOX" in line, line
    assert len(stored(mail)) == 2 and tmp_empty(mail)


def test_sendmail_exits_75_and_the_reply_is_sent_next_time(mail, outbox):
    """A failed submission takes its claim back: the next message from the sender is
    answered (RFC 5230 allows it: no response was sent)."""
    outbox.fail_with(75)
    line = delivered(deliver(mail, original(1)))
    assert "failed (exit status 75): refused by the test" in line, line
    os.unlink(os.path.join(outbox.dir, "exit"))
    line = delivered(deliver(mail, original(2)))
    assert "sent vacation response to <sender@example.net>" in line, line
    line = delivered(deliver(mail, original(3)))
    assert "answered within the period already" in line, line
    assert len(outbox.sent()) == 1 and len(stored(mail)) == 3


def test_database_file_unwritable(mail, outbox):
    delivered(deliver(mail, original(1)))
    os.chmod(db_path(mail), 0o400)
    line = delivered(deliver(mail, original(2, "other@example.net")))
    assert "response database unusable" in line and "not sent: no response database" in line, line
    assert len(outbox.sent()) == 1 and len(stored(mail)) == 2


def test_home_unwritable(mail, outbox):
    """The home (the Maildir) read-only: SQLite cannot make the database or its journal."""
    delivered(deliver(mail, original(1)))
    os.unlink(db_path(mail))
    os.chmod(mail.path(BOX), 0o500)
    try:
        line = delivered(deliver(mail, original(2)))
    finally:
        os.chmod(mail.path(BOX), 0o700)
    assert "response database unusable" in line, line
    assert len(outbox.sent()) == 1 and len(stored(mail)) == 2


@pytest.mark.parametrize("garbage", [
    pytest.param(b"this is not an SQLite database at all\n" * 100, id="not a database"),
    pytest.param(None, id="a damaged page"),
])
def test_database_corrupt_is_set_aside_and_rebuilt(mail, outbox, garbage):
    delivered(deliver(mail, original(1)))
    path = db_path(mail)
    if garbage is None:  # a real database with its table pages overwritten
        with open(path, "r+b") as fh:
            size = os.path.getsize(path)
            fh.seek(100)
            fh.write(b"\xff" * (size - 100))
    else:
        with open(path, "wb") as fh:
            fh.write(garbage)
    line = delivered(deliver(mail, original(2)))
    assert "sent vacation response" in line, line  # the record went with the damaged file
    assert os.path.exists(path + ".damaged")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM seen").fetchone() == (1,)
    line = delivered(deliver(mail, original(3)))
    assert "answered within the period already" in line, line
    assert len(outbox.sent()) == 2 and len(stored(mail)) == 3


def test_database_symlink_is_not_followed(mail, outbox):
    victim = write(mail, "victim", b"precious\n")
    os.symlink(victim, db_path(mail))
    os.lchown(db_path(mail), mail.user.pw_uid, mail.user.pw_gid)
    line = delivered(deliver(mail, original(1)))
    assert "response database unusable" in line, line
    with open(victim, "rb") as fh:
        assert fh.read() == b"precious\n"
    assert outbox.sent() == []


def test_the_original_is_durable_before_the_reply_is_submitted(mail, outbox):
    """sendmail_path is run only once the message is in new/ (the commit point)."""
    seen = os.path.join(mail.top, "seen-new")
    with open(outbox.program, "a") as fh:
        fh.write(f"ls '{mail.path(BOX)}/new' > '{seen}'\n")
    os.chmod(mail.top, 0o777)
    try:
        delivered(deliver(mail, original(1)))
    finally:
        os.chmod(mail.top, 0o755)
    ((path,),) = [list(stored(mail))]
    with open(seen) as fh:
        assert fh.read().split() == [os.path.basename(path)]


def test_200_deliveries_at_once_send_one_reply(mail, outbox):
    procs = [mail.popen("-i", f"4C{n}", "-f", SENDER, "--", "bob@example.com")
             for n in range(200)]
    for n, proc in enumerate(procs):  # all started before any has its message
        proc.stdin.write(original(n))
        proc.stdin.close()
    results = []
    for proc in procs:
        out, err = proc.stdout.read(), proc.stderr.read()
        results.append((proc.wait(timeout=300), out, err))
    assert all(result == (0, b"", b"") for result in results), \
        [result for result in results if result != (0, b"", b"")][:3]
    sent = outbox.sent()
    assert len(sent) == 1, len(sent)
    assert envelope(sent[0][0]) == ("<>", [SENDER])
    assert parse(sent[0][1])["Auto-Submitted"] == "auto-replied (vacation)"
    assert len(stored(mail)) == 200 and tmp_empty(mail)
    log = "\n".join(line for line in mail.log_lines() if "to=<bob@example.com>" in line)
    assert log.count("status=sent (delivered to maildir") == 200
    assert log.count("sent vacation response") == 1


@pytest.mark.parametrize("script, wanted", [
    pytest.param(VACATION, "vacation response to <sender@example.net> failed", id="vacation"),
    pytest.param('redirect "target@example.org";\n', "kept in INBOX", id="redirect only"),
])
def test_sendmail_that_hangs_is_killed_at_sendmail_timeout(mail, outbox, script, wanted):
    """After the commit no signal handler ends the delivery: sendmail_timeout does, and the
    hung sendmail (and what it started) is killed."""
    hung = os.path.join(mail.top, "hung-sendmail")
    marker = os.path.join(mail.top, "hung-pid")
    with open(hung, "w") as fh:
        fh.write(f"#!/bin/sh\necho $$ > '{marker}'\nexec sleep 600\n")
    os.chmod(hung, 0o755)
    os.chmod(mail.top, 0o777)
    mail.write_config(f"sendmail_path = {hung}\nsendmail_timeout = 2s\n")
    activate(mail, script)
    started = time.monotonic()
    try:
        line = delivered(deliver(mail, original()))
    finally:
        os.chmod(mail.top, 0o755)
    assert time.monotonic() - started < 10
    assert "did not finish within sendmail_timeout (2s)" in line and wanted in line, line
    with open(marker) as fh:
        pid = int(fh.read())
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert len(stored(mail)) == 1 and tmp_empty(mail)


def test_pipe_and_lmtp_deliveries_at_once_send_one_reply(mail, outbox):
    """100 pipe commands and 100 LMTP deliveries (10 sessions, the daemon's threads) for one
    vacation user at the same time: one SQLite database, one reply."""
    import threading

    from functional.test_lmtp import Daemon, transaction
    server = Daemon(mail, outbox.config())
    replies, failures = [], []

    def session(first):
        try:
            lmtp = server.client()
            for n in range(first, first + 10):
                _, data = transaction(lmtp, ["bob@example.com"], original(n), sender=SENDER)
                replies.extend(data)
            lmtp.quit()
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(error)
    try:
        procs = [mail.popen("-i", f"4P{n}", "-f", SENDER, "--", "bob@example.com")
                 for n in range(100)]
        threads = [threading.Thread(target=session, args=(1000 + 10 * k,)) for k in range(10)]
        for thread in threads:
            thread.start()
        for n, proc in enumerate(procs):
            proc.stdin.write(original(n))
            proc.stdin.close()
        codes = []
        for proc in procs:
            out, err = proc.stdout.read(), proc.stderr.read()
            codes.append((proc.wait(timeout=300), out, err))
        for thread in threads:
            thread.join(300)
    finally:
        assert server.stop() == 0
    assert failures == [] and all(code == (0, b"", b"") for code in codes), (failures, codes[:3])
    assert len(replies) == 100 and all(code == 250 for code, _ in replies), replies[:3]
    assert len(stored(mail)) == 200 and tmp_empty(mail)
    assert len(outbox.sent()) == 1


def test_submission_host_that_is_down(mail, outbox):
    """submission_host pointing at a port nobody listens on: the vacation fails, the
    redirect-only message is kept in INBOX; both originals are delivered."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mail.write_config(f"submission_host = 127.0.0.1:{port}\nsendmail_timeout = 5s\n")
    line = delivered(deliver(mail, original(1)))
    assert f"vacation response to <sender@example.net> failed: 127.0.0.1:{port}:" in line, line
    activate(mail, 'redirect "target@example.org";\n')
    line = delivered(deliver(mail, original(2)))
    assert "redirect to <target@example.org> failed" in line and "kept in INBOX" in line, line
    assert len(stored(mail)) == 2 and outbox.sent() == []
