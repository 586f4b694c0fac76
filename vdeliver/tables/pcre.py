"""pcre: Postfix pcre_table(5) files, matched with Python's `re` on bytes.

Rules are tried in file order against the whole key; the first match wins.
The file's grammar (if/endif, continuation lines) is rulefile.py's, shared
with regexp:; this module is the dialect. Forms: `/pattern/flags result`,
`!/pattern/flags result`, `if /pattern/flags` ... `endif` (nesting; `if
!/pattern/`). The delimiter is any character after
the optional `!`s; a backslash hides the next character from the delimiter
scan. Flags toggle, as dict_pcre.c: i (caseless, on), s (dotall, on), m
(multiline), x (extended), A (anchored), E (dollar matches only at the very
end), U (ungreedy); X is ignored (Postfix built with PCRE2, as Debian's, does
so). `$1`..`$n`, `${n}`, `$(n)` in the result expand to the matched text
(empty when the group did not take part); `$$` is `$`.

Postfix compiles PCRE without UTF mode: patterns and keys are bytes, `.` is
one byte, `i` folds ASCII only, `\\w \\d \\s \\b` are ASCII. Python's `re` on
bytes behaves the same, so the key is matched as its UTF-8 bytes. The
pattern is translated where the syntax differs (`\\z` `\\Z` `\\h` `\\v` `\\R`
`\\N` `\\e` `\\cX` `\\x{hh}` `\\o{}` `\\Q..\\E`, `(?<name>`, `(?'name'`,
`[[:alpha:]]`, a `{` that is not a quantifier, leading `(?imsx-imsx)`, the
E and U flags). What cannot be matched the same way is refused with a
ConfigError (the mail defers): recursion and subroutine calls, `(?|`,
conditionals, callouts, backtracking verbs `(*...)`, `\\g` `\\k` `\\p` `\\P`
`\\X` `\\C` `\\K` `\\G`, option settings in the middle of a pattern,
negated POSIX classes, multi-digit back references, U together with x.
Python also rejects look-behinds of varying length, which PCRE accepts.

A rule that Postfix would skip with a warning (unknown flag, no closing
delimiter, a bad `$` reference, `$n` beyond the pattern's groups or in a
negative rule, a pattern PCRE cannot compile) makes the whole table a
ConfigError here: a typo defers mail instead of silently changing which rule
answers.

Threads: as regexp:, the compiled rules are only read: no lock.


Never: load a rule it cannot translate faithfully. Under smtputf8_enable =
yes (address.py) never match a key that is not valid UTF-8 (Postfix skips
those lookups), and a result that is not valid UTF-8 is a TableError
(dict_utf8.c); under no, both are bytes as they are.
"""
import re

from vdeliver import address
from vdeliver.address import is_utf8, table_key, table_value
from vdeliver.errors import ConfigError, TableError
from vdeliver.tables import rulefile
from vdeliver.tables.regexp import POSIX_CLASSES, parse_result
from vdeliver.tables.textfile import ISSPACE, read_pattern_file

PCRE_CLASSES = dict(POSIX_CLASSES, word=r"\w", ascii=r"\x00-\x7f")
HSPACE = r"\t \xa0"
VSPACE = r"\n\x0b\x0c\r\x85"
SIMPLE_ESCAPES = set("dDwWsSbBA")
# Escapes that translate to assertions or to nothing: a quantifier after them is refused.
NOT_REPEATABLE = ("", r"\b", r"\B", r"\A", r"\Z", r"(?=\n?\Z)")
FLAG_BITS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class PcreTable:
    fixed_keys = False
    note = None

    def __init__(self, spec, rules):
        self.spec = spec
        self.rules = rules

    def lookup(self, key):
        subject = table_key(key)
        if subject is None:
            return None  # not UTF-8 under smtputf8_enable = yes: Postfix skips the lookup
        rule, found = rulefile.first_rule(self.rules, subject)
        if rule is None:
            return None
        value = self.expand(rule.result, found, key)
        if not value:  # maps.c: an empty result is an error, never "found"
            raise TableError(f"{self.spec}: empty result for key {key!r}")
        return value

    def expand(self, result, found, key):
        text, parts = result
        if parts is None:
            if not text.isascii() and address.SMTPUTF8_ENABLE and not is_utf8(text):
                raise TableError(f"{self.spec}: key {key!r}: result is not valid UTF-8")
            return text
        out = []
        for kind, value in parts:
            if kind == "text":
                out.append(value.encode("utf-8", "surrogateescape"))
            else:
                out.append(found.group(int(value)) or b"")
        text = table_value(b"".join(out))
        if text is None:
            raise TableError(f"{self.spec}: key {key!r}: result is not valid UTF-8")
        return text


