"""regexp: Postfix regexp_table(5) files, matched with Python's `re`.

Rules are tried in file order against the whole key; the first match wins.
The file's grammar (if/endif, continuation lines) is rulefile.py's, shared
with pcre:; this module is the dialect. Forms: `/pattern/flags result`,
`!/pattern/flags result`, `/pat1/!/pat2/ result` (regexp only: pat1 matches
and pat2 does not), `if /pattern/flags` ... `endif` (nesting).
The delimiter is any non-alphanumeric character; a backslash escapes it.
Flags toggle: `i` case-insensitive (on by default), `m` multi-line (off),
`x` extended syntax (on). `$1`..`$n`, `${n}`, `$(n)` in the result expand to
the matched group (empty when the group did not take part); `$$` is `$`.

POSIX ERE and Python `re` differ; this module translates the common
constructs (`[[:alpha:]]` classes, literal backslash inside brackets,
`\\<` `\\>`) and refuses (ConfigError: the mail defers) what it cannot match
the same way: basic regular expressions (`x` flag), `(?...)`, lazy or
possessive quantifiers. Alternation is leftmost-first in Python where POSIX is
leftmost-longest: this changes which text `$n` captures only for
alternatives that are prefixes of each other.

Under smtputf8_enable = yes (address.py) a key that is not valid UTF-8 is
not matched (Postfix skips the lookup) and a result that is not valid UTF-8
is a TableError (dict_utf8.c); under no, both are bytes as they are.

Threads: the rules are compiled at open and only read (a compiled pattern and
its match objects are safe to use from several threads): no lock.


Never: load a rule it cannot translate faithfully; never run at import time.
"""
import re

from vdeliver import address
from vdeliver.address import is_utf8
from vdeliver.errors import ConfigError, TableError
from vdeliver.tables import rulefile
from vdeliver.tables.textfile import ISSPACE, read_pattern_file

POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
    "lower": "a-z", "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f", "cntrl": r"\x00-\x1f\x7f", "print": r" -~", "graph": r"!-~",
}


class RegexpTable:
    fixed_keys = False

    def __init__(self, spec, rules):
        self.spec = spec
        self.rules = rules

    def lookup(self, key):
        utf8 = address.SMTPUTF8_ENABLE
        if utf8 and not is_utf8(key):
            return None  # not UTF-8 under smtputf8_enable = yes: Postfix skips the lookup
        rule, found = rulefile.first_rule(self.rules, key)
        if rule is None:
            return None
        value = substitute(rule.result, found)
        if utf8 and not is_utf8(value):
            raise TableError(f"{self.spec}: key {key!r}: result is not valid UTF-8")
        return value


def open_table(name, spec):
    return RegexpTable(spec, parse_rules(read_pattern_file(name, spec), spec))


def parse_rules(text, spec="regexp"):
    return rulefile.parse(text, spec, parse_match, parse_if)


def parse_match(line, where):
    """`/pattern/flags result` or `/pat1/flags!/pat2/flags result` -> (condition, result)."""
    first, wanted, rest = parse_pattern(line, where)
    condition = condition_of(first, wanted)
    if rest.startswith("!"):  # regexp's own form: and pat2 does not match (!! : does)
        second, second_wanted, rest = parse_pattern(rest, where)
        condition = both(condition, condition_of(second, second_wanted))
    result = rest.strip(ISSPACE)
    check_result(result, first, wanted, where)
    return condition, result


def parse_if(text, where):
    pattern, wanted, _ = parse_pattern(text, where)  # text after the pattern: ignored
    return condition_of(pattern, wanted)


def condition_of(pattern, wanted):
    return pattern.search if wanted else rulefile.negated(pattern.search)


def both(first, second):
    """Holds when both hold; the result is expanded from the first pattern's match."""
    def holds(subject):
        found = first(subject)
        return None if found is None or second(subject) is None else found
    return holds


