"""unionmap:{a, b, ...} and pipemap:{a, b, ...}: tables made of tables (dict_union.c, dict_pipe.c).

unionmap asks every table with the same key and joins the results found
with commas, in table order; not found anywhere is "not found". pipemap asks
the first table, gives its result to the next as the key, and so on; a miss
anywhere is "not found". An error in any table is a TableError. Both take
fixed_keys from their first table, as Postfix takes its match flags; a
fixed-key table inside pipemap gets its key folded, as Postfix folds it.

Threads: no state of their own; as safe as their members (each type says).


Never: accept an empty list or a member that is not type:name (ConfigError).
"""
from vdeliver.address import fold
from vdeliver.config import split_list
from vdeliver.errors import ConfigError


class UnionTable:
    note = None

    def __init__(self, spec, tables):
        self.spec = spec
        self.tables = tables
        self.fixed_keys = tables[0].fixed_keys
        self.note = joined_notes(tables)

    def lookup(self, key):
        found = [value for value in (table.lookup(key) for table in self.tables)
                 if value is not None]
        return ",".join(found) if found else None


class PipeTable:
    note = None

    def __init__(self, spec, tables):
        self.spec = spec
        self.tables = tables
        self.fixed_keys = tables[0].fixed_keys
        self.note = joined_notes(tables)

    def lookup(self, key):
        for position, table in enumerate(self.tables):
            if position and table.fixed_keys:
                key = fold(key)
            key = table.lookup(key)
            if key is None:
                return None
        return key


def members(name, spec):
    from vdeliver.tables import open_table
    name = name.strip()
    if not (name.startswith("{") and name.endswith("}")):
        raise ConfigError(f"{spec}: bad syntax; need {spec.partition(':')[0]}:{{type:name...}}")
    items = split_list(name[1:-1])
    if not items or any(":" not in item for item in items):
        raise ConfigError(f"{spec}: bad syntax; need {spec.partition(':')[0]}:{{type:name...}}")
    return [open_table(item) for item in items]


def open_table(name, spec):
    kind = UnionTable if spec.partition(":")[0] == "unionmap" else PipeTable
    return kind(spec, members(name, spec))


def joined_notes(tables):
    """The members' notes (e.g. "using postmap -q"), for the caller to log."""
    return "; ".join(table.note for table in tables if getattr(table, "note", None)) or None
