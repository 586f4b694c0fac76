"""POSIX extended regular expressions for :regex, on RE2 (bounded time).

Pigeonhole compiles :regex keys with regcomp(REG_EXTENDED [| REG_ICASE]) and
matches leftmost-longest. RE2 with posix_syntax and longest_match gives the same
semantics in linear time, and understands the [[:digit:]]-style bracket classes.
i;ascii-casemap and i;unicode-casemap match case-insensitively, i;octet exactly.

The re2 module is imported on first use only: scripts without :regex never pay
for it. Never: fall back to Python's backtracking `re` (catastrophic backtracking
on hostile patterns); print (RE2's error logging is turned off).
Raises: RegexError for a pattern RE2 rejects or when RE2 is not installed.
"""

_re2 = None
_cache = {}
MAX_PATTERN = 4096          # a key longer than a variable value cannot be meant
MAX_MEM = 8 << 20           # RE2's program memory budget per pattern


class RegexError(Exception):
    pass


def _module():
    global _re2
    if _re2 is None:
        try:
            import re2
        except ImportError:
            raise RegexError("regular expression engine (google-re2) is not installed") from None
        _re2 = re2
    return _re2


def compile_pattern(pattern, comparator):
    icase = comparator.name != "i;octet"
    key = (pattern, icase)
    pat = _cache.get(key)
    if pat is not None:
        return pat
    if len(pattern) > MAX_PATTERN:
        raise RegexError("pattern is too long")
    re2 = _module()
    opts = re2.Options()
    opts.posix_syntax = True
    opts.longest_match = True
    opts.case_sensitive = not icase
    opts.log_errors = False
    opts.max_mem = MAX_MEM
    # POSIX "." and [^x] match newlines too (no REG_NEWLINE).
    opts.dot_nl = True
    opts.never_nl = False
    try:
        pat = re2.compile(pattern, opts)
    except Exception as e:          # re2.error carries bytes
        msg = e.args[0] if e.args else str(e)
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        raise RegexError(str(msg)) from None
    if len(_cache) > 512:
        _cache.clear()
    _cache[key] = pat
    return pat
