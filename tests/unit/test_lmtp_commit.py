"""lmtp.Ticket (a delivery's commit point against shutdown) and lmtp.Settings' table
lifetime: pure objects, no sockets, no threads but the ones made here."""
import threading

import pytest

from vdeliver import commitpoint, config, errors, lmtp
from vdeliver.errors import Abandoned


def test_commit_first_then_abandon_is_refused():
    ticket = lmtp.Ticket()
    ticket.enter()
    assert ticket.abandon() is False  # committed: shutdown must wait for its reply
    assert ticket.state == "committed"


def test_abandon_first_then_commit_raises():
    ticket = lmtp.Ticket()
    assert ticket.abandon() is True
    assert ticket.abandon() is True  # asking twice changes nothing
    with pytest.raises(Abandoned):
        ticket.enter()
    assert ticket.state == "abandoned"


def test_commit_and_abandon_race_exactly_one_wins():
    for _ in range(300):
        ticket, outcome = lmtp.Ticket(), {}
        start = threading.Barrier(2)

        def commit(ticket=ticket, outcome=outcome, start=start):
            start.wait()
            try:
                ticket.enter()
                outcome["committed"] = True
            except Abandoned:
                outcome["committed"] = False

        thread = threading.Thread(target=commit)
        thread.start()
        start.wait()
        abandoned = ticket.abandon()
        thread.join()
        assert abandoned != outcome["committed"]


class FakeTable:
    spec = "fake:x"

    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


def settings():
    cfg = config.from_text(b"virtual_mailbox_base = /m\nvirtual_mailbox_maps = fake:x\n", "t.cf")
    return lmtp.Settings(cfg, [FakeTable()])


def test_retired_settings_close_their_tables_when_the_last_user_lets_go():
    old = settings()
    table = old.tables[0]
    old.acquire()
    old.acquire()
    old.retire()
    assert table.closed == 0  # two transactions still use it
    old.release()
    assert table.closed == 0
    old.release()
    assert table.closed == 1 and old.tables is None


def test_current_settings_are_never_closed_and_closed_once():
    current = settings()
    table = current.tables[0]
    current.acquire()
    current.release()
    assert table.closed == 0
    current.retire()
    current.retire()
    assert table.closed == 1


def test_a_reload_closes_the_old_tables_on_a_lookup_thread_not_the_event_loop():
    """Closing a table may wait (an LDAP unbind, a database's goodbye); the Server hands it
    to its lookup threads. With the pool shut down (the daemon stopping) it closes at once."""
    import concurrent.futures
    pool = concurrent.futures.ThreadPoolExecutor(1, "lookup")
    server = lmtp.Server(settings(), None, pool, "mx.example", 10)
    old = server.settings
    table = old.tables[0]
    closed_on = []
    table.close = lambda: closed_on.append(threading.current_thread().name)
    server.replace_settings(settings())
    pool.shutdown(wait=True)
    assert closed_on == ["lookup_0"] and old.tables is None
    later = server.settings
    later.tables[0].close = lambda: closed_on.append(threading.current_thread().name)
    server.replace_settings(settings())   # the pool is shut down now: closed at once, here
    assert closed_on == ["lookup_0", threading.current_thread().name] and later.tables is None


@pytest.mark.parametrize("limit, size, too_big", [
    pytest.param(0, 10 ** 12, False, id="0 is no limit"),
    pytest.param(1000, 1000, False, id="at the limit"),
    pytest.param(1000, 1001, True, id="over the limit"),
])
def test_message_size_limit(limit, size, too_big):
    cfg = config.from_text(f"virtual_mailbox_base = /m\nlmtp_message_size_limit = {limit}\n".encode(),
                           "t.cf")
    assert lmtp.Settings(cfg, []).too_big(size) is too_big


@pytest.mark.parametrize("late", [
    pytest.param(lambda: errors.TableError("quota table gone"), id="a DeliveryError"),
    pytest.param(lambda: RuntimeError("a bug"), id="a bug"),
])
def test_whatever_is_raised_after_the_commit_the_reply_is_250(monkeypatch, late):
    """Once the copy is durable (the point committed), a 4xx would make Postfix deliver it
    again: an error raised after that, of any kind, still answers 250 and logs it as sent."""
    logged = []

    def deliver_then_fail(envelope, config, read_chunk, tables, mailbox, point):
        point.enter()
        point.done()   # as maildir.commit() after the fsync of new/
        raise late()
    monkeypatch.setattr(lmtp.deliver, "deliver", deliver_then_fail)
    monkeypatch.setattr(lmtp.log, "log", lambda config, line, *rest: logged.append(line))
    reply = lmtp.deliver_one(settings(), "s@example.net", "bob@example.com", "", None,
                             lambda: b"", commitpoint.CommitPoint())
    assert reply == "250 2.0.0 <bob@example.com> delivered"
    (line,) = logged
    assert "to=<bob@example.com>" in line and "status=sent" in line and "after the commit" in line


def test_a_summary_that_fails_after_the_commit_still_answers_250(monkeypatch):
    """The success line is written after the commit too: a bug in its text must not reach
    the session (which would answer 421 and close: Postfix would deliver the copy again)."""
    logged = []

    class Broken:
        def summary(self):
            raise RuntimeError("a bug in the summary")

    def deliver_durably(envelope, config, read_chunk, tables, mailbox, point):
        point.enter()
        point.done()
        return Broken()
    monkeypatch.setattr(lmtp.deliver, "deliver", deliver_durably)
    monkeypatch.setattr(lmtp.log, "log", lambda config, line, *rest: logged.append(line))
    monkeypatch.setattr(lmtp.metrics.current, "sent", lambda *args: None)
    reply = lmtp.deliver_one(settings(), "s@example.net", "bob@example.com", "", None,
                             lambda: b"", commitpoint.CommitPoint())
    assert reply == "250 2.0.0 <bob@example.com> delivered"
    (line,) = logged
    assert "status=sent" in line and "no summary" in line


def test_an_error_before_the_commit_still_defers(monkeypatch):
    def fail(envelope, config, read_chunk, tables, mailbox, point):
        raise errors.TableError("down")
    monkeypatch.setattr(lmtp.deliver, "deliver", fail)
    monkeypatch.setattr(lmtp.log, "log", lambda *args: None)
    reply = lmtp.deliver_one(settings(), "s@example.net", "bob@example.com", "", None,
                             lambda: b"", commitpoint.CommitPoint())
    assert reply.startswith("451 4.3.0 ")
