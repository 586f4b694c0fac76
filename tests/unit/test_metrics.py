"""vdeliver/metrics.py without a daemon: a broken metric never changes an outcome and is
logged once; table lookups are timed and their errors counted, their answers unchanged;
Sieve actions and quota warnings are read from a delivery's notes."""
import pytest

from vdeliver import deliver, metrics, resolve
from vdeliver.errors import TableError, UnknownUser


class Broken:
    def labels(self, *args):
        raise RuntimeError("registry gone")

    def observe(self, *args):
        raise RuntimeError("registry gone")

    inc = observe


def fresh():
    said = []
    return metrics.Metrics(said.append), said


def sample(m, name, labels=None):
    return m.registry.get_sample_value(name, labels or {}) or 0


def test_a_broken_metric_is_swallowed_and_logged_once():
    m, said = fresh()
    m.sent_counter = m.deliveries = Broken()
    assert m.sent(0.0) is None
    assert m.failed(UnknownUser()) is None
    assert len(said) == 1 and said[0].startswith("metrics: sent: RuntimeError: registry gone")


class Table:
    spec = "texthash:/x"
    fixed_keys = True

    def lookup(self, key):
        if key == "bad":
            raise TableError("cannot look")
        return {"a": "b/"}.get(key)


def test_lookups_are_timed_and_errors_counted_answers_unchanged():
    m, said = fresh()
    tables = m.instrument(resolve.Tables([Table()]))
    timed = tables.mailbox[0]
    assert (timed.lookup("a"), timed.lookup("z"), timed.spec, timed.fixed_keys) == ("b/", None, "texthash:/x", True)
    with pytest.raises(TableError):
        timed.lookup("bad")
    labels = {"table": "texthash:/x"}
    assert sample(m, "vdeliver_table_lookup_seconds_count", labels) == 3
    assert sample(m, "vdeliver_table_lookup_errors_total", labels) == 1
    timed._histogram = Broken()
    assert timed.lookup("a") == "b/" and len(said) == 1


@pytest.mark.parametrize("files, notes, wanted", [
    pytest.param("d/bob/new/1", ["sieve: ran a.sieve"], {"keep": 1}, id="implicit keep"),
    pytest.param("d/bob/.Work/new/1, d/bob/new/1", ["sieve: ran a.sieve"],
                 {"fileinto": 1, "keep": 1}, id="fileinto and keep"),
    pytest.param("nowhere (discarded)", ["sieve: ran a.sieve", "sieve: discarded"],
                 {"discard": 1}, id="discard"),
    pytest.param("d/bob/new/1", ["sieve: ran a.sieve", "sieve: vacation not sent (outgoing mail"
                                 " is not enabled)"], {"keep": 1, "vacation": 1}, id="vacation"),
    pytest.param("d/bob/new/1", ["sieve: ran a.sieve", "sieve: a.sieve failed (x): kept in INBOX"],
                 {"keep": 1, "error": 1}, id="runtime error"),
    pytest.param("d/bob/new/1", [], {}, id="no Sieve"),
])
def test_sieve_actions_from_the_notes(files, notes, wanted):
    m, _ = fresh()
    mailbox = resolve.Mailbox("bob@d", "texthash:/x", "bob@d", "d/bob/")
    m.sent(0.0, deliver.Delivery(mailbox, files, notes))
    got = {action: sample(m, "vdeliver_sieve_actions_total", {"action": action})
           for action in ("keep", "fileinto", "discard", "reject", "redirect", "vacation",
                          "notify", "error")}
    assert {k: v for k, v in got.items() if v} == wanted


def test_quota_warnings_are_counted_when_delivered():
    m, _ = fresh()
    mailbox = resolve.Mailbox("bob@d", "texthash:/x", "bob@d", "d/bob/")
    m.sent(0.0, deliver.Delivery(mailbox, "d/bob/new/1", ["quota warning 80% delivered to maildir"
                                                           " as new/2"]))
    m.sent(0.0, deliver.Delivery(mailbox, "d/bob/new/3", ["quota warning 90% skipped: one was"
                                                           " sent in the last 24 hours"]))
    assert sample(m, "vdeliver_quota_warnings_total") == 1
    assert sample(m, "vdeliver_lmtp_delivery_seconds_count") == 2


def test_off_every_hook_is_a_no_op():
    null = metrics.NULL
    tables = resolve.Tables([Table()])
    assert null.instrument(tables) is tables and isinstance(tables.mailbox[0], Table)
    with null.session(), null.delivering():
        assert null.sent(0.0) is None and null.failed(UnknownUser()) is None
