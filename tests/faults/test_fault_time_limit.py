"""The time limit fires inside code that catches exceptions: the delivery still ends, 4.3.0.

pipe mode's SIGALRM handler raises TimeLimitExceeded wherever the process is.
Code that catches a broad `Exception` to fall back (texthash's cache write,
the +extension folder choice, the extension module loader) used to swallow
it: the delivery then went on without any limit, up to Postfix's
command_time_limit, which kills vdeliver and bounces the mail.

The slow system call is produced for real: strace (installed by
scripts/setup-e2e) runs the installed vdeliver, as the delivery user, with
`inject=SYSCALL:delay_enter=3s` on the one call inside the fallback code,
while time_limit is 1s. The alarm arrives during the delay; Python raises
TimeLimitExceeded right after that call returns, inside the try block.
Wanted: exit 75, `4.3.0 delivery time limit exceeded`, nothing in new/ or
tmp/, well before the delay adds up to anything more.
"""
import os
import shutil
import subprocess
import sys
import time

from functional.conftest import Result
from outcomes import assert_deferred, maildir_state
from support import VDELIVER, require

DELAY = 3  # seconds added to the chosen system call; time_limit is 1s


def run_slowed(mail, syscall, *args, path=None, stdin=b"Subject: t\n\nbody\n"):
    """mail.run() under strace, `syscall` delayed by DELAY seconds (only on `path` if given)."""
    strace = shutil.which("strace")
    require(strace, "needs strace (scripts/setup-e2e installs it)")
    command = [strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
               "-e", f"inject={syscall}:delay_enter={DELAY}s"] + (["-P", path] if path else [])
    started = time.monotonic()
    proc = subprocess.run(command + mail.command(*args), input=stdin,
                          capture_output=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          umask=0o077, user=mail.user.pw_uid, group=mail.user.pw_gid,
                          extra_groups=[], timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr), time.monotonic() - started


def assert_ended_by_time_limit(mail, result, elapsed, box):
    assert_deferred(result, "4.3.0", "delivery time limit exceeded")
    assert elapsed < 2 * DELAY, f"took {elapsed:.1f} s"
    assert maildir_state(mail, box)[0] == [] and mail.tmp_files(box) == []


def test_time_limit_during_the_texthash_cache_write(mail):
    """texthash.write_cache() takes a filelock (flock) before writing the cdb cache."""
    cache = os.path.join(mail.top, "cache")
    os.mkdir(cache, 0o700)
    os.chown(cache, mail.user.pw_uid, mail.user.pw_gid)
    old = time.time() - 60  # not "hot": the cache is written
    os.utime(mail.table_path, (old, old))
    mail.write_config(f"time_limit = 1s\ntable_cache_directory = {cache}\n")
    result, elapsed = run_slowed(mail, "flock", "-f", "s@x", "--", "bob@example.com")
    assert_ended_by_time_limit(mail, result, elapsed, "example.com/bob")
    assert [name for name in os.listdir(cache) if name.endswith(".tmp")] == []


def test_time_limit_while_creating_the_extension_folder(mail):
    """folders.choose() falls back to INBOX when a folder cannot be made (mkdir)."""
    mail.write_config("extension_folder = create\n")
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0  # the Maildir exists
    (first,) = mail.new_files("example.com/bob")
    mail.write_config("extension_folder = create\ntime_limit = 1s\n")
    result, elapsed = run_slowed(mail, "mkdir,mkdirat", "-f", "s@x", "--", "bob+Lists@example.com")
    assert_deferred(result, "4.3.0", "delivery time limit exceeded")
    assert elapsed < 2 * DELAY, f"took {elapsed:.1f} s"
    assert mail.new_files("example.com/bob") == [first], "delivered to INBOX after the time limit"
    assert mail.tmp_files("example.com/bob") == []


def test_time_limit_while_loading_a_table_driver(mail):
    """extension.load() falls back to a normal import when loading the .so directly fails."""
    try:
        from berkeleydb import db
    except ImportError:
        require(False, "needs the berkeleydb binding (vdeliver[bdb])")
    # The path as vdeliver opens it: bin/vdeliver puts BIN/../lib/pythonX.Y/site-packages on
    # sys.path, and strace -P compares that text, not the file it resolves to.
    site = (f"{os.path.dirname(VDELIVER)}/../lib/python{sys.version_info[0]}.{sys.version_info[1]}"
            "/site-packages/berkeleydb")
    so = [f"{site}/{name}" for name in os.listdir(site) if name.startswith("_berkeleydb")]
    require(so, f"no _berkeleydb extension module file in {site}")
    table = os.path.join(mail.top, "btree")
    handle = db.DB()
    handle.open(table + ".db", None, db.DB_BTREE, db.DB_CREATE)
    handle.put(b"bob@example.com\0", b"example.com/bob/\0")
    handle.close()
    os.chmod(table + ".db", 0o644)
    mail.write_config("time_limit = 1s\n", maps=f"btree:{table}")
    result, elapsed = run_slowed(mail, "openat", "-f", "s@x", "--", "bob@example.com", path=so[0])
    assert_ended_by_time_limit(mail, result, elapsed, "example.com/bob")


def test_time_limit_inside_the_per_user_database(mail):
    """duplicate_suppression asks ~/.vdeliver.db (userdb.py) before the commit; userdb turns
    sqlite3's errors into its own, and used to take the time limit for one of them: the
    delivery went on, without a limit, and was delivered (exit 0)."""
    mail.write_config("duplicate_suppression = yes\n")
    first = mail.run("-f", "s@x", "--", "bob@example.com",
                     stdin=b"Message-ID: <one@example.net>\nSubject: t\n\nbody\n")
    assert first.code == 0, first
    database = mail.path("example.com/bob/.vdeliver.db")
    assert os.path.isfile(database)
    mail.write_config("duplicate_suppression = yes\ntime_limit = 1s\n")
    result, elapsed = run_slowed(mail, "newfstatat", "-f", "s@x", "--", "bob@example.com",
                                 path=database,
                                 stdin=b"Message-ID: <two@example.net>\nSubject: t\n\nbody\n")
    assert_deferred(result, "4.3.0", "delivery time limit exceeded")
    assert elapsed < 2 * DELAY, f"took {elapsed:.1f} s"
    assert len(maildir_state(mail, "example.com/bob")[0]) == 1 and mail.tmp_files("example.com/bob") == []
