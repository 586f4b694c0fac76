"""draft-ietf-sieve-regex :regex match type (POSIX ERE via RE2, see ..regex) and
the :quoteregex modifier of set.

Never: import re2 at import time.
"""
from .. import registry
from . import variables

registry.match_type("regex", "regex")

_SPECIAL = set("\\.[]()*+?{}|^$")


def quoteregex(value):
    return "".join("\\" + c if c in _SPECIAL else c for c in value)


variables.modifier("quoteregex", 20, quoteregex, extension="regex")
