"""The compile cache (sievecache.py, sieve/serial.py) through the installed pipe command.

A compiled script is kept in sieve_cache_directory and used by the next
delivery while the script is the same: a changed script (even one that keeps
its size and mtime) or a changed include is compiled again; a corrupt entry or
a symlink planted where the entry goes is ignored and replaced, never followed;
a cache directory that cannot be written still delivers. Every assertion is on
where the message landed and on the files in the cache directory.
"""
import os
import re
import shutil
import subprocess

import pytest

from functional.sievelayout import BOX, MESSAGE, activate, folders_of, make_folder, read, write
from support import require

FILEINTO = 'require ["fileinto"];\n'


@pytest.fixture
def cache(mail):
    """sieve_cache_directory in the test's folder, owned by the delivery user."""
    directory = os.path.join(mail.top, "cache")
    os.mkdir(directory, 0o700)
    os.chown(directory, mail.user.pw_uid, mail.user.pw_gid)
    mail.write_config(f"sieve_cache_directory = {directory}\n")
    return directory


def deliver(mail):
    result = mail.run("-f", "sender@example.net", "--", "bob@example.com", stdin=MESSAGE)
    assert (result.code, result.stdout) == (0, b""), result
    return result.log.decode("utf-8", "replace")


def entries(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("sieve-"))


def entry(directory):
    (name,) = entries(directory)
    return os.path.join(directory, name)


def rules(*folders):
    return FILEINTO + "".join(f'if header :contains "subject" "hello" {{ fileinto "{f}"; stop; }}\n'
                              for f in folders)


def test_a_second_delivery_runs_the_cached_script_without_the_compiler(mail, cache):
    require(shutil.which("strace"), "needs strace (scripts/setup-e2e installs it)")
    activate(mail, rules("A"))
    make_folder(mail, ".A")
    deliver(mail)
    path = entry(cache)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path).st_uid == mail.user.pw_uid
    data = read(path)
    assert b"/sieve/roundcube.sieve\n" in data and b"pickle" not in data
    trace = os.path.join(mail.top, "strace.out")
    with open(trace, "w"):
        pass
    os.chown(trace, mail.user.pw_uid, mail.user.pw_gid)
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,open", "-o", trace]
                          + mail.command("-f", "s@x", "--", "bob@example.com"),
                          input=MESSAGE, capture_output=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          user=mail.user.pw_uid, group=mail.user.pw_gid, extra_groups=[], timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b""), proc
    assert folders_of(mail) == {".A": 2}
    calls = read(trace).decode("utf-8", "replace")
    assert os.path.basename(path) in calls, "the trace saw the entry being read"
    def opened(module):  # its source or its .pyc
        return re.search(rf"vdeliver/sieve/(__pycache__/)?{module}[.]", calls) is not None
    assert opened("interpreter")
    for module in ("lexer", "parser", "validator"):
        assert not opened(module), module


@pytest.mark.parametrize("same_size_and_times", [False, True], ids=["edited", "same size and mtime"])
def test_a_changed_script_is_compiled_again(mail, cache, same_size_and_times):
    script = activate(mail, rules("A"))
    make_folder(mail, ".A")
    make_folder(mail, ".B")
    deliver(mail)
    before = read(entry(cache))
    path = os.path.realpath(script)
    st = os.stat(path)
    with open(path, "w") as fh:  # in place: the same inode
        fh.write(rules("B" if same_size_and_times else "Bigger"))
    if same_size_and_times:
        assert os.stat(path).st_size == st.st_size
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        make_folder(mail, ".Bigger")
    deliver(mail)
    assert folders_of(mail) == {".A": 1, ".B" if same_size_and_times else ".Bigger": 1}
    assert read(entry(cache)) != before, "the entry is rewritten for the new script"
    deliver(mail)
    assert folders_of(mail) == {".A": 1, ".B" if same_size_and_times else ".Bigger": 2}


