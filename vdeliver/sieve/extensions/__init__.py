"""Every Sieve capability and the extension module that implements it, as data.

The core (RFC 5228) is imported now; an extension module is imported the first
time a script requires one of its capabilities (registry.load), and registers
its commands, tests, tags and hooks then. Defaults are Pigeonhole 0.5's
sieve_extensions; default=False ones must be enabled (as in Pigeonhole).

Never: do anything at import time beyond declaring and registering.
"""
from .. import registry

# capability, module, in Pigeonhole's default set, implies, announced in SIEVE
_TABLE = [
    ("fileinto", "fileinto", True, (), True),
    ("reject", "reject", True, (), True),
    ("envelope", "envelope", True, (), True),
    ("encoded-character", "encoded_character", True, (), True),
    ("vacation", "vacation", True, (), True),
    ("subaddress", "subaddress", True, (), True),
    ("comparator-i;ascii-numeric", "relational", True, (), True),
    ("relational", "relational", True, (), True),
    ("regex", "regex", True, (), True),
    ("imap4flags", "imap4flags", True, (), True),
    ("copy", "copy", True, (), True),
    ("include", "include", True, (), True),
    ("body", "body", True, (), True),
    ("variables", "variables", True, (), True),
    ("enotify", "enotify", True, (), True),
    ("environment", "environment", True, (), True),
    ("mailbox", "mailbox", True, (), True),
    ("date", "date", True, (), True),
    ("index", "index", True, (), True),
    ("ihave", "ihave", True, (), True),
    ("duplicate", "duplicate", True, (), True),
    ("mime", "mime", True, (), True),
    ("foreverypart", "mime", True, (), True),
    ("extracttext", "mime", True, (), True),
    # always there, never announced (RFC 5228 §2.7.3)
    ("comparator-i;octet", "", True, (), False),
    ("comparator-i;ascii-casemap", "", True, (), False),
    # registered but off by default, as in Pigeonhole
    ("ereject", "reject", False, (), True),
    ("vacation-seconds", "vacation", False, ("vacation",), True),
    ("editheader", "editheader", False, (), True),
    ("spamtest", "spamtest", False, (), True),
    ("spamtestplus", "spamtest", False, ("spamtest",), True),
    ("virustest", "spamtest", False, (), True),
    ("comparator-i;unicode-casemap", "relational", False, (), True),
    ("imapflags", "imap4flags", False, ("imap4flags",), False),   # the deprecated draft name
]
for _name, _module, _default, _implies, _announce in _TABLE:
    registry.capability(_name, _module, _default, _implies, _announce)

from . import core  # noqa: E402,F401  (RFC 5228: always loaded)
