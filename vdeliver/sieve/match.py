"""Match types (RFC 5228 §2.7.1, RFC 5229 §3.2, RFC 5231, draft-ietf-sieve-regex):
:is, :contains, :matches (with match values for ${N}), :value/:count and :regex.

match(run, spec, values, keys) -> bool, where spec is a MatchSpec built at compile
time. :matches runs a wildcard matcher without backtracking (segments between stars
found leftmost with str.find, under the run's CPU clock), :regex uses RE2
(linear time, leftmost-longest like POSIX regexec).

Never: use Python's backtracking `re` on script-supplied patterns; raise on input.
"""
from . import comparators

RELOPS = {"gt": lambda c: c > 0, "ge": lambda c: c >= 0, "lt": lambda c: c < 0,
          "le": lambda c: c <= 0, "eq": lambda c: c == 0, "ne": lambda c: c != 0}
MAX_MATCH_VALUES = 32      # Pigeonhole sieve-limits.h: SIEVE_MAX_MATCH_VALUES


class MatchSpec:
    """How a test matches: type (is contains matches regex value count), relop (for
    value/count), the comparator, and compiled patterns of constant :regex keys."""
    __slots__ = ("type", "relop", "comparator", "regexes")

    def __init__(self, type="is", relop="", comparator=comparators.DEFAULT, regexes=()):  # noqa: A002
        self.type, self.relop, self.comparator, self.regexes = type, relop, comparator, regexes

    def __repr__(self):
        return f"MatchSpec({self.type!r}, {self.relop!r}, {self.comparator.name!r})"


DEFAULT = MatchSpec()


class MatchError(Exception):
    """A run-time pattern problem (a variable :regex key that does not compile)."""


def match(run, spec, values, keys, capture=True):
    """True when any value matches any key. Sets the match variables of `run`
    (RFC 5229: only on success, only for :matches and :regex; never for the body
    test, capture=False, as Pigeonhole)."""
    t = spec.type
    cmp = spec.comparator
    if t == "count":
        n = sum(1 for v in values if v is not None)
        op = RELOPS[spec.relop]
        for k in keys:
            k = run.expand(k)
            if op(cmp.compare(str(n), k)):
                return True
        return False
    expanded = [run.expand(k) for k in keys]
    if t == "is":
        folded = [cmp.fold(k) for k in expanded]
        for v in values:
            if v is None:
                continue
            fv = cmp.fold(v)
            for fk in folded:
                if fv == fk:
                    return True
        return False
    if t == "contains":
        folded = [cmp.fold(k) for k in expanded]
        for v in values:
            if v is None:
                continue
            fv = cmp.fold(v)
            for fk in folded:
                if fk in fv:
                    return True
        return False
    if t == "value":
        op = RELOPS[spec.relop]
        for v in values:
            if v is None:
                continue
            for k in expanded:
                if op(cmp.compare(v, k)):
                    return True
        return False
    if t == "matches":
        for v in values:
            if v is None:
                continue
            for k in expanded:
                caps = wildcard(v, k, cmp, run.check_time)
                if caps is not None:
                    if capture:
                        run.set_match_values([v] + caps)
                    return True
        return False
    if t == "regex":
        from . import regex
        for i, k in enumerate(expanded):
            pat = spec.regexes[i] if i < len(spec.regexes) and spec.regexes[i] is not None else None
            if pat is None:
                try:
                    pat = regex.compile_pattern(k, cmp)
                except regex.RegexError as e:
                    raise MatchError(f"invalid regular expression '{k}' for regex match: {e}") from None
            for v in values:
                if v is None:
                    continue
                m = pat.search(v)
                if m is not None:
                    if capture:
                        run.set_match_values([m.group(0)] + [g or "" for g in m.groups()])
                    return True
        return False
    raise AssertionError(t)


def _parse_pattern(pattern):
    """Split a :matches pattern into segments between '*'. Each segment is a list of
    items: a one-character str (literal) or None ('?')."""
    segments, cur = [], []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            cur.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            segments.append(cur)
            cur = []
        elif c == "?":
            cur.append(None)
        else:
            cur.append(c)
        i += 1
    segments.append(cur)
    return segments


