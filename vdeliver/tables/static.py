"""static:value or static:{ value with spaces }: the same value for every key.

Threads: no state beyond the value: no lock.
"""
from vdeliver.tables import strip_braces


class StaticTable:
    fixed_keys = True

    def __init__(self, spec, value):
        self.spec = spec
        self.value = value

    def lookup(self, key):
        return self.value


def open_table(name, spec):
    return StaticTable(spec, strip_braces(name))
