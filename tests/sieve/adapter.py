"""vdeliver's Sieve interpreter on a corpus case -> oracle.Outcome.

run_case() compiles and runs the case's script with vdeliver.sieve, given the
same envelope, folders, extension setting and settings as sieve-test gets
(oracle.py; the limits come from the same settings through
vdeliver.sieve.limits.from_settings), and outcome_of() maps the interpreter's Result to the canonical
form the way the delivery core will act on it. The core is not written yet:
outcome_of() is a small pure function so that the real core can replace it.

What the delivery core does with a Result (measured against Pigeonhole 0.5.19,
see oracle.py and test_oracle.py):
- result.errors non-empty: the run failed; one store into INBOX, no flags,
  nothing else of the script's is done;
- a fileinto without :create into a folder that does not exist: the whole
  transaction fails (stores, redirects, vacation...), the message is kept in
  INBOX once, without flags ("action-failed");
- a folder name the Maildir++ layout cannot hold (a "/", an empty level as in
  "Work." or "a..b", a control character) fails the transaction as a missing
  folder does;
- keep and fileinto "INBOX" (any case, also as the first level: "inbox.sub"
  is "INBOX.sub") store into INBOX; two stores into one
  mailbox are one copy, with the flags of the last;
- result.implicit_keep: store into INBOX with result.keep_flags;
- flags are stored as Dovecot stores them: \\Recent and keywords that are not
  IMAP atoms are dropped, keywords are deduplicated case-insensitively;
- discard stores nothing (it only shows when nothing else stored the message);
- reject/ereject: ("reject", REASON), line ends as LF;
- redirect: one per distinct address; none when the message already carries
  X-Sieve-Redirected-From with the recipient's address (a mail loop): then
  the message is kept in INBOX instead;
- vacation, notify: decided on (with the vacation's period, subject and from,
  the notification's importance);
- addheader/deleteheader edit the header of the copies stored after them
  (and of the implicit keep), not of those stored before; the stored header
  is what vdeliver.headeredit writes (the delivery core's own code).

Never: consult sieve-test here (only the canonical form, the shared settings and
header_fields() come from oracle.py).
"""
import io
import re
import socket
import urllib.parse

import oracle

ATOM_SPECIALS = set('(){ %*"\\]')


def existing(folders):
    return {"INBOX", *folders}


def store_flags(flags):
    """The flags a Maildir store keeps (Dovecot drops what is not a flag)."""
    kept = []
    for flag in flags or ():
        if flag.startswith("\\"):
            if flag.lower() in oracle.SYSTEM_FLAGS:
                kept.append(flag)
        elif flag and all(0x20 < ord(c) < 0x7f and c not in ATOM_SPECIALS for c in flag):
            kept.append(flag)
    return oracle.canonical_flags(kept)


def mailbox_name(name):
    """The name as the store files it: INBOX in any case is INBOX, also as the
    first level of a hierarchy ("inbox.sub" is "INBOX.sub")."""
    if not name:
        return "INBOX"
    first, dot, rest = name.partition(".")
    return "INBOX" + dot + rest if first.upper() == "INBOX" else name


def mailbox_valid(name):
    """Whether the Maildir++ layout can hold NAME: "." separates the levels, so
    no level may be empty; "/" and control characters are refused."""
    return ("/" not in name and all(name.split("."))
            and not any(ord(c) < 0x20 or ord(c) == 0x7f for c in name))


def mailto(action):
    """("notify", "mailto:" + the To recipients, importance) from an enotify action."""
    params = getattr(action, "params", None) or {}
    uri = params.get("method") or params.get("uri") or getattr(action, "address", None) or ""
    scheme, _, rest = uri.partition(":")
    to, _, query = rest.partition("?")
    rcpts = [urllib.parse.unquote(a) for a in to.split(",") if a]
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if name.lower() == "to":
            rcpts += [urllib.parse.unquote(a) for a in value.split(",") if a]
    return ("notify", scheme.lower() + ":" + ",".join(rcpts), params.get("importance") or "2")


def first_line(errors):
    """The line of the first error in the main script (an included script's
    own errors come first in vdeliver's list, as "NAME: line N: ...")."""
    lines = [re.match(r"(.*?): line (\d+):", str(e)) for e in errors]
    for m in lines:
        if m and m.group(1) == oracle.SCRIPT_NAME:
            return int(m.group(2))
    for m in lines:
        if m:
            return int(m.group(2))
    return None


