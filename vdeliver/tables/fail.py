"""fail:name: a table whose every lookup fails (dict_fail.c), e.g. to hold mail on purpose.

Like Postfix, it is a pattern-style table: it sees only the full address.

Threads: no state: no lock.


Never: answer "not found"; every lookup is a TableError (defer).
"""
from vdeliver.errors import TableError


class FailTable:
    fixed_keys = False
    note = None

    def __init__(self, spec):
        self.spec = spec

    def lookup(self, key):
        raise TableError(f"{self.spec}: table lookup failed on purpose (fail: table)")


def open_table(name, spec):
    return FailTable(spec)
