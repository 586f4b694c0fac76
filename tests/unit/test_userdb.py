"""userdb.py: the per-user SQLite database (claims, records, expiry, the oldest dropped
past MAX_ENTRIES, a damaged file set aside, a symlink refused) and vacation.py's pure
parts (the reason as a MIME entity, header text cleaning)."""
import os
import sqlite3

import pytest

from vdeliver import userdb, vacation


@pytest.fixture
def home(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd, str(tmp_path)
    os.close(fd)


def test_claim_once_per_period(home):
    with userdb.UserDB.open(*home) as db:
        assert db.claim("vacation", "k", 100, now=1000) is True
        assert db.claim("vacation", "k", 100, now=1050) is False
        assert db.claim("other", "k", 100, now=1050) is True   # kinds are apart
        assert db.claim("vacation", "k", 100, now=1100) is True  # expired: claimed again
        db.forget("vacation", "k")
        assert db.seen("vacation", "k", now=1101) is False


def test_record_keeps_the_first_time_unless_last(home):
    with userdb.UserDB.open(*home) as db:
        db.record("duplicate", "d", 100, now=1000)
        db.record("duplicate", "d", 100, now=1090)
        assert db.seen("duplicate", "d", now=1099) and not db.seen("duplicate", "d", now=1100)
        db.record("duplicate", "d", 100, last=True, now=1099)
        assert db.seen("duplicate", "d", now=1150)


def test_the_oldest_are_dropped_past_max_entries(home, monkeypatch):
    monkeypatch.setattr(userdb, "MAX_ENTRIES", 1000)  # RFC 5230 §4.6: at least 1000
    with userdb.UserDB.open(*home) as db:
        db.connection.executemany("INSERT INTO seen VALUES ('vacation', ?, 1000000000, ?)",
                                  [(f"k{n}", n) for n in range(1005)])
        assert db.claim("vacation", "new", 100, now=5000) is True
        keys = {row[0] for row in db.connection.execute("SELECT key FROM seen")}
    assert len(keys) == 1000 and "new" in keys
    assert not {f"k{n}" for n in range(6)} & keys and "k6" in keys


def test_a_damaged_file_is_set_aside_and_rebuilt(home):
    fd, path = home
    with open(os.path.join(path, userdb.FILE), "wb") as fh:
        fh.write(b"garbage " * 1000)
    with userdb.UserDB.open(fd, path) as db:
        assert db.claim("vacation", "k", 100) is True
    with open(os.path.join(path, userdb.DAMAGED), "rb") as fh:
        assert fh.read().startswith(b"garbage")
    with sqlite3.connect(os.path.join(path, userdb.FILE)) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("name", [userdb.FILE, userdb.JOURNAL])
def test_a_symlink_is_never_followed(home, tmp_path, name):
    fd, path = home
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.symlink(victim, os.path.join(path, name))
    with pytest.raises(userdb.UserDBError):
        userdb.UserDB.open(fd, path)
    assert victim.read_bytes() == b"precious"


def test_a_hard_linked_file_is_refused(home, tmp_path):
    fd, path = home
    other = tmp_path / "other"
    other.write_bytes(b"")
    os.link(other, os.path.join(path, userdb.FILE))
    with pytest.raises(userdb.UserDBError, match="one link"):
        userdb.UserDB.open(fd, path)


@pytest.mark.parametrize("reason, fields, body", [
    pytest.param("Content-Type: text/html\n\n<p>x</p>", ["Content-Type: text/html"], b"<p>x</p>\n",
                 id="html"),
    pytest.param("Content-Type: text/plain\nBcc: evil@example.org\nX-A: 1\n\nx\n",
                 ["Content-Type: text/plain"], b"x\n", id="only Content-* fields kept"),
    pytest.param("Content-Type: multipart/alternative;\n boundary=b\n\n--b\n\nx\n--b--\n",
                 ["Content-Type: multipart/alternative;\n boundary=b"], b"--b\n\nx\n--b--\n",
                 id="a folded field"),
])
def test_mime_reason(reason, fields, body):
    assert vacation.mime_entity(reason) == (fields, body)


@pytest.mark.parametrize("reason", [
    pytest.param("no header at all", id="no blank line"),
    pytest.param("Content-Type: text/plain\r\x00\n\nx", id="control character"),
    pytest.param(" folded first\n\nx", id="continuation first"),
    pytest.param("Contént-Type: text/plain\n\nx", id="not ASCII"),
])
def test_mime_reason_that_is_not_a_clean_entity_is_text(reason):
    assert vacation.mime_entity(reason) is None


def test_header_text_is_one_clean_line():
    assert vacation.clean("a\r\nBcc: x\x00y\tz") == "a Bcc: x y z"
    encoded = vacation.encode_text("Grüße\r\nBcc: evil@example.org " * 20)
    assert encoded.isascii() and "\r" not in encoded
    assert all(line.startswith(" ") for line in encoded.split("\n")[1:])
