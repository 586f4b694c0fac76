"""Recipient and sender addresses: validate, fold case, split +extension, lookup keys.

Addresses arrive from pipe(8) in Postfix's internal (unquoted) form, decoded
from argv bytes with surrogateescape, so 8-bit and SMTPUTF8 addresses keep
their exact bytes (see to_bytes()). Tables are queried as virtual(8) does
(mail_addr_find(), "external first"): an address key whose local part is not
an RFC 822 dot-string is tried in quoted form first (`"john doe"@example.com`,
as a table writes it), then as it is.

Case folding and the bytes of a table key follow smtputf8_enable, as in
Postfix (casefold.c, dict_utf8.c): `yes` (the default, as Postfix with
compatibility_level >= 1) folds valid UTF-8 fully (str.casefold(), ICU's
u_strFoldCase: ß -> ss) and skips lookups of keys that are not valid UTF-8;
`no` lowercases ASCII only and looks up any bytes. The front ends set it
once per process from vdeliver.cf (set_smtputf8()), before opening a table.

Never: let CR, LF, NUL or another control character through: an address
reaches a header and a log line. Raises BadRecipientAddress / BadSenderAddress.
"""
from vdeliver.errors import BadRecipientAddress, BadSenderAddress

# Characters that make a local part need quotes (Postfix's is_822_dot_string()).
SPECIALS = frozenset('()<>@,;:\\"[] ')
# Postfix never splits these local parts at the delimiter (split_addr.c).
NEVER_SPLIT = ("postmaster", "mailer-daemon", "double-bounce")
MAX_ADDRESS_LENGTH = 1000
# smtputf8_enable of vdeliver.cf; set_smtputf8() changes it (once per process, or per reload).
SMTPUTF8_ENABLE = True
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # str.translate


def has_control_characters(text):
    if text.isprintable():  # fast path: no Cc character at all (C speed)
        return False
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


def set_smtputf8(enabled):
    """smtputf8_enable: how fold(), table_key() and table_value() treat non-ASCII text."""
    global SMTPUTF8_ENABLE
    SMTPUTF8_ENABLE = bool(enabled)


def fold(address):
    """Case-fold for lookups, as Postfix's casefold() does under smtputf8_enable.

    yes: full Unicode folding of valid UTF-8 (ICU's ucasemap_utf8FoldCase();
    bytes that are not UTF-8, surrogate-escaped here, are kept as they are);
    no: ASCII only (lowercase()), every other byte kept.
    """
    if address.isascii():
        return address.lower()
    if SMTPUTF8_ENABLE:
        return address.casefold()
    return address.translate(ASCII_LOWER)


def table_key(key):
    """The bytes a fixed-key table is asked for, or None when Postfix skips the
    lookup: under smtputf8_enable = yes a key that is not valid UTF-8 cannot be
    in the table (dict_utf8.c); under no, the bytes are looked up as they are."""
    if SMTPUTF8_ENABLE:
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return key.encode("utf-8", "surrogateescape")


def table_value(data):
    """A table's value bytes -> str, or None when smtputf8_enable = yes refuses it
    (not valid UTF-8: dict_utf8.c blocks it as a configuration error, the caller
    raises TableError); under no, the bytes are kept (surrogateescape)."""
    if SMTPUTF8_ENABLE:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return data.decode("utf-8", "surrogateescape")


def is_utf8(text):
    """False for text (decoded with surrogateescape) that is not valid UTF-8."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def lookup_queries(address, delimiters):
    """[(key, full)] in the order virtual(8) queries its tables.

    lookup_keys(), with each address key (not @domain) preceded by its quoted
    form when that differs. full: the key is the whole address, which pattern
    tables (regexp:, pcre:) see too; the others go to fixed-key tables only.
    """
    keys = lookup_keys(address, delimiters)
    _, domain = split_domain(address)
    queries = []
    for index, key in enumerate(keys):
        if domain is None or index < len(keys) - 1:
            quoted = quote_local_part(key)
            if quoted != key:
                queries.append((quoted, index == 0))
        queries.append((key, index == 0))
    return queries


def quote_local_part(address):
    """`john doe@example.com` -> `"john doe"@example.com` (quote_822_local(), 8-bit clean)."""
    local, domain = split_domain(address)
    if is_dot_string(local):
        return address
    quoted = "".join("\\" + ch if ch in '"\\\r' else ch for ch in local)
    return f'"{quoted}"' + ("" if domain is None else "@" + domain)


def unquote_local_part(address):
    """`"john doe"@example.com` -> `john doe@example.com` (unquote_822_local()): SMTP/LMTP's
    external form to the internal form pipe(8) passes. Text after the last unquoted `@` is kept."""
    if '"' not in address and "\\" not in address:
        return address
    out, in_quote, domain_at = [], False, None
    index = 0
    while index < len(address):
        ch = address[index]
        if ch == '"':
            in_quote = not in_quote
        elif ch == "\\" and index + 1 < len(address):
            index += 1
            out.append(address[index])
        else:
            if ch == "@" and not in_quote:
                domain_at = (len(out), index)
            out.append(ch)
        index += 1
    if domain_at is None:
        return "".join(out)
    return "".join(out[:domain_at[0]]) + address[domain_at[1]:]


def is_dot_string(local):
    if not local or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return not any(ch in SPECIALS or ch < " " or ch == "\x7f" for ch in local)


def to_bytes(text):
    """Back to the exact bytes that arrived in argv."""
    return text.encode("utf-8", "surrogateescape")

