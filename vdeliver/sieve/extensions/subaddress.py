"""RFC 5233 subaddress: the :user and :detail address parts, split at the first
character of settings["recipient_delimiter"] (default "+", as Postfix and Dovecot).

Never: split when the delimiter setting is empty (then :detail finds nothing).
"""
from .. import registry



def _split(local, run):
    delims = run.settings.get("recipient_delimiter", "+")
    pos = min((i for i in (local.find(d) for d in delims) if i >= 0), default=-1) if delims else -1
    return (local, None) if pos < 0 else (local[:pos], local[pos + 1:])


registry.address_part("user", lambda local, domain, run: None if domain is None else _split(local, run)[0],
                      "subaddress")
registry.address_part("detail", lambda local, domain, run: None if domain is None else _split(local, run)[1],
                      "subaddress")
