"""Postfix-style lookup tables: `type:name` -> an object with lookup(key).

Each table type lives in its own module, imported only when a table of that
type is opened (the pipe command pays for what it uses). A table object has:
  spec        the `type:name` text, for logs
  fixed_keys  True for tables that take derived keys (user@dom, @dom);
              False for pattern tables (regexp:), which see the full address only
  lookup(key) the value, or None when not found; raises TableError when it
              cannot look (file missing, database down) — never returns "" .

Threads: in the LMTP daemon a table is looked up by several threads at once
(its lmtp_delivery_threads lookup threads, and the delivery threads asking
the quota and home maps), so every table type is safe for that by itself,
each module's docstring says how: read-only data (texthash, inline, static,
regexp, pcre, cdb: pread()), a pool of connections (pgsql, mysql, sqlite:
pool.py, POOL_SIZE of them), or a lock of its own per table where one
lookup's state cannot be shared (ldap, socketmap, lmdb and hash/btree with
their file locks) -- never one lock for all tables.

Never: treat "could not look" as "not found"; that would bounce mail.
"""
from _thread import _count as thread_count
from sys import modules as loaded_modules

from vdeliver.errors import ConfigError

# Connections one database table may keep (pool.py). 0: the pipe command's one thread,
# one connection, no locking; the LMTP daemon sets lmtp_delivery_threads before it opens
# its tables (daemon.main).
POOL_SIZE = 0

# type -> module in this package; each module has open_table(name, spec).
TYPES = {
    "texthash": "texthash",
    "inline": "inline",
    "static": "static",
    "regexp": "regexp",
    "pcre": "pcre",
    "hash": "berkeley",
    "btree": "berkeley",
    "cdb": "cdb",
    "lmdb": "lmdbfile",
    "sqlite": "sqlite",
    "pgsql": "pgsql",
    "mysql": "mysql",
    "ldap": "ldap",
    "socketmap": "socketmap",
    "unionmap": "combine",
    "pipemap": "combine",
    "fail": "fail",
}


def open_table(spec):
    table_type, colon, name = spec.partition(":")
    if not colon or not name:
        raise ConfigError(f"table {spec!r}: expected type:name")
    if table_type == "proxy":
        return open_table(name)  # proxymap is Postfix-internal: open the table directly
    module_name = TYPES.get(table_type)
    if module_name is None:
        raise ConfigError(f"table {spec}: unsupported table type {table_type}:")
    if f"vdeliver.tables.{module_name}" not in loaded_modules and not thread_count():
        # From its .pyc as the pipe modules are (vdeliver.load_modules: 0.1-0.2 ms less than
        # the import system's finders in a fresh process); on any trouble the import below.
        # Only with no other thread: load_modules takes no import lock (the LMTP daemon
        # opens tables on its lookup thread, and imports the usual way).
        import vdeliver
        vdeliver.load_modules((f"tables/{module_name}",))
    module = __import__(f"vdeliver.tables.{module_name}", fromlist=["open_table"])
    return module.open_table(name, spec)


def strip_braces(name):
    """`{ text }` -> `text`; the inline:/static: forms Postfix accepts."""
    name = name.strip()
    if name.startswith("{") and name.endswith("}"):
        return name[1:-1].strip()
    return name
