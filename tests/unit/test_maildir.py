"""maildir.py in-process: layout, names, modes, symlink refusal, cleanup on failure."""
import os
import stat

import pytest

from vdeliver import maildir, safepath
from vdeliver.errors import MailLoop, MailboxUnavailable, UnsafeMailboxPath


def deliver(base, relative, write):
    """As deliver.py does: walk to the mailbox (safepath), then write into it."""
    fd, shown = safepath.open_directory(base, relative)
    try:
        return f"{relative.rstrip('/')}/new/" + maildir.deliver(fd, shown, write)
    finally:
        os.close(fd)


def writer(data):
    def write(fd):
        os.write(fd, data)
        return len(data)
    return write


def test_delivery_layout_name_and_modes(tmp_path):
    os.umask(0o022)
    relative = deliver(str(tmp_path), "example.com/bob/", writer(b"hello\n"))
    box = tmp_path / "example.com" / "bob"
    assert sorted(os.listdir(box)) == ["cur", "new", "tmp"]
    assert os.listdir(box / "tmp") == []
    (name,) = os.listdir(box / "new")
    assert relative == f"example.com/bob/new/{name}"
    assert (box / "new" / name).read_bytes() == b"hello\n"
    assert name.endswith(",S=6")
    sec, rest = name.split(".", 1)
    assert sec.isdigit() and rest.startswith("M") and f"P{os.getpid()}Q" in rest and "R" in rest
    assert stat.S_IMODE(os.stat(box / "new" / name).st_mode) == 0o600
    for directory in (tmp_path / "example.com", box, box / "new", box / "tmp", box / "cur"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_hostname_escapes(monkeypatch):
    class Uname:
        nodename = "a/b:c"
    monkeypatch.setattr(maildir.posix, "uname", lambda: Uname)
    assert maildir.hostname() == "a\\057b\\072c"


def test_unique_names_differ():
    assert len({maildir.unique_name() for _ in range(1000)}) == 1000


@pytest.mark.parametrize("link_at", ["example.com", "example.com/bob", "example.com/bob/new", "example.com/bob/tmp"])
def test_symlink_anywhere_below_base_is_refused(tmp_path, link_at):
    os.makedirs(tmp_path / "example.com" / "bob" / "new")
    os.makedirs(tmp_path / "example.com" / "bob" / "tmp")
    os.makedirs(tmp_path / "elsewhere")
    target = tmp_path / link_at
    os.rename(target, tmp_path / "moved")
    os.symlink(tmp_path / "elsewhere", target)
    with pytest.raises(UnsafeMailboxPath):
        deliver(str(tmp_path), "example.com/bob/", writer(b"x"))
    assert os.listdir(tmp_path / "elsewhere") == []


def test_failure_while_writing_leaves_nothing(tmp_path):
    def failing(fd):
        os.write(fd, b"partial")
        raise MailLoop("loop")
    with pytest.raises(MailLoop):
        deliver(str(tmp_path), "box/", failing)
    assert os.listdir(tmp_path / "box" / "tmp") == [] and os.listdir(tmp_path / "box" / "new") == []


def test_world_writable_base_defers(tmp_path):
    os.chmod(tmp_path, 0o777)
    with pytest.raises(MailboxUnavailable, match="world-writable"):
        deliver(str(tmp_path), "box/", writer(b"x"))


def test_missing_base_defers(tmp_path):
    with pytest.raises(MailboxUnavailable) as caught:
        deliver(str(tmp_path / "nope"), "box/", writer(b"x"))
    assert caught.value.exit_code == 75
