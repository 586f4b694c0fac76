"""What every fault test checks: how vdeliver failed, and that it left nothing behind."""
import os
import re
import subprocess

from functional.conftest import Result
from support import assert_public

STATUS_LINE = re.compile(rb"[45]\.\d{1,3}\.\d{1,3} [^\n]*")



def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def assert_deferred(result, status, *needles):
    """Exit 75 and one public `status reason` line: a deferral, never a bounce; each
    needle in the status line or, when it is a private detail, in this run's log line."""
    assert result.code == 75, result
    assert STATUS_LINE.fullmatch(result.stdout), result
    assert result.stdout.startswith(status.encode() + b" "), result
    assert_public(result.stdout)
    for needle in needles:
        needle = needle.encode() if isinstance(needle, str) else needle
        assert needle in result.stdout or needle in result.log, result
    assert b"Traceback" not in result.stdout + result.stderr
    assert b"internal software error" not in result.stdout, result  # an unexpected exception


def assert_bounced(result, code, status):
    assert result.code == code, result
    assert STATUS_LINE.fullmatch(result.stdout) and result.stdout.startswith(status.encode()), result


def maildir_state(mail, box):
    """(names in new/, names in tmp/) of one Maildir."""
    return [os.path.basename(path) for path in mail.new_files(box)], sorted(mail.tmp_files(box))


def regular_files(directory):
    """Every file below directory, except lost+found (where the filler lives)."""
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, _, names in os.walk(directory) for name in names
                  if not os.path.relpath(root, directory).startswith("lost+found"))


def message(size, subject=b"fault"):
    """A message of exactly `size` bytes (at least its header), lines of 72 characters."""
    head = b"Subject: " + subject + b"\n\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"
    body_size = max(size - len(head), 0)
    body = line * (body_size // len(line)) + line[:body_size % len(line)]
    return head + body


def delivered(sender, recipient, text):
    """The bytes vdeliver writes for a message given on a pipe (LF), without -a."""
    return b"Return-Path: <%s>\nDelivered-To: %s\n" % (sender.encode(), recipient.encode()) + text


def run_as_pipe(mail, *args, stdin=b"Subject: test\n\nbody\n", timeout=60, **extra):
    """mail.run() (pipe(8)'s user, environment, umask) with extra subprocess arguments."""
    kwargs = dict(env={"PATH": "/usr/bin:/bin"}, cwd="/", umask=0o077, user=mail.user.pw_uid,
                  group=mail.user.pw_gid, extra_groups=[], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, timeout=timeout)
    kwargs.update(extra)
    if isinstance(stdin, bytes):
        kwargs["input"] = stdin
    else:
        kwargs["stdin"] = stdin
    mark = mail.log_size()
    proc = subprocess.run(mail.command(*args), **kwargs)
    return Result(proc.returncode, proc.stdout, proc.stderr, mail.log_since(mark))
