"""The invariants every fuzzed run of the real command must keep, and the mail setup they run in.

On every example:
- the exit status is 0, 75 (defer, 4.x.x) or a bounce README documents with
  its status (65: 5.1.7 or 5.4.6; 67: 5.1.1 or 5.1.3; 69: 5.2.2);
- on failure stdout is exactly one line `[45].d.d reason`, no newline; on
  success stdout is empty; stderr (pipe(8) merges it into the DSN) is empty;
  no traceback anywhere; never "internal software error" (an unexpected
  exception: deferred, but a bug);
- nothing is written outside the mail base; no file is left in any tmp/;
- no file in any new/ is partial: exit 0 left exactly one message, which is
  byte for byte the input plus the prepended headers (an mbox: the From_
  line, the headers, the mboxrd-quoted input, the separator); any other
  exit left none.
"""
import os
import re
import shutil
import subprocess

from hypothesis import settings

from functional.conftest import MailSetup, Result

STATUS_LINE = re.compile(rb"[45]\.\d{1,3}\.\d{1,3} [^\n]*")
BOUNCES = {65: ("5.1.7", "5.4.6"), 67: ("5.1.1", "5.1.3"), 69: ("5.2.2",)}
FROM_LINE = re.compile(rb"From \S* [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n")


def examples(count):
    """The example budget of one property: `count` in the ci and dev profiles, scaled in long."""
    return max(1, count * settings().max_examples // 100)


class FuzzMail(MailSetup):
    """MailSetup at OUTER/top; OUTER holds nothing else, so escapes by `..` show."""

    def __init__(self, outer, inputs, user):
        top = os.path.join(outer, "top")
        os.mkdir(top, 0o755)
        super().__init__(top, user)
        self.outer = outer
        self.inputs = inputs
        self.input_path = os.path.join(inputs, "message")
        self.baseline = self.outside_state()

    def outside_state(self):
        """Every path in OUTER except the base and the log, with its bytes."""
        state = {}
        for root, dirs, files in os.walk(self.outer):
            if root == self.base:
                dirs[:] = []
                continue
            for name in dirs + files:
                path = os.path.join(root, name)
                if path in (self.base, self.maillog):
                    continue
                state[path] = None if os.path.isdir(path) else open(path, "rb").read()
        return state

    def rebaseline(self):
        self.baseline = self.outside_state()

    def reset(self):
        """Empty the mail base (and the log) before an example."""
        for name in os.listdir(self.base):
            path = os.path.join(self.base, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        os.truncate(self.maillog, 0)

    def run_with_file(self, *args, message=b""):
        """Run the command with the message on stdin from a regular file (reads are whole chunks)."""
        with open(self.input_path, "wb") as fh:
            fh.write(message)
        with open(self.input_path, "rb") as stdin:
            proc = subprocess.run(self.command(*args), stdin=stdin, capture_output=True,
                                  env={"PATH": "/usr/bin:/bin"}, cwd="/", umask=0o077,
                                  user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[],
                                  timeout=60)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def store(self):
        """(files in any new/, files in any tmp/, other files) below the base."""
        new, tmp, other = [], [], []
        for root, _, files in os.walk(self.base):
            where = os.path.basename(root)
            for name in files:
                path = os.path.join(root, name)
                (new if where == "new" else tmp if where == "tmp" else other).append(path)
        return new, tmp, other


def check_status(result):
    """Exit status and output as pipe(8) needs them; returns the status (2.0.0 on success)."""
    assert b"Traceback" not in result.stdout + result.stderr, result
    assert result.stderr == b"", result
    if result.code == 0:
        assert result.stdout == b"", result
        return "2.0.0"
    assert STATUS_LINE.fullmatch(result.stdout) and len(result.stdout) <= 1000, result
    assert b"internal software error" not in result.stdout, result  # errors.internal_error: a bug
    status = result.stdout.split(b" ", 1)[0].decode()
    if result.code == 75:
        assert status.startswith("4."), result
    else:
        assert status in BOUNCES.get(result.code, ()), result
    return status


def check_outside(fuzz):
    assert os.listdir(fuzz.outer) == ["top"]
    assert fuzz.outside_state() == fuzz.baseline, "something was written outside the mail base"


def check_store(fuzz, result, expected=None, mbox_expected=None):
    """After one run on an emptied base. expected: the Maildir bytes wanted on exit 0 (None:
    any one message; check it yourself); mbox_expected: the mbox body after the From_ line.
    With both, whichever kind of mailbox was written must hold what it should."""
    new, tmp, other = fuzz.store()
    assert tmp == [], f"left in tmp/: {tmp}"
    nonempty = [path for path in other if os.path.getsize(path)
                and os.path.basename(path) not in ("maildirsize", "maildirfolder")]
    if result.code != 0:
        assert new == [] and nonempty == [], (result, new, nonempty)
        return None
    if mbox_expected is not None and not (expected is not None and new):
        assert new == [] and len(nonempty) == 1, (new, nonempty)
        data = open(nonempty[0], "rb").read()
        line = FROM_LINE.match(data)
        assert line, data[:200]
        assert data[line.end():] == mbox_expected
        return nonempty[0]
    assert len(new) == 1 and nonempty == [], (new, nonempty)
    data = open(new[0], "rb").read()
    assert new[0].endswith(f",S={len(data)}")
    if expected is not None:
        assert data == expected
    return new[0]


def fold(text):
    """README: keys and Delivered-To are case-folded (casefold for non-ASCII, as Postfix)."""
    return text.lower() if text.isascii() else text.casefold()


def has_control(text):
    return any(ch < " " or ch == "\x7f" for ch in text)


ATOM = rb'[^\x00-\x20\x7f()<>@,;:\\".\[\]]+'
DOT_STRING = re.compile(ATOM + rb"(?:\." + ATOM + rb")*")


def external(address):
    """README: header addresses in Postfix's external form: a local part that is not an
    RFC 822 dot-string is quoted, `"` and backslash escaped (8-bit is left alone)."""
    local, at, domain = address.rpartition(b"@")
    if not at:
        local, domain = address, None
    if DOT_STRING.fullmatch(local):
        return address
    quoted = b'"' + re.sub(rb'(["\\\r])', rb"\\\1", local) + b'"'
    return quoted if domain is None else quoted + b"@" + domain
