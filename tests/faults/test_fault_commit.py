"""The commit point: once the message is linked into new/, the outcome is success.

A time limit or a signal that arrives during the link or the fsync of new/
must not turn a delivered message into a deferral: Postfix would deliver it a
second time. Produced for real with strace's fault injection (delays, signals
and errors at chosen system calls), as pipe(8) runs the command: unprivileged,
PATH=/usr/bin:/bin, umask 077.

Each test delivers one message first, so the mailbox exists: then fsync
number 1 is the message file in tmp/, number 2 is new/ (maildir.py); for an
mbox, fsync number 1 is the mbox file. (Creating a mailbox fsyncs each new
directory's parent too: test_new_mailbox_directories_are_fsynced.)
"""
import os
import shutil

import pytest

from outcomes import assert_deferred, read
from support import require

MESSAGE = b"Subject: commit\n\nexactly once\n"
FIRST = b"Subject: first\n\nthe mailbox exists\n"


@pytest.fixture
def strace():
    path = shutil.which("strace")
    require(path, "needs strace (Debian's strace; scripts/setup-e2e installs it)")
    return path


def run_traced(mail, strace, inject, recipient="bob@example.com", extra_config=""):
    """Deliver once untraced (the mailbox then exists), then once under strace."""
    first = mail.run("-f", "first@example.org", "--", recipient, stdin=FIRST)
    assert first.code == 0, first
    if extra_config:
        mail.write_config(extra_config)
    import subprocess

    from functional.conftest import Result
    command = [strace, "-f", "-qq", "-o", "/dev/null", "-e", f"inject={inject}",
               *mail.command("-f", "sender@example.org", "--", recipient)]
    proc = subprocess.run(command, input=MESSAGE, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          umask=0o077, user=mail.user.pw_uid, group=mail.user.pw_gid,
                          extra_groups=[], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def traced_files(mail, box):
    """The file of the traced delivery in new/ (the first delivery's is not counted)."""
    return [path for path in mail.new_files(box) if read(path).endswith(MESSAGE)]


def assert_delivered_once(mail, result, box="example.com/bob"):
    assert result.code == 0, result
    assert result.stdout == b"", result
    assert len(traced_files(mail, box)) == 1, (mail.new_files(box), result)
    assert len(mail.new_files(box)) == 2
    assert mail.tmp_files(box) == []
    assert any("status=sent" in line and "exactly" not in line for line in mail.log_lines())


COMMIT_FAULTS = [
    pytest.param("fsync:delay_enter=2500000:when=2", "time_limit = 1s\n",
                 id="time limit fires during the fsync of new/"),
    pytest.param("fsync:signal=SIGTERM:when=2", "", id="SIGTERM during the fsync of new/"),
    pytest.param("linkat:signal=SIGTERM", "", id="SIGTERM during the link into new/"),
    pytest.param("linkat:signal=SIGALRM", "", id="SIGALRM during the link into new/"),
    pytest.param("fsync:signal=SIGHUP:when=2", "", id="SIGHUP during the fsync of new/"),
]


@pytest.mark.parametrize("inject, extra", COMMIT_FAULTS)
def test_a_signal_inside_the_commit_point_keeps_the_delivery(mail, strace, inject, extra):
    result = run_traced(mail, strace, inject, extra_config=extra)
    assert_delivered_once(mail, result)


@pytest.mark.parametrize("inject, extra", [
    pytest.param("fsync:signal=SIGTERM:when=1", "", id="SIGTERM during the fsync of tmp/"),
    pytest.param("fsync:delay_enter=2500000:when=1", "time_limit = 1s\n",
                 id="time limit during the fsync of tmp/"),
])
def test_a_signal_before_the_commit_point_defers_and_leaves_nothing(mail, strace, inject, extra):
    result = run_traced(mail, strace, inject, extra_config=extra)
    assert_deferred(result, "4.3.0")
    assert traced_files(mail, "example.com/bob") == []
    assert mail.tmp_files("example.com/bob") == []


def test_new_cannot_be_made_durable_defers_and_takes_the_message_back(mail, strace):
    result = run_traced(mail, strace, "fsync:error=EIO:when=2")
    assert_deferred(result, "4.2.0")
    assert traced_files(mail, "example.com/bob") == []
    assert mail.tmp_files("example.com/bob") == []


def test_a_signal_during_the_mbox_fsync_keeps_the_delivery(mail, strace):
    result = run_traced(mail, strace, "fsync:signal=SIGTERM:when=1", recipient="mbox@example.com")
    assert result.code == 0, result
    assert read(mail.path("example.com/mbox")).count(b"exactly once") == 1


def test_a_time_limit_during_the_mbox_fsync_keeps_the_delivery(mail, strace):
    result = run_traced(mail, strace, "fsync:delay_enter=2500000:when=1",
                        recipient="mbox@example.com", extra_config="time_limit = 1s\n")
    assert result.code == 0, result
    assert read(mail.path("example.com/mbox")).count(b"exactly once") == 1


def test_a_signal_while_writing_the_mbox_truncates_it_back(mail, strace):
    first = mail.run("-f", "first@example.org", "--", "mbox@example.com", stdin=FIRST)
    assert first.code == 0, first
    size = os.path.getsize(mail.path("example.com/mbox"))
    result = run_traced(mail, strace, "write:signal=SIGTERM:when=2", recipient="mbox@example.com")
    assert_deferred(result, "4.3.0")
    assert os.path.getsize(mail.path("example.com/mbox")) == size * 2  # the two FIRSTs only


def fsync_trace(mail, strace, recipient):
    """strace's record of a first delivery: mkdirat/openat/fsync with their fds."""
    import subprocess
    command = [strace, "-f", "-qq", "-e", "trace=mkdirat,mkdir,openat,fsync,close",
               *mail.command("-f", "sender@example.org", "--", recipient)]
    proc = subprocess.run(command, input=MESSAGE, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          umask=0o077, user=mail.user.pw_uid, group=mail.user.pw_gid,
                          extra_groups=[], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc
    return proc.stderr.decode()


def parent_fsynced_after_each_mkdir(trace):
    """Each mkdirat(FD, "name") is followed by fsync(FD) before FD is closed."""
    import re
    lines = trace.splitlines()
    made = 0
    for index, line in enumerate(lines):
        found = re.search(r"mkdirat\((\d+), \"([^\"]+)\".*= 0$", line)
        if not found:
            continue
        made += 1
        fd = found.group(1)
        rest = lines[index + 1:]
        synced = next((n for n, later in enumerate(rest) if re.search(rf"fsync\({fd}\) += 0", later)), None)
        closed = next((n for n, later in enumerate(rest) if re.search(rf"close\({fd}\) += 0", later)), None)
        assert synced is not None and (closed is None or synced < closed), (found.group(2), trace)
    return made


def test_new_mailbox_directories_are_fsynced(mail, strace):
    trace = fsync_trace(mail, strace, "bob@example.com")
    # example.com/, bob/, tmp/, new/, cur/: each made, each parent fsynced.
    assert parent_fsynced_after_each_mkdir(trace) == 5


def test_a_new_mbox_file_has_its_directory_fsynced(mail, strace):
    os.makedirs(mail.path("example.com"), mode=0o700)
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
    trace = fsync_trace(mail, strace, "mbox@example.com")
    import re
    opened = re.search(r'openat\((\d+), "mbox", [^)]*O_CREAT[^)]*\) = (\d+)', trace)
    assert opened, trace
    dir_fd, file_fd = opened.groups()
    after = trace[opened.end():]
    assert re.search(rf"fsync\({file_fd}\) += 0", after), trace
    assert re.search(rf"fsync\({dir_fd}\) += 0", after), trace


def test_a_log_that_fails_after_the_commit_changes_nothing(mail, strace):
    """close() of the maillog fails (EIO, as NFS reports late write errors): exit 0."""
    import subprocess
    first = mail.run("-f", "first@example.org", "--", "bob@example.com", stdin=FIRST)
    assert first.code == 0, first
    command = [strace, "-f", "-qq", "-o", "/dev/null", "-P", mail.maillog,
               "-e", "trace=close", "-e", "inject=close:error=EIO",
               *mail.command("-f", "sender@example.org", "--", "bob@example.com")]
    proc = subprocess.run(command, input=MESSAGE, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          umask=0o077, user=mail.user.pw_uid, group=mail.user.pw_gid,
                          extra_groups=[], capture_output=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b""), proc
    assert len(traced_files(mail, "example.com/bob")) == 1


def sieve_mbox_home(mail):
    """mbox@example.com with a home and a script filing into ~/mail/A and keeping."""
    from functional.sievelayout import activate
    homes = os.path.join(mail.top, "homes")
    mail.write_table("mbox@example.com homes/mbox/\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\n")
    activate(mail, 'require ["fileinto", "mailbox"];\nfileinto :create "A";\nkeep;\n',
             box="homes/mbox")
    return ["example.com/mbox", "homes/mbox/mail/A"]


@pytest.mark.parametrize("inject, code", [
    pytest.param("fsync:error=EIO:when=2", 75, id="the second fsync fails: both taken back"),
    pytest.param("write:signal=SIGTERM:when=2", 75, id="a signal while writing"),
])
def test_sieve_copies_into_mboxes_are_all_or_nothing(mail, strace, inject, code):
    """Sieve stores into two mbox files (mboxroute.py): a failure before the commit
    point ends truncates both back to their sizes before the delivery."""
    paths = sieve_mbox_home(mail)
    result = run_traced(mail, strace, inject, recipient="mbox@example.com")
    assert result.code == code and result.stdout.startswith(b"4."), result
    for path in paths:  # the untraced first delivery only, to the byte
        data = read(mail.path(path))
        assert data.startswith(b"From first@example.org ") and b"\nFrom " not in data, data
        assert data.endswith(b"the mailbox exists\n\n") and b"exactly once" not in data, data


def test_a_signal_during_the_sieve_mbox_fsyncs_keeps_the_delivery(mail, strace):
    paths = sieve_mbox_home(mail)
    result = run_traced(mail, strace, "fsync:signal=SIGTERM:when=1", recipient="mbox@example.com")
    assert result.code == 0, result
    assert all(read(mail.path(path)).count(b"exactly once") == 1 for path in paths)
