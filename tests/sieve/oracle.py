"""Pigeonhole's sieve-test as the oracle: run a case, return its canonical Outcome.

One case is run by /usr/bin/sieve-test (Debian's dovecot-sieve, Pigeonhole
0.5.19 for Dovecot 2.3.19) in a private directory of its own: an executed run
(-e -l maildir:DIR) into a real Maildir holding the case's folders, which gives
Pigeonhole's real outcome (a fileinto into a missing folder fails the whole
transaction there, and the message is kept in INBOX once). The
stores are read back from the Maildir: which folders hold a copy, and with which
flags (":2,FLAGS" plus the folder's dovecot-keywords file), with which header.
When it rejected, or decided on a vacation or a notification, a dry run (in a
fresh directory) adds the details from its "Performed actions" list (the
vacation's period, subject and from, the notification's recipients).

The canonical form, shared with adapter.py (vdeliver's side):

    Outcome(status, actions, error_line, stored_headers)

status
    "ok"             the script ran and every action was carried out
    "compile-error"  the script did not compile (sieve-test exit 89)
    "runtime-error"  the script failed while running ("NAME: line N: error: ..."
                     from the interpreter, e.g. too many actions or redirects);
                     Pigeonhole then keeps the message in INBOX
    "action-failed"  the script ran, but carrying out its actions failed (a
                     fileinto without :create into a folder that does not
                     exist); nothing of the script's is done, the message is
                     kept in INBOX once, without flags
    "sieve-test-failure"  anything else (sieve-test itself failed; never expected)
actions
    A tuple of what happened to the message, sorted by repr(), each a tuple:
    ("store", MAILBOX, FLAGS)  one copy stored. MAILBOX is the Sieve-side name
                               ("INBOX", "Work", "Lists.dev": Maildir++ with the
                               "." separator); FLAGS a sorted tuple, system
                               flags spelt "\\Seen" "\\Answered" "\\Flagged"
                               "\\Deleted" "\\Draft", keywords as stored.
    ("redirect", ADDRESS)      forwarded to ADDRESS (no angle brackets)
    ("reject", REASON)         rejected with REASON (reject; ereject alike)
    ("discard",)               discard ran and nothing was stored anywhere
    ("vacation", SECONDS, SUBJECT, FROM)
                               the script decided on a vacation response with
                               that period in seconds (at least a day; 0.5.19
                               has no maximum by default), :subject and :from
                               (None when not given); whether Pigeonhole's
                               RFC 3834 checks then let it go out is in the
                               detail, not compared
    ("notify", URI, IMPORTANCE)
                               an enotify notification was decided on: URI is
                               "mailto:" + the recipients joined by ","
    A compile error has no actions; a runtime error or a failed action has
    exactly (("store", "INBOX", ()),).
error_line
    The line of the first error Pigeonhole reported in the main script
    (compile or runtime), or None. Only the first line is compared: the
    follow-on errors differ between implementations without anything being
    wrong. Where Pigeonhole gives no line (the ihave "error" command says just
    "error: MESSAGE."), any line vdeliver gives is accepted (agree()).
stored_headers
    The header fields of every stored copy whose header differs from the
    message's own (editheader), as a sorted tuple of (MAILBOX, FIELDS); FIELDS
    is the header in order, each (name, value) with the value unfolded,
    RFC 2047 decoded and its white space runs made one space (header_fields()).
    () when no store was edited. Pigeonhole stores a copy as the header was
    when the fileinto/keep ran (a repeated one: the first time); an implicit
    keep has the final header.

Outcome.detail (not compared) keeps sieve-test's own words for the report.

Never: read /etc/dovecot (every run gets its own dovecot.conf through -c);
run sieve-test as root (it runs as ORACLE_USER with a private HOME); reuse
anything between runs (each run compiles afresh in a new directory, which is
removed afterwards); let one case see another's duplicate database.
"""
import base64
import concurrent.futures
import dataclasses
import os
import pwd
import re
import shutil
import subprocess
import tempfile

