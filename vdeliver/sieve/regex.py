r"""POSIX extended regular expressions for :regex, on RE2 (bounded time).

Pigeonhole compiles :regex keys with regcomp(REG_EXTENDED [| REG_ICASE]) and
matches leftmost-longest. RE2 with posix_syntax and longest_match gives the same
semantics in linear time, and understands the [[:digit:]]-style bracket classes.
i;ascii-casemap and i;unicode-casemap match case-insensitively, i;octet exactly.
translate() maps what glibc accepts beyond POSIX (\w, \b, \<, {,n}, literal
backslashes in brackets) onto RE2; back-references are refused (RE2 has none).

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


_RE2_PASS = set("wWsSbB")                  # GNU escapes RE2 knows (perl_classes, word_boundary)
_GNU_ANCHORS = {"<": r"\b", ">": r"\b", "`": r"\A", "'": r"\z"}   # RE2 has no \< \>: a word boundary


def translate(pattern):
    r"""A POSIX ERE as glibc's regcomp reads it -> RE2 syntax with the same meaning:
    a backslash is literal inside brackets; GNU's \w \s \b \< \> \` \' are kept or
    mapped; any other escaped letter is that letter (glibc: "\d" is "d"); "{,n}"
    is "{0,n}". Back-references (\1..\9) cannot be done in linear time: RegexError."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            i += 2
            if e in _RE2_PASS:
                out.append("\\" + e)
            elif e in _GNU_ANCHORS:
                out.append(_GNU_ANCHORS[e])
            elif e.isdigit() and e != "0":
                raise RegexError("back-references are not supported")
            elif e.isalnum():
                out.append(e)                     # an ordinary character, escaped for nothing
            else:
                out.append("\\" + e)
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1                            # a leading "]" is a member
            while j < n and pattern[j] != "]":
                if pattern.startswith("[:", j) or pattern.startswith("[=", j) or pattern.startswith("[.", j):
                    k = pattern.find(pattern[j + 1] + "]", j + 2)
                    j = n if k < 0 else k + 2
                else:
                    j += 1
            if j >= n:
                raise RegexError("unmatched [ in bracket expression")
            body = pattern[i + 1:j]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
            continue
        if c == "{" and pattern.startswith("{,", i):
            out.append("{0,")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def compile_pattern(pattern, comparator):
    icase = comparator.name != "i;octet"
    key = (pattern, icase)
    pat = _cache.get(key)
    if pat is not None:
        return pat
    if len(pattern) > MAX_PATTERN:
        raise RegexError("pattern is too long")
    translated = translate(pattern)
    re2 = _module()
    opts = re2.Options()
    opts.posix_syntax = True
    opts.longest_match = True
    opts.perl_classes = True                # \w \s (GNU extensions glibc's regcomp accepts)
    opts.word_boundary = True               # \b \B
    opts.case_sensitive = not icase
    opts.log_errors = False
    opts.max_mem = MAX_MEM
    # POSIX "." and [^x] match newlines too (no REG_NEWLINE).
    opts.dot_nl = True
    opts.never_nl = False
    try:
        pat = re2.compile(translated, opts)
    except re2.error as e:          # carries bytes; nothing broader: a time limit or a
        # signal raised by the caller's handler during the compile must end the delivery
        msg = e.args[0] if e.args else str(e)
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        raise RegexError(str(msg)) from None
    if len(_cache) > 512:
        _cache.clear()
    _cache[key] = pat
    return pat
