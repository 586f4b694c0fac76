"""The postmap(1) source format: the text behind texthash:, hash:, cdb: ...

Rules (postmap.c, dict_thash.c, readlline.c), with ISSPACE meaning the C
locale's space, \\t, \\n, \\v, \\f and \\r:
  - blank lines and lines whose first non-space character is `#` are
    skipped, without ending the logical line they sit in;
  - a line starting with whitespace continues the previous logical line
    (newline dropped, indentation kept); a continuation with nothing before
    it is dropped with the lines that continue it;
  - a logical line that is not valid UTF-8 is skipped by parse() under
    smtputf8_enable = yes (the default; address.py), kept under no
    (regexp and pcre files keep such lines either way);
    text after a NUL byte is ignored (C strings);
  - the key ends at the first whitespace outside double quotes; a backslash
    hides the next character from that scan; the key keeps its quotes and
    backslashes; a line whose quotes do not balance is skipped;
  - the value is the rest, trimmed; a line without a value is skipped;
  - keys are case-folded (address.fold()); the first of duplicate keys wins (postmap), or the
    duplicate is reported (texthash in a daemon: parse() says where).

Never: raise on bad content (Postfix skips it with a warning); OSError from
reading is the caller's to classify. Imports nothing beyond vdeliver.address:
it can run on every message.
"""
from vdeliver import address
from vdeliver.address import fold, is_utf8
from vdeliver.errors import TableError

ISSPACE = " \t\n\v\f\r"


def read_entries(path):
    """Return {folded key: value} from a postmap source file."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_entries(data.decode("utf-8", "surrogateescape"))


def read_pattern_file(name, spec):
    """The text of a regexp:/pcre: file, bytes kept (surrogateescape); TableError if unreadable."""
    try:
        with open(name, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as err:
        raise TableError(f"cannot open {spec}: {err.strerror}") from None


def parse_entries(text):
    """{folded key: value}; the first of duplicate keys wins (as postmap)."""
    return parse(text)[0]


def parse(text):
    """Return (entries, duplicate): duplicate is None or (line, key) of the
    first repeated key, which texthash in a daemon treats as an error."""
    entries = {}
    duplicate = None
    skip_non_utf8 = address.SMTPUTF8_ENABLE
    for number, line in numbered_logical_lines(text):
        if skip_non_utf8 and not is_utf8(line):
            continue  # postmap.c, dict_thash.c: "non-UTF-8 input -- ignoring this line"
        key, value = split_key_value(line)
        if not key or not value:
            continue
        key = fold(key)
        if key in entries:
            if duplicate is None:
                duplicate = (number, key)
            continue
        entries[key] = value
    return entries, duplicate


def logical_lines(text):
    """Yield logical lines (readllines()); see the module docstring."""
    for _, line in numbered_logical_lines(text):
        yield line


def numbered_logical_lines(text):
    """Yield (first line number, logical line)."""
    if "\0" in text:  # C strings: a line ends at its first NUL
        text = "\n".join(line.partition("\0")[0] for line in text.split("\n"))
    current, start = None, 0
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip(ISSPACE)
        if not stripped or stripped[0] == "#":
            continue
        if line[0] in ISSPACE:
            if current is not None:
                current += line
            continue  # a continuation without a logical line: postmap warns, skips it
        if current is not None:
            yield start, current
        current, start = line, number
    if current is not None:
        yield start, current


def split_key_value(line):
    """`key value` -> (key, value); ("", "") for a line postmap skips."""
    if '"' not in line and "\\" not in line:
        # Fast path: the first ISSPACE character ends the key.
        parts = line.split(None, 1)
        key = parts[0] if parts else ""
        end = len(key)
        if line.startswith(key) and (end == len(line) or line[end] in ISSPACE):
            return key, line[end:].strip(ISSPACE)
    # The scan of postmap.c: a backslash hides the next character; quotes
    # toggle; the first unquoted ISSPACE character ends the key.
    end, quoted, n = 0, False, len(line)
    while end < n:
        ch = line[end]
        if ch == "\\":
            end += 1
            if end >= n:
                break
        elif ch in ISSPACE:
            if not quoted:
                break
        elif ch == '"':
            quoted = not quoted
        end += 1
    if quoted:
        return "", ""  # unbalanced '"': postmap skips the line
    return line[:end], line[end + 1:].strip(ISSPACE) if end < n else ""
