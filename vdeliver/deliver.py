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

from vdeliver import address, maildir, message, resolve, safepath
from vdeliver.errors import ConfigError, MailboxFull, MailboxFullDeferred


class Envelope:
    __slots__ = ("sender", "recipient", "original_recipient")

    def __init__(self, sender, recipient, original_recipient=""):
        self.sender = address.check_sender(sender)
        self.recipient = address.check_recipient(recipient)
        self.original_recipient = address.check_recipient(original_recipient) if original_recipient else ""


class Delivery:
    __slots__ = ("mailbox", "file", "notes")

    def __init__(self, mailbox, file, notes=()):
        self.mailbox = mailbox  # resolve.Mailbox
        self.file = file        # the delivered file, relative to the base
        self.notes = list(notes)  # things the log should say (folder fallback, quota warning)

    def summary(self):
        kind = "mbox" if self.mailbox.format == resolve.MBOX else "maildir"
        return "; ".join([f"delivered to {kind} {self.file}"] + self.notes)


def mailbox_base(config):
    base = config.get("virtual_mailbox_base")
    if not base:
        raise ConfigError("virtual_mailbox_base is not set")
    if not base.startswith("/"):
        raise ConfigError(f"virtual_mailbox_base {base} is not an absolute path")
    return base


def deliver(envelope, config, read_chunk, tables=None, mailbox=None, before_commit=None):
    """Resolve envelope.recipient and deliver the message read_chunk() yields.

    mailbox: the resolve.Mailbox when the front end resolved it already (LMTP
    does at RCPT time); tables: already opened tables (the LMTP daemon keeps them);
    before_commit: called just before the commit point (a Maildir's link into
    new/, the start of an mbox append); what it raises fails the delivery with
    nothing left behind (the LMTP daemon's shutdown, lmtp.Ticket).
    """
    base = mailbox_base(config)
    if mailbox is None:
        mailbox = resolve.resolve(envelope.recipient, config, tables)
    original = envelope.original_recipient if config.get_bool("enable_original_recipient") else ""
    try:
        if mailbox.format == resolve.MBOX:
            if before_commit is not None:
                before_commit()  # an mbox append is not abandoned half-way
            return deliver_mbox(base, mailbox, envelope, original, config, read_chunk)
        return deliver_maildir(base, mailbox, envelope, original, config, read_chunk, before_commit)
    except MailboxFullDeferred as full:
        # EDQUOT/EFBIG from the filesystem, or maildirsize: the same policy decides.
        if config.get_choice("quota_exceeded_action", ("defer", "bounce")) == "bounce":
            raise MailboxFull(full.detail) from None
        raise


def deliver_mbox(base, mailbox, envelope, original, config, read_chunk):
    from vdeliver import mbox
    methods = config.get_list("virtual_mailbox_lock")
    unknown = set(methods) - {"fcntl", "flock", "dotlock"}
    if unknown:
        raise ConfigError(f"virtual_mailbox_lock: unknown method {', '.join(sorted(unknown))}")
    path = mbox.deliver(base, mailbox.path, read_chunk, envelope.sender, envelope.recipient,
                        original, methods, config.get_time("mbox_lock_timeout"),
                        config.get_bool("write_delivery_headers"))
    return Delivery(mailbox, path)


def deliver_maildir(base, mailbox, envelope, original, config, read_chunk, before_commit=None):
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
            gate = quota_gate(root_fd, shown, envelope.recipient, config)
        commit_gate = gate if before_commit is None else gated(gate, before_commit)
        name = maildir.deliver(box_fd, box_shown, write_message, commit_gate)
        if gate is not None and config.get("quota_warning_thresholds").strip():
            note = warn_if_due(root_fd, shown, gate, envelope.recipient, config)
            if note:
                notes.append(note)
        return Delivery(mailbox, f"{relative}/new/{name}", notes)
    finally:
        if box_fd != root_fd:
            posix.close(box_fd)
        posix.close(root_fd)


def gated(gate, before_commit):
    """maildir.deliver()'s gate: the quota gate (if any), then before_commit(), last thing
    before the link into new/."""
    import contextlib

    @contextlib.contextmanager
    def enter(size):
        with gate(size) if gate is not None else contextlib.nullcontext():
            before_commit()
            yield
    return enter


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


def quota_gate(root_fd, shown, recipient, config):
    from vdeliver import quota
    limit = quota.limit_for(recipient, config)
    if limit is None:
        return None
    grace = quota.parse_grace(config.get("quota_grace"), limit)
    bounce = config.get_choice("quota_exceeded_action", ("defer", "bounce")) == "bounce"
    return quota.Gate(root_fd, shown, limit, grace, bounce)


def warn_if_due(root_fd, shown, gate, recipient, config):
    from vdeliver import quotawarn
    try:
        thresholds = [float(item.rstrip("%")) for item in config.get_list("quota_warning_thresholds")]
    except ValueError:
        return "quota_warning_thresholds is not a list of percentages: no warning"
    return quotawarn.maybe_warn(root_fd, shown, gate, address.fold(recipient), thresholds,
                                config.get("quota_warning_template"))
