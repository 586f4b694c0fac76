"""Comparators (RFC 4790, RFC 5228 §2.7.3): i;octet, i;ascii-casemap, i;ascii-numeric,
i;unicode-casemap.

A comparator offers fold() (the canonical form used for equality and substring
matching), equal(), and compare() for relational ordering; i;ascii-numeric has
no substring operations (RFC 4790 §9.1), which the validator enforces.

Never: raise on any input string; compare by locale.
"""

_ASCII_UPPER = {c: c + 32 for c in range(65, 91)}
_INF = float("inf")


class Comparator:
    name = ""
    substring = True     # supports :contains / :matches / :regex

    def fold(self, s):
        return s

    def equal(self, a, b):
        return self.fold(a) == self.fold(b)

    def compare(self, a, b):
        """-1, 0 or 1, for :value relational matches."""
        a, b = self.key(a), self.key(b)
        return (a > b) - (a < b)

    def key(self, s):
        return self.fold(s).encode("utf-8", "surrogateescape")


class Octet(Comparator):
    name = "i;octet"


class AsciiCasemap(Comparator):
    name = "i;ascii-casemap"

    def fold(self, s):
        return s.translate(_ASCII_UPPER)


class UnicodeCasemap(Comparator):
    """RFC 5051 approximated by Unicode case folding (no NFKD titlecase normalisation)."""
    name = "i;unicode-casemap"

    def fold(self, s):
        return s.casefold()


class AsciiNumeric(Comparator):
    """RFC 4790 §9.1: the leading digits as a number; no digits means positive infinity."""
    name = "i;ascii-numeric"
    substring = False

    def key(self, s):
        n = 0
        while n < len(s) and "0" <= s[n] <= "9":
            n += 1
        return int(s[:n]) if n else _INF

    def fold(self, s):
        return self.key(s)

    def equal(self, a, b):
        return self.key(a) == self.key(b)


COMPARATORS = {c.name: c for c in (Octet(), AsciiCasemap(), AsciiNumeric(), UnicodeCasemap())}
# The capability that must be required before a comparator can be named.
CAPABILITY = {"i;ascii-numeric": "comparator-i;ascii-numeric",
              "i;unicode-casemap": "comparator-i;unicode-casemap"}
DEFAULT = COMPARATORS["i;ascii-casemap"]
