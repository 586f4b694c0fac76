"""The delivery core shared by the pipe front end (cli) and the LMTP front end.

deliver(): check the envelope, resolve the recipient's mailbox, and write the
message into it: an mbox (mbox.py) for a result without a trailing `/`,
otherwise the Maildir, or its Maildir++ folder for a +extension when
extension_folder says so (folders.py), through the quota gate when a quota
applies (quota.py), followed by a quota warning when one is due
(quotawarn.py). Returns a Delivery; every failure is a DeliveryError.

Never: print, exit or read sys.argv (front ends do); write mail for a
recipient that did not resolve; let a quota warning or a folder problem fail
a delivery. Modules for mbox, folders and quota are imported only when used:
the pipe command pays for what is configured.
"""

import posix
import sys

from vdeliver import address, maildir, message, resolve, safepath
from vdeliver.errors import (ConfigError, DeliveryError, MailboxFull, MailboxFullDeferred,
                             MailboxUnavailable, one_line)


class Envelope:
    """sender, recipient: checked (a bad one bounces: a fact about the message).
    original_recipient only decides the X-Original-To header: a malformed one is
    dropped with a note for the log, never a reason to bounce the message."""
    __slots__ = ("sender", "recipient", "original_recipient", "notes")

    def __init__(self, sender, recipient, original_recipient=""):
        self.sender = address.check_sender(sender)
        self.recipient = address.check_recipient(recipient)
        self.original_recipient = ""
        self.notes = []
        if original_recipient:
            try:
                self.original_recipient = address.check_recipient(original_recipient)
            except DeliveryError:
                self.notes.append("malformed original recipient "
                                  f"{one_line(repr(original_recipient), 200)}: no X-Original-To")


class Delivery:
    __slots__ = ("mailbox", "file", "notes")

    def __init__(self, mailbox, file, notes=()):
        self.mailbox = mailbox  # resolve.Mailbox
        self.file = file        # the delivered file, relative to the base
        self.notes = list(notes)  # things the log should say (folder fallback, quota warning)

    def summary(self):
        kind = "mbox" if self.mailbox.format == resolve.MBOX else "maildir"
        return "; ".join([f"delivered to {kind} {self.file}"] + self.notes)


MOUNTED_MARKER = ".vdeliver-mounted"


def check_mounted(base):
    """virtual_mailbox_base_mounted = yes: the base must be a mount point, or hold the
    marker file MOUNTED_MARKER (put it on the shared filesystem itself). An unmounted NFS
    mount point is an empty local directory: mail delivered there would vanish from the
    users' view when the share comes back. Not mounted: defer 4.3.0."""
    from vdeliver.errors import StoreNotMounted
    try:
        here = posix.stat(base)
        parent = posix.stat(base.rstrip("/") + "/..")
    except OSError as err:
        raise StoreNotMounted(f"virtual_mailbox_base {base}: {err.strerror}") from None
    if here.st_dev != parent.st_dev or here.st_ino == parent.st_ino:
        return
    try:
        posix.stat(f"{base.rstrip('/')}/{MOUNTED_MARKER}", follow_symlinks=False)
    except OSError:
        raise StoreNotMounted(f"virtual_mailbox_base {base} is not a mount point and holds no"
                              f" {MOUNTED_MARKER}") from None


def mailbox_base(config):
    base = config.get("virtual_mailbox_base")
    if not base:
        raise ConfigError("virtual_mailbox_base is not set")
    if not base.startswith("/"):
        raise ConfigError(f"virtual_mailbox_base {base} is not an absolute path")
    return base


