"""What editheader stores, byte for byte, against Pigeonhole's sieve-test.

The differential corpus compares stored headers unfolded and decoded
(oracle.header_fields); here the header block vdeliver.headeredit writes is
compared with the file Pigeonhole stored into a Maildir (-e -l maildir:DIR),
for values that fold, encode (Q or B), carry line breaks, or end in blanks:
the same bytes. An LF message, which Dovecot stores as it came.
"""
import os
import shutil
import tempfile

import oracle
import pytest
from oracle import Case

from vdeliver import headeredit, sieve

VALUES = [
    pytest.param("yes", id="short"),
    pytest.param("a value \u00e9 with unicode and\nnewline and a very long text that goes on and on"
                 " and on past the seventy-eight character limit for sure yes", id="fold and B"),
    pytest.param("Gr\u00fc\u00dfe aus K\u00f6ln und mehr Text hier", id="Q"),
    pytest.param("a\r\nBcc: evil@example.net\n\n  more  \n", id="line breaks"),
    pytest.param("x" * 150 + " " + "y" * 30, id="a word longer than a line"),
    pytest.param("\u00e9" * 300, id="many encoded words"),
    pytest.param("  lead\ttab  ", id="blanks kept"),
    pytest.param(" ".join(["word"] * 60), id="folded at white space"),
    pytest.param("Gr\u00fc\u00dfe aus K\u00f6ln " * 8, id="Q across lines"),
    pytest.param("=?utf-8?q?x?= =?", id="something like an encoded word"),
    pytest.param("", id="empty"),
]


def pigeonhole_stored(script):
    """The one message sieve-test stored into INBOX for SCRIPT (bytes)."""
    case = Case(id="bytes", script=script.encode(), extensions="+editheader")
    user = oracle.ensure_user()
    root = tempfile.mkdtemp(prefix="sieve-oracle-bytes-")
    try:
        os.chmod(root, 0o755)
        oracle.prepare(case, root)
        oracle.chown_tree(root, user)
        run = oracle.sieve_test(case, root, user, execute=True)
        assert b"final result: success" in run.stderr, run.stderr
        (name,) = os.listdir(f"{root}/mail/new")
        with open(f"{root}/mail/new/{name}", "rb") as fh:
            return fh.read()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def vdeliver_stored(script):
    compiled = sieve.compile(script.encode(), extensions=sieve.parse_extensions_setting("+editheader"))
    result = sieve.run(compiled, sieve.Message.from_bytes(oracle.DEFAULT_MESSAGE),
                       sieve.Envelope(sender="sender@example.org", recipient="user@example.com",
                                      original_recipient="user@example.com", auth=""))
    assert not result.errors, result.errors
    edits = [action for action in result.actions if action.kind in ("addheader", "deleteheader")]
    block = oracle.DEFAULT_MESSAGE.split(b"\n\n", 1)[0] + b"\n"
    return headeredit.apply(block, edits) + b"\n" + oracle.DEFAULT_MESSAGE.split(b"\n\n", 1)[1]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
def test_added_field_bytes_agree_with_pigeonhole(value, last):
    oracle.require_available()
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    script = f'require "editheader";\naddheader {":last " if last else ""}"x-added" "{quoted}";\n'
    assert vdeliver_stored(script) == pigeonhole_stored(script)


def test_deleted_fields_and_content_length_agree_with_pigeonhole():
    oracle.require_available()
    script = ('require ["editheader", "index"];\ndeleteheader :index 1 "to";\n'
              'addheader "Subject" "two";\ndeleteheader :index 2 "subject";\n')
    assert vdeliver_stored(script) == pigeonhole_stored(script)
