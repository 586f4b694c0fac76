"""RFC 5235 spamtest, spamtestplus (:percent) and virustest, configured as
Pigeonhole does: settings sieve_spamtest_status_header "Name[: regex]",
sieve_spamtest_status_type score|strlen|text, sieve_spamtest_max_value or
sieve_spamtest_max_header, sieve_spamtest_text_valueN (and sieve_virustest_*).

Unconfigured or no status header: the value "0" (not tested). Scores scale to
1..10 (spamtest), 0..100 (:percent), 1..5 (virustest).
Never: run a scanner; only a header the MTA added is read.
"""
from .. import match, registry
from ..registry import STRING, TagSpec



def _header_spec(spec):
    name, sep, rx = spec.partition(":")
    return name.strip(), rx.strip() if sep else None


def _extract(run, spec):
    """The value a header spec selects: the header, or its first regex group."""
    name, rx = _header_spec(spec)
    vals = run.header(name)
    if not vals:
        return None
    value = vals[0]
    if rx:
        from .. import comparators, regex
        try:
            m = regex.compile_pattern(rx, comparators.COMPARATORS["i;octet"]).search(value)
        except regex.RegexError:
            return None
        if m is None:
            return None
        value = m.group(1) if m.groups() else m.group(0)
    return value


def _decimal(text):
    try:
        return float(text.strip())
    except ValueError:
        return None


def value_of(run, prefix, percent, top):
    """RFC 5235 §3.2: "0" when not tested, else the ratio of score to maximum
    scaled to 1..top (truncated, as Pigeonhole computes it) or 0..100 (:percent)."""
    s = run.settings
    status = s.get(f"{prefix}_status_header")
    if not status:
        return "0"
    kind = s.get(f"{prefix}_status_type", "score")
    if kind == "text":
        maxv = float(top)
    else:
        if s.get(f"{prefix}_max_header"):
            raw_max = _extract(run, s[f"{prefix}_max_header"])
            maxv = _decimal(raw_max) if raw_max is not None else None
        else:
            maxv = _decimal(str(s.get(f"{prefix}_max_value", "")))
        if not maxv:
            return "0"
    raw = _extract(run, status)
    if raw is None:
        return "0"
    if kind == "text":
        score = None
        for n in range(0, top + 1):
            if s.get(f"{prefix}_text_value{n}") == raw:
                score = float(n)
                break
        if score is None:
            return "0"
    elif kind == "strlen":
        score = float(len(raw))
    else:
        score = _decimal(raw)
        if score is None:
            return "0"
    ratio = 0.0 if score < 0 else min(score / maxv, 1.0)
    if percent:
        return str(int(ratio * 100 + 0.001))
    return str(int(ratio * (top - 1) + 1.001))


def _spamtest(run, node):
    value = value_of(run, "sieve_spamtest", bool(node.tags.get("percent")), 10)
    return match.match(run, node.match, [value], [node.args[0]])


def _virustest(run, node):
    return match.match(run, node.match, [value_of(run, "sieve_virustest", False, 5)], [node.args[0]])


registry.test("spamtest", extension="spamtest", positional=(STRING,), comparator=True, match=True,
              default_comparator="i;ascii-numeric", run=_spamtest,
              tags={"percent": TagSpec("percent", "spamtestplus")})
registry.test("virustest", extension="virustest", positional=(STRING,), comparator=True, match=True,
              default_comparator="i;ascii-numeric", run=_virustest)
