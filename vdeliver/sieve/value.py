"""Value: the base of Sieve's small immutable values (Envelope, Limits, Action, Result).

A subclass names its fields in __slots__ and sets them in __init__ (its keyword
arguments are the field names) with object.__setattr__; Value makes them
read-only and gives equality, repr and replace(), as a frozen dataclass would.
Plain classes, not dataclasses: every delivery with a script imports these, and
`dataclasses` imports inspect (5 to 10 ms in a new process here), more than the
whole Sieve run.

Never: hold anything but the fields.
"""


class Value:
    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable: use replace()")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"

    def replace(self, **changes):
        """A copy with some fields changed (dataclasses.replace)."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return type(self)(**fields)