def open_table(name, spec):
    return PcreTable(spec, parse_rules(read_pattern_file(name, spec), spec))


def parse_rules(text, spec="pcre"):
    return rulefile.parse(text, spec, parse_match, parse_if, "unrecognized request")


def parse_match(line, where):
    """`!*<d>pattern<d>flags result` -> (condition, (result text, parsed $n parts or None))."""
    condition, pattern, wanted, rest = parse_pattern(line, where)
    return condition, check_result(rest.lstrip(ISSPACE), pattern, wanted, where)


def parse_if(text, where):
    return parse_pattern(text, where)[0]  # extra text after the pattern: ignored, as Postfix


def parse_pattern(text, where):
    """`!*<d>pattern<d>flags rest` -> (condition, compiled pattern, wanted, rest)."""
    wanted, i, n = True, 0, len(text)
    while i < n and (text[i] == "!" or text[i] in ISSPACE):
        if text[i] == "!":
            wanted = not wanted
        i += 1
    if i >= n:
        raise ConfigError(f"{where}: no regexp")
    delimiter = rulefile.delimiter(text[i], where)
    start = i = i + 1
    while i < n and text[i] != delimiter:
        i += 2 if text[i] == "\\" else 1
    if i >= n:
        raise ConfigError(f"{where}: no closing regexp delimiter {delimiter!r}")
    pattern = text[start:i]
    i += 1
    options = {"i": True, "s": True, "m": False, "x": False, "A": False, "E": False, "U": False}
    while i < n and text[i] not in ISSPACE:
        flag = text[i]
        if flag in options:
            options[flag] = not options[flag]
        elif flag != "X":  # PCRE2 builds ignore X (dict_pcre.c)
            raise ConfigError(f"{where}: unknown regexp option {flag!r}")
        i += 1
    compiled, anchored = compile_pattern(pattern, options, where)
    matcher = compiled.match if anchored else compiled.search
    return (matcher if wanted else rulefile.negated(matcher)), compiled, wanted, text[i:]


def compile_pattern(pattern, options, where):
    translated, options = translate(pattern, dict(options), where)
    flags = 0
    for letter, bit in FLAG_BITS.items():
        if options[letter]:
            flags |= bit
    try:
        compiled = re.compile(translated.encode("utf-8", "surrogateescape"), flags)
    except (re.error, OverflowError, RecursionError) as err:
        raise ConfigError(f"{where}: error in regex: {err}") from None
    return compiled, options["A"]


def check_result(result, pattern, wanted, where):
    """(result text, its parsed parts when it holds $n, else None)."""
    if "$" not in result:
        return result, None
    parts = parse_result(result, where)
    numbers = [int(ref) for kind, ref in parts if kind == "group"]
    if not numbers:
        return "".join(value for _, value in parts), None  # only $$ -> $
    if not wanted:
        raise ConfigError(f"{where}: $number found in negative match replacement text")
    if max(numbers) > pattern.groups:
        raise ConfigError(f"{where}: out of range replacement index \"{max(numbers)}\"")
    return result, parts


def translate(pattern, options, where):
    """PCRE (non-UTF) syntax -> Python re; returns (text, options)."""
    out, i, n = [], 0, len(pattern)
    # Options set at the very start (or right after a leading ^) hold for the
    # whole pattern, as compile flags do; anywhere else they are refused.
    start = 1 if pattern.startswith("^(?") else 0
    if pattern.startswith("(?", start) and pattern[start + 2:start + 3] != "#":
        end = leading_option_end(pattern[start:])
        if end:
            apply_options(pattern[start + 2:start + end - 1], options, where)
            out.append(pattern[:start])
            i = start + end
    extended = options["x"]
    if options["U"] and extended:
        raise ConfigError(f"{where}: flags U and x together are not supported")

    def refuse(what):
        raise ConfigError(f"{where}: {what} is not supported (Python re would differ)")

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            text, i = translate_escape(pattern, i, where, refuse, in_class=False)
            out.append(text)
            if text not in NOT_REPEATABLE:
                i = quantifier(pattern, i, out, options, where)
            continue
        if ch == "[":
            text, i = translate_class(pattern, i, where, refuse)
            out.append(text)
            i = quantifier(pattern, i, out, options, where)
            continue
        if ch == "(":
            if pattern.startswith("(*", i):
                refuse("a backtracking verb '(*...)'")
            if pattern.startswith("(?", i):
                text, i = translate_group_start(pattern, i, where, refuse)
                out.append(text)
                continue
            out.append(ch)
            i += 1
            continue
        if ch == ")":
            out.append(ch)
            i = quantifier(pattern, i + 1, out, options, where)
            continue
        if ch == "$" and options["E"] and not options["m"]:
            out.append(r"\Z")
            i += 1
            continue
        if extended and ch == "#":
            break  # a comment to the end of the pattern (one logical line)
        if extended and ch in ISSPACE:
            out.append(ch)
            i += 1
            continue
        if ch == "{":
            end = quantifier_end(pattern, i)
            if end:
                refuse("a quantifier without something to repeat")
            out.append(r"\{")
            i += 1
            i = quantifier(pattern, i, out, options, where)
            continue
        if ch in "*+?":
            refuse(f"a quantifier {ch!r} without something to repeat")
        if ch in "|^":
            out.append(ch)
            i += 1
            continue
        out.append("\\" + ch if ch in "}" else ch)
        i += 1
        i = quantifier(pattern, i, out, options, where)
    return "".join(out), options


