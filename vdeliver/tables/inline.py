"""inline:{ key=value, { key = value with, commas } } (DATABASE_README).

Threads: the entries are a dict built at open, only read: no lock.


Never: accept an entry without '=': the whole table is refused (ConfigError).
"""
from vdeliver.address import fold
from vdeliver.config import split_list
from vdeliver.errors import ConfigError
from vdeliver.tables import strip_braces


class InlineTable:
    fixed_keys = True

    def __init__(self, spec, entries):
        self.spec = spec
        self.entries = entries

    def lookup(self, key):
        return self.entries.get(key)


def open_table(name, spec):
    name = name.strip()
    if not (name.startswith("{") and name.endswith("}")):
        raise ConfigError(f"{spec}: expected inline:{{ key=value, ... }}")
    entries = {}
    for item in split_list(strip_braces(name)):
        key, sep, value = strip_braces(item).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"{spec}: entry {item!r} is not key=value")
        entries.setdefault(fold(key), value)
    return InlineTable(spec, entries)