def test_a_changed_include_is_never_served_stale(mail, cache):
    activate(mail, 'require ["include"];\ninclude :personal "lists";\n')
    write(mail, f"{BOX}/sieve/lists.sieve", rules("A"))
    make_folder(mail, ".A")
    make_folder(mail, ".B")
    deliver(mail)
    write(mail, f"{BOX}/sieve/lists.sieve", rules("B"))
    deliver(mail)
    assert folders_of(mail) == {".A": 1, ".B": 1}
    assert entries(cache) == [], "a script with includes is not stored"


@pytest.mark.parametrize("garbage", [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x80\x81 not ours at all", id="foreign bytes"),
    pytest.param(None, id="truncated"),
    pytest.param("other command", id="a node replaced"),
])
def test_a_corrupt_entry_is_ignored_and_rewritten(mail, cache, garbage):
    activate(mail, rules("A"))
    make_folder(mail, ".A")
    deliver(mail)
    path = entry(cache)
    good = read(path)
    if garbage is None:
        garbage = good[:-7]
    elif isinstance(garbage, str):  # well formed, but a command that is not in the registry
        garbage = good.replace(b"Nc\x1efileinto\x1e", b"Nc\x1eno-such-command\x1e", 1)
        assert garbage != good
    with open(path, "wb") as fh:
        fh.write(garbage)
    log = deliver(mail)
    assert folders_of(mail) == {".A": 2}, log
    assert "failed" not in log
    assert read(path) == good


def test_a_symlink_planted_at_the_entry_is_not_followed(mail, cache):
    activate(mail, rules("A"))
    make_folder(mail, ".A")
    deliver(mail)
    path = entry(cache)
    good = read(path)
    victim = os.path.join(mail.top, "victim")
    with open(victim, "wb") as fh:
        fh.write(good)  # what a follower would read, and overwrite
    os.chown(victim, mail.user.pw_uid, mail.user.pw_gid)
    os.unlink(path)
    os.symlink(victim, path)
    os.lchown(path, mail.user.pw_uid, mail.user.pw_gid)
    deliver(mail)
    assert folders_of(mail) == {".A": 2}
    assert not os.path.islink(path), "the link is replaced by a file of its own"
    assert read(path) == good
    assert os.stat(victim).st_nlink == 1 and read(victim) == good


def test_the_entry_is_what_runs_and_only_while_only_its_owner_can_write_it(mail, cache):
    activate(mail, rules("A"))
    make_folder(mail, ".A")
    make_folder(mail, ".B")
    deliver(mail)
    path = entry(cache)
    good = read(path)
    forged = good.replace(b"\x1fsA\x1f", b"\x1fsB\x1f")
    assert forged != good
    with open(path, "wb") as fh:
        fh.write(forged)
    deliver(mail)
    assert folders_of(mail) == {".A": 1, ".B": 1}, "the second delivery ran the entry"
    os.chmod(path, 0o620)  # writable by the group: not trusted, compiled again and replaced
    deliver(mail)
    assert folders_of(mail) == {".A": 2, ".B": 1}
    assert read(path) == good and os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("unusable", ["read-only", "a file", "missing parent"])
def test_a_cache_directory_that_cannot_be_written_still_delivers(mail, cache, unusable):
    directory = cache
    if unusable == "read-only":
        os.chmod(directory, 0o500)  # the delivery user (tests run it unprivileged) cannot write
    elif unusable == "a file":
        os.rmdir(directory)
        with open(directory, "w"):
            pass
    else:
        directory = os.path.join(mail.top, "no", "such", "dir")
        mail.write_config(f"sieve_cache_directory = {directory}\n")
    activate(mail, rules("A"))
    make_folder(mail, ".A")
    deliver(mail)
    deliver(mail)
    assert folders_of(mail) == {".A": 2}
    if unusable == "read-only":
        assert os.listdir(directory) == []


def test_an_empty_sieve_cache_directory_turns_the_cache_off(mail, cache):
    mail.write_config("sieve_cache_directory =\n")
    activate(mail, rules("A"))
    make_folder(mail, ".A")
    deliver(mail)
    log = deliver(mail)
    assert folders_of(mail) == {".A": 2}, log
    assert entries(cache) == []
