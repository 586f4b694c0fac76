"""Recipient -> Mailbox, in virtual(8)'s lookup order, under virtual_mailbox_base.

Keys, in order: `user+ext@domain`, `user@domain`, `@domain`, each address
key first in quoted form when its local part needs quotes
(address.lookup_queries()). Each key goes to every table of
virtual_mailbox_maps before the next key is tried; pattern tables (regexp:)
see only the full address. The first hit wins. The result is a path
relative to virtual_mailbox_base: a trailing `/` means Maildir, else mbox.

Never: return a path that is absolute, holds a `..` component, a NUL or a
control character (UnsafeMailboxPath: defer, nothing written); never treat an
empty result or a table error as "not found" (TableError: defer). Not found
raises UnknownUser (5.1.1).
"""
from vdeliver import address
from vdeliver.errors import ConfigError, TableError, UnknownUser, UnsafeMailboxPath
from vdeliver.tables import open_table, texthash

MAILDIR, MBOX = "maildir", "mbox"


class Mailbox:
    """Where one recipient's mail goes."""
    __slots__ = ("recipient", "table", "key", "result", "path", "format")

    def __init__(self, recipient, table, key, result):
        self.recipient = recipient  # folded address
        self.table = table          # spec of the table that answered
        self.key = key              # the key that matched
        self.result = result        # the table's value
        self.path = check_path(result, table, key)  # relative to the base
        self.format = MAILDIR if result.endswith("/") else MBOX

    def __repr__(self):
        return f"Mailbox({self.recipient!r} -> {self.path!r} {self.format} via {self.table} {self.key!r})"


def open_tables(config):
    specs = config.get_list("virtual_mailbox_maps")
    if not specs:
        raise ConfigError("virtual_mailbox_maps is empty")
    texthash.CACHE_DIRECTORY = config.get("table_cache_directory").strip()
    tables = [open_table(spec) for spec in specs]
    for table in tables:
        if getattr(table, "note", None):  # e.g. hash: answered through postmap -q
            from vdeliver import log
            log.log(config, f"{table.spec}: {table.note}", "warning")
    return tables


def close_tables(tables):
    """Release what open tables hold (files, connections), e.g. after the LMTP daemon's
    reload; tables of union:/pipemap: are closed with them. Never raises."""
    for table in tables:
        close = getattr(table, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass
        close_tables(getattr(table, "tables", ()))


def resolve(recipient, config, tables=None):
    """Find the mailbox of one recipient address (as given by Postfix)."""
    if tables is None:
        tables = open_tables(config)
    folded = address.fold(recipient)
    for key, full in address.lookup_queries(folded, config.get("recipient_delimiter")):
        for table in tables:
            if not full and not table.fixed_keys:
                continue
            result = table.lookup(key)
            if result is None:
                continue
            if not result.strip():
                raise TableError(f"{table.spec}: empty result for {key}")
            return Mailbox(folded, table.spec, key, result.strip())
    raise UnknownUser(reason=f"user unknown: {recipient}")


def check_path(result, table, key):
    where = f"{table} result for {key}"
    if result.startswith("/"):
        raise UnsafeMailboxPath(f"{where} is an absolute path")
    if address.has_control_characters(result):
        raise UnsafeMailboxPath(f"{where} contains a control character")
    parts = result.split("/")
    if ".." in parts:
        raise UnsafeMailboxPath(f"{where} contains '..'")
    return result
