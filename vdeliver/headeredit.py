"""The message as a Sieve script's editheader (RFC 5293) left it: its addheader and
deleteheader actions applied to the header block of the message in tmp/.

As Pigeonhole 0.5.19 stores an edited message (edit-mail.c, measured with
sieve-test -e into a Maildir, tests/sieve/test_pigeonhole_differential.py):
- addheader puts the field first (:last: after the last field), its name as
  the interpreter spelt it (Pigeonhole's `x-tag` -> `X-Tag`), its value RFC 2047-encoded where it
  is not ASCII (`=?utf-8?q?` or `?b?`, whichever Dovecot's message_header_encode
  picks, encoded words of at most 76 characters) and folded at white space before
  80 columns; a line break in the value becomes a fold (a newline and one TAB), a
  trailing one is dropped: a value from a script can never start a field of its own;
- deleteheader removes the fields the run chose (their positions among that
  name's fields, counted as the interpreter counted them, without Content-Length);
  once a deleteheader has deleted a field, Content-Length fields are gone too
  (Pigeonhole drops them when it parses the header for that edit);
- the fields nobody edited keep their bytes, the body is copied as it is; the
  added lines end as the message's header lines do (CRLF or LF).

The header block is the one the interpreter saw (sieve.message.header_end, the
same cap); what lies past it is copied unchanged.

Never: write into the message file it reads; hold more than the header block in
memory; let a script's value add a line that does not start with white space.
Raises OSError from reading the message (the caller defers).
"""
import base64
import io

MAX_ENCODED_WORD = 76    # MIME_MAX_LINE_LEN in Dovecot's message-header-encode.c
WRAPPER = len("=?utf-8?q?" "?=")
MAX_LINE = 80            # rfc2822_header_append's folding column
CHUNK = 1 << 16


def _needs_encoding(data, i):
    """Dovecot's input_idx_need_encoding: 8-bit and control bytes, a line break not
    followed by white space (or at the end), and `=?` at the start of a word."""
    c = data[i]
    if c == 0x0d:
        if i + 1 == len(data) or data[i + 1] != 0x0a:
            return True
        i += 1
        c = 0x0a
    if c == 0x0a:
        return i + 1 == len(data) or data[i + 1] not in b" \t"
    if c == 0x09:
        return False
    if c == 0x3d:
        return (i == 0 or data[i - 1] in b" \t\n") and data[i:i + 2] == b"=?"
    return c >= 0x80 or c < 0x20


def _utf8_length(data, i):
    c = data[i]
    return 1 if c < 0xc0 else 2 if c < 0xe0 else 3 if c < 0xf0 else 4


def _first_word(first_line):
    """([the text before the first encoded word], the room left for it): the rest of the
    line the field name took, or a new folded line when too little is left."""
    if first_line >= MAX_ENCODED_WORD - WRAPPER - 3:
        return ["\n\t"], MAX_ENCODED_WORD - WRAPPER - 1
    return [], MAX_ENCODED_WORD - WRAPPER - first_line


def _encode_q(data, first_line):
    out, room = _first_word(first_line)
    out.append("=?utf-8?q?")
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x20:
            piece, used = "_", 1
        elif c in b"=?_" or c < 0x20 or c > 0x7e:
            used = _utf8_length(data, i) if c >= 0x80 else 1
            piece = "".join(f"={b:02X}" for b in data[i:i + used])
        else:
            piece, used = chr(c), 1
        if room < len(piece):
            out.append("?=\n\t=?utf-8?q?")
            room = MAX_ENCODED_WORD - WRAPPER - 1
        out.append(piece)
        room -= len(piece)
        i += used
    out.append("?=")
    return "".join(out)