def _seg_at(value, pos, seg, fold):
    """Does seg match value at pos? value is already folded; seg literals folded."""
    if pos + len(seg) > len(value):
        return False
    for j, item in enumerate(seg):
        if item is not None and value[pos + j] != item:
            return False
    return True


_BYTEWISE = frozenset({"i;octet", "i;ascii-casemap"})


def _no_clock():
    pass


def wildcard(value, pattern, cmp, clock=_no_clock):
    """Match `value` against a :matches pattern. Returns the list of wildcard
    expansions (one per '*' and '?', RFC 5229 §3.2) or None. Stars take as little as
    possible except the last, which takes the rest. Segments between stars are
    found leftmost with str.find; worst case O(len(value) * len(pattern)), with
    `clock` (the run's CPU check) called during long searches.
    Under i;octet and i;ascii-casemap "?" is one octet, as in Pigeonhole."""
    if cmp.name in _BYTEWISE and not (value.isascii() and pattern.isascii()):
        caps = _wildcard(value.encode("utf-8", "surrogateescape").decode("latin-1"),
                         pattern.encode("utf-8", "surrogateescape").decode("latin-1"), cmp, clock)
        if caps is None:
            return None
        return [c.encode("latin-1").decode("utf-8", "replace") for c in caps]
    return _wildcard(value, pattern, cmp, clock)


def _find(fv, seg, start, limit, clock):
    """Leftmost p in [start, limit] where seg matches fv, or -1. Literal runs are
    found with str.find; `clock` is called now and then on long searches."""
    if None not in seg:
        return fv.find("".join(seg), start, limit + len(seg))
    # anchor on the literal run that occurs least often in the value
    runs, j = [], 0
    while j < len(seg):
        if seg[j] is None:
            j += 1
            continue
        e = j
        while e < len(seg) and seg[e] is not None:
            e += 1
        runs.append((j, e))
        j = e
    if not runs:                                        # only '?': any position fits
        return start if start <= limit else -1
    best, counted = None, {}
    for k, r in runs:
        text = "".join(seg[k:r])
        n = counted.get(text)          # the count of the first place it occurs: a heuristic
        if n is None:
            n = counted[text] = fv.count(text, start + k, limit + r)
            if n == 0:
                return -1              # this run fits nowhere: the segment cannot match
        if best is None or n < best[0]:
            best = (n, k, r)
    _n, k, r = best
    run = "".join(seg[k:r])
    q = fv.find(run, start + k, limit + r)
    tries = 0
    while q >= 0:
        p = q - k
        if _seg_at(fv, p, seg, None):
            return p
        tries += 1
        if tries & 0xFFF == 0:
            clock()
        q = fv.find(run, q + 1, limit + r)
    return -1


def _wildcard(value, pattern, cmp, clock):
    fold = cmp.fold
    fv = fold(value)
    if len(fv) != len(value):       # casefolding changed the length: capture folded text
        value = fv
    segments = [[(fold(x) if x is not None else None) for x in seg] for seg in _parse_pattern(pattern)]
    # folding may change a literal's length (unicode casemap); fall back to per-char items
    segments = [[y for x in seg for y in ([x] if x is None or len(x) == 1 else list(x))] for seg in segments]
    caps = []
    first = segments[0]
    if len(segments) == 1:
        if len(first) != len(fv) or not _seg_at(fv, 0, first, fold):
            return None
        return [value[j] for j, item in enumerate(first) if item is None]
    last = segments[-1]
    if len(first) + len(last) > len(fv) or not _seg_at(fv, 0, first, fold):
        return None
    end_start = len(fv) - len(last)
    if not _seg_at(fv, end_start, last, fold):
        return None
    caps.extend(value[j] for j, item in enumerate(first) if item is None)
    pos = len(first)
    for seg in segments[1:-1]:
        limit = end_start - len(seg)
        p = _find(fv, seg, pos, limit, clock) if seg else pos
        if p < 0 or p > limit:
            return None
        caps.append(value[pos:p])                       # the '*' before seg
        caps.extend(value[p + j] for j, item in enumerate(seg) if item is None)
        pos = p + len(seg)
    caps.append(value[pos:end_start])                   # the last '*'
    caps.extend(value[end_start + j] for j, item in enumerate(last) if item is None)
    return caps