def deliver(envelope, config, read_chunk, tables=None, mailbox=None, point=None):
    """Resolve envelope.recipient and deliver the message read_chunk() yields.

    mailbox: the resolve.Mailbox when the front end resolved it already (LMTP
    does at RCPT time); tables: the resolve.Tables opened already (the LMTP daemon
    keeps them: mailbox, quota and home tables); None: opened as needed;
    point: the delivery's commitpoint.CommitPoint (default: the pipe command's).
    Once the store has committed, nothing here raises (a quota warning that
    fails becomes a note for the log line).
    """
    base = mailbox_base(config)
    if config.get_bool("virtual_mailbox_base_mounted"):
        check_mounted(base)
    maildir.HOSTNAME = config.get("maildir_hostname").strip()
    if mailbox is None:
        mailbox = resolve.resolve(envelope.recipient, config, tables)
    original = envelope.original_recipient if config.get_bool("enable_original_recipient") else ""
    try:
        if mailbox.format == resolve.MBOX:
            delivery = deliver_mbox(base, mailbox, envelope, original, config, read_chunk, point)
        else:
            delivery = deliver_maildir(base, mailbox, envelope, original, config, read_chunk,
                                       point, tables)
        delivery.notes[:0] = envelope.notes
        return delivery
    except MailboxFullDeferred as full:
        # EDQUOT/EFBIG from the filesystem, or maildirsize: the same policy decides.
        if config.get_choice("quota_exceeded_action", ("defer", "bounce")) == "bounce":
            raise MailboxFull(full.detail) from None
        full.mailbox = full.mailbox or mailbox.path.rstrip("/")
        raise
    except DeliveryError as error:
        # The status line may name the mailbox relative to the base (what the admin
        # needs in mailq); the absolute path stays in the detail, for the log.
        error.mailbox = error.mailbox or mailbox.path.rstrip("/")
        raise


def deliver_mbox(base, mailbox, envelope, original, config, read_chunk, point):
    from vdeliver import mbox
    methods = config.get_list("virtual_mailbox_lock")
    unknown = set(methods) - {"fcntl", "flock", "dotlock"}
    if unknown:
        raise ConfigError(f"virtual_mailbox_lock: unknown method {', '.join(sorted(unknown))}")
    path = mbox.deliver(base, mailbox.path, read_chunk, envelope.sender, envelope.recipient,
                        original, methods, config.get_time("mbox_lock_timeout"),
                        config.get_bool("write_delivery_headers"), point)
    return Delivery(mailbox, path)


def deliver_maildir(base, mailbox, envelope, original, config, read_chunk, point, tables=None):
    headers = config.get_bool("write_delivery_headers")

    def write_message(fd):
        return message.copy_message(fd, read_chunk, envelope.sender, envelope.recipient, original,
                                    headers)

    quota_wanted = (config.get("virtual_mailbox_quota_maps").strip()
                    or config.get("virtual_mailbox_quota_default").strip())
    folder_mode = config.get_choice("extension_folder", ("no", "existing", "create"))
    notes = []
    root_fd, shown = safepath.open_directory(base, mailbox.path)
    box_fd, box_shown, relative = root_fd, shown, mailbox.path.rstrip("/")
    try:
        safepath.check_mailbox_owner(root_fd, shown)
        if folder_mode != "no":
            box_fd, box_shown, relative = choose_folder(
                root_fd, shown, relative, envelope.recipient, config, folder_mode, notes)
        gate = None
        if quota_wanted:
            gate = quota_gate(root_fd, shown, envelope.recipient, config, tables)
        route, home = None, None
        if config.get_bool("sieve"):
            home = sieve_home(base, mailbox, envelope.recipient, config, tables, root_fd, shown)
            route = sieve_route(home, root_fd, shown, mailbox.path.rstrip("/"), box_fd, box_shown,
                                relative, envelope, config, notes, tables is not None)
        try:
            stored = maildir.store(box_fd, box_shown, write_message, route, gate, point)
        finally:
            if home is not None:
                home.close()
            if route is not None:
                route.close()
        # Committed: what follows may add a note, never change the outcome.
        if gate is not None and config.get("quota_warning_thresholds").strip():
            notes.append(after_commit(warn_if_due, root_fd, shown, gate, envelope.recipient, config))
        files = route.files(stored) if route is not None else [f"{relative}/{stored[0]}"]
        return Delivery(mailbox, ", ".join(files) or "nowhere (discarded)",
                        [note for note in notes if note])
    finally:
        if box_fd != root_fd:
            maildir.close_quietly(box_fd)
        maildir.close_quietly(root_fd)