SIEVE_TEST = os.environ.get("SIEVE_TEST", "/usr/bin/sieve-test")
ORACLE_USER = os.environ.get("SIEVE_TEST_USER", "sievetest")
SCRIPT_NAME = "script"       # errors read "script: line N: ..." on both sides
EX_COMPILE = 89              # sieve-test's exit status for a script that did not compile

# The extension set every case starts from unless it says otherwise: the
# Pigeonhole default plus the extensions vdeliver means to offer that
# Pigeonhole keeps off by default. A sieve_extensions setting (relative "+x -y").
DEFAULT_EXTENSIONS = "+editheader +vacation-seconds +spamtest +spamtestplus +virustest"

# Settings given to both sides (dovecot.conf's plugin section; adapter.py passes
# the same dict to sieve.run as its settings).
SETTINGS = {
    "recipient_delimiter": "+",
    "sieve_max_actions": "32",
    "sieve_max_redirects": "4",
    "sieve_spamtest_status_type": "score",
    "sieve_spamtest_status_header": "X-Spam-Score",
    "sieve_spamtest_max_value": "10",
    "sieve_virustest_status_type": "text",
    "sieve_virustest_status_header": "X-Virus-Status",
    "sieve_virustest_text_value1": "clean",
    "sieve_virustest_text_value2": "unknown",
    "sieve_virustest_text_value3": "suspicious",
    "sieve_virustest_text_value4": "probably-infected",
    "sieve_virustest_text_value5": "infected",
}

SYSTEM_FLAGS = {"\\seen": "\\Seen", "\\answered": "\\Answered", "\\flagged": "\\Flagged",
                "\\deleted": "\\Deleted", "\\draft": "\\Draft"}
MAILDIR_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted",
                 "D": "\\Draft"}
INBOX_STORE = ("store", "INBOX", ())


DEFAULT_MESSAGE = (b"Return-Path: <sender@example.org>\n"
                   b"From: Alice Sender <sender@example.org>\n"
                   b"To: User <user@example.com>\n"
                   b"Subject: Weekly report\n"
                   b"Date: Tue, 03 Nov 2026 10:20:30 +0100\n"
                   b"Message-ID: <report-1@example.org>\n"
                   b"\n"
                   b"Hello,\nthe report is attached.\n")


@dataclasses.dataclass(frozen=True)
class Case:
    """One differential case: a script run on a message for an envelope, in a
    mailbox that has FOLDERS (besides INBOX), with a sieve_extensions setting."""
    id: str
    script: bytes
    message: bytes = DEFAULT_MESSAGE
    sender: str = "sender@example.org"
    recipient: str = "user@example.com"
    original_recipient: str | None = None     # None: the same as recipient
    folders: tuple = ()
    extensions: str | None = None             # None: DEFAULT_EXTENSIONS
    personal: dict = dataclasses.field(default_factory=dict)   # include :personal name -> bytes
    global_: dict = dataclasses.field(default_factory=dict)    # include :global name -> bytes
    settings: dict = dataclasses.field(default_factory=dict)   # overrides of SETTINGS, both sides
                                                               # (None: the setting is not given)
    area: str = "core"

    def __hash__(self):
        return hash(self.id)


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str
    actions: tuple = ()
    error_line: int | None = None
    stored_headers: tuple = ()
    detail: str = dataclasses.field(default="", compare=False)

    def __str__(self):
        lines = [f"status={self.status} error_line={self.error_line}"]
        lines += [f"  {a!r}" for a in self.actions]
        for mailbox, fields in self.stored_headers:
            lines.append(f"  stored in {mailbox} with the header:")
            lines += [f"    {n}: {v}" for n, v in fields]
        return "\n".join(lines)


def agree(want, got):
    """Does vdeliver's outcome GOT agree with Pigeonhole's WANT?"""
    if want.error_line is None:
        got = dataclasses.replace(got, error_line=None)
    return want == got


def canonical_flags(flags):
    """Flags as Dovecot stores them: system flags in one spelling, \\Recent
    dropped (it cannot be set), keywords deduplicated case-insensitively."""
    out, seen = [], set()
    for flag in flags:
        if flag.lower() == "\\recent":
            continue
        flag = SYSTEM_FLAGS.get(flag.lower(), flag)
        if flag.lower() not in seen:
            seen.add(flag.lower())
            out.append(flag)
    return tuple(sorted(out))


