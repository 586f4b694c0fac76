"""The SMTP envelope a Sieve run sees (envelope test, vacation, redirect).

Never: parse or rewrite the addresses; they come from the delivery core as given.
"""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str = ""                # "" is the null reverse-path <>
    recipient: str = ""
    original_recipient: str = ""
    auth: str = ""
