#!/usr/bin/env python3
"""harness.py - a private Postfix and Dovecot around the installed vdeliver, for e2e tests.

Starts, under /tmp/vdeliver-e2e-<pid>/ (RUN):
  * a Postfix instance from Debian's postfix package, with its own config_directory
    (RUN/postfix/etc) and queue_directory (RUN/postfix/spool); smtpd on 127.0.0.1 at a
    free high port only; logging to maillog_file RUN/maillog. Nothing is chrooted but
    the `lmtp` service, whose master.cf line is Debian's stock one (chroot=y); an
    unchrooted copy, `lmtp-nochroot`, serves NOCHROOT_RCPT through transport_maps.
    The master (and so every pipe(8) child) runs in a mount namespace of its own that
    sees the harness's own /etc/postfix (a copy of the package's meta files and a main.cf
    whose alternate_config_directories names this instance), so that vdeliver's
    `sendmail_path = /usr/sbin/sendmail -C RUN/postfix/etc` is accepted by postdrop;
    the machine's /etc/postfix is never changed (private_default_config()).
    Hosted domains example.com and catchall.example go to vdeliver in one of two MODES:
      pipe  master.cf.snippet appended to main.cf and master.cf exactly as written
            (but for argv='s command when VDELIVER_BIN names another installed vdeliver);
      lmtp  the same master.cf, and in main.cf, instead of the snippet's pipe lines, the
            lines of its commented "LMTP instead of pipe" part (virtual_transport =
            lmtp:unix:private/vdeliver-lmtp).
    use_mode() rewrites main.cf and restarts Postfix (a reload would race: processes
    of the old configuration finish what they hold). bounces.example is delivered by
    Postfix's own virtual(8), so tests can read the bounces sent to SENDER;
  * /etc/vdeliver/vdeliver.cf (the path the snippet's command line implies), pointing
    at a mailbox table and a virtual_mailbox_base (owned by vmail) inside RUN, with a
    quota table (QUOTA_USER), with Harness(metrics=True) lmtp_metrics_listen on a free
    127.0.0.1 port (scrape()), and the snippet's lmtp_* lines, the socket moved into the
    private queue_directory;
  * vdeliver's LMTP daemon, `vdeliver --lmtp --foreground -c /etc/vdeliver/vdeliver.cf`,
    serving RUN/postfix/spool/private/vdeliver-lmtp (owner postfix, as lmtp_user vmail,
    pid file RUN/vdeliver-lmtpd.pid); it runs in both modes and is stopped with SIGTERM,
    its exit statuses kept in Harness.lmtpd_exits (each must be 0);
  * a Dovecot IMAP server on 127.0.0.1 at a free high port (no SSL), whose users read
    vdeliver's Maildirs as vmail; QUOTA_USER has Dovecot's Maildir++ quota (maildir
    backend, the same limit) on its Maildir, with Dovecot's control files in it.
Everything started is stopped by Harness.stop(), which runs on every exit path
(context manager, atexit; conftest.py adds the pytest finalizer).

Never: touch the system's default Postfix or Dovecot (every Postfix command gets
`-c RUN/postfix/etc`, Dovecot gets its own config, base_dir and state_dir); listen on
or send to anything but 127.0.0.1 (default_transport and relay_transport are error:);
overwrite a vdeliver.cf that lacks MARKER; wait without a time limit; signal a process
it did not start (a stale run's daemon is killed only by the PID in that run's pid file,
and only if it is that run's `vdeliver --lmtp`).

Script use (as root, after scripts/setup-e2e and scripts/install):
  /usr/bin/python3 tests/e2e/harness.py demo    one message SMTP -> Postfix -> vdeliver
                                                -> Maildir -> IMAP, each step shown
  /usr/bin/python3 tests/e2e/harness.py check   list missing prerequisites (exit 1 if any)
  /usr/bin/python3 tests/e2e/harness.py start [pipe|lmtp]
                                                start, print the ports, run until Ctrl-C
With VDELIVER_E2E_KEEP=1 the stopped instance's RUN directory (logs, queue, Maildirs)
is kept for inspection, until the next run removes it. bench/e2e_bench.py drives the
same class with its own tables (Harness attributes) and without Dovecot.
Raises HarnessError when the instance cannot be set up; TimeoutError from bounded waits.
"""
from __future__ import annotations

import atexit
import email
import email.policy
import email.utils
import fcntl
import glob
import imaplib
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SNIPPET = os.path.join(REPO, "master.cf.snippet")
VDELIVER = "/opt/vdeliver/bin/vdeliver"   # what the snippet runs; snippet_command() reads it
# VDELIVER_BIN (the tests' variable, tests/support.py): another installed vdeliver, put in
# the snippet's argv= in its place (a helper's own prefix); unset, the snippet runs as written.
INSTALLED = os.environ.get("VDELIVER_BIN", VDELIVER)
VDELIVER_CF = "/etc/vdeliver/vdeliver.cf"
MARKER = "# written by the vdeliver e2e harness"
RUN_PREFIX = "/tmp/vdeliver-e2e-"
LOCK_FILE = "/tmp/vdeliver-e2e.lock"
VMAIL = "vmail"

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"
POSTCONF = "/usr/sbin/postconf"
DOVECOT = "/usr/sbin/dovecot"
DOVECOT_IMAP = "/usr/lib/dovecot/imap"
DOVEADM = "/usr/bin/doveadm"

