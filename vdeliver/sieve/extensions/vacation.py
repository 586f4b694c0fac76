"""RFC 5230 vacation and RFC 6131 vacation-seconds: produce a "vacation" Action
whose params carry days, seconds (the period, clamped to
settings sieve_vacation_min_period..sieve_vacation_max_period; defaults as
Pigeonhole 0.5 (Dovecot 2.3): minimum 1d, no maximum (0), default period 7d), subject, from, addresses, mime and handle.

Whether a reply is sent (RFC 5230 §4.5 checks, the duplicate database) is
decided by the delivery side. Never: send mail or read the duplicate database.
"""
from .. import registry
from ..registry import NUMBER, STRING, STRINGS, TagSpec
from ..result import Action
from .core import valid_address


DAY = 86400


def _setting(run, key, default):
    value = run.settings.get(key)
    return default if value is None else int(value)


def _check(v, node):
    frm = node.tags.get("from")
    if type(frm) is str and valid_address(frm) is None:
        v.error(node.line, f"specified :from address '{frm}' is invalid for vacation action")
    # :addresses items are not checked: Pigeonhole accepts any string there (they are
    # only compared with the message's recipient headers).


def _vacation(run, node):
    tags = node.tags
    lo = _setting(run, "sieve_vacation_min_period", DAY)
    hi = _setting(run, "sieve_vacation_max_period", 0)          # 0: no maximum
    default = _setting(run, "sieve_vacation_default_period", 7 * DAY)
    days = tags.get("days")
    seconds = tags.get("seconds")
    if days is not None:
        period = days * DAY
    elif seconds is not None:
        period = seconds
    else:
        period = default
    if hi > 0:
        period = min(period, hi)
    period = max(period, lo)
    reason = run.expand(node.args[0])
    subject = run.expand(tags["subject"]) if "subject" in tags else None
    frm = run.expand(tags["from"]) if "from" in tags else None
    mime = bool(tags.get("mime"))
    handle = run.expand(tags["handle"]) if "handle" in tags else None
    if handle is None:
        # Pigeonhole's default handle: the reason, :subject, :from and :mime together
        handle = f"{reason}\0{subject or ''}\0{frm or ''}\0{'1' if mime else '0'}"
    params = {"days": days, "seconds": period, "subject": subject, "from": frm,
              "addresses": tuple(run.expand_all(tags.get("addresses", []))), "mime": mime,
              "handle": handle}
    run.add(Action("vacation", reason=reason, line=node.line, params=params))


registry.command("vacation", extension="vacation", positional=(STRING,), run=_vacation, check=_check,
                 tags={"days": TagSpec("days", "vacation", arg=NUMBER, group="period"),
                       "seconds": TagSpec("seconds", "vacation-seconds", arg=NUMBER, group="period"),
                       "subject": TagSpec("subject", "vacation", arg=STRING),
                       "from": TagSpec("from", "vacation", arg=STRING),
                       "addresses": TagSpec("addresses", "vacation", arg=STRINGS),
                       "mime": TagSpec("mime", "vacation"),
                       "handle": TagSpec("handle", "vacation", arg=STRING)})
