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


def test_a_link_that_reports_eexist_but_was_made_is_one_delivery(tmp_path, monkeypatch):
    """NFS: the server made the link, its reply was lost, the client's retry gets EEXIST
    (link(2), BUGS). No NFS in this kernel, so the fault is a stand-in link() that links
    and then says EEXIST. Before: a second link under a fresh name, two copies in new/."""
    real_link = os.link
    calls = []

    def link_then_eexist(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        real_link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        calls.append(dst)
        raise FileExistsError(17, "File exists")
    monkeypatch.setattr(maildir.posix, "link", link_then_eexist)
    relative = deliver(str(tmp_path), "example.com/bob/", writer(b"once\n"))
    monkeypatch.undo()
    new = os.listdir(tmp_path / "example.com" / "bob" / "new")
    assert len(calls) == 1 and new == [calls[0]]
    assert relative == f"example.com/bob/new/{calls[0]}"
    assert os.listdir(tmp_path / "example.com" / "bob" / "tmp") == []


def test_a_real_name_collision_still_gets_a_fresh_name(tmp_path, monkeypatch):
    """EEXIST from another file of that name (not ours): a fresh name, as before."""
    box = tmp_path / "example.com" / "bob"
    deliver(str(tmp_path), "example.com/bob/", writer(b"first\n"))
    monkeypatch.setattr(maildir, "unique_name", lambda: "fixed")
    (box / "new" / "fixed,S=7").write_bytes(b"other\n")
    names = iter(["fixed", "fixed", "fresh"])
    monkeypatch.setattr(maildir, "unique_name", lambda: next(names))
    relative = deliver(str(tmp_path), "example.com/bob/", writer(b"second\n"))
    assert relative.endswith("/new/fresh,S=7")
    assert (box / "new" / "fixed,S=7").read_bytes() == b"other\n"


@pytest.mark.parametrize("configured, wanted", [
    pytest.param("", os.uname().nodename.replace("/", "\\057").replace(":", "\\072"), id="host name"),
    pytest.param("mx/1:a", "mx\\0571\\072a", id="maildir_hostname, encoded"),
])
def test_maildir_hostname(monkeypatch, configured, wanted):
    monkeypatch.setattr(maildir, "HOSTNAME", configured)
    assert maildir.unique_name().endswith("." + wanted)
