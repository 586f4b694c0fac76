"""Sieve for a recipient whose mailbox is an mbox file (deliver.py loads it only when
a script may apply), in Dovecot's mbox layout (`mail_location = mbox:~/mail:INBOX=...`):

- the message is spooled once, with its delivery headers, into an unnamed file
  (O_TMPFILE) in the mbox's directory; the scripts (filtering.py) read it there;
- keep stores into the mbox the recipient resolved to (INBOX); fileinto into an
  mbox file below mbox_folder_directory (default `~/mail`, `~` the recipient's
  home from virtual_home_maps), hierarchy separator `/` as in Dovecot's mbox
  layout (`Work/Urgent` -> `~/mail/Work/Urgent`), each level in modified UTF-7
  as folder_name_encoding says; `:create` makes the file and its directories;
- IMAP flags are written as Dovecot's own mbox save writes them: `Status: R`
  for \\Seen, `X-Status:` with A (\\Answered), F (\\Flagged), T (\\Draft),
  D (\\Deleted), keywords in `X-Keywords:`, and the message's own fields of those
  names (and X-UID, X-IMAP, X-IMAPbase, Content-Length) left out of that copy, as
  Dovecot drops them; Dovecot reads them back (it shows a keyword only if the
  mailbox knows it already: it takes an unknown one for a forged header);
- editheader edits as for Maildir (headeredit.py);
- discard stores nothing; reject bounces 5.7.1 (errors.SieveReject);
- outgoing mail (redirect, vacation, notify; outgoing.py) as for Maildir: sent
  once the copies are durable, or, when redirects are the only destinations,
  before the commit (one not sent keeps the message in INBOX); the response
  database is the home's (an mbox recipient without a home sends no vacation);
- a fileinto that cannot store (no home, a missing folder without :create, a
  name the layout refuses, a folder that is a symlink or a directory) is
  Pigeonhole's failure: the script's actions are dropped, the message is kept
  in INBOX once;
- every copy is appended under its locks (mbox.deliver_copies): all are written,
  then fsynced at one commit point; a failure before it truncates them all back.

Never: write outside the base; follow a symlink; leave part of a message in any
mbox; defer for a folder every retry would fail on (it is kept in INBOX).
Raises DeliveryError subclasses (deferrals, SieveReject).
"""
import posix

from vdeliver import folders, mbox, safepath
from vdeliver.errors import ConfigError, one_line

XSTATUS = (("\\answered", "A"), ("\\flagged", "F"), ("\\draft", "T"), ("\\deleted", "D"))


def folder_name(name, encoding):
    """A Sieve mailbox name -> "INBOX", the folder's path below the folder
    directory (`Work/Urgent`, levels encoded), or None when the layout refuses it."""
    if not name or name.upper() == "INBOX":
        return "INBOX"
    parts = []
    for part in name.split("/"):
        if folders.check_name(part):   # empty, '.', '..', a leading '.', control characters
            return None
        try:
            parts.append(folders.encode_name(part, encoding))
        except UnicodeError:
            return None
    if parts[0].upper() == "INBOX":     # INBOX is a file: it has no children
        return None
    return "/".join(parts)


def folder_directory(config, home):
    """mbox_folder_directory below the home (relative to the base), or None without a home."""
    value = config.get("mbox_folder_directory").strip().rstrip("/")
    if value != "~" and not value.startswith("~/"):
        raise ConfigError(f"mbox_folder_directory {value!r} does not start with ~/")
    if home is None:
        return None
    rest = value[2:]
    if any(part in ("", ".", "..") for part in rest.split("/")) and rest:
        raise ConfigError(f"mbox_folder_directory {value!r} has an empty, '.' or '..' level")
    return f"{home}/{rest}" if rest else home


def flag_lines(flags):
    """The Status/X-Status/X-Keywords lines of a copy's IMAP flags (LF)."""
    lowered = {flag.lower() for flag in flags}
    lines = b""
    if "\\seen" in lowered:
        lines += b"Status: R\n"
    xstatus = "".join(letter for flag, letter in XSTATUS if flag in lowered)
    if xstatus:
        lines += f"X-Status: {xstatus}\n".encode()
    words = [flag for flag in flags if not flag.startswith("\\")]
    if words:
        lines += ("X-Keywords: " + " ".join(words) + "\n").encode()
    return lines


