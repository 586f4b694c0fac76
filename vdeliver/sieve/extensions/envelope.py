"""RFC 5228 §5.4 envelope test: "from", "to" and Pigeonhole's "auth" part.
"to" is the original recipient when the envelope has one (Pigeonhole does so).

Never: parse a header here; the envelope comes from the delivery core.
"""
from .. import match, registry
from ..registry import STRINGS
from .core import constant_strings

PARTS = ("from", "to", "auth")


def _split(addr):
    if "@" in addr:
        local, _, domain = addr.rpartition("@")
        return local, domain
    return addr, None


def _values(run, node):
    env = run.envelope
    part = registry.ADDRESS_PARTS[node.tags.get("address-part", "all")][1]
    out = []
    for name in run.expand_all(node.args[0]):
        name = name.lower()
        if name == "from":
            addr = env.sender
        elif name == "to":
            addr = env.original_recipient or env.recipient
        elif name == "auth":
            if not env.auth:
                continue
            addr = env.auth
        else:
            continue
        addr = addr.strip("<>")
        if addr == "":
            # RFC 5228 §5.4: the null reverse-path compares as the empty string
            out.append(None if node.tags.get("address-part") == "detail" else "")
            continue
        local, domain = _split(addr)
        out.append(part(local, domain, run))
    return out


def _check(v, node):
    for name in constant_strings(node.args[0]):
        if name.lower() not in PARTS:
            v.error(node.line, f"specified envelope part '{name}' is not supported by the envelope test")


registry.test("envelope", extension="envelope", positional=(STRINGS, STRINGS), comparator=True,
              match=True, address_part=True, check=_check,
              run=lambda run, node: match.match(run, node.match, _values(run, node), node.args[1]))
