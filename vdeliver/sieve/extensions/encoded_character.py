"""RFC 5228 §2.4.2.4 encoded-character: ${hex:...} and ${unicode:...} in strings,
decoded once at compile time (before variables see the string).

Never: decode an invalid sequence; it stays as written.
"""
import re

from .. import registry

registry.capability("encoded-character")

_ENC = re.compile(r"\$\{(hex|unicode):([\s0-9A-Fa-f]*)\}", re.IGNORECASE)


def _decode(m):
    kind, body = m.group(1).lower(), m.group(2).split()
    try:
        if kind == "hex":
            if any(len(x) % 2 for x in body):
                data = bytes(int(x, 16) for x in body)
            else:
                data = bytes.fromhex("".join(body))
            return data.decode("utf-8")
        chars = []
        for x in body:
            cp = int(x, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                return m.group(0)
            chars.append(chr(cp))
        return "".join(chars)
    except (ValueError, UnicodeDecodeError):
        return m.group(0)


def _hook(v, s, line):
    if "${" not in s:
        return s
    return _ENC.sub(_decode, s)


registry.string_hook("encoded-character", _hook)
