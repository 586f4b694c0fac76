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

search() is that lookup order, written once: resolve() uses it for
virtual_mailbox_maps, quota.py for virtual_mailbox_quota_maps, query.py to
show every key it tries. open_tables() opens both lists together into one
Tables, which the LMTP daemon keeps and replaces on reload.
"""
import sys

from vdeliver import address
from vdeliver.errors import ConfigError, DeliveryError, TableError, UnknownUser, UnsafeMailboxPath
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


class Tables:
    """The open tables of one configuration: virtual_mailbox_maps and
    virtual_mailbox_quota_maps (the LMTP daemon keeps one, lmtp.Settings)."""
    __slots__ = ("mailbox", "quota", "home", "exports")

    def __init__(self, mailbox, quota=(), home=()):
        self.mailbox = list(mailbox)
        self.quota = list(quota)
        self.home = list(home)  # virtual_home_maps: the Sieve home (sieveroute.sieve_home)
        self.exports = {}  # what the daemon's socketmap service answers for (socketmapd.py)
        # The daemon's lookup and delivery threads use these side by side: each table is
        # safe for that by itself (tables/__init__.py), so there is no lock here.


def open_tables(config):
    """Both lists of tables, opened once (daemon.py: at start and on every reload)."""
    return Tables(open_maps(config, "virtual_mailbox_maps"),
                  open_maps(config, "virtual_mailbox_quota_maps"),
                  open_maps(config, "virtual_home_maps"))


def open_maps(config, name):
    """Open the tables a parameter lists; virtual_mailbox_maps must list one."""
    specs = config.get_list(name)
    if not specs and name == "virtual_mailbox_maps":
        raise ConfigError("virtual_mailbox_maps is empty")
    return open_specs(config, specs)


def open_specs(config, specs):
    """Open `type:name` tables with the configuration's table settings; log their notes."""
    texthash.CACHE_DIRECTORY = config.get("table_cache_directory").strip()
    tables = [open_table(spec) for spec in specs]
    socketmap = sys.modules.get("vdeliver.tables.socketmap")  # loaded by open_table, if used
    if socketmap is not None and any("socketmap:" in spec for spec in specs):
        socketmap.TIMEOUT = config.get_time("socketmap_timeout")  # read at lookup time
    for table in tables:
        if getattr(table, "note", None):  # e.g. hash: answered through postmap -q
            from vdeliver import log
            log.log(config, f"{table.spec}: {table.note}", "warning")
    return tables


def close_tables(tables):
    """Release what open tables hold (files, connections), e.g. after the LMTP daemon's
    reload: a Tables (every list of it) or a list; tables of unionmap:/pipemap: are
    closed with them. Never raises."""
    if isinstance(tables, Tables):
        tables = tables.mailbox + tables.quota + tables.home + [
            table for kind, table in tables.exports.values() if kind == "table"]
    for table in tables:
        close = getattr(table, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort; nothing is delivered here
                pass
        close_tables(getattr(table, "tables", ()))


SKIPPED = "skipped"  # what trace() is told for a pattern table and a derived key


def search(tables, folded, delimiter, trace=None):
    """virtual(8)'s lookup order: (table, key, value) of the first hit, or None.

    Each key (address.lookup_queries(): user+ext@domain, user@domain,
    @domain) goes to every table before the next key; a pattern table sees
    only the full address. trace(key, table, outcome), when given, hears of
    each step: the value, None (not found), SKIPPED, or the DeliveryError
    about to be raised (a table that cannot look: never "not found").
    """
    for key, full in address.lookup_queries(folded, delimiter):
        for table in tables:
            if not full and not table.fixed_keys:
                if trace is not None:
                    trace(key, table, SKIPPED)
                continue
            try:
                value = table.lookup(key)
            except DeliveryError as error:
                if trace is not None:
                    trace(key, table, error)
                raise
            if trace is not None:
                trace(key, table, value)
            if value is not None:
                return table, key, value
    return None


def resolve(recipient, config, tables=None, trace=None):
    """Find the mailbox of one recipient address (as given by Postfix).

    tables: a Tables opened already (the LMTP daemon's); None: open them now."""
    mailbox_tables = open_maps(config, "virtual_mailbox_maps") if tables is None else tables.mailbox
    folded = address.fold(recipient)
    found = search(mailbox_tables, folded, config.get("recipient_delimiter"), trace)
    if found is None:
        raise UnknownUser(reason=f"user unknown: {recipient}")
    table, key, result = found
    if not result.strip():
        raise TableError(f"{table.spec}: empty result for {key}")
    return Mailbox(folded, table.spec, key, result.strip())


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