def _encode_b(data, first_line):
    out, room = _first_word(first_line)
    i = 0
    while i < len(data):
        fits = room // 4 * 3       # bytes whose base64 fits the rest of the line
        end = i
        while end < len(data) and end + _utf8_length(data, end) - i <= fits:
            end += _utf8_length(data, end)
        if end == i:               # not even one character: the next line
            end = min(len(data), i + _utf8_length(data, i))
        if out and out[-1].endswith("?="):
            out.append("\n\t")
        out.append("=?utf-8?b?" + base64.b64encode(data[i:end]).decode() + "?=")
        i = end
        room = MAX_ENCODED_WORD - WRAPPER - 1
    return "".join(out)


def encode_value(value):
    """Dovecot's message_header_encode() of a value (a str): the run of words from
    the first to the last that needs encoding becomes encoded words, line by line."""
    data = value.encode("utf-8", "replace")
    return _encode_lines(data)


def _encode_lines(data):
    i = 0
    while i < len(data) and not _needs_encoding(data, i):
        i += 1
    if i == len(data):
        return data.decode("utf-8", "replace")
    if data[i] not in b"\r\n":
        while i > 0 and data[i - 1] not in b" \t\n":
            i -= 1
    prefix = data[:i]
    line_start = prefix.rfind(b"\n") + 1
    first_line = len(prefix) - line_start if line_start else len(prefix)
    rest = data[i:]
    newline = rest.find(b"\n")
    line, after = (rest, None) if newline < 0 else (rest[:newline], rest[newline:])
    if after is not None and line.endswith(b"\r"):
        line, after = line[:-1], b"\r" + after
    last, count = 0, 0
    for k in range(len(line)):
        if _needs_encoding(line, k):
            last, count = k + 1, count + 1
    while last < len(line) and line[last] not in b" \t\n":
        last += 1
    out = [prefix.decode("utf-8", "replace")]
    if last:
        base64_len = (last + 2) // 3 * 4
        q_len = last + count * 3
        coder = _encode_q if q_len * 2 // 3 <= base64_len else _encode_b
        out.append(coder(line[:last], first_line))
    out.append(line[last:].decode("utf-8", "replace"))
    if after is not None:
        k = 2 if after.startswith(b"\r") else 1
        if k == len(after):
            return "".join(out)                  # a trailing line break is dropped
        out.append("\r\n" if k == 2 else "\n")
        if after[k:k + 1] in (b" ", b"\t"):
            out.append(after[k:k + 1].decode())
            k += 1
        else:
            out.append("\t")
        out.append(_encode_lines(after[k:]))
    return "".join(out)


def fold_field(name, body, newline=b"\n"):
    """`name: body` as Pigeonhole's rfc2822_header_append() writes it: a line break
    (with the white space before and after it) becomes one fold, newline + TAB; a
    line reaching 80 columns is folded at its last white space run (which becomes
    one TAB). Every line after the first starts with a TAB: nothing a script writes
    starts a field of its own."""
    nl = newline.decode()
    out = [name, ": "]
    column, n = len(name) + 2, len(body)
    start = pos = folds = 0
    while pos < n:
        space = brk = None
        run_start = True             # the next blank starts a white space run
        while pos < n and brk is None and (space is None or column < MAX_LINE):
            ch = body[pos]
            if ch in " \t":
                if run_start:
                    space = pos
                run_start = False
            elif ch in "\r\n":
                brk = pos if run_start else space
                break
            else:
                run_start = True
            pos += 1
            column += 1
        if pos >= n:
            break
        if brk is not None:          # a line break of the value's own
            while pos < n and body[pos] in " \t\r\n":
                pos += 1
            out += [body[start:brk], nl]
            if pos < n:
                out.append("\t")
            start = pos
        else:                        # fold at the last white space within the line
            out.append(body[start:space])
            while space < n and body[space] in " \t":
                space += 1
            out += [nl, "\t"]
            start = space
            pos = max(pos, start)
        folds += 1
        column = pos - start
    if pos != start or folds == 0:
        out += [body[start:pos], nl]
    elif out[-1] == "\t":           # blanks to the end after a fold: no empty last line
        out[-2:] = [nl]
    return "".join(out).encode("utf-8", "replace")


# -- the header block ----------------------------------------------------------------

