"""The delivery core shared by the pipe front end (cli) and the LMTP front end.

deliver(): check the envelope, resolve the recipient's mailbox, and write the
message into it. Returns a Delivery; every failure is a DeliveryError.

Never: print, exit or read sys.argv (front ends do); never write mail for a
recipient that did not resolve; never deliver to an mbox yet (defer 4.3.5
until mbox delivery exists, rather than create a file where a Maildir may
have been meant).
"""
from vdeliver import address, maildir, message, resolve
from vdeliver.errors import ConfigError


class Envelope:
    __slots__ = ("sender", "recipient", "original_recipient")

    def __init__(self, sender, recipient, original_recipient=""):
        self.sender = address.check_sender(sender)
        self.recipient = address.check_recipient(recipient)
        self.original_recipient = address.check_recipient(original_recipient) if original_recipient else ""


class Delivery:
    __slots__ = ("mailbox", "file")

    def __init__(self, mailbox, file):
        self.mailbox = mailbox  # resolve.Mailbox
        self.file = file        # path of the new file, relative to the base


def mailbox_base(config):
    base = config.get("virtual_mailbox_base")
    if not base:
        raise ConfigError("virtual_mailbox_base is not set")
    if not base.startswith("/"):
        raise ConfigError(f"virtual_mailbox_base {base} is not an absolute path")
    return base


def deliver(envelope, config, read_chunk, tables=None):
    """Resolve envelope.recipient and deliver the message read_chunk() yields."""
    base = mailbox_base(config)
    mailbox = resolve.resolve(envelope.recipient, config, tables)
    if mailbox.format != resolve.MAILDIR:
        raise ConfigError(f"{mailbox.table} result {mailbox.result!r} has no trailing '/':"
                          " mbox delivery is not supported yet")
    original = envelope.original_recipient if config.get_bool("enable_original_recipient") else ""

    def write_message(fd):
        return message.copy_message(fd, read_chunk, envelope.sender, envelope.recipient, original)

    return Delivery(mailbox, maildir.deliver(base, mailbox.path, write_message))