def parse_pattern(text, where):
    """Return (compiled, match_wanted, rest) for `!*/pattern/flags rest`."""
    wanted, i = True, 0
    while i < len(text) and (text[i] == "!" or text[i].isspace()):
        if text[i] == "!":
            wanted = not wanted
        i += 1
    if i >= len(text):
        raise ConfigError(f"{where}: no pattern")
    delimiter = rulefile.delimiter(text[i], where)
    start = i = i + 1
    while i < len(text) and text[i] != delimiter:
        i += 2 if text[i] == "\\" else 1
    if i >= len(text):
        raise ConfigError(f"{where}: no closing delimiter {delimiter!r}")
    pattern = text[start:i]
    i += 1
    ignore_case, multiline, extended = True, False, True
    while i < len(text) and not text[i].isspace() and text[i] != "!":
        flag = text[i]
        if flag == "i":
            ignore_case = not ignore_case
        elif flag == "m":
            multiline = not multiline
        elif flag == "x":
            extended = not extended
        else:
            raise ConfigError(f"{where}: unknown flag {flag!r}")
        i += 1
    if not extended:
        raise ConfigError(f"{where}: basic regular expressions (flag x) are not supported")
    flags = (re.IGNORECASE if ignore_case else 0) | (re.MULTILINE if multiline else re.DOTALL)
    try:
        compiled = re.compile(translate(pattern, where), flags)
    except re.error as err:
        raise ConfigError(f"{where}: bad pattern: {err}") from None
    return compiled, wanted, text[i:]


def translate(pattern, where):
    """POSIX ERE -> Python re, or ConfigError where the meaning would differ."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            out.append({"<": r"\b(?=\w)", ">": r"\b(?<=\w)"}.get(nxt, "\\" + nxt))
            i += 2
        elif ch == "[":
            end, text = translate_bracket(pattern, i, where)
            out.append(text)
            i = end
        elif ch == "(" and pattern.startswith("(?", i):
            raise ConfigError(f"{where}: '(?' is not POSIX regular expression syntax")
        elif ch in "*+?}" and i + 1 < n and pattern[i + 1] in "?+":
            raise ConfigError(f"{where}: lazy or possessive quantifiers are not POSIX syntax")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def translate_bracket(pattern, start, where):
    """Translate `[...]` starting at `start`; return (index after it, text)."""
    i, out = start + 1, ["["]
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        out.append(r"\]")
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2:end] if end > 0 else ""
            if name not in POSIX_CLASSES:
                raise ConfigError(f"{where}: unknown character class [:{name}:]")
            out.append(POSIX_CLASSES[name])
            i = end + 2
        elif pattern.startswith("[=", i) or pattern.startswith("[.", i):
            raise ConfigError(f"{where}: collating elements in brackets are not supported")
        else:
            ch = pattern[i]
            out.append("\\" + ch if ch in "\\[&~|" else ch)  # literal in POSIX brackets
            i += 1
    if i >= len(pattern):
        raise ConfigError(f"{where}: unbalanced [")
    out.append("]")
    return i + 1, "".join(out)


def check_result(result, pattern, wanted, where):
    numbers = [int(ref) for kind, ref in parse_result(result, where) if kind == "group"]
    if numbers and not wanted:
        raise ConfigError(f"{where}: $number in the result of a negative match")
    if numbers and max(numbers) > pattern.groups:
        raise ConfigError(f"{where}: ${max(numbers)} but the pattern has {pattern.groups} groups")


def parse_result(result, where="regexp"):
    """Split a result into ("text", s) and ("group", n) parts (mac_parse syntax)."""
    parts, i, n = [], 0, len(result)
    literal = []
    while i < n:
        ch = result[i]
        if ch != "$":
            literal.append(ch)
            i += 1
            continue
        if result.startswith("$$", i):
            literal.append("$")
            i += 2
            continue
        if i + 1 < n and result[i + 1] in "{(":
            close = "}" if result[i + 1] == "{" else ")"
            end = result.find(close, i + 2)
            if end < 0:
                raise ConfigError(f"{where}: unbalanced {result[i + 1]} in result")
            ref, i = result[i + 2:end], end + 1
        else:
            j = i + 1
            while j < n and (result[j].isalnum() or result[j] == "_"):
                j += 1
            ref, i = result[i + 1:j], j
        # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
        if not (ref.isascii() and ref.isdigit()) or int(ref) < 1:
            raise ConfigError(f"{where}: bad replacement ${ref}")
        if literal:
            parts.append(("text", "".join(literal)))
            literal = []
        parts.append(("group", ref))
    if literal:
        parts.append(("text", "".join(literal)))
    return parts


def substitute(result, found):
    if "$" not in result:
        return result
    out = []
    for kind, value in parse_result(result):
        if kind == "text":
            out.append(value)
        else:
            out.append(found.group(int(value)) or "" if found else "")
    return "".join(out)
