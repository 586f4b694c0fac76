"""headeredit: the edited header block (bytes) of a Sieve editheader run."""
import io
import tempfile

import pytest

from vdeliver import headeredit
from vdeliver.sieve.result import Action


def add(name, value, last=False):
    return Action("addheader", params={"name": name, "value": value, "last": last})


def delete(name, *occurrences):
    return Action("deleteheader", params={"name": name, "occurrences": occurrences})


@pytest.mark.parametrize("block, edits, wanted", [
    pytest.param(b"A: 1\r\nB: 2\r\n", [add("X-A", "one\ntwo")], b"X-A: one\r\n\ttwo\r\nA: 1\r\nB: 2\r\n",
                 id="a CRLF message gets CRLF lines"),
    pytest.param(b"A: 1\nB: 2\n", [add("X-A", "v", last=True)], b"A: 1\nB: 2\nX-A: v\n", id=":last"),
    pytest.param(b"A: 1\n folded\nnot a field\nA: 2\n", [delete("a", 2)], b"A: 1\n folded\nnot a field\n",
                 id="a line that is no field stays, is not counted"),
    pytest.param(b"A: 1\n folded\nA: 2\n", [delete("a", 1)], b"A: 2\n", id="a folded field goes whole"),
    pytest.param(b"A: 1\nContent-Length: 5\nB: 2\n", [delete("b", 1)], b"A: 1\n",
                 id="Content-Length goes with a deletion"),
    pytest.param(b"A: 1\nContent-Length: 5\n", [add("X-A", "v")], b"X-A: v\nA: 1\nContent-Length: 5\n",
                 id="Content-Length stays with an addition"),
    pytest.param(b"A: \xff\xfe raw\n", [add("X-A", "v")], b"X-A: v\nA: \xff\xfe raw\n",
                 id="bytes nobody edited stay as they were"),
])
def test_apply(block, edits, wanted):
    assert headeredit.apply(block, edits) == wanted


def test_the_edited_message_is_streamed_from_the_file():
    message = b"A: 1\n\n" + b"body\n" * 50000
    header = headeredit.apply(headeredit.original_header(lambda: io.BytesIO(message)),
                              [add("X-A", "1")])
    with headeredit.open_edited(lambda: io.BytesIO(message), header) as fh:
        assert fh.read() == b"X-A: 1\n" + message


def test_a_header_block_over_the_cap_is_edited_where_the_interpreter_saw_it(monkeypatch):
    from vdeliver.sieve import message as sieve_message
    monkeypatch.setattr(sieve_message, "MAX_HEADER_SIZE", 16)
    data = b"A: 1\nB: 2\nC: 3\nD: 4\n\nbody\n"
    block = headeredit.original_header(lambda: io.BytesIO(data))
    assert block == b"A: 1\nB: 2\nC: 3\n"
    with headeredit.open_edited(lambda: io.BytesIO(data), headeredit.apply(block, [delete("a", 1)])) as fh:
        assert fh.read() == b"B: 2\nC: 3\nD: 4\n\nbody\n"


def test_outgoing_message_has_the_edits_made_before_the_action():
    """sieveroute.Sender.outgoing_message(action): what the outgoing side (redirect) sends."""
    from vdeliver import filtering, sieve, sieveroute
    script = sieve.compile(b'require ["editheader", "copy"];\nredirect :copy "a@example.net";\n'
                           b'addheader "X-A" "1";\nredirect "b@example.net";\n',
                           extensions=sieve.parse_extensions_setting("+editheader"))
    message = b"Subject: s\n\nbody\n"
    result = sieve.run(script, sieve.Message.from_bytes(message),
                       sieve.Envelope(sender="s@example.org", recipient="r@example.com",
                                      original_recipient="r@example.com", auth=""))
    first, second = [action for action in result.actions if action.kind == "redirect"]
    plan = filtering.Plan()
    plan.results.append((result, ()))
    route = sieveroute.Sender(None, None, None, [])
    route.plan, route.open_message = plan, lambda: io.BytesIO(message)
    with route.outgoing_message(first) as fh:
        assert fh.read() == message
    with route.outgoing_message(second) as fh:
        assert fh.read() == b"X-A: 1\n" + message
    # After the commit tmp/ is gone: the route reads the file it kept open.
    with tempfile.TemporaryFile() as kept:
        kept.write(b"Subject: t\n\nx\n")
        kept.flush()
        route.kept = kept
        with route.outgoing_message(second) as fh:
            assert fh.read() == b"X-A: 1\nSubject: t\n\nx\n"
        route.kept = None