def leading_option_end(pattern):
    """Index after a leading `(?imsx-imsx)`, or 0."""
    j = 2
    while j < len(pattern) and (pattern[j].isalpha() or pattern[j] in "-^"):
        j += 1
    return j + 1 if j < len(pattern) and pattern[j] == ")" and j > 2 else 0


def apply_options(letters, options, where):
    on = True
    for letter in letters:
        if letter == "-":
            on = False
        elif letter in "imsx":
            options[letter] = on
        else:
            raise ConfigError(f"{where}: option setting (?{letters}) is not supported")


def quantifier_end(pattern, i):
    """Index after a PCRE2 10.42 quantifier `{n}`, `{n,}`, `{n,m}` at i, or 0."""
    j = i + 1
    start = j
    while j < len(pattern) and pattern[j].isdigit() and pattern[j].isascii():
        j += 1
    if j == start:
        return 0
    if j < len(pattern) and pattern[j] == ",":
        j += 1
        while j < len(pattern) and pattern[j].isdigit() and pattern[j].isascii():
            j += 1
    return j + 1 if j < len(pattern) and pattern[j] == "}" else 0


def quantifier(pattern, i, out, options, where):
    """Copy a quantifier at i (if any), applying the U flag; return the new index."""
    n = len(pattern)
    if options["x"]:  # whitespace may stand between an item and its quantifier
        while i < n and pattern[i] in ISSPACE:
            out.append(pattern[i])
            i += 1
    if i >= n:
        return i
    if pattern[i] in "*+?":
        end = i + 1
    elif pattern[i] == "{":
        end = quantifier_end(pattern, i)
        if not end:
            return i
    else:
        return i
    out.append(pattern[i:end])
    modifier = pattern[end] if end < n else ""
    if modifier == "+":  # possessive: Python 3.11 has it too
        out.append("+")
        end += 1
    elif options["U"]:
        if modifier == "?":
            end += 1  # lazy under U means greedy
        else:
            out.append("?")
    elif modifier == "?":
        out.append("?")
        end += 1
    if end < n and pattern[end] in "*+?" or pattern.startswith("{", end) and quantifier_end(pattern, end):
        raise ConfigError(f"{where}: nested quantifier")
    return end


def translate_group_start(pattern, i, where, refuse):
    """`(?...` at i -> (text, index after the group opening)."""
    rest = pattern[i + 2:i + 4]
    if rest[:1] in (":", "=", "!", ">") or rest in ("<=", "<!"):
        length = 3 if rest[:1] in (":", "=", "!", ">") else 4
        return pattern[i:i + length], i + length
    if rest[:1] == "#":
        end = pattern.find(")", i)
        if end < 0:
            raise ConfigError(f"{where}: missing ) after comment")
        return "", end + 1
    if rest[:1] == "<" or rest[:1] == "'" or pattern.startswith("(?P<", i):
        start = i + (4 if pattern.startswith("(?P<", i) else 3)
        close = "'" if rest[:1] == "'" else ">"
        end = pattern.find(close, start)
        name = pattern[start:end] if end > 0 else ""
        if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name) \
                or name[0].isdigit():
            raise ConfigError(f"{where}: bad group name")
        return f"(?P<{name}>", end + 1
    if pattern.startswith("(?P=", i):
        end = pattern.find(")", i)
        return pattern[i:end + 1], end + 1
    j = i + 2
    while j < len(pattern) and (pattern[j].isalpha() or pattern[j] == "-"):
        j += 1
    letters = pattern[i + 2:j]
    if letters and j < len(pattern) and pattern[j] == ":":
        if not all(c in "imsx-" for c in letters) or letters.endswith("-"):
            refuse(f"option setting (?{letters}:")
        return f"(?{letters}:", j + 1
    if letters and j < len(pattern) and pattern[j] == ")":
        refuse(f"option setting (?{letters}) after the start of the pattern")
    refuse(f"the group syntax {pattern[i:i + 4]!r}")