def finish(status, actions, error_line=None, detail="", stored=(), original=None):
    """The one place an Outcome is assembled, for both sides: the discard rule,
    the sort order and which stored headers count live here. STORED: (mailbox,
    fields) per copy; ORIGINAL: the message's own fields."""
    actions = list(actions)
    discarded = ("discard",) in actions
    actions = [a for a in actions if a != ("discard",)]
    if discarded and not any(a[0] == "store" for a in actions):
        actions.append(("discard",))
    edited = tuple(sorted((m, tuple(f)) for m, f in stored if tuple(f) != tuple(original or ())))
    return Outcome(status, tuple(sorted(actions, key=repr)), error_line, edited, detail)


def header_fields(data):
    """The header of a message (bytes) as ((name, value), ...): values unfolded,
    RFC 2047 decoded, white space runs made one space."""
    from email.header import decode_header, make_header
    head = data.replace(b"\r\n", b"\n")
    head = head[1:] if head.startswith(b"\n") else head.split(b"\n\n", 1)[0]
    fields = []
    for line in head.decode("utf-8", "replace").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += line
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append([name, value])
    out = []
    for name, value in fields:
        try:
            value = str(make_header(decode_header(value)))
        except Exception:
            pass
        out.append((name, " ".join(value.split())))
    return tuple(out)


# -- running sieve-test ------------------------------------------------------

def available():
    return os.access(SIEVE_TEST, os.X_OK)


def require_available():
    """Skip without sieve-test; fail in CI (support.require)."""
    from support import require
    require(available(), f"{SIEVE_TEST} is missing (apt-get install dovecot-sieve)")


def ensure_user():
    """The unprivileged user sieve-test runs as (created when we are root);
    None when we are not root (then it runs as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(ORACLE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        ORACLE_USER], check=True)
        return pwd.getpwnam(ORACLE_USER)


def mutf7_encode(name):
    """Modified UTF-7 (RFC 3501 §5.1.3), as Dovecot names Maildir folders."""
    out, run = [], []

    def flush():
        if run:
            b = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b.replace("/", ",") + "-")
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    def dec(m):
        b = m.group(1)
        if not b:
            return "&"
        b = b.replace(",", "/")
        return base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, name)


def settings_of(case):
    """SETTINGS with the case's overrides (None removes a setting)."""
    merged = {**SETTINGS, **case.settings}
    return {k: v for k, v in merged.items() if v is not None}


def write_config(path, case, root):
    extensions = case.extensions if case.extensions is not None else DEFAULT_EXTENSIONS
    lines = [f"mail_location = maildir:{root}/mail",
             f"recipient_delimiter = {SETTINGS['recipient_delimiter']}",
             "plugin {",
             f"  sieve_extensions = {extensions}",
             f"  sieve = file:{root}/home/sieve;active={root}/home/.dovecot.sieve",
             f"  sieve_global = {root}/global"]
    lines += [f"  {k} = {v}" for k, v in settings_of(case).items()]
    lines += ["}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def make_maildir(path):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def prepare(case, root):
    os.makedirs(f"{root}/home/sieve")
    os.makedirs(f"{root}/global")
    make_maildir(f"{root}/mail")
    for folder in case.folders:
        make_maildir(f"{root}/mail/." + mutf7_encode(folder))
    for name, text in case.personal.items():
        with open(f"{root}/home/sieve/{name}.sieve", "wb") as f:
            f.write(text)
    for name, text in case.global_.items():
        with open(f"{root}/global/{name}.sieve", "wb") as f:
            f.write(text)
    with open(f"{root}/{SCRIPT_NAME}.sieve", "wb") as f:
        f.write(case.script)
    with open(f"{root}/message.eml", "wb") as f:
        f.write(case.message)
    write_config(f"{root}/dovecot.conf", case, root)


def chown_tree(root, user):
    if user is None:
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chown(dirpath, user.pw_uid, user.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), user.pw_uid, user.pw_gid)


