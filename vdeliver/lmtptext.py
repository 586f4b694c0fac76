"""LMTP's text: the arguments of MAIL FROM and RCPT TO in, reply lines out.

Pure functions and data, tested without sockets; lmtp.py is their one user
(the pipe command never loads this module: each module it loads costs every
message). parse_path() splits `FROM:<path> PARAM=value...` (RFC 5321 4.1.2),
decode_orcpt() decodes ORCPT's xtext (RFC 3461 4.2); lmtp_reply() is the
reply line of a DeliveryError (its status, RFC 3463, picks the code through
LMTP_CODES) and LMTP_REPLIES holds every other reply the front end sends, so
lmtp.py holds no status literal.

Never: reply with more than an error's public text (its detail is for the
log); give a 2xx or 5xx code to a 4.x.x status, or a 2xx or 4xx code to a
5.x.x one.
"""
HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")


def parse_path(argument, keyword):
    """'FROM:<a@b> SIZE=10' -> ('a@b', {'SIZE': '10'}); (None, {}) when malformed."""
    if argument[:len(keyword)].upper() != keyword:
        return None, {}
    rest = argument[len(keyword):].strip()
    if not rest.startswith("<"):
        return None, {}
    end = closing_bracket(rest)
    if end < 0:
        return None, {}
    path = rest[1:end]
    if ":" in path and path.startswith("@"):  # a source route: drop it (RFC 5321 4.1.2)
        path = path.split(":", 1)[1]
    params = {}
    for item in rest[end + 1:].split():
        key, _, value = item.partition("=")
        params[key.upper()] = value
    return path, params


def closing_bracket(rest):
    """Index of the '>' that ends '<path>', skipping quoted strings ("a>b"@x); -1 if none."""
    in_quote, index = False, 1
    while index < len(rest):
        ch = rest[index]
        if ch == "\\" and in_quote:
            index += 1
        elif ch == '"':
            in_quote = not in_quote
        elif ch == ">" and not in_quote:
            return index
        index += 1
    return -1


def decode_orcpt(value):
    """ORCPT=rfc822;addr (xtext, RFC 3461 4.2) or utf-8;addr (RFC 6533 3: UTF-8 as it
    is, \\x{HEX} escapes) -> addr in the external (quoted) form it was sent in; other
    types are ignored.

    `+` must be followed by two hex digits to be decoded; anything else is kept as
    it is (int(" 1", 16) would otherwise turn `+ 1` into a control character)."""
    kind, _, text = value.partition(";")
    kind = kind.lower()
    if kind == "utf-8" and text:
        return decode_utf8_addr(text)
    if kind != "rfc822" or not text:
        return ""
    return decode_xtext(text)


def decode_xtext(text, strict=False):
    """xtext (RFC 3461 4) -> text, its bytes read as UTF-8: Postfix xtext-encodes the
    bytes of an SMTPUTF8 address (j+C3+B6rg -> jörg). Not strict: a `+` without two
    hex digits after it, or any other character, is kept as it is. strict: ValueError
    for anything but xtext (a character outside "!".."~", a "=", a bad escape)."""
    out, index = bytearray(), 0
    while index < len(text):
        ch, pair = text[index], text[index + 1:index + 3]
        if ch == "+" and len(pair) == 2 and pair[0] in HEX_DIGITS and pair[1] in HEX_DIGITS:
            out.append(int(pair, 16))
            index += 3
            continue
        if strict and (ch == "+" or ch == "=" or not "!" <= ch <= "~"):
            raise ValueError("not xtext")
        out += ch.encode("utf-8", "surrogateescape")
        index += 1
    return out.decode("utf-8", "surrogateescape")


def decode_utf8_addr(text):
    """utf-8-addr-xtext / -unitext (RFC 6533 3) -> the address: each \\x{HEX} (1 to 6
    hex digits, not a control character or a surrogate) becomes its character; anything
    else is kept as it is."""
    out, index = [], 0
    while index < len(text):
        if text.startswith("\\x{", index):
            end = text.find("}", index + 3)
            digits = text[index + 3:end] if end > 0 else ""
            if 1 <= len(digits) <= 6 and all(c in HEX_DIGITS for c in digits):
                point = int(digits, 16)
                if 0x20 <= point < 0x7F or 0xA0 <= point < 0xD800 or 0xE000 <= point <= 0x10FFFF:
                    out.append(chr(point))
                    index = end + 1
                    continue
        out.append(text[index])
        index += 1
    return "".join(out)


# --- replies (RFC 2033, RFC 5321 4.2.3 codes, RFC 3463 status), as data ---

# The reply code of a DeliveryError, by the first prefix of its status that matches.
LMTP_CODES = (
    ("5.1.7", 501), ("5.1.", 550), ("5.2.2", 552), ("5.2.3", 552), ("5.3.4", 552),
    ("5.7.1", 550),  # a Sieve reject (RFC 5429 section 2.1.1: 550 5.7.1 <reason>)
    ("5.", 554),
    ("4.2.2", 452), ("4.3.1", 452), ("4.5.3", 452), ("", 451),
)

# Every other reply the LMTP front end sends, by name ({} is filled in by the caller).
LMTP_REPLIES = {
    "greeting": "220 {} LMTP vdeliver ready",
    "ok": "250 2.0.0 Ok",
    "sender ok": "250 2.1.0 Ok",
    "recipient ok": "250 2.1.5 Ok",
    "delivered": "250 2.0.0 <{}> delivered",
    "cannot verify": "252 2.5.0 cannot verify, but will try to deliver",
    "start data": "354 End data with <CR><LF>.<CR><LF>",
    "bye": "221 2.0.0 Bye",
    "too many connections": "421 4.3.2 too many connections, try again later",
    "shutting down": "421 4.3.2 shutting down",
    "idle timeout": "421 4.4.2 idle timeout, closing connection",
    "data timeout": "421 4.4.2 timeout during DATA, closing connection",
    "internal error": "421 4.3.0 internal software error, closing connection",
    "too many recipients": "452 4.5.3 too many recipients",
    "use lhlo": "500 5.5.1 this is an LMTP server: use LHLO",
    "unknown command": "500 5.5.2 command not recognized",
    "not implemented": "502 5.5.1 command not implemented",
    "line too long": "500 5.5.2 line too long",
    "lhlo syntax": "501 5.5.4 LHLO needs a host name",
    "mail syntax": "501 5.5.4 syntax: MAIL FROM:<address>",
    "rcpt syntax": "501 5.5.4 syntax: RCPT TO:<address>",
    "vrfy syntax": "501 5.5.4 syntax: VRFY address",
    "lhlo first": "503 5.5.1 send LHLO first",
    "nested mail": "503 5.5.1 nested MAIL command",
    "mail first": "503 5.5.1 need MAIL before RCPT",
    "no recipients": "503 5.5.1 no valid recipients",
}


def lmtp_reply(error):
    """The LMTP reply line for a DeliveryError: code, RFC 3463 status, public text."""
    status = error.status
    code = next(code for prefix, code in LMTP_CODES if status.startswith(prefix))
    return f"{code} {status} {error.public_text()}"
