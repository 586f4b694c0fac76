"""RFC 7352 duplicate test: asks settings["duplicate_check"](handle, key, seconds,
last) -> bool (default: never a duplicate). The key is the Message-ID, or the
:header field, or :uniqueid; without one the test is false. :seconds is capped at
settings sieve_duplicate_max_period (default 2 days), default period 12 hours.
The callback answers each test; the delivery side records the message only
once the delivery succeeds, so two tests in one run give the same answer
(Pigeonhole 0.5.19 instead fails such a run silently).

Never: store anything; the callback owns the duplicate database.
"""
from .. import registry
from ..registry import NUMBER, STRING, TagSpec



def _duplicate(run, node):
    tags = node.tags
    if "uniqueid" in tags:
        key = run.expand(tags["uniqueid"])
    else:
        vals = run.header(run.expand(tags.get("header", "Message-ID")))
        if not vals:
            return False
        key = vals[0]
    maxp = int(run.settings.get("sieve_duplicate_max_period", 2 * 86400))
    seconds = tags.get("seconds")
    if seconds is None:
        seconds = int(run.settings.get("sieve_duplicate_default_period", 12 * 3600))
    seconds = min(seconds, maxp)
    handle = run.expand(tags["handle"]) if "handle" in tags else ""
    check = run.settings.get("duplicate_check")
    if check is None:
        return False
    return bool(check(handle, key, seconds, bool(tags.get("last"))))


registry.test("duplicate", extension="duplicate", run=_duplicate,
              tags={"handle": TagSpec("handle", "duplicate", arg=STRING),
                    "header": TagSpec("header", "duplicate", arg=STRING, group="key"),
                    "uniqueid": TagSpec("uniqueid", "duplicate", arg=STRING, group="key"),
                    "seconds": TagSpec("seconds", "duplicate", arg=NUMBER),
                    "last": TagSpec("last", "duplicate")})