def outcome_of(result, existing_folders, *, redirect_loop=False, message=None):
    """What the delivery core makes of a Result, in the canonical form.
    REDIRECT_LOOP: the message says it was redirected by this user before.
    MESSAGE: the message (bytes); each store's header is the one the delivery
    core writes (vdeliver.headeredit applying the edits filtering.py gives
    that copy: those before its keep/fileinto, all of them for the implicit
    keep), read back with oracle.header_fields."""
    if result.errors:
        return oracle.finish("runtime-error", [oracle.INBOX_STORE], first_line(result.errors),
                             "\n".join(map(str, result.errors)))
    from vdeliver import filtering
    stores = {}        # mailbox -> (flags, edits); insertion order, the last wins
    others = []
    failed = False
    for action in result.actions:
        kind = action.kind
        edits = filtering.edits_before(result, action)
        if kind == "keep":
            stores["INBOX"] = (store_flags(action.flags), edits)
        elif kind == "fileinto":
            name = mailbox_name(action.mailbox)
            if name not in existing_folders and not getattr(action, "create", False):
                failed = True
            if not mailbox_valid(name):
                failed = True
            stores[name] = (store_flags(action.flags), edits)
        elif kind == "redirect":
            if redirect_loop:
                stores.setdefault("INBOX", ((), filtering.keep_edits_of(result)))
            elif ("redirect", action.address) not in others:
                others.append(("redirect", action.address))
        elif kind in ("reject", "ereject"):
            others.append(("reject", (action.reason or "").replace("\r\n", "\n")))
        elif kind == "discard":
            others.append(("discard",))
        elif kind == "vacation":
            p = action.params or {}
            others.append(("vacation", p.get("seconds"), p.get("subject"), p.get("from")))
        elif kind == "notify":
            others.append(mailto(action))
    if result.implicit_keep:
        stores.setdefault("INBOX", (store_flags(result.keep_flags), filtering.keep_edits_of(result)))
    if failed:
        return oracle.finish("action-failed", [oracle.INBOX_STORE])
    actions = [("store", name, flags) for name, (flags, _e) in stores.items()] + others
    if message is None:
        return oracle.finish("ok", actions)
    stored = [(name, stored_fields(message, edits)) for name, (_f, edits) in stores.items()]
    return oracle.finish("ok", actions, stored=stored, original=oracle.header_fields(message))


def stored_fields(message, edits):
    """The header fields of the copy the delivery core stores with EDITS."""
    from vdeliver import headeredit
    if not edits:
        return oracle.header_fields(message)
    source = io.BytesIO(message)
    header = headeredit.apply(headeredit.original_header(lambda: source), edits)
    with headeredit.open_edited(lambda: io.BytesIO(message), header) as fh:
        return oracle.header_fields(fh.read())


def loader_for(case):
    def loader(location, name):
        scripts = case.personal if location == "personal" else case.global_
        return scripts.get(name)
    return loader


def settings_for(case):
    folders = existing(case.folders)
    settings = oracle.settings_of(case)
    settings["mailbox_exists"] = lambda name: mailbox_name(name) in folders
    return settings


def limits_for(settings):
    """The Limits the core derives from the same Pigeonhole-named settings."""
    from vdeliver.sieve import limits
    return limits.from_settings(settings)


# What sieve-test's environment reports that depends on the machine, not on the
# interpreter ("domain" and "host" are the host name there).
ENVIRONMENT = {"domain": socket.gethostname(), "host": socket.gethostname()}


def run_case(case):
    from vdeliver import sieve
    extensions = case.extensions if case.extensions is not None else oracle.DEFAULT_EXTENSIONS
    settings = settings_for(case)
    limits = limits_for(settings)
    try:
        script = sieve.compile(case.script, name=oracle.SCRIPT_NAME,
                               extensions=sieve.parse_extensions_setting(extensions),
                               loader=loader_for(case), limits=limits)
    except sieve.CompileError as e:
        return oracle.finish("compile-error", [], first_line(e.errors), "\n".join(e.errors))
    envelope = sieve.Envelope(sender=case.sender, recipient=case.recipient,
                              original_recipient=case.original_recipient or case.recipient,
                              auth="")
    result = sieve.run(script, sieve.Message.from_bytes(case.message), envelope,
                       environment=dict(ENVIRONMENT), limits=limits, settings=settings)
    return outcome_of(result, existing(case.folders), redirect_loop=redirect_loop(case),
                      message=case.message)


def redirect_loop(case):
    """Pigeonhole's loop check (cmd-redirect.c): an X-Sieve-Redirected-From
    header naming this recipient."""
    head = case.message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    for line in head.split("\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-sieve-redirected-from":
            if value.strip().strip("<>").lower() == case.recipient.lower():
                return True
    return False