HOSTED = "example.com"
MYHOSTNAME = "mx.e2e.test"       # the private Postfix's myhostname
CATCHALL = "catchall.example"
BOUNCES = "bounces.example"
SENDER = f"sender@{BOUNCES}"
UNKNOWN = f"ghost@{HOSTED}"      # known to Postfix's table, unknown to vdeliver's
PASSWORD = "e2e-password"        # every IMAP user's (loopback only, throw-away)
BURST_USERS = [f"burst{k}@{HOSTED}" for k in range(4)]
QUOTA_USER = f"quinn@{HOSTED}"   # has a Maildir++ quota, in vdeliver and in Dovecot
QUOTA = "1M,100C"                # vdeliver's value (virtual_mailbox_quota_maps) ...
DOVECOT_QUOTA_RULE = "*:storage=1M:messages=100"   # ... and Dovecot's, the same limit
# vdeliver's recalculation leaves .Trash out (vdeliver/quota.py); Dovecot counts every
# mailbox but those whose rule says ignore: this makes both count the same.
DOVECOT_QUOTA_RULE2 = "Trash:ignore"
NOCHROOT_RCPT = f"bob+nochroot@{HOSTED}"  # routed to the unchrooted lmtp copy
SIEVE_USER = f"sam@{HOSTED}"     # has Sieve scripts (test_e2e_sieve.py); nobody else's mail goes there
MBOX_SIEVE_USER = f"mona@{HOSTED}"  # an mbox with Sieve (test_e2e_sieve.py); her home:
MBOX_SIEVE_HOME = "homes/mona"      # virtual_home_maps, only while that test runs
# Sieve's outgoing mail (test_e2e_outgoing.py): two vacation users, one who redirects, its target
VACATION_USERS = (f"vera@{HOSTED}", f"walt@{HOSTED}")
REDIRECT_USER, REDIRECT_TARGET = f"rita@{HOSTED}", f"tess@{HOSTED}"
MODES = ("pipe", "lmtp")
# Does a delivery get X-Original-To? pipe: `-a ${original_recipient}`. lmtp: from RCPT TO's
# ORCPT=, which Postfix's lmtp client sends only to a server whose LHLO reply announces DSN,
# as vdeliver's does with lmtp_dsn = yes, the default (vdeliver/lmtp.py lhlo()).
WRITES_X_ORIGINAL_TO = {"pipe": True, "lmtp": True}
# Are lines longer than 998 bytes broken ("\n " inserted)? pipe: no, the message is passed
# as it is. lmtp: yes, by Postfix's lmtp client (lmtp_line_length_limit = 998, which the
# snippet's LMTP lines leave at its default), not by vdeliver.
FOLDS_LONG_LINES = {"pipe": False, "lmtp": True}
LMTPD_PID_FILE = "vdeliver-lmtpd.pid"    # in RUN
SYSTEM_QUEUE_DIRECTORY = "/var/spool/postfix"  # what the snippet's lmtp_listen names

# vdeliver's table: key -> Maildir relative to its virtual_mailbox_base.
VDELIVER_TABLE = {
    f"bob@{HOSTED}": f"{HOSTED}/bob/",
    f"alice@{HOSTED}": f"{HOSTED}/alice/",
    f"dora@{HOSTED}": f"{HOSTED}/dora/",
    f"ivy@{HOSTED}": f"{HOSTED}/ivy/",
    f"carol@{HOSTED}": f"{HOSTED}/carol/",
    f"carol+list@{HOSTED}": f"{HOSTED}/carol-list/",
    f"jörg@{HOSTED}": f"{HOSTED}/joerg/",
    f'"john doe"@{HOSTED}': f"{HOSTED}/john-doe/",   # a local part that needs quotes
    QUOTA_USER: f"{HOSTED}/quinn/",
    SIEVE_USER: f"{HOSTED}/sam/",
    MBOX_SIEVE_USER: f"{HOSTED}/mona",   # an mbox file
    **{u: f"{HOSTED}/{u.split('@')[0]}/" for u in (*VACATION_USERS, REDIRECT_USER, REDIRECT_TARGET)},
    f"info@{CATCHALL}": f"{CATCHALL}/info/",
    f"@{CATCHALL}": f"{CATCHALL}/catchall/",
    **{u: f"{HOSTED}/{u.split('@')[0]}/" for u in BURST_USERS},
}
# Postfix's virtual_mailbox_maps (smtpd's recipient check, virtual(8) for bounces.example).
POSTFIX_TABLE = {**VDELIVER_TABLE, UNKNOWN: f"{HOSTED}/ghost/", SENDER: f"{BOUNCES}/sender/"}
# Postfix's virtual_alias_maps: cleanup rewrites these before vdeliver sees them.
ALIASES = {f"postmaster@{HOSTED}": f"bob@{HOSTED}", f"team@{HOSTED}": f"bob@{HOSTED}, alice@{HOSTED}"}
# Postfix's transport_maps ({socket} becomes the LMTP socket relative to the queue directory).
TRANSPORTS = {BOUNCES: "virtual:", NOCHROOT_RCPT: "lmtp-nochroot:unix:{socket}"}
# vdeliver's virtual_mailbox_quota_maps.
QUOTAS = {QUOTA_USER: QUOTA}

POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000    0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
# Debian's stock lmtp line (chrooted into the queue directory), and an unchrooted copy.
lmtp      unix  -       -       y       -       -       lmtp
lmtp-nochroot unix -    -       n       -       -       lmtp
  -o syslog_name=postfix/lmtp-nochroot
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class HarnessError(Exception):
    """The private mail system could not be set up or driven."""


# --------------------------------------------------------------------------- prerequisites

def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the harness; empty when all is there."""
    missing = []
    if os.geteuid() != 0:
        missing.append("not running as root (the harness starts Postfix and Dovecot)")
    try:
        command = snippet_command()
    except (OSError, HarnessError) as err:
        missing.append(f"cannot use {SNIPPET}: {err}")
        command = VDELIVER
    for path, fix in ((POSTFIX, "scripts/setup-e2e (postfix)"),
                      (DOVECOT, "scripts/setup-e2e (dovecot-core)"),
                      (DOVECOT_IMAP, "scripts/setup-e2e (dovecot-imapd)"),
                      (command, "scripts/install (master.cf.snippet runs it)")):
        if not os.access(path, os.X_OK):
            missing.append(f"{path} is missing: run {fix}")
    for user in ("postfix", "dovecot", "dovenull", VMAIL):
        if not user_exists(user):
            missing.append(f"system user {user} is missing: run scripts/setup-e2e and scripts/install")
    return missing


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# --------------------------------------------------------------------------- small helpers

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it from the high range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll predicate() until it returns something true; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def lmtp_greets(path: str) -> bool:
    """Something on the unix socket `path` says 220 (then QUIT)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            greeting = sock.recv(512)
            sock.sendall(b"QUIT\r\n")
            return greeting.startswith(b"220 ")
    except OSError:
        return False


