"""The postmap(1) source format: the text behind texthash:, hash:, cdb: ...

Rules (postmap.c, readlline.c): blank lines and lines whose first non-space
character is `#` are skipped; a line starting with whitespace continues the
previous logical line (newline dropped, indentation kept); the key ends at the
first whitespace outside double quotes (a quoted key keeps its quotes); the
value is the rest, trimmed; a line without a value is skipped; the first of
duplicate keys wins; keys are case-folded.

Never: raise on bad content (postmap skips it with a warning); OSError from
reading is the caller's to classify.
"""
from vdeliver.address import fold


def read_entries(path):
    """Return {folded key: value} from a postmap source file."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_entries(data.decode("utf-8", "surrogateescape"))


def parse_entries(text):
    entries = {}
    for line in logical_lines(text):
        key, value = split_key_value(line)
        if key and value:
            entries.setdefault(fold(key), value)
    return entries


def logical_lines(text):
    current = None
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if current is not None:
                current += line
            continue  # a continuation without a logical line: postmap warns and skips it
        if current is not None:
            yield current
        current = line
    if current is not None:
        yield current


def split_key_value(line):
    line = line.strip()
    end = 0
    if line.startswith('"'):
        end = 1
        while end < len(line) and line[end] != '"':
            end += 2 if line[end] == "\\" else 1
        end = min(end + 1, len(line))
    while end < len(line) and line[end] not in " \t":
        end += 1
    return line[:end], line[end:].strip()
