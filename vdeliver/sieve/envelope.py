"""The SMTP envelope a Sieve run sees (envelope test, vacation, redirect).

Never: parse or rewrite the addresses; they come from the delivery core as given.
"""
from .value import Value


class Envelope(Value):
    """sender "" is the null reverse-path <>."""
    __slots__ = ("sender", "recipient", "original_recipient", "auth")

    def __init__(self, sender="", recipient="", original_recipient="", auth=""):
        object.__setattr__(self, "sender", sender)
        object.__setattr__(self, "recipient", recipient)
        object.__setattr__(self, "original_recipient", original_recipient)
        object.__setattr__(self, "auth", auth)