def sieve_test(case, root, user, execute, extra=()):
    argv = [SIEVE_TEST, "-c", f"{root}/dovecot.conf", "-C", *extra]
    if execute:
        argv += ["-e", "-l", f"maildir:{root}/mail"]
    argv += ["-f", case.sender,
             "-a", case.original_recipient or case.recipient,
             "-r", case.recipient,
             f"{root}/{SCRIPT_NAME}.sieve", f"{root}/message.eml"]
    env = {"HOME": f"{root}/home", "USER": user.pw_name if user else "root",
           "PATH": "/usr/bin:/bin", "TZ": "UTC", "LANG": "C"}
    kw = {}
    if user is not None:
        kw = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    return subprocess.run(argv, env=env, cwd=root, capture_output=True, timeout=30, **kw)


# -- reading its output ----------------------------------------------------------

ERROR_LINE = re.compile(rf"^{SCRIPT_NAME}: line (\d+): error: (.*)$", re.M)
ANY_ERROR = re.compile(r"^\S+: (?:line (\d+): )?error: (.*)$", re.M)


def dry_run_actions(stdout):
    """The "Performed actions" section of a dry run: [(head, [sublines])]."""
    text = stdout.decode("utf-8", "replace")
    m = re.search(r"^Performed actions:\n(.*?)^Implicit keep:", text, re.M | re.S)
    items = []
    if not m:
        return items
    for line in m.group(1).splitlines():
        if line.startswith(" * "):
            items.append((line[3:], []))
        elif items and line.strip():
            items[-1][1].append(line.strip())
    return items


def read_maildir(root):
    """The stores as the Maildir shows them: [(("store", MAILBOX, FLAGS), FIELDS)]."""
    stores = []
    mail = f"{root}/mail"
    folders = [("INBOX", mail)]
    folders += [(mutf7_decode(d[1:]), os.path.join(mail, d)) for d in sorted(os.listdir(mail))
                if d.startswith(".") and d not in (".", "..")]
    for name, path in folders:
        keywords = {}
        try:
            with open(os.path.join(path, "dovecot-keywords"), encoding="utf-8") as f:
                for line in f:
                    idx, _, word = line.rstrip("\n").partition(" ")
                    keywords[chr(ord("a") + int(idx))] = word
        except FileNotFoundError:
            pass
        for sub in ("new", "cur"):
            d = os.path.join(path, sub)
            if not os.path.isdir(d):
                continue
            for fn in sorted(os.listdir(d)):
                flags = []
                if ":2," in fn:
                    for ch in fn.rsplit(":2,", 1)[1]:
                        flags.append(MAILDIR_FLAGS.get(ch) or keywords.get(ch, "?" + ch))
                with open(os.path.join(d, fn), "rb") as f:
                    fields = header_fields(f.read())
                stores.append((("store", name, canonical_flags(flags)), fields))
    return stores


