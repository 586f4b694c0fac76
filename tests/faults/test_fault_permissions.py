"""Permissions and ownership the admin got wrong: each defers (75, 4.2.0) naming the path; none bounces.

Extends tests/functional/test_pipe.py (unwritable new/, read-only base by
mode, world-writable 0777 base), without repeating those cases.
"""
import os

import pytest

from outcomes import assert_deferred, maildir_state, regular_files

ROOT = 0


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)


def make_maildir(mail, box, uid=None, mode=0o700):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(mail.path(f"{box}/{sub}"), mode=mode, exist_ok=True)
    top = mail.path(box.split("/")[0])
    chown_tree(top, mail.user.pw_uid if uid is None else uid, mail.user.pw_gid if uid is None else uid)
    for root, _dirs, _ in os.walk(top):
        os.chmod(root, mode)


def breaks(mail, case):
    """Set up one misconfiguration; return (recipient, status, words the reason must hold)."""
    base = mail.base
    if case == "mailbox owned by root, 0700":
        make_maildir(mail, "example.com/bob")
        chown_tree(mail.path("example.com/bob"), ROOT, ROOT)
        return "bob@example.com", "4.2.0", [f"{base}/example.com/bob", "Permission denied"]
    if case == "mailbox owned by root, 0755":
        make_maildir(mail, "example.com/bob", mode=0o755)
        chown_tree(mail.path("example.com/bob"), ROOT, ROOT)
        return "bob@example.com", "4.2.0", [f"{base}/example.com/bob ", "owned by uid 0"]
    if case == "mailbox owned by another user":
        make_maildir(mail, "example.com/bob", mode=0o755)
        chown_tree(mail.path("example.com/bob"), 65534, 65534)  # nobody
        return "bob@example.com", "4.2.0", [f"{base}/example.com/bob ", "owned by uid 65534"]
    if case == "domain directory owned by root":
        make_maildir(mail, "example.com/bob", mode=0o755)
        os.chown(mail.path("example.com"), ROOT, ROOT)
        return "alice@example.com", "4.2.0", [f"{base}/example.com/alice", "Permission denied"]
    if case == "unwritable tmp/":
        make_maildir(mail, "example.com/bob")
        os.chmod(mail.path("example.com/bob/tmp"), 0o500)
        return "bob@example.com", "4.2.0", [f"{base}/example.com/bob/tmp/", "Permission denied"]
    if case == "mbox owned by root, mode 0666":
        os.makedirs(mail.path("example.com"))
        os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
        with open(mail.path("example.com/mbox"), "wb") as fh:
            fh.write(b"From x Mon Jan  1 00:00:00 2026\nSubject: old\n\nold\n\n")
        os.chmod(mail.path("example.com/mbox"), 0o666)
        return "mbox@example.com", "4.2.0", [f"{base}/example.com/mbox", "owned by uid 0"]
    if case == "base owned by root, 0700":
        os.chown(base, ROOT, ROOT)
        return "bob@example.com", "4.2.0", [base, "Permission denied"]
    if case == "base missing":
        os.rmdir(base)
        return "bob@example.com", "4.2.0", [base, "No such file or directory"]
    if case == "world-writable base with the sticky bit":
        os.chmod(base, 0o1777)
        return "bob@example.com", "4.2.0", [base, "world-writable"]
    if case == "world-writable base, mailbox intact":
        make_maildir(mail, "example.com/bob")
        os.chmod(base, 0o757)
        return "bob@example.com", "4.2.0", [base, "world-writable"]
    if case == "maildirsize owned by root, 0600":
        mail.write_config("virtual_mailbox_quota_default = 100M\n")
        make_maildir(mail, "example.com/bob")
        with open(mail.path("example.com/bob/maildirsize"), "wb") as fh:
            fh.write(b"104857600S\n100 1\n")
        os.chmod(mail.path("example.com/bob/maildirsize"), 0o600)  # root's: as by a root script
        lock = mail.path("example.com/bob/maildirsize.lock")  # left by an earlier delivery
        open(lock, "wb").close()
        os.chown(lock, mail.user.pw_uid, mail.user.pw_gid)
        return "bob@example.com", "4.2.0", [f"{base}/example.com/bob", "maildirsize",
                                            "Permission denied"]
    raise AssertionError(case)


CASES = ["mailbox owned by root, 0700", "mailbox owned by root, 0755", "mailbox owned by another user",
         "domain directory owned by root", "unwritable tmp/", "mbox owned by root, mode 0666",
         "base owned by root, 0700", "base missing", "world-writable base with the sticky bit",
         "world-writable base, mailbox intact", "maildirsize owned by root, 0600"]


@pytest.mark.parametrize("case", CASES)
def test_misconfigured_permissions_defer_naming_the_path(mail, case):
    recipient, status, words = breaks(mail, case)
    before = regular_files(mail.top)
    contents = {path: open(os.path.join(mail.top, path), "rb").read() for path in before
                if path.startswith("mail/")}
    result = mail.run("-f", "s@x", "--", recipient)
    assert_deferred(result, status, *words)
    after = regular_files(mail.top)
    assert after == before
    for path, data in contents.items():
        assert open(os.path.join(mail.top, path), "rb").read() == data
    assert f"dsn={status}, status=deferred" in mail.log_lines()[-1]


@pytest.mark.parametrize("new_mailbox", [False, True], ids=["existing Maildir", "new Maildir"])
def test_read_only_filesystem_defers_naming_the_path(mail, filesystem, new_mailbox):
    filesystem.tmpfs()
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0
    before = maildir_state(mail, "example.com/bob")
    filesystem.remount_read_only()
    recipient, path = (("alice@example.com", "example.com/alice") if new_mailbox
                       else ("bob@example.com", "example.com/bob/tmp/"))
    result = mail.run("-f", "s@x", "--", recipient)
    assert_deferred(result, "4.2.0", f"{mail.base}/{path}", "Read-only file system")
    assert maildir_state(mail, "example.com/bob") == before
