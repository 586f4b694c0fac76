"""Every Sieve extension, registered by importing its module (core first: the
others extend its commands and tests).

Never: do anything at import time beyond registering.
"""
from . import core  # noqa: F401
from . import (encoded_character, fileinto, envelope, reject, copy, subaddress, variables, relational, regex,  # noqa: F401
               imap4flags, body, include, environment, mailbox, date, index, ihave, mime,
               editheader, spamtest, vacation, enotify, duplicate)