def parse(case, dry, run, stores):
    """sieve-test's two runs and the Maildir -> Outcome. The one normaliser."""
    err = run.stderr.decode("utf-8", "replace")
    out = run.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    original = header_fields(case.message)
    stored = [(a[1], fields) for a, fields in stores]
    stores = [a for a, _ in stores]
    detail = (f"$ exit {run.returncode}\n{err}\n{out}\n--- dry run:\n"
              + dry.stdout.decode("utf-8", "replace") + dry.stderr.decode("utf-8", "replace"))
    if run.returncode == EX_COMPILE or "failed to compile sieve script" in err:
        m = ERROR_LINE.search(err) or ANY_ERROR.search(err)
        line = int(m.group(1)) if m and m.group(1) else None
        return finish("compile-error", [], line, detail)
    if "final result: success" not in err:
        m = ERROR_LINE.search(err)
        if m:
            return finish("runtime-error", stores, int(m.group(1)), detail, stored, original)
        # the error command (ihave) reports "error: MESSAGE." without a line;
        # a failed action's error names the message ("error: msgid=...: ...")
        if re.search(r"^error: (?!msgid=)", err, re.M):
            return finish("runtime-error", stores, None, detail, stored, original)
        if "resolved with successful implicit keep" in err:
            return finish("action-failed", stores, None, detail, stored, original)
        return finish("sieve-test-failure", stores, None, detail, stored, original)
    # the user log's lines ("info: msgid=...: redirect action: ...") name each
    # action once; the same events also go to the main log, with a prefix
    log = "\n".join(line for line in err.splitlines() if re.match(r"(info|warning|error): ", line))
    actions = list(stores)
    for addr in re.findall(r"redirect action: forwarded to <([^>]*)>", log):
        actions.append(("redirect", addr))
    if "discard action: Marked message to be discarded" in log:
        actions.append(("discard",))
    vacation_done = "vacation action: " in log
    notify_done = "notify action: " in log
    rejected = re.findall(r"was automatically rejected:\n(.*?)\n--", out, re.S)
    for head, sub in dry_run_actions(dry.stdout):
        values = dict(re.match(r"=> (\S+)\s*: ?(.*)$", s).groups() for s in sub if re.match(r"=> \S+\s*:", s))
        if head.startswith("reject message with reason: "):
            reason = rejected.pop(0) if rejected else head[len("reject message with reason: "):]
            actions.append(("reject", reason))
        elif head.startswith("send vacation message") and vacation_done:
            actions.append(("vacation", int(values.get("seconds", "0")), values.get("subject"),
                            values.get("from")))
        elif head.startswith("send notification with method") and notify_done:
            rcpts = [s[len("+ To: "):] for s in sub if s.startswith("+ To: ")]
            actions.append(("notify", "mailto:" + ",".join(rcpts), values.get("importance")))
    return finish("ok", actions, None, detail, stored, original)


NEEDS_DRY_RUN = re.compile(rb"^info: .*(?:reject|vacation|notify) action: ", re.M)


