"""RFC 5228 §2.4.2.4 encoded-character: ${hex:...} and ${unicode:...} in strings,
decoded once at compile time (before variables see the string).

Never: decode an invalid sequence; it stays as written.
"""
import re

from .. import registry


_ENC = re.compile(r"\$\{(hex|unicode):([\s0-9A-Fa-f]*)\}", re.IGNORECASE)


def _decode(v, line):
    def decode(m):
        kind, body = m.group(1).lower(), m.group(2).split()
        if not body:
            return m.group(0)                     # "${hex:}" stays as written
        if kind == "hex":
            if any(len(x) > 2 for x in body):
                return m.group(0)
            try:
                return bytes(int(x, 16) for x in body).decode("utf-8", "replace")
            except ValueError:
                return m.group(0)
        chars = []
        for x in body:
            cp = int(x, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                v.error(line, f"invalid unicode character 0x{cp:08x} in encoded character substitution")
                return m.group(0)
            chars.append(chr(cp))
        return "".join(chars)
    return decode


def _hook(v, s, line):
    if "${" not in s:
        return s
    return _ENC.sub(_decode(v, line), s)


registry.string_hook("encoded-character", _hook, order=10)   # before variables see the string