def translate_escape(pattern, i, where, refuse, in_class):
    """`\\x` at i -> (Python text, index after it)."""
    if i + 1 >= len(pattern):
        raise ConfigError(f"{where}: \\ at end of pattern")
    ch = pattern[i + 1]
    j = i + 2
    if not (ch.isascii() and ch.isalnum()):
        return "\\" + ch, j  # an escaped non-alphanumeric character is itself
    if ch in SIMPLE_ESCAPES and not (in_class and ch in "AbB"):
        return "\\" + ch, j
    if in_class and ch == "b":
        return r"\x08", j
    if ch in "fnrt":
        return "\\" + ch, j
    if ch == "a":
        return r"\x07", j
    if ch == "e":
        return r"\x1b", j
    if ch == "z" and not in_class:
        return r"\Z", j
    if ch == "Z" and not in_class:
        return r"(?=\n?\Z)", j
    if ch == "h":
        return (HSPACE if in_class else f"[{HSPACE}]"), j
    if ch == "v":
        return (VSPACE if in_class else f"[{VSPACE}]"), j
    if ch in "HV" and not in_class:
        return f"[^{HSPACE if ch == 'H' else VSPACE}]", j
    if ch == "R" and not in_class:
        return rf"(?>\r\n|[{VSPACE}])", j
    if ch == "N" and not in_class and not pattern.startswith("{", j):
        return r"[^\n]", j
    if ch == "c":
        if j >= len(pattern) or not pattern[j].isascii():
            raise ConfigError(f"{where}: \\c at end of pattern")
        return byte_escape(ord(pattern[j].upper()) ^ 0x40), j + 1
    if ch == "x":
        if pattern.startswith("{", j):
            end = pattern.find("}", j)
            digits = pattern[j + 1:end] if end > 0 else ""
            if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ConfigError(f"{where}: bad \\x{{...}}")
            return byte_escape(int(digits, 16), where), end + 1
        k = j
        while k < len(pattern) and k < j + 2 and pattern[k] in "0123456789abcdefABCDEF":
            k += 1
        return byte_escape(int(pattern[j:k] or "0", 16)), k
    if ch == "o" and pattern.startswith("{", j):
        end = pattern.find("}", j)
        digits = pattern[j + 1:end] if end > 0 else ""
        if not digits or not all(c in "01234567" for c in digits):
            raise ConfigError(f"{where}: bad \\o{{...}}")
        return byte_escape(int(digits, 8), where), end + 1
    if ch == "0":
        k = j
        while k < len(pattern) and k < j + 2 and pattern[k] in "01234567":
            k += 1
        return byte_escape(int(pattern[j - 1:k], 8)), k
    if ch in "123456789" and not in_class:
        if j < len(pattern) and pattern[j].isdigit():
            refuse("a back reference or octal escape of several digits")
        return "\\" + ch, j
    if ch == "Q":
        end = pattern.find("\\E", j)
        literal = pattern[j:] if end < 0 else pattern[j:end]
        if in_class:
            refuse("\\Q...\\E inside a character class")
        return re.escape(literal), (len(pattern) if end < 0 else end + 2)
    if ch == "E":
        return "", j  # \E without \Q is ignored
    refuse(f"the escape \\{ch}")


def byte_escape(value, where="pcre"):
    if value > 0xFF:
        raise ConfigError(f"{where}: character value {value:#x} above 0xff (no UTF mode)")
    return f"\\x{value:02x}"


def translate_class(pattern, start, where, refuse):
    """`[...]` at start -> (Python text, index after it)."""
    i, out, n = start + 1, ["["], len(pattern)
    if i < n and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < n and pattern[i] == "]":
        out.append(r"\]")
        i += 1
    while i < n and pattern[i] != "]":
        ch = pattern[i]
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2:end] if end > 0 else ""
            if name.startswith("^"):
                refuse("a negated POSIX class [:^name:]")
            if name not in PCRE_CLASSES:
                raise ConfigError(f"{where}: unknown POSIX class name [:{name}:]")
            out.append(PCRE_CLASSES[name])
            i = end + 2
        elif pattern.startswith("[=", i) or pattern.startswith("[.", i):
            raise ConfigError(f"{where}: POSIX collating elements are not supported")
        elif ch == "\\":
            text, i = translate_escape(pattern, i, where, refuse, in_class=True)
            out.append(text)
        else:
            out.append("\\" + ch if ch in "[&~|" else ch)
            i += 1
    if i >= n:
        raise ConfigError(f"{where}: missing terminating ] for character class")
    out.append("]")
    return "".join(out), i + 1