class Field:
    """One unit of the header block: a field (name, its lines as bytes), or a line
    that is no field (name None), kept where it was."""
    __slots__ = ("name", "data")

    def __init__(self, name, data):
        self.name, self.data = name, data


def split_fields(block):
    """The header block (bytes) as Fields, segmented as sieve.message.parse_headers
    segments it (so positions counted there are positions here)."""
    units = []
    for line in block.splitlines(keepends=True):
        text = line.rstrip(b"\r\n")
        if not text:
            units.append(Field(None, line))
            continue
        if text[:1] in b" \t" and units:
            units[-1].data += line
            continue
        colon = text.find(b":")
        name = text[:colon].rstrip(b" \t") if colon > 0 else b""
        if not name or any(c <= 32 or c >= 127 for c in name):
            units.append(Field(None, line))
        else:
            units.append(Field(name.decode("ascii").lower(), line))
    return units


def newline_of(block):
    """CRLF when most header lines end in CRLF (as edit-mail.c decides), else LF."""
    lines = block.count(b"\n")
    return b"\r\n" if lines and block.count(b"\r\n") * 2 >= lines else b"\n"


def apply(block, edits):
    """The header block (bytes) with the edit Actions applied, in order."""
    units = split_fields(block)
    newline = newline_of(block)
    for edit in edits:
        params = edit.params
        if edit.kind == "addheader":
            name = params["name"]       # spelt as Pigeonhole stores it (editheader.sanitized)
            unit = Field(name.lower(), fold_field(name, encode_value(params["value"]), newline))
            if params.get("last"):
                units.append(unit)
            else:
                units.insert(0, unit)
        elif edit.kind == "deleteheader":
            units = [u for u in units if u.name != "content-length"]
            key, drop, seen = params["name"].lower(), set(params.get("occurrences") or ()), 0
            kept = []
            for unit in units:
                if unit.name == key:
                    seen += 1
                    if seen in drop:
                        continue
                kept.append(unit)
            units = kept
    return b"".join(unit.data for unit in units)


class EditedMessage(io.RawIOBase):
    """A read-only binary stream: the edited header block, then the rest of the
    message from its own file (never loaded whole)."""

    def __init__(self, header, source, offset):
        self.header, self.source, self.offset, self.pos = header, source, offset, 0
        source.seek(offset)

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.pos < len(self.header):
            piece = self.header[self.pos:self.pos + len(buffer)]
            self.pos += len(piece)
        else:
            piece = self.source.read(len(buffer))
        buffer[:len(piece)] = piece
        return len(piece)

    def close(self):
        if not self.closed:
            self.source.close()
        super().close()


def header_block(fh):
    """(the header block as the interpreter saw it, its end offset) of an open message."""
    from vdeliver.sieve.message import MAX_HEADER_SIZE, header_end
    fh.seek(0)
    buf = b""
    while len(buf) < MAX_HEADER_SIZE + 4:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        buf += chunk
        if b"\n\n" in buf or b"\r\n\r\n" in buf:
            break
    end, _body = header_end(buf, MAX_HEADER_SIZE)
    return buf[:end], end


def original_header(open_message):
    """The header block of the message open_message() returns, as the interpreter saw it."""
    with open_message() as fh:
        return header_block(fh)[0]


def open_edited(open_message, header):
    """The message with `header` (an edited header block, apply()) in place of its
    own, as a binary stream to read (close it)."""
    fh = open_message()
    try:
        _block, end = header_block(fh)
        return io.BufferedReader(EditedMessage(header, fh, end))
    except BaseException:
        fh.close()
        raise


def writer(open_message, header):
    """write_message(fd) -> size for maildir.store: the message with `header` in
    place of its own header block, written whole."""
    from vdeliver.message import write_all

    def write_message(fd):
        size = 0
        with open_edited(open_message, header) as fh:
            while True:
                chunk = fh.read(CHUNK)
                if not chunk:
                    return size
                write_all(fd, chunk)
                size += len(chunk)
    return write_message
