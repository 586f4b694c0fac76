"""A mail base, config and tables for running the installed vdeliver as pipe(8) does.

pipe(8) runs the command as user= with no supplementary groups, umask 077,
PATH=/usr/bin:/bin, no HOME, cwd in the queue directory; run() does the same.
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from support import VDELIVER, require


class Result:
    """code, stdout (the public status line), stderr, and log: the maillog lines this
    run wrote (bytes; where the private detail of a failure goes)."""

    def __init__(self, code, stdout, stderr, log=b""):
        self.code, self.stdout, self.stderr, self.log = code, stdout, stderr, log

    @property
    def status_line(self):
        return self.stdout.decode("utf-8", "replace").rstrip("\n")

    def __repr__(self):
        return f"Result(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr[-500:]!r})"


class MailSetup:
    def __init__(self, top, user):
        self.top = top
        self.user = user
        self.base = os.path.join(top, "mail")
        self.config_path = os.path.join(top, "vdeliver.cf")
        self.table_path = os.path.join(top, "mailboxes")
        self.maillog = os.path.join(top, "maillog")
        os.mkdir(self.base, 0o700)
        os.chown(self.base, user.pw_uid, user.pw_gid)
        with open(self.maillog, "w"):
            pass
        os.chown(self.maillog, user.pw_uid, user.pw_gid)
        self.write_table("bob@example.com   example.com/bob/\n"
                         "alice@example.com example.com/alice/\n"
                         "@catchall.example catchall/\n"
                         "mbox@example.com  example.com/mbox\n"
                         "abs@example.com   /etc/\n")
        self.write_config()

    def write_table(self, text, path=None):
        with open(path or self.table_path, "w") as fh:
            fh.write(text)
        os.chmod(path or self.table_path, 0o644)

    def write_config(self, extra="", maps=None):
        with open(self.config_path, "w") as fh:
            fh.write(f"virtual_mailbox_base = {self.base}\n"
                     f"virtual_mailbox_maps = {maps or 'texthash:' + self.table_path}\n"
                     "recipient_delimiter = +\n"
                     f"maillog_file = {self.maillog}\n" + extra)
        os.chmod(self.config_path, 0o644)

    def command(self, *args, config=True):
        return [VDELIVER] + (["-c", self.config_path] if config else []) + list(args)

    def run(self, *args, stdin=b"Subject: test\n\nbody\n", as_root=False, timeout=30, config=True,
            env=None, command=None):
        """`command` (default: the installed vdeliver) with the config and `args`; `env`
        adds to pipe(8)'s PATH (as export_environment would, e.g. LANG)."""
        kwargs = {} if as_root else {"user": self.user.pw_uid, "group": self.user.pw_gid,
                                     "extra_groups": []}
        mark = self.log_size()
        argv = self.command(*args, config=config)
        proc = subprocess.run((command or argv[:1]) + argv[1:], input=stdin, capture_output=True,
                              env={"PATH": "/usr/bin:/bin", **(env or {})}, cwd="/", umask=0o077,
                              timeout=timeout, **kwargs)
        return Result(proc.returncode, proc.stdout, proc.stderr, self.log_since(mark))

    def log_size(self):
        try:
            return os.path.getsize(self.maillog)
        except OSError:
            return 0

    def log_since(self, mark):
        """The maillog bytes written since log_size() returned mark (a maillog a test
        replaced by something else than a file has none)."""
        if not os.path.isfile(self.maillog):
            return b""
        try:
            with open(self.maillog, "rb") as fh:
                fh.seek(mark)
                return fh.read()
        except OSError:
            return b""

    def popen(self, *args, stdin=subprocess.PIPE, **extra):
        return subprocess.Popen(self.command(*args), stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                                umask=0o077, user=self.user.pw_uid, group=self.user.pw_gid,
                                extra_groups=[], **extra)

    def path(self, relative):
        return os.path.join(self.base, relative)

    def new_files(self, mailbox):
        directory = os.path.join(self.base, mailbox, "new")
        if not os.path.isdir(directory):
            return []
        return sorted(os.path.join(directory, name) for name in os.listdir(directory))

    def tmp_files(self, mailbox):
        directory = os.path.join(self.base, mailbox, "tmp")
        return os.listdir(directory) if os.path.isdir(directory) else []

    def all_files(self):
        return sorted(os.path.relpath(os.path.join(d, f), self.top)
                      for d, _, files in os.walk(self.top) for f in files)

    def log_lines(self):
        with open(self.maillog) as fh:
            return fh.read().splitlines()


@pytest.fixture(scope="session")
def latin1_locale():
    """The environment of a Postfix whose LANG is a Latin-1 locale (pipe(8) exports LANG):
    de_DE.ISO-8859-1 built by localedef into a private LOCPATH (Debian's locales package,
    scripts/setup-e2e), so nothing of the machine's locale setup is used or changed. It is
    checked to be in effect: a Python without UTF-8 mode encodes paths in Latin-1 under it."""
    require(shutil.which("localedef") and os.path.isdir("/usr/share/i18n/locales"),
            "localedef and /usr/share/i18n (Debian package locales) build the Latin-1 locale")
    top = tempfile.mkdtemp(prefix="vdeliver-locale-", dir="/var/tmp")
    os.chmod(top, 0o755)
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "ISO-8859-1",
                           os.path.join(top, "de_DE.ISO-8859-1")], capture_output=True, text=True)
    assert made.returncode in (0, 1), made  # 1: warnings only (glibc's own de_DE has some)
    subprocess.run(["chmod", "-R", "a+rX", top], check=True)
    env = {"LOCPATH": top, "LANG": "de_DE.ISO-8859-1"}
    python = subprocess.run(["/usr/bin/python3", "-I", "-c", "import sys; print(sys.getfilesystemencoding())"],
                            env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)
    assert python.stdout.strip() == "iso8859-1", python
    try:
        yield env
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def mail(delivery_user, installed_vdeliver):
    top = tempfile.mkdtemp(prefix="vdeliver-test-", dir="/var/tmp")
    os.chmod(top, 0o755)
    try:
        yield MailSetup(top, delivery_user)
    finally:
        shutil.rmtree(top, ignore_errors=True)