def spool(dir_fd, read_chunk, envelope, original, headers):
    """The message with its delivery headers in an unnamed file: (fd, opener)."""
    from vdeliver.errors import from_os_error
    from vdeliver.message import copy_message
    try:
        fd = posix.open(".", posix.O_TMPFILE | posix.O_RDWR | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError:
        import tempfile  # a filesystem without O_TMPFILE
        fd = posix.dup(tempfile.TemporaryFile().fileno())
    try:
        copy_message(fd, read_chunk, envelope.sender, envelope.recipient, original, headers)
    except OSError as err:
        posix.close(fd)
        raise from_os_error(err, "write the spooled message") from None
    except BaseException:
        posix.close(fd)
        raise

    def open_message():
        copy = posix.dup(fd)
        fh = open(copy, "rb", closefd=True)
        fh.seek(0)
        return fh
    return fd, open_message


def deliver(base, mailbox, envelope, original, config, read_chunk, point, tables, notes):
    """Spool, run the scripts, append the copies; the mbox paths stored (relative to
    the base), [] when discarded."""
    from vdeliver import sievescripts
    methods = config.get_list("virtual_mailbox_lock")
    timeout = config.get_time("mbox_lock_timeout")
    encoding = config.get_choice("folder_name_encoding", ("utf7", "utf8"))
    parent, _name = safepath.split_parent(mailbox.path)
    home, home_rel = home_of(base, mailbox, envelope.recipient, config, tables)
    boxes = folder_directory(config, home_rel)
    dir_fd, _shown = safepath.open_directory(base, parent)
    try:
        fd, open_message = spool(dir_fd, read_chunk, envelope, original,
                                 config.get_bool("write_delivery_headers"))
    finally:
        posix.close(dir_fd)
    from vdeliver.sieveroute import Sender
    sender = Sender(config, envelope, home, notes)
    try:
        if home.problem:
            notes.append(home.problem)
        scripts = sievescripts.find(config, home, config.get_size("sieve_max_script_size"))
        stores = [(mailbox.path, True, (), ())]
        if scripts:
            stores = run(config, envelope, scripts, home, open_message, base, boxes, encoding,
                         tables is not None, notes, mailbox, sender)
        copies = [(path, create, writer(open_message, flags, edits, envelope.sender))
                  for path, create, flags, edits in stores]
        stored = mbox.deliver_copies(base, copies, methods, timeout, point)
        sender.after_commit()  # committed: notes only, never raises
        return stored
    finally:
        sender.close()
        home.close()
        posix.close(fd)


def home_of(base, mailbox, recipient, config, tables):
    """(the home as a sievescripts.Place, its path relative to the base or None): an
    mbox recipient's home is virtual_home_maps' result; without one there is none."""
    from vdeliver import sieveroute, sievescripts
    relative = None
    if config.get_list("virtual_home_maps"):
        relative = sieveroute.home_relative(mailbox, recipient, config, tables)
    if relative is None:
        return sievescripts.Place(None, "(none: not in virtual_home_maps)"), None
    return sievescripts.open_home(base, relative), relative


def run(config, envelope, scripts, home, open_message, base, boxes, encoding, cache, notes, mailbox,
        sender):
    """The Plan as [(mbox path, create, flags, edits)]; raises SieveReject. sender: the
    sieveroute.Sender of the Plan's outgoing mail."""
    import sys
    if not cache and "vdeliver.filtering" not in sys.modules:
        import vdeliver  # the pipe command: the Sieve modules from their .pyc files
        vdeliver.load_modules(vdeliver.SIEVE_MODULES)
    from vdeliver import filtering, sievescripts
    from vdeliver.errors import SieveReject

    def exists(name):
        return boxes is not None and folder_state(base, f"{boxes}/{name}") == "file"
    plan = filtering.plan(config, envelope, scripts, home, open_message, exists, cache,
                          sender.duplicate_check, sender.saw,
                          folder_name=lambda name: folder_name(name, encoding))
    notes.append("sieve: ran " + ", ".join(plan.scripts))
    notes.extend(plan.notes)
    for script, lines in plan.user_log:
        sievescripts.write_user_log(script, lines)
    if plan.reject is not None:
        raise SieveReject(plan.reject)
    stores = sender.before_commit(plan, open_message)
    out, seen = [], {}
    for store in stores:
        if store.folder in (None, ""):
            path, create = mailbox.path, True
        else:
            path, create = f"{boxes}/{store.folder}", store.create
            state = folder_state(base, path) if boxes is not None else "no home"
            if state not in ("file", "missing") or (state == "missing" and not create):
                sender.drop()  # the script's actions are dropped: its mail too
                return keep_instead(notes, scripts, store.folder, state, mailbox)
        entry = (path, create, store.flags, store.edits)
        if path in seen:
            out[seen[path]] = entry    # one copy per file, the last flags win
        else:
            seen[path] = len(out)
            out.append(entry)
    return out


def keep_instead(notes, scripts, folder, why, mailbox):
    from vdeliver import sievescripts
    notes.append(f"sieve: cannot store into {one_line(folder, 100)} ({why}): kept in INBOX")
    for script in scripts:
        if script.kind == "personal":
            sievescripts.write_user_log(script, [
                f"error: fileinto: cannot store into {one_line(folder, 300)} ({why})",
                "error: script failed: message kept in INBOX"])
    return [(mailbox.path, True, (), ())]


def folder_state(base, relative):
    """"file", "missing", or why the folder cannot be used (no symlink is followed)."""
    parent, name = safepath.split_parent(relative)
    try:
        dir_fd, _shown = safepath.open_directory(base, parent, create=False)
    except FileNotFoundError:
        return "missing"
    except folders.UNUSABLE as error:
        return one_line(getattr(error, "detail", "") or str(error), 200)
    try:
        st = posix.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return error.strerror or "cannot stat"
    finally:
        posix.close(dir_fd)
    if (st.st_mode & 0o170000) != 0o100000:
        return "not a regular file"
    return "file"


def writer(open_message, flags, edits, sender):
    """write(fd) for mbox.deliver_copies: the From_ line, the (edited) message with
    its flag fields, mboxrd-quoted."""

    def write(fd):
        if not edits:
            fh = open_message()
        else:
            from vdeliver import headeredit  # only then: it loads re and base64
            header = headeredit.apply(headeredit.original_header(open_message), edits)
            fh = headeredit.open_edited(open_message, header)
        with fh:  # the message's own flag fields are left out by write_message
            mbox.write_message(fd, lambda: fh.read(65536), sender, "", "", headers=False,
                               state=flag_lines(flags))
    return write