def sieve_home(base, mailbox, recipient, config, tables, root_fd=None, shown=""):
    """The recipient's home (`~`): virtual_home_maps, looked up as the mailbox is,
    relative to the base; by default the Maildir itself (root_fd, when it is open)."""
    from vdeliver import sievescripts
    relative = mailbox.path.rstrip("/")
    if not config.get_list("virtual_home_maps"):
        if root_fd is not None:
            return sievescripts.Place(posix.dup(root_fd), shown)
    else:
        folded, delimiter = address.fold(recipient), config.get("recipient_delimiter")
        if tables is None:
            found = resolve.search(resolve.open_maps(config, "virtual_home_maps"), folded, delimiter)
        else:
            with tables.quota_lock:  # the daemon's threads share these connections
                found = resolve.search(tables.home, folded, delimiter)
        if found is not None:
            relative = resolve.check_path(found[2].strip().rstrip("/"), found[0].spec, found[1])
    return sievescripts.open_home(base, relative)


class SieveRoute:
    """maildir.store()'s route for a recipient with Sieve scripts: run them on the
    message in tmp/ and turn the Plan into Targets (INBOX: the mailbox, or the
    +extension folder extension_folder chose; folders below the Maildir)."""

    def __init__(self, scripts, home, root_fd, shown, box_fd, box_shown, relative, box_relative,
                 envelope, config, notes, cache):
        self.scripts, self.home = scripts, home
        self.root_fd, self.shown, self.box_fd, self.box_shown = root_fd, shown, box_fd, box_shown
        self.relative, self.box_relative = relative, box_relative
        self.envelope, self.config, self.notes, self.cache = envelope, config, notes, cache
        self.shown_targets = []
        self.opened = []

    def __call__(self, open_message, size):
        pipe = not self.cache and "vdeliver.filtering" not in sys.modules
        if pipe:
            # The pipe command (one thread, a new process per message): the Sieve modules
            # from their .pyc files, as the pipe modules were (vdeliver/__init__.py).
            import vdeliver
            vdeliver.load_modules(vdeliver.SIEVE_MODULES)
        from vdeliver import filtering, folders, sievescripts
        from vdeliver.errors import SieveReject
        if pipe:
            # Every object so far lives as long as the process: out of the cyclic
            # collector's sight, which would walk them all again during the compile
            # (a generation-1 collection: 0.4 ms here).
            import gc
            gc.freeze()
        plan = filtering.plan(self.config, self.envelope, self.scripts, self.home, open_message,
                              self.folder_exists, self.cache)
        base = self.shown[:-len(self.relative)] if self.shown.endswith(self.relative) else ""
        self.notes.append("sieve: ran " + ", ".join(
            path[len(base):] if base and path.startswith(base) else path for path in plan.scripts))
        self.notes.extend(plan.notes)
        for script, lines in plan.user_log:
            sievescripts.write_user_log(script, lines)
        if plan.reject is not None:
            raise SieveReject(plan.reject)
        targets = []
        for store in self.one_per_directory(plan.stores):
            try:
                targets.append(self.target(store))
            except folders.UNUSABLE as error:
                return self.keep_instead(store, error)
        return targets

    def one_per_directory(self, stores):
        """keep stores into the +extension folder when extension_folder chose one, and an
        explicit fileinto "INBOX" (folder "") into the INBOX itself: stores that name the
        same directory are one target (one copy, the last flags win)."""
        from vdeliver import filtering
        box_folder = None if self.box_relative == self.relative else \
            self.box_relative[len(self.relative) + 1:]
        seen, out = {}, []
        for store in stores:
            if store.folder == box_folder or (store.folder == "" and box_folder is None):
                store = filtering.Store(None, store.flags)
            if store.folder in seen:
                out[seen[store.folder]] = store
            else:
                seen[store.folder] = len(out)
                out.append(store)
        return out

    def keep_instead(self, store, error):
        """A folder of the Plan cannot be opened or made (a symlink, a name too long for
        the filesystem): as Pigeonhole, the script's actions are dropped and the message
        is kept in INBOX, never deferred for something every retry would repeat."""
        from vdeliver import filtering, sievescripts
        self.close()
        self.shown_targets = []
        detail = one_line(getattr(error, "detail", "") or str(error), 300)
        self.notes.append(f"sieve: cannot store into {one_line(store.folder, 100)} ({detail}):"
                          " kept in INBOX")
        for script in self.scripts:
            if script.kind == "personal":
                sievescripts.write_user_log(script, [
                    f"error: fileinto: cannot store into {one_line(store.folder, 300)}",
                    "error: script failed: message kept in INBOX"])
        return [self.target(filtering.Store(None))]

    def folder_exists(self, directory):
        try:
            st = posix.stat(directory, dir_fd=self.root_fd, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_mode & 0o170000) == 0o040000

    def target(self, store):
        from vdeliver import folders
        if store.folder is None:
            fd, shown, relative = self.box_fd, self.box_shown, self.box_relative
        elif store.folder == "":  # fileinto "INBOX" beside an +extension folder
            fd, shown, relative = self.root_fd, self.shown, self.relative
        else:
            try:
                fd = folders.open_folder(self.root_fd, self.shown, store.folder, store.create)
            except FileNotFoundError:
                raise MailboxUnavailable(f"folder {self.shown}/{store.folder} vanished") from None
            self.opened.append(fd)
            shown, relative = f"{self.shown}/{store.folder}", f"{self.relative}/{store.folder}"
        system = "".join(sorted(filtering_letters(store.flags)))
        words = [flag for flag in store.flags if not flag.startswith("\\")]
        letters = ""
        if words:  # IMAP keywords: only then the keywords module
            from vdeliver import keywords
            letters, dropped = keywords.letters(fd, words)
            if dropped:
                self.notes.append(f"keywords not stored in {relative} (26 in use): {', '.join(dropped)}")
        self.shown_targets.append(relative)
        info = f":2,{system}{letters}" if system or letters else ""
        return maildir.Target(fd, shown, info)

    def close(self):
        for fd in self.opened:
            maildir.close_quietly(fd)
        self.opened = []

    def files(self, stored):
        return [f"{relative}/{name}" for relative, name in zip(self.shown_targets, stored)]


