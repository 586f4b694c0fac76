"""texthash: a postmap source file read into memory at open (dict_thash.c).

Never: return a value for a key it does not hold; a missing or unreadable file
is a TableError (defer), not "not found".
"""
from vdeliver.errors import TableError
from vdeliver.tables.textfile import read_entries


class TextHashTable:
    fixed_keys = True

    def __init__(self, spec, entries):
        self.spec = spec
        self.entries = entries

    def lookup(self, key):
        return self.entries.get(key)


def open_table(name, spec):
    try:
        entries = read_entries(name)
    except OSError as err:
        raise TableError(f"cannot open {spec}: {err.strerror}") from None
    return TextHashTable(spec, entries)