def run_case(case, user=None, base=None):
    """Run one case through sieve-test; its private directory is removed after.
    The executed run always; the dry run (in a fresh directory: nothing of the
    first run, a compiled binary or the duplicate database, may reach it) only
    when its action list has details we need (reject, vacation, notify)."""
    root = tempfile.mkdtemp(prefix="sieve-oracle-", dir=base)
    try:
        os.chmod(root, 0o755)
        prepare(case, root)
        chown_tree(root, user)
        run = sieve_test(case, root, user, execute=True)
        stores = read_maildir(root)
        dry = subprocess.CompletedProcess([], 0, b"", b"(no dry run needed)")
        if NEEDS_DRY_RUN.search(run.stderr):
            shutil.rmtree(root)
            os.makedirs(root)
            os.chmod(root, 0o755)
            prepare(case, root)
            chown_tree(root, user)
            dry = sieve_test(case, root, user, execute=False)
        return parse(case, dry, run, stores)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def trace(case):
    """sieve-test's own trace of the case (-t - -Tlevel=matching, a dry run), for
    explaining a disagreement."""
    user = ensure_user()
    root = tempfile.mkdtemp(prefix="sieve-oracle-trace-")
    try:
        os.chmod(root, 0o755)
        prepare(case, root)
        chown_tree(root, user)
        proc = sieve_test(case, root, user, execute=False, extra=["-t", "-", "-Tlevel=matching"])
        return (proc.stdout + proc.stderr).decode("utf-8", "replace")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_cases(cases, workers=None):
    """Every case through sieve-test, a few at a time: {case.id: Outcome}."""
    user = ensure_user()
    base = tempfile.mkdtemp(prefix="sieve-oracle-runs-")
    os.chmod(base, 0o755)
    try:
        workers = workers or max(2, (os.cpu_count() or 1) * 2)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = {c.id: pool.submit(run_case, c, user, base) for c in cases}
            return {cid: f.result() for cid, f in futures.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- what sieve-test sends (vacation, redirect, notify) ------------------------------

# The header fields compared of a sent message, as canonical_sent() normalises them.
SENT_FIELDS = ("from", "to", "subject", "in-reply-to", "references", "auto-submitted",
               "precedence", "x-sieve-redirected-from")


def canonical_sent(sender, recipients, data):
    """One sent message in the form both sides are compared in: (kind, envelope sender
    ("" for <>), recipients, ((field, value), ...)). The one normaliser of outgoing mail:
    - addresses (envelope, To, From) lower-cased, a display name kept, without quotes;
    - Subject RFC 2047-decoded, white space runs one space; Auto-Submitted: its keyword;
    - kind: "vacation" (auto-replied), "notify" (auto-notified) or "redirect" (the rest);
    - a notification's envelope sender and From are not compared: Pigeonhole sends it
      from its postmaster address, vdeliver from <> and the user (a deliberate choice:
      nothing can bounce back to a notification; RFC 5436 §2.7 lets the From be the user);
    - a redirect compares only the envelope and X-Sieve-Redirected-From (the rest of its
      header is the original's)."""
    import email.utils
    fields = dict((name.lower(), value) for name, value in reversed(header_fields(data)))
    auto = re.split(r"[;(\s]", fields.get("auto-submitted", "").strip().lower() + " ", maxsplit=1)[0]
    kind = {"auto-replied": "vacation", "auto-notified": "notify"}.get(auto, "redirect")
    sender = sender.strip().strip("<>").lower()

    def address_list(value):
        return ", ".join(f"{name} <{addr.lower()}>" if name else f"<{addr.lower()}>"
                         for name, addr in email.utils.getaddresses([value]))
    kept = []
    for name in SENT_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if kind == "redirect" and name != "x-sieve-redirected-from":
            continue
        if kind == "notify" and name == "from":
            continue
        if name in ("from", "to"):
            value = address_list(value)
        elif name == "auto-submitted":
            value = auto
        elif name == "x-sieve-redirected-from":
            value = value.strip().strip("<>").lower()
        kept.append((name, value))
    if kind == "notify":
        sender = "(not compared)"
    return (kind, sender, tuple(sorted(r.strip().strip("<>").lower() for r in recipients)),
            tuple(kept))


def sent_by_sieve_test(run):
    """The messages an executed sieve-test run sent: [(sender, [recipients], bytes)].
    The messages come first on its stdout, each starting with its X-Sieve field, then a
    "RECIPIENT: ADDR ... START MESSAGE:/END MESSAGE" block for each (stdio's buffer is
    flushed at exit); the senders are in its log: "sending message from <S>:"."""
    out = run.stdout.replace(b"\r\n", b"\n")
    first = out.find(b"RECIPIENT: ")
    body, tail = (out, b"") if first < 0 else (out[:first], out[first:])
    starts = [m.start() for m in re.finditer(rb"^X-Sieve: Pigeonhole", body, re.M)]
    messages = [body[a:b] for a, b in zip(starts, starts[1:] + [len(body)])]
    blocks = [re.findall(rb"^RECIPIENT: (.*)$", block, re.M)
              for block in tail.split(b"END MESSAGE") if b"RECIPIENT: " in block]
    senders = re.findall(r"sending message from <([^>]*)>:", run.stderr.decode("utf-8", "replace"))
    if not (len(messages) == len(blocks) == len(senders)):
        raise AssertionError(f"cannot pair sieve-test's output: {len(messages)} messages,"
                             f" {len(blocks)} recipient blocks, {len(senders)} senders")
    return [(s, [r.decode() for r in rcpts], m) for s, rcpts, m in zip(senders, blocks, messages)]


def run_sent(case, user=None):
    """sieve-test's executed run of CASE -> the sorted canonical_sent() of what it sent."""
    user = ensure_user() if user is None else user
    root = tempfile.mkdtemp(prefix="sieve-oracle-sent-")
    try:
        os.chmod(root, 0o755)
        prepare(case, root)
        chown_tree(root, user)
        run = sieve_test(case, root, user, execute=True)
        if "final result: success" not in run.stderr.decode("utf-8", "replace"):
            raise AssertionError(f"sieve-test failed: {run.stderr.decode('utf-8', 'replace')}")
        return sorted(canonical_sent(*sent) for sent in sent_by_sieve_test(run))
    finally:
        shutil.rmtree(root, ignore_errors=True)