def run(cmd: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; its output goes through a file, not a pipe, since daemons it
    starts (dovecot) keep their inherited stdout open and a pipe would never end."""
    with tempfile.TemporaryFile() as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        out.seek(0)
        result.stdout = out.read().decode("utf-8", "replace")
    if check and result.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} exited {result.returncode}: {result.stdout.strip()[-2000:]}")
    return result


def write_file(path: str, text: str, mode: int = 0o644, owner: str | None = None) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)
    if owner:
        shutil.chown(path, owner, owner)
    return path


def make_dir(path: str, mode: int = 0o755, owner: str | None = None) -> str:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        shutil.chown(path, owner, owner)
    return path


def table_text(table: dict[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in table.items())


# --------------------------------------------------------------------------- messages

def make_message(subject: str = "e2e test", body: bytes = b"Hello.\n", sender: str = SENDER,
                 to: str = f"bob@{HOSTED}", headers: bytes = b"") -> tuple[bytes, str]:
    """A complete message with LF line ends and a unique Message-ID; returns (bytes, id)."""
    msgid = f"<{uuid.uuid4().hex}@e2e.test>"
    head = (f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
            f"Date: {email.utils.formatdate(localtime=True)}\nMessage-ID: {msgid}\n").encode()
    return head + headers + b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" \
        b"Content-Transfer-Encoding: 8bit\n\n" + body, msgid


def header_block(data: bytes) -> list[bytes]:
    """The header lines (unfolded) of a message with LF line ends."""
    end = data.find(b"\n\n")
    lines: list[bytes] = []
    for line in data[: end if end >= 0 else len(data)].split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\n" + line
        else:
            lines.append(line)
    return lines


def header_values(data: bytes, name: str) -> list[bytes]:
    """All values of header `name` in the header block, in order."""
    want = name.lower().encode()
    out = []
    for line in header_block(data):
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == want:
            out.append(value.strip())
    return out


def delivery_status(dsn_message: email.message.Message) -> list[dict[str, str]]:
    """The per-recipient fields of a bounce's message/delivery-status part (RFC 3464)."""
    out = []
    for part in dsn_message.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()
            for block in blocks[1:]:
                out.append({k.lower(): str(v) for k, v in block.items()})
    return out


# --------------------------------------------------------------------------- master.cf.snippet

def read_snippet(path: str = SNIPPET) -> tuple[list[str], list[str]]:
    """(main.cf lines, master.cf lines) of the snippet: its uncommented lines, unchanged."""
    sections: dict[str, list[str]] = {"main": [], "master": []}
    current = None
    with open(path, encoding="utf-8") as fh:
        for line in fh.read().splitlines():
            marker = re.fullmatch(r"#\s*---\s*(main|master)\.cf\s*---\s*", line.strip())
            if marker:
                current = marker.group(1)
            elif current and line.strip() and not line.lstrip().startswith("#"):
                sections[current].append(line)
    main, master = sections["main"], sections["master"]
    if INSTALLED != VDELIVER:
        master = [line.replace(f"argv={VDELIVER} ", f"argv={INSTALLED} ") for line in master]
    if not main or not master or master[0][:1].isspace():
        raise HarnessError(f"{path}: expected uncommented lines under '# --- main.cf ---' and "
                           "a service entry under '# --- master.cf ---'")
    return main, master


def snippet_command(path: str = SNIPPET) -> str:
    """The command the snippet's pipe entry runs (the first word after argv=)."""
    match = re.search(r"\bargv=(\S+)", " ".join(read_snippet(path)[1]))
    if not match:
        raise HarnessError(f"{path}: no argv= in the master.cf entry")
    return match.group(1)


def read_snippet_lmtp(path: str = SNIPPET) -> tuple[dict[str, str], list[str]]:
    """The commented "LMTP instead of pipe" part: ({vdeliver.cf name: value}, main.cf lines).

    Its `#   name = value` lines: lmtp_* go to vdeliver.cf, the others to main.cf
    (in place of the pipe lines). The socket must be the one the transport names:
    lmtp_listen = unix:QUEUE_DIRECTORY/X and virtual_transport = lmtp:unix:X.
    """
    settings: dict[str, str] = {}
    main: list[str] = []
    inside = False
    with open(path, encoding="utf-8") as fh:
        for line in fh.read().splitlines():
            if re.fullmatch(r"#\s*---\s*LMTP instead of pipe\b.*", line.strip()):
                inside = True
                continue
            match = re.fullmatch(r"#\s+(\w+)\s*=\s*(\S.*?)\s*", line) if inside else None
            if not match:
                continue
            if match.group(1).startswith("lmtp_"):
                settings[match.group(1)] = match.group(2)
            else:
                main.append(f"{match.group(1)} = {match.group(2)}")
    transport = next((line.split("=", 1)[1].strip() for line in main
                      if line.startswith("virtual_transport ")), "")
    listen = settings.get("lmtp_listen", "")
    if not transport.startswith("lmtp:unix:") or not listen.startswith(f"unix:{SYSTEM_QUEUE_DIRECTORY}/"):
        raise HarnessError(f"{path}: expected '#   virtual_transport = lmtp:unix:...' and '#   lmtp_listen = "
                           f"unix:{SYSTEM_QUEUE_DIRECTORY}/...' under '# --- LMTP instead of pipe'")
    if listen[len(f"unix:{SYSTEM_QUEUE_DIRECTORY}/"):] != transport[len("lmtp:unix:"):]:
        raise HarnessError(f"{path}: lmtp_listen = {listen} is not the socket of "
                           f"virtual_transport = {transport}")
    return settings, main


def lmtp_socket_name(path: str = SNIPPET) -> str:
    """The LMTP socket relative to the queue directory, as the snippet names it (private/...)."""
    return read_snippet_lmtp(path)[0]["lmtp_listen"][len(f"unix:{SYSTEM_QUEUE_DIRECTORY}/"):]


# --------------------------------------------------------------------------- the harness

class Harness:
    """One private mail system; use as a context manager, or start() and stop()."""

    def __init__(self, keep: bool = False, mode: str = "pipe", dovecot: bool = True,
                 metrics: bool = False):
        if mode not in MODES:
            raise HarnessError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        self.keep = keep or bool(os.environ.get("VDELIVER_E2E_KEEP"))
        self.mode = mode                                   # pipe | lmtp: how example.com reaches vdeliver
        self.with_dovecot = dovecot
        self.root = f"{RUN_PREFIX}{os.getpid()}"
        self.etc = f"{self.root}/postfix/etc"
        self.spool = f"{self.root}/postfix/spool"
        self.maillog = f"{self.root}/maillog"
        self.mail_base = f"{self.root}/vmail"              # vdeliver's virtual_mailbox_base
        self.postfix_mail = f"{self.root}/postfix/mail"     # virtual(8)'s, for bounces.example
        self.table = f"{self.root}/vdeliver/mailboxes"
        self.quota_table = f"{self.root}/vdeliver/quotas"
        self.dovecot_conf = f"{self.root}/dovecot/dovecot.conf"
        self.dovecot_log = f"{self.root}/dovecot/dovecot.log"
        self.lmtp_socket_name = lmtp_socket_name()         # private/vdeliver-lmtp
        self.lmtp_socket = f"{self.spool}/{self.lmtp_socket_name}"
        self.lmtpd_pid_file = f"{self.root}/{LMTPD_PID_FILE}"
        self.lmtpd_output = f"{self.root}/lmtpd.out"        # the daemon's stdout and stderr
        # The tables, as {key: value}; a caller (bench/e2e_bench.py) may change them before start().
        self.vdeliver_table = dict(VDELIVER_TABLE)
        self.postfix_table = dict(POSTFIX_TABLE)
        self.transports = {key: value.format(socket=self.lmtp_socket_name)
                           for key, value in TRANSPORTS.items()}
        self.quotas = dict(QUOTAS)
        self.extra_domains: list[str] = []                  # more virtual_mailbox_domains
        self.extra_main_cf = ""                             # more main.cf lines (before the snippet's)
        self.extra_transport_maps = ""                      # tables before transport (tests/cluster)
        self.extra_vdeliver_cf = ""                         # more vdeliver.cf lines (at the end)
        self.smtp_port = self.imap_port = 0
        self.metrics = metrics                              # the daemon's lmtp_metrics_listen, on a free port
        self.metrics_port = 0
        self.lock_fd: int | None = None
        self.started: list[str] = []
        self.wrote_vdeliver_cf = False
        self.lmtpd: subprocess.Popen | None = None
        self.lmtpd_exits: list[int | None] = []             # one per stop: 0, else a failure

    def __enter__(self) -> "Harness":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ start / stop

    def start(self) -> None:
        missing = missing_prerequisites()
        if missing:
            raise HarnessError("; ".join(missing))
        self.take_lock()
        atexit.register(self.stop)
        clean_stale_runs()
        self.smtp_port, self.imap_port = free_port(), free_port()
        self.metrics_port = free_port() if self.metrics else 0
        self.write_files()
        self.start_postfix()      # first: it makes the queue directory's private/
        self.start_lmtpd()
        if self.with_dovecot:
            self.start_dovecot()

    def stop(self) -> None:
        """Stop what was started, remove what was written; safe to call twice."""
        if "dovecot" in self.started:
            stop_dovecot(self.dovecot_conf)
        if "postfix" in self.started:
            stop_postfix(self.etc, self.spool)
        if "lmtpd" in self.started:
            self.stop_lmtpd()
        self.started.clear()
        if self.wrote_vdeliver_cf:
            remove_vdeliver_cf(self.root)
            self.wrote_vdeliver_cf = False
        if not self.keep and os.path.isdir(self.root):
            restore_modes(self.mail_base)
            shutil.rmtree(self.root, ignore_errors=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def take_lock(self) -> None:
        """One harness per machine: they share /etc/vdeliver/vdeliver.cf."""
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HarnessError(f"another e2e harness holds {LOCK_FILE}") from None
        self.lock_fd = fd

    def write_files(self) -> None:
        make_dir(self.root)
        write_file(f"{self.root}/.vdeliver-e2e", MARKER + "\n")
        for path in (self.etc, self.spool, f"{self.root}/vdeliver", f"{self.root}/dovecot"):
            make_dir(path)
        make_dir(f"{self.root}/postfix/data", 0o700, "postfix")
        make_dir(self.mail_base, 0o750, VMAIL)
        make_dir(self.postfix_mail, 0o750, VMAIL)
        write_file(self.maillog, "", 0o644, VMAIL)  # postlogd (root) and vdeliver (vmail) append
        write_file(self.table, table_text(self.vdeliver_table))
        write_file(self.quota_table, table_text(self.quotas))
        write_postfix_config(self)
        write_vdeliver_cf(self)
        self.wrote_vdeliver_cf = True
        if self.with_dovecot:
            write_dovecot_config(self)

    def start_postfix(self) -> None:
        run([POSTFIX, "-c", self.etc, "check"])
        if "postfix" not in self.started:
            self.started.append("postfix")
        run(private_default_config(self) + [POSTFIX, "-c", self.etc, "start"])
        wait_until(lambda: port_open(self.smtp_port), 20, f"Postfix smtpd on 127.0.0.1:{self.smtp_port}")

    def use_mode(self, mode: str) -> None:
        """Route example.com and catchall.example through pipe(8) or LMTP: main.cf, restart."""
        if mode not in MODES:
            raise HarnessError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode == self.mode:
            return
        self.mode = mode
        write_main_cf(self)
        stop_postfix(self.etc, self.spool)
        self.start_postfix()

    # ------------------------------------------------------------ the LMTP daemon

    def start_lmtpd(self) -> None:
        """`vdeliver --lmtp --foreground -c VDELIVER_CF`; wait until its socket greets."""
        if self.lmtpd is not None and self.lmtpd.poll() is None:
            return
        if "lmtpd" not in self.started:
            self.started.append("lmtpd")
        with open(self.lmtpd_output, "ab") as out:
            # Its own session: a terminal's Ctrl-C is for pytest; the harness sends SIGTERM.
            self.lmtpd = subprocess.Popen(private_default_config(self)
                                          + [snippet_command(), "--lmtp", "--foreground", "-c", VDELIVER_CF],
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          cwd="/", start_new_session=True, env={"PATH": "/usr/bin:/bin"})
        proc = self.lmtpd
        try:
            wait_until(lambda: proc.poll() is not None or lmtp_greets(self.lmtp_socket), 20,
                       f"the LMTP daemon on {self.lmtp_socket}")
        except TimeoutError:
            self.stop_lmtpd()
            raise
        if proc.poll() is not None:
            raise HarnessError(f"the LMTP daemon exited {proc.returncode}: {self.lmtpd_text()[-2000:]}")

    def stop_lmtpd(self, timeout: float = 30) -> int | None:
        """SIGTERM, wait (bounded); return and record the exit status (None: it had to be killed)."""
        proc, self.lmtpd = self.lmtpd, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            status = None
        self.lmtpd_exits.append(status)
        return status

    def lmtpd_pid(self) -> int | None:
        return self.lmtpd.pid if self.lmtpd is not None and self.lmtpd.poll() is None else None

    def reload_lmtpd(self) -> None:
        """SIGHUP: the daemon re-reads vdeliver.cf and reopens its tables."""
        pid = self.lmtpd_pid()
        if pid is None:
            raise HarnessError("the LMTP daemon is not running")
        os.kill(pid, signal.SIGHUP)

    def lmtpd_text(self) -> str:
        try:
            with open(self.lmtpd_output, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def start_dovecot(self) -> None:
        self.started.append("dovecot")
        run([DOVECOT, "-c", self.dovecot_conf])
        wait_until(lambda: port_open(self.imap_port), 20, f"Dovecot IMAP on 127.0.0.1:{self.imap_port}")

    # ------------------------------------------------------------ SMTP in

    def send(self, data: bytes, rcpts: list[str] | str = f"bob@{HOSTED}", sender: str = SENDER,
             mail_options: tuple[str, ...] = (), timeout: float = 30,
             rcpt_options: tuple[str, ...] = ()) -> str:
        """Send one message (LF line ends) over SMTP; return the queue id from the 250 reply."""
        return self.send_reply(data, rcpts, sender, mail_options, timeout, rcpt_options)[1]

    def send_reply(self, data: bytes, rcpts: list[str] | str = f"bob@{HOSTED}", sender: str = SENDER,
                   mail_options: tuple[str, ...] = (), timeout: float = 30,
                   rcpt_options: tuple[str, ...] = ()) -> tuple[str, str]:
        """Like send(); returns (the whole final SMTP reply, queue id)."""
        rcpts = [rcpts] if isinstance(rcpts, str) else rcpts
        with smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="client.e2e.test",
                          timeout=timeout) as smtp:
            return submit(smtp, data, rcpts, sender, mail_options, rcpt_options)

    # ------------------------------------------------------------ queue and log

    def queue(self) -> list[dict]:
        """`postqueue -j`: one dict per queued message."""
        out = run([POSTQUEUE, "-c", self.etc, "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def flush(self) -> None:
        run([POSTQUEUE, "-c", self.etc, "-f"])

    def delete_queue(self) -> None:
        run([POSTSUPER, "-c", self.etc, "-d", "ALL"], check=False)

    def wait_queue_empty(self, timeout: float = 60) -> None:
        wait_until(lambda: not self.queue(), timeout, "an empty Postfix queue", 0.2)

    def settle(self, timeout: float = 30) -> list[dict]:
        """Wait until nothing is in flight; delete and return what is left (deferred mail)."""
        def quiet():
            queued = self.queue()
            return (queued,) if all(m["queue_name"] in ("deferred", "hold") for m in queued) else None
        left = wait_until(quiet, timeout, "Postfix to finish its active deliveries", 0.2)[0]
        if left:
            self.delete_queue()
        return left

    def scrape(self) -> dict[str, float]:
        """The LMTP daemon's metrics (Harness(metrics=True)): {'name{labels}': value}."""
        with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200 "):
            raise HarnessError(f"metrics scrape: {head[:200]!r}")
        samples = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, number = line.rpartition(" ")
                samples[name] = float(number)
        return samples

    def log_text(self) -> str:
        with open(self.maillog, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if re.search(pattern, line)]

    def deliveries(self, queue_id: str) -> list[dict[str, str]]:
        """Postfix's delivery-attempt log lines for one queue id, parsed."""
        out = []
        for line in self.log_lines(rf": {queue_id}: to=<"):
            match = DELIVERY_LINE.search(line)
            if match:
                out.append({**match.groupdict(), "line": line})
        return out

    def wait_status(self, queue_id: str, status: str, count: int = 1,
                    timeout: float = 30) -> list[dict[str, str]]:
        """Wait until `count` attempts of queue_id were logged with status sent/bounced/deferred."""
        def done():
            hits = [d for d in self.deliveries(queue_id) if d["status"] == status]
            return hits if len(hits) >= count else None
        return wait_until(done, timeout, f"{count} '{status}' log line(s) for {queue_id} in {self.maillog}")

    def vdeliver_lines(self, recipient: str) -> list[str]:
        """vdeliver's own log lines (maillog_file in vdeliver.cf) for one recipient.

        The snippet passes -i ${queue_id}, so in pipe mode each starts
        `vdeliver/pipe[PID]: QUEUEID: to=<`; the LMTP daemon knows no queue id:
        `vdeliver/lmtp[PID]: to=<`.
        """
        return self.log_lines(rf"vdeliver/(?:pipe|lmtp)\[\d+\]: (?:[0-9A-Za-z]+: )?to=<{re.escape(recipient)}>")

    @property
    def agent(self) -> str:
        """The Postfix delivery agent that hands hosted mail to vdeliver in this mode."""
        return "pipe" if self.mode == "pipe" else "lmtp"

    @property
    def relay(self) -> str:
        """The relay= of Postfix's log lines for a delivery through vdeliver in this mode."""
        if self.mode == "pipe":
            return "vdeliver"
        return f"{MYHOSTNAME}[{self.lmtp_socket_name}]"   # lmtp(8) names a unix socket so

    # ------------------------------------------------------------ Maildirs

    def maildir(self, key: str) -> str:
        """The Maildir vdeliver should use for a table key, as an absolute path."""
        return os.path.join(self.mail_base, VDELIVER_TABLE[key])

    def messages(self, maildir: str) -> dict[str, bytes]:
        """{'new/NAME' or 'cur/NAME': bytes} of a Maildir (empty if it does not exist)."""
        out = {}
        for sub in ("new", "cur"):
            folder = os.path.join(maildir, sub)
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
                with open(os.path.join(folder, name), "rb") as fh:
                    out[f"{sub}/{name}"] = fh.read()
        return out

    def find(self, maildir: str, msgid: str) -> dict[str, bytes]:
        """The files of a Maildir whose Message-ID is msgid."""
        return {name: data for name, data in self.messages(maildir).items()
                if msgid.encode() in header_values(data, "Message-ID")}

    def wait_delivered(self, maildir: str, msgid: str, timeout: float = 30) -> tuple[str, bytes]:
        found = wait_until(lambda: self.find(maildir, msgid), timeout, f"{msgid} in {maildir}")
        return next(iter(found.items()))

    def bounces(self) -> list[bytes]:
        return list(self.messages(os.path.join(self.postfix_mail, BOUNCES, "sender")).values())

    def find_bounce(self, msgid: str) -> list[bytes]:
        return [data for data in self.bounces() if msgid.encode() in data]

    def wait_bounce(self, msgid: str, timeout: float = 30) -> email.message.Message:
        data = wait_until(lambda: self.find_bounce(msgid), timeout, f"a bounce of {msgid} to {SENDER}")[0]
        return email.message_from_bytes(data, policy=email.policy.compat32)

    # ------------------------------------------------------------ IMAP

    def imap(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=15)
        conn.login(user, PASSWORD)
        return conn

    def doveadm(self, *args: str) -> str:
        """`doveadm -c CONF ARGS...` against the private Dovecot; its output."""
        return run([DOVEADM, "-c", self.dovecot_conf, *args], timeout=30).stdout

    def dovecot_log_text(self) -> str:
        try:
            with open(self.dovecot_log, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""


DELIVERY_LINE = re.compile(
    r"(?P<tag>postfix(?:/[\w-]+)*)/(?P<agent>[\w-]+)\[(?P<pid>\d+)\]: (?P<queue_id>[0-9A-F]+): "
    r"to=<(?P<to>[^>]*)>, "
    r"(?:orig_to=<(?P<orig_to>[^>]*)>, )?relay=(?P<relay>[^,]+), .*?dsn=(?P<dsn>[\d.]+), "
    r"status=(?P<status>\w+) \((?P<text>.*)\)$")


def submit(smtp: smtplib.SMTP, data: bytes, rcpts: list[str], sender: str,
           mail_options: tuple[str, ...] | list[str],
           rcpt_options: tuple[str, ...] | list[str] = ()) -> tuple[str, str]:
    """One MAIL/RCPT/DATA transaction on an open session; (final reply, queue id)."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender, list(mail_options))
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    for rcpt in rcpts:
        code, reply = smtp.rcpt(rcpt, list(rcpt_options))
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
    code, reply = smtp.data(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    text = reply.decode("utf-8", "replace")
    match = re.search(r"queued as ([0-9A-Za-z]+)", text)
    if code != 250 or not match:
        raise smtplib.SMTPDataError(code, reply)
    return f"{code} {text}", match.group(1)


# --------------------------------------------------------------------------- Postfix

def write_postfix_config(h: Harness) -> None:
    """The tables, main.cf and master.cf of the private instance (the snippet appended as written)."""
    _, snippet_master = read_snippet()
    write_file(f"{h.etc}/vmailbox", table_text(h.postfix_table))
    write_file(f"{h.etc}/transport", table_text(h.transports))
    write_file(f"{h.etc}/virtual_alias", table_text(ALIASES))
    write_main_cf(h)
    master = (f"# private master.cf of the vdeliver e2e harness: smtpd on 127.0.0.1 only; "
              f"only lmtp chrooted\n"
              f"127.0.0.1:{h.smtp_port} inet n - n - - smtpd\n{POSTFIX_SERVICES}"
              f"# --- from {SNIPPET}, as written ---\n")
    write_file(f"{h.etc}/master.cf", master + "\n".join(snippet_master) + "\n")


def snippet_main_lines(mode: str) -> list[str]:
    """What main.cf gets from the snippet: its pipe lines, or its LMTP lines instead."""
    return read_snippet()[0] if mode == "pipe" else read_snippet_lmtp()[1]


def write_main_cf(h: Harness) -> None:
    vmail = pwd.getpwnam(VMAIL)
    part = "as written" if h.mode == "pipe" else "its commented 'LMTP instead of pipe' lines"
    main = f"""\
# private Postfix instance of the vdeliver e2e harness ({h.root}), mode {h.mode}
compatibility_level = 3.6
queue_directory = {h.spool}
data_directory = {h.root}/postfix/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {MYHOSTNAME}
mydomain = e2e.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_host_lookup = native
lmtp_host_lookup = native
# Nothing leaves this host: there is no smtp service, and these say why.
default_transport = error:5.3.0 the vdeliver e2e harness delivers nothing off this host
relay_transport = $default_transport
notify_classes =
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = yes
recipient_delimiter = +
maillog_file_prefixes = {h.root}
maillog_file = {h.maillog}
virtual_mailbox_domains = {HOSTED}, {CATCHALL}, {BOUNCES}{"".join(", " + d for d in h.extra_domains)}
# smtpd's recipient check; its values matter only to virtual(8) ({BOUNCES}).
# It knows {UNKNOWN}, which vdeliver's own table does not.
virtual_mailbox_maps = texthash:{h.etc}/vmailbox
virtual_mailbox_base = {h.postfix_mail}
virtual_uid_maps = static:{vmail.pw_uid}
virtual_gid_maps = static:{vmail.pw_gid}
transport_maps = {h.extra_transport_maps}texthash:{h.etc}/transport
virtual_alias_maps = texthash:{h.etc}/virtual_alias
{h.extra_main_cf}
# --- from {SNIPPET}, {part} ---
"""
    write_file(f"{h.etc}/main.cf", main + "\n".join(snippet_main_lines(h.mode)) + "\n")


def private_default_config(h: Harness) -> list[str]:
    """The command prefix that runs a process (the Postfix master, the LMTP daemon) with
    a private /etc/postfix of the harness's own (a mount namespace of its own: nothing
    of the machine's /etc/postfix is read, and the machine sees no change), whose main.cf
    lists this instance in alternate_config_directories. Postfix's set-gid postdrop
    accepts `sendmail -C RUN/postfix/etc` from an unprivileged user (vdeliver's
    sendmail_path, as vmail) only for a directory listed there. [] where mount
    namespaces are not available (then that sendmail fails, and says why)."""
    default = f"{h.root}/postfix/default-etc"
    if not (os.path.isdir("/etc/postfix") and shutil.which("unshare")):
        return []
    if not os.path.isdir(default):
        # `postfix start` reads the package's meta files (postfix-files, its post-install
        # script) from there as before; main.cf is the harness's own.
        shutil.copytree("/etc/postfix", default, symlinks=True,
                        ignore=shutil.ignore_patterns("main.cf", "master.cf"))
        write_file(f"{default}/main.cf", f"# {MARKER}\ncompatibility_level = 3.6\n"
                                         f"alternate_config_directories = {h.etc}\n")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        return []
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/postfix && exec "$@"', default]


def postfix_master_pid(spool: str) -> int | None:
    return live_pid(f"{spool}/pid/master.pid")


def live_pid(pidfile: str) -> int | None:
    """The PID in pidfile if that process is alive (a zombie counts as gone: it has exited,
    and some container inits are slow to reap the daemons that PID 1 inherits)."""
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state in ("Z", "X") else pid


def stop_postfix(etc: str, spool: str) -> None:
    """`postfix -c etc stop`, then wait (bounded) for the master to go; SIGKILL as a last resort."""
    pid = postfix_master_pid(spool)
    if pid is None:
        return
    run([POSTFIX, "-c", etc, "stop"], check=False)
    try:
        wait_until(lambda: postfix_master_pid(spool) is None, 20, "the Postfix master to exit", 0.1)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- vdeliver.cf

def write_vdeliver_cf(h: Harness) -> None:
    """/etc/vdeliver/vdeliver.cf for this run; refuses to replace a file not written here."""
    if os.path.exists(VDELIVER_CF) and not written_by_harness(VDELIVER_CF):
        raise HarnessError(f"{VDELIVER_CF} exists and was not written by the e2e harness "
                           f"(no '{MARKER}' line): move it away to run the e2e tests")
    make_dir(os.path.dirname(VDELIVER_CF))
    lmtp, _ = read_snippet_lmtp()
    lmtp["lmtp_listen"] = f"unix:{h.lmtp_socket}"   # the snippet's, in the private queue_directory
    lmtp["lmtp_pid_file"] = h.lmtpd_pid_file
    lmtp["lmtp_user"] = VMAIL
    if h.metrics_port:
        lmtp["lmtp_metrics_listen"] = f"inet:127.0.0.1:{h.metrics_port}"
    quota = f"virtual_mailbox_quota_maps = texthash:{h.quota_table}\n" if h.quotas else ""
    write_file(VDELIVER_CF, f"""{MARKER} ({h.root}); removed when the harness stops
virtual_mailbox_base = {h.mail_base}
virtual_mailbox_maps = texthash:{h.table}
recipient_delimiter = +
maillog_file = {h.maillog}
{quota}# the LMTP daemon: master.cf.snippet's lines, the socket in the private queue directory
{"".join(f"{name} = {value}" + chr(10) for name, value in lmtp.items())}{h.extra_vdeliver_cf}""")


def written_by_harness(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().startswith(MARKER)
    except OSError:
        return False


def remove_vdeliver_cf(root: str) -> None:
    """Remove vdeliver.cf only if it is still the one this run wrote."""
    try:
        with open(VDELIVER_CF, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return
    if first.startswith(MARKER) and f"({root})" in first:
        os.unlink(VDELIVER_CF)


# --------------------------------------------------------------------------- Dovecot

def write_dovecot_config(h: Harness) -> None:
    """IMAP on 127.0.0.1 only; users ivy@, bob@... read vdeliver's Maildirs as vmail.

    Dovecot's index and control files go to its own state directory, so that it adds
    nothing to the Maildirs but its new/ -> cur/ renames. Except for QUOTA_USER: the
    maildir quota backend keeps maildirsize in the control directory, so that user's
    control directory is the Maildir itself (where vdeliver writes maildirsize), and
    its userdb entry gives Dovecot the same limit (DOVECOT_QUOTA_RULE) and leaves Trash out
    of the count as vdeliver does (DOVECOT_QUOTA_RULE2). And for SIEVE_USER: Dovecot reads
    a folder's dovecot-keywords from the control directory, vdeliver writes it into the
    folder, so that user's control directory is the Maildir too.
    """
    droot = f"{h.root}/dovecot"
    make_dir(f"{droot}/run")
    make_dir(f"{droot}/state")
    make_dir(f"{droot}/mailstate", 0o750, VMAIL)
    write_file(h.dovecot_log, "", 0o600)
    users = []
    for key in h.vdeliver_table:
        if not (key.endswith(f"@{HOSTED}") and key.isascii() and "+" not in key):
            continue
        extra = ""
        if key in h.quotas or key == SIEVE_USER:
            # The control directory is the Maildir: maildirsize (quota) and dovecot-keywords
            # (Sieve's imap4flags keywords) are where vdeliver writes them.
            maildir = os.path.join(h.mail_base, h.vdeliver_table[key].rstrip("/"))
            index = f"{droot}/mailstate/{key.split('@')[1]}/{key.split('@')[0]}"
            extra = f"userdb_mail=maildir:{maildir}:INDEX={index}"
        if key == MBOX_SIEVE_USER:
            # Dovecot's mbox layout: folders below ~/mail, INBOX the file vdeliver resolves.
            index = f"{droot}/mailstate/{key.split('@')[1]}/{key.split('@')[0]}"
            extra = (f"userdb_mail=mbox:{h.mail_base}/{MBOX_SIEVE_HOME}/mail"
                     f":INBOX={h.mail_base}/{h.vdeliver_table[key]}:INDEX={index}")
        if key in h.quotas:
            extra += (f" userdb_quota_rule={DOVECOT_QUOTA_RULE} "
                      f"userdb_quota_rule2={DOVECOT_QUOTA_RULE2}")
        users.append(f"{key}:{{PLAIN}}{PASSWORD}::::::{extra}\n")
    write_file(f"{droot}/users", "".join(users), 0o644)
    vmail = pwd.getpwnam(VMAIL)
    write_file(h.dovecot_conf, f"""\
# private Dovecot of the vdeliver e2e harness ({h.root})
instance_name = vdeliver-e2e-{os.getpid()}
base_dir = {droot}/run
state_dir = {droot}/state
log_path = {h.dovecot_log}
info_log_path = {h.dovecot_log}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {vmail.pw_uid}
last_valid_uid = {vmail.pw_uid}
mail_location = maildir:{h.mail_base}/%d/%n:INDEX={droot}/mailstate/%d/%n:CONTROL={droot}/mailstate/%d/%n
# vdeliver's default Sieve home is the Maildir, where ManageSieve's ~/.dovecot.sieve is a
# symlink: without a stat Dovecot takes a symlink for a folder (LIST shows "dovecot.sieve").
maildir_stat_dirs = yes
# Maildir++ quota, the file vdeliver writes; users without a quota_rule have no limit
# (and Dovecot then writes no maildirsize).
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {droot}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {droot}/users
  default_fields = uid={vmail.pw_uid} gid={vmail.pw_gid} home={droot}/mailstate/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {h.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")


def dovecot_master_pid(conf: str) -> int | None:
    return live_pid(os.path.join(os.path.dirname(conf), "run", "master.pid"))


def stop_dovecot(conf: str) -> None:
    """`doveadm stop` for this config, then wait (bounded); SIGKILL by PID as a last resort."""
    pid = dovecot_master_pid(conf)
    if pid is None:
        return
    run([DOVEADM, "-c", conf, "stop"], check=False)
    try:
        wait_until(lambda: dovecot_master_pid(conf) is None, 20, "the Dovecot master to exit", 0.1)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- leftovers

def clean_stale_runs() -> None:
    """Stop and remove earlier runs' instances (killed harnesses); called with the lock held."""
    for root in glob.glob(f"{RUN_PREFIX}*"):
        if not os.path.isfile(f"{root}/.vdeliver-e2e") or root == f"{RUN_PREFIX}{os.getpid()}":
            continue
        stop_dovecot(f"{root}/dovecot/dovecot.conf")
        stop_postfix(f"{root}/postfix/etc", f"{root}/postfix/spool")
        stop_stale_lmtpd(root)
        remove_vdeliver_cf(root)
        restore_modes(f"{root}/vmail")
        shutil.rmtree(root, ignore_errors=True)


def stop_stale_lmtpd(root: str) -> None:
    """SIGTERM (then SIGKILL) the daemon of a killed run: the PID in its pid file, if that
    process is a `vdeliver --lmtp` still holding that run's pid file."""
    pid_file = f"{root}/{LMTPD_PID_FILE}"
    pid = live_pid(pid_file)
    if pid is None:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        holds = any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == pid_file
                    for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return
    if b"--lmtp" not in argv or not holds:
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: live_pid(pid_file) != pid, 20, f"the stale LMTP daemon {pid} to exit", 0.1)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def restore_modes(top: str) -> None:
    """Undo a test's chmod 0 so the tree can be removed (root ignores modes, but be sure)."""
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


# --------------------------------------------------------------------------- demo

def demo() -> int:
    """One message SMTP -> Postfix -> vdeliver -> Maildir -> IMAP, each step printed."""
    rcpt = f"bob@{HOSTED}"
    with Harness() as h:
        step(f"private Postfix {h.etc} (smtpd 127.0.0.1:{h.smtp_port}), Dovecot {h.dovecot_conf} "
             f"(IMAP 127.0.0.1:{h.imap_port}), vdeliver config {VDELIVER_CF}")
        data, msgid = make_message("vdeliver e2e demo", "Grüße from the e2e demo.\n".encode(), to=rcpt)
        reply, queue_id = h.send_reply(data, rcpt)
        step(f"1. SMTP {SENDER} -> {rcpt}: {reply}")
        sent = h.wait_status(queue_id, "sent")
        step(f"2. Postfix -> vdeliver, {h.maillog}:\n   {sent[0]['line']}")
        for line in h.vdeliver_lines(rcpt):
            print(f"   {line}")
        name, delivered = h.wait_delivered(h.maildir(rcpt), msgid)
        step(f"3. Maildir file {h.maildir(rcpt)}{name} ({len(delivered)} bytes), its headers:")
        for line in header_block(delivered):
            print("   " + line.decode("utf-8", "replace").replace("\n", "\n   "))
        step(f"4. IMAP as {rcpt}:")
        conn = h.imap(rcpt)
        typ, count = conn.select("INBOX")
        print(f"   SELECT INBOX: {typ} {count[0].decode()} message(s)")
        typ, fetched = conn.fetch(count[0].decode(), "(RFC822.SIZE BODY.PEEK[])")
        print(f"   FETCH {count[0].decode()} (RFC822.SIZE BODY.PEEK[]): {typ} {fetched[0][0].decode()}")
        same = fetched[0][1] == delivered.replace(b"\n", b"\r\n")
        print(f"   BODY[] equals the Maildir file (LF -> CRLF): {same}")
        conn.logout()
        step("stopping Postfix and Dovecot")
    return 0 if same else 1


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def serve(mode: str = "pipe") -> int:
    """Start and wait for Ctrl-C / SIGTERM, for poking at the instance by hand."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Harness(mode=mode) as h:
        print(f"smtp 127.0.0.1:{h.smtp_port}  imap 127.0.0.1:{h.imap_port}  (users: bob@{HOSTED} etc., "
              f"password {PASSWORD})\npostfix -c {h.etc}  maillog {h.maillog}  mail {h.mail_base}\n"
              f"mode {mode}; LMTP daemon pid {h.lmtpd_pid()} on {h.lmtp_socket}\n"
              "Ctrl-C stops everything.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "demo"
    if command == "check":
        missing = missing_prerequisites()
        print("\n".join(missing) if missing else "all prerequisites present")
        return 1 if missing else 0
    mode = argv[2] if len(argv) > 2 else "pipe"
    if command not in ("demo", "start") or mode not in MODES:
        print(f"usage: {argv[0]} [demo|start [pipe|lmtp]|check]", file=sys.stderr)
        return 2
    try:
        return demo() if command == "demo" else serve(mode)
    except (HarnessError, TimeoutError) as err:
        print(f"harness: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
