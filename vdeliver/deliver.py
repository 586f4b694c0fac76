"""The delivery core shared by the pipe front end (cli) and the LMTP front end.

deliver(): check the envelope, resolve the recipient's mailbox, and write the
message into it: an mbox (mbox.py; with Sieve scripts, mboxroute.py) for a result
without a trailing `/`,
otherwise the Maildir, or its Maildir++ folder for a +extension when
extension_folder says so (folders.py), through the quota gate when a quota
applies (quota.py), followed by a quota warning when one is due
(quotawarn.py). Returns a Delivery; every failure is a DeliveryError.

Never: print, exit or read sys.argv (front ends do); write mail for a
recipient that did not resolve; let a quota warning or a folder problem fail
a delivery; let anything after the commit point (a Sieve result's outgoing
mail: route.after_commit()) change the outcome. Modules for mbox, folders and quota are imported only when used:
the pipe command pays for what is configured.
"""

import posix

from vdeliver import address, maildir, message, resolve, safepath
from vdeliver.errors import ConfigError, DeliveryError, MailboxFull, MailboxFullDeferred, one_line


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
            delivery = deliver_mbox(base, mailbox, envelope, original, config, read_chunk, point,
                                    tables)
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


def deliver_mbox(base, mailbox, envelope, original, config, read_chunk, point, tables=None):
    from vdeliver import mbox
    methods = config.get_list("virtual_mailbox_lock")
    unknown = set(methods) - {"fcntl", "flock", "dotlock"}
    if unknown:
        raise ConfigError(f"virtual_mailbox_lock: unknown method {', '.join(sorted(unknown))}")
    if config.get_bool("sieve") and mbox_may_have_scripts(config):
        from vdeliver import mboxroute
        notes = []
        paths = mboxroute.deliver(base, mailbox, envelope, original, config, read_chunk, point,
                                  tables, notes)
        return Delivery(mailbox, ", ".join(paths) or "nowhere (discarded)", notes)
    path = mbox.deliver(base, mailbox.path, read_chunk, envelope.sender, envelope.recipient,
                        original, methods, config.get_time("mbox_lock_timeout"),
                        config.get_bool("write_delivery_headers"), point)
    return Delivery(mailbox, path)


def mbox_may_have_scripts(config):
    """A personal script needs a home, which only virtual_home_maps gives an mbox
    recipient; admin scripts apply to everyone. False: no Sieve module is loaded."""
    return any(config.get(name).strip() for name in ("sieve_before", "sieve_after", "sieve_default",
                                                     "virtual_home_maps"))


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
        suppress = config.get_bool("duplicate_suppression")
        sieve = config.get_bool("sieve") and may_have_scripts(config, root_fd)
        if sieve or suppress:
            if tables is None:  # the pipe command: from their .pyc files (vdeliver/__init__.py)
                import vdeliver
                if not hasattr(vdeliver, "sieveroute"):
                    vdeliver.load_modules(vdeliver.SIEVE_ROUTE_MODULES)
            from vdeliver import sieveroute
            home = sieveroute.sieve_home(base, mailbox, envelope.recipient, config, tables,
                                         root_fd, shown)
        if sieve:
            route = sieveroute.sieve_route(home, root_fd, shown, mailbox.path.rstrip("/"), box_fd,
                                           box_shown, relative, envelope, config, notes,
                                           tables is not None)
        if suppress:
            from vdeliver import duplicates
            route = duplicates.Suppressor(route, home, box_fd, box_shown, relative, config, notes)
        try:
            stored = maildir.store(box_fd, box_shown, write_message, route, gate, point)
            if route is not None:
                route.after_commit()  # outgoing mail, duplicate records; never raises
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


def may_have_scripts(config, root_fd):
    """False only when no Sieve script can apply: no admin script, no virtual_home_maps,
    and no personal script in the Maildir (one lstat). Then nothing of Sieve is loaded."""
    if (config.get("sieve_before").strip() or config.get("sieve_after").strip()
            or config.get("sieve_default").strip() or config.get("virtual_home_maps").strip()):
        return True
    path = config.get("sieve_script").strip()
    if not path:
        return False
    if not path.startswith("~/"):
        return True
    try:
        posix.stat(path[2:], dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # let the full search say what is wrong
    return True


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
    choice = folders.choose(root_fd, shown, extension, mode, encoding,
                            folders.courier_namespace(config))
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
