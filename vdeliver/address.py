"""Recipient and sender addresses: validate, fold case, split +extension, lookup keys.

Addresses arrive from pipe(8) in Postfix's internal (unquoted) form, decoded
from argv bytes with surrogateescape, so 8-bit and SMTPUTF8 addresses keep
their exact bytes (see to_bytes()).

Never: let CR, LF, NUL or another control character through: an address
reaches a header and a log line. Raises BadRecipientAddress / BadSenderAddress.
"""
from vdeliver.errors import BadRecipientAddress, BadSenderAddress

# Postfix never splits these local parts at the delimiter (split_addr.c).
NEVER_SPLIT = ("postmaster", "mailer-daemon", "double-bounce")
MAX_ADDRESS_LENGTH = 1000


def has_control_characters(text):
    return any(ch < " " or ch == "\x7f" for ch in text)


def check_recipient(address):
    if not address:
        raise BadRecipientAddress("empty recipient")
    if has_control_characters(address) or len(address) > MAX_ADDRESS_LENGTH:
        raise BadRecipientAddress("recipient contains control characters or is too long")
    return address


def check_sender(address):
    if has_control_characters(address) or len(address) > MAX_ADDRESS_LENGTH:
        raise BadSenderAddress("sender contains control characters or is too long")
    return address


def fold(address):
    """Case-fold for lookups, as Postfix does with smtputf8_enable=yes (casefold.c)."""
    return address.casefold() if not address.isascii() else address.lower()


def split_domain(address):
    """'user@dom' -> ('user', 'dom'); no '@' -> (address, None). Splits at the last '@'."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, None
    return local, domain


def split_extension(localpart, delimiters):
    """Split at the first delimiter character, as Postfix's split_addr().

    Returns (user, extension) or (localpart, None). Not split: no delimiter
    set, a local part that starts with a delimiter, and the special names.
    """
    if not delimiters or not localpart or localpart[0] in delimiters:
        return localpart, None
    if localpart.lower() in NEVER_SPLIT:
        return localpart, None
    for index, ch in enumerate(localpart):
        if ch in delimiters:
            return localpart[:index], localpart[index + 1:]
    return localpart, None


def lookup_keys(address, delimiters):
    """The keys virtual(8) tries, in order: user+ext@dom, user@dom, @dom.

    `address` must already be folded. Only the first key goes to pattern
    tables (regexp:, pcre:); all go to fixed-key tables.
    """
    keys = [address]
    local, domain = split_domain(address)
    user, extension = split_extension(local, delimiters)
    if extension is not None:
        keys.append(user if domain is None else f"{user}@{domain}")
    if domain is not None:
        keys.append(f"@{domain}")
    return keys


def to_bytes(text):
    """Back to the exact bytes that arrived in argv."""
    return text.encode("utf-8", "surrogateescape")