def filtering_letters(flags):
    from vdeliver.filtering import SYSTEM_FLAGS
    return [SYSTEM_FLAGS[flag.lower()] for flag in flags if flag.lower() in SYSTEM_FLAGS]


def sieve_route(home, root_fd, shown, relative, box_fd, box_shown, box_relative, envelope, config,
                notes, cache):
    """A SieveRoute when the recipient has a script to run, else None (nothing of
    vdeliver.sieve is imported then)."""
    from vdeliver import sievescripts
    if home.problem:
        notes.append(home.problem)
    scripts = sievescripts.find(config, home, config.get_size("sieve_max_script_size"))
    if not scripts:
        return None
    return SieveRoute(scripts, home, root_fd, shown, box_fd, box_shown, relative, box_relative,
                      envelope, config, notes, cache)


def after_commit(step, *args):
    """Run a step that follows the commit point: its failure is a note for the log."""
    try:
        return step(*args)
    except Exception as error:  # noqa: BLE001 - the message is delivered; only report
        return f"{getattr(step, '__name__', 'step')} failed: {error}"


def choose_folder(root_fd, shown, relative, recipient, config, mode, notes):
    from vdeliver import folders
    local, _ = address.split_domain(recipient)
    _, extension = address.split_extension(local, config.get("recipient_delimiter"))
    encoding = config.get_choice("folder_name_encoding", ("utf7", "utf8"))
    choice = folders.choose(root_fd, shown, extension, mode, encoding)
    if choice.why:
        notes.append(choice.why)
    if choice.name is None:
        return root_fd, shown, relative
    return choice.fd, f"{shown}/{choice.name}", f"{relative}/{choice.name}"


def quota_gate(root_fd, shown, recipient, config, tables=None):
    from vdeliver import quota
    limit = quota.limit_for(recipient, config, tables)
    if limit is None:
        return None
    grace = quota.parse_grace(config.get("quota_grace"), limit)
    bounce = config.get_choice("quota_exceeded_action", ("defer", "bounce")) == "bounce"
    return quota.Gate(root_fd, shown, limit, grace, bounce, config.get_time("quota_lock_timeout"))


def warn_if_due(root_fd, shown, gate, recipient, config):
    from vdeliver import quotawarn
    try:
        thresholds = [float(item.rstrip("%")) for item in config.get_list("quota_warning_thresholds")]
    except ValueError:
        return "quota_warning_thresholds is not a list of percentages: no warning"
    return quotawarn.maybe_warn(root_fd, shown, gate, address.fold(recipient), thresholds,
                                config.get("quota_warning_template"))
