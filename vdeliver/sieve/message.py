"""The message as Sieve sees it: headers parsed once, the body read lazily and bounded.

Message.from_bytes(data) / Message.from_file(path_or_binary_file) read at most
max_header_size bytes of header block (lines past the cap are ignored) and,
only when a body/mime test asks, at most max_body_size bytes of body (a regular
file is re-read from the body's offset; a pipe is read on once, the rest only
counted for the size test).
Header values are unfolded, RFC 2047-decoded and trimmed for header tests;
addresses are parsed per RFC 5322 for address tests; MIME parts come from the
stdlib email parser over the bounded body.

Never: read more than the caps, write anything, or open a file other than the
path given to from_file. Raises: OSError only from from_file's open/read.
"""
import codecs
import posix

MAX_HEADER_SIZE = 1 << 20
MAX_BODY_SIZE = 1 << 20


class Message:
    def __init__(self, header_bytes, body_reader, size):
        self._header_bytes = header_bytes
        self._body_reader = body_reader      # callable(max) -> bytes
        self._body = None
        self._body_cap = None
        self._size = size                    # int, or callable() -> int (a pipe: counted on demand)
        self.headers = parse_headers(header_bytes)   # [(name, raw value)]
        self._decoded = {}
        self._mime = None

    # -- construction
    @classmethod
    def from_bytes(cls, data, max_header_size=MAX_HEADER_SIZE):
        data = bytes(data)
        end, body_start = _header_end(data, max_header_size)
        return cls(data[:end], lambda cap: data[body_start:body_start + cap], len(data))

    @classmethod
    def from_file(cls, source, max_header_size=MAX_HEADER_SIZE):
        if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):   # a path
            with open(source, "rb") as f:
                return cls._from_open_file(f, own_path=source, max_header_size=max_header_size)
        return cls._from_open_file(source, own_path=None, max_header_size=max_header_size)

    @property
    def size(self):
        if callable(self._size):
            self._size = self._size()
        return self._size

    @classmethod
    def _from_open_file(cls, f, own_path, max_header_size):
        try:
            start = f.tell()
            st = posix.fstat(f.fileno())
            if (st.st_mode & 0o170000) != 0o100000:
                raise OSError("not a regular file")
            size = st.st_size - start
        except (OSError, AttributeError, ValueError):
            start, size = None, None
        buf = b""
        while len(buf) < max_header_size + 4:
            chunk = f.read(65536)
            if not chunk:
                break
            buf += chunk
            if b"\n\n" in buf or b"\r\n\r\n" in buf:
                break
        end, body_start = _header_end(buf, max_header_size)
        header = buf[:end]
        leftover = buf[body_start:] if body_start <= len(buf) else b""
        if size is None:
            # A pipe: the body is read once, its first max_body_size bytes kept and the
            # rest only counted, when a body test or the size test first asks.
            body = _StreamBody(f, leftover, len(buf))
            return cls(header, body.read, body.total)

        def read_body(cap):
            if own_path is not None:
                with open(own_path, "rb") as g:
                    g.seek(body_start)
                    return g.read(cap)
            pos = f.tell()
            f.seek(start + body_start)
            data = f.read(cap)
            f.seek(pos)
            return data
        return cls(header, read_body, size)

    def with_header(self, header_bytes):
        """The same message with another header block (a sequence of scripts: the
        next one sees the edits of the earlier ones); the body is shared."""
        other = Message(header_bytes, self._body_reader, self._size)
        other._body, other._body_cap = self._body, self._body_cap
        return other

    @property
    def header_block(self):
        return self._header_bytes

    # -- headers
    def header(self, name):
        """Decoded values of every `name` field, in message order."""
        key = name.lower()
        vals = self._decoded.get(key)
        if vals is None:
            vals = [decode_value(v) for n, v in self.headers if n.lower() == key]
            self._decoded[key] = vals
        return vals

    def raw_header(self, name):
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    # -- body
    def body(self, cap=MAX_BODY_SIZE):
        if self._body is None or self._body_cap < cap:
            self._body = self._body_reader(cap)
            self._body_cap = cap
        return self._body[:cap]

    def mime(self, cap=MAX_BODY_SIZE):
        """The stdlib email view of the (bounded) message, parsed once."""
        if self._mime is None:
            import email.parser
            import email.policy
            self._mime = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
                self._header_bytes + b"\n" + self.body(cap))
        return self._mime


class _StreamBody:
    """The body of a non-seekable stream, read once: keeps MAX_BODY_SIZE bytes, counts the rest."""

    def __init__(self, f, leftover, consumed):
        self.f, self.kept, self.consumed, self.done = f, leftover, consumed, False

    def _drain(self):
        while not self.done:
            chunk = self.f.read(65536)
            if not chunk:
                self.done = True
                break
            self.consumed += len(chunk)
            room = MAX_BODY_SIZE - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def read(self, cap):
        self._drain()
        return self.kept[:cap]

    def total(self):
        self._drain()
        return self.consumed


def _header_end(data, cap):
    """(end of header block, start of body). A block over the cap ends at the last
    complete line below it; the body is then unknown (empty)."""
    limit = min(len(data), cap)
    i = 0
    while True:
        j = data.find(b"\n", i, limit)
        if j < 0:
            if limit < len(data):                     # header block over the cap
                return i, len(data) + 1
            return len(data), len(data)
        line = data[i:j]
        if line in (b"", b"\r"):
            return i, j + 1
        i = j + 1


header_end = _header_end    # headeredit.py cuts the block where the interpreter did


def parse_headers(block):
    out = []
    text = block.decode("utf-8", "replace")
    cur = None
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if line[0] in " \t":
            if cur is not None:
                cur[1] += "\r\n" + line
            continue
        colon = line.find(":")
        if colon <= 0:
            cur = None                    # not a header field: ignore (as Pigeonhole)
            continue
        name = line[:colon].rstrip(" \t")
        # printable US-ASCII but the space (33..126), without a generator per field
        if not name or not (name.isascii() and name.isprintable()) or " " in name:
            cur = None
            continue
        cur = [name, line[colon + 1:]]
        out.append(cur)
    return [(n, v) for n, v in out]


def unfold(value):
    """As Dovecot: a line break (LF or CRLF) and the space or tab after it become
    one space; then leading and trailing blanks go."""
    if "\n" in value:
        lines = value.split("\n")
        value = lines[0]
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and line:
                value = (value[:-1] if value.endswith("\r") else value) + " " + line[1:]
            else:
                value += "\n" + line
    return value.strip(" \t")


def decode_value(raw):
    v = unfold(raw)
    if "=?" in v:
        v = decode_2047(v)
    return v


def _encoded_word(v, q):
    """The encoded word `=?charset?B|Q?text?=` (RFC 2047 §2) at v[q:] as (end, charset,
    encoding, text), or None. Charset and text hold no "?" and no white space."""
    mark = v.find("?", q + 2)
    if mark <= q + 2 or v[mark + 1:mark + 2] not in ("B", "b", "Q", "q") or v[mark + 2:mark + 3] != "?":
        return None
    close = v.find("?", mark + 3)
    if close < 0 or v[close + 1:close + 2] != "=":
        return None
    charset, text = v[q + 2:mark], v[mark + 3:close]
    if any(c.isspace() for c in charset) or any(c.isspace() for c in text):
        return None
    return close + 2, charset, v[mark + 1], text


def decode_2047(v):
    """RFC 2047 encoded words decoded, the blanks between two of them dropped (§6.2).
    By str methods, not `re` (5 ms in a new process): first the blanks, then the
    words, each scan leftmost as re.sub would."""
    out, i, q = [], 0, v.find("=?")
    while q >= 0:                    # blanks between two words go
        word = _encoded_word(v, q)
        if word is not None:
            gap = word[0]
            while gap < len(v) and v[gap] in " \t":
                gap += 1
            if gap > word[0] and v.startswith("=?", gap) and _encoded_word(v, gap) is not None:
                out.append(v[i:word[0]])
                i = q = gap
                continue
        q = v.find("=?", q + 1)
    v = "".join(out) + v[i:]
    out, i, q = [], 0, v.find("=?")
    while q >= 0:                    # each word decoded
        word = _encoded_word(v, q)
        if word is None:
            q = v.find("=?", q + 1)
            continue
        end, charset, encoding, text = word
        out.append(v[i:q])
        out.append(_decode_word(charset, encoding.upper(), text, v[q:end]))
        i = end
        q = v.find("=?", end)
    return "".join(out) + v[i:]


def _decode_word(charset, enc, text, original):
    charset = charset.split("*", 1)[0]          # RFC 2231 language suffix
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"                        # as Dovecot: an unknown charset is read as UTF-8
    try:
        if enc == "B":
            import binascii
            pad = (-len(text)) % 4
            data = binascii.a2b_base64(text + "=" * pad)
        else:
            data = _q_decode(text)
        return data.decode(charset, "replace")
    except (ValueError, LookupError, UnicodeError):
        return original


_HEX = frozenset("0123456789ABCDEFabcdef")


def _q_decode(text):
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "_":
            out.append(0x20)
        elif c == "=" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            out.append(int(text[i + 1:i + 3], 16))
            i += 2
        else:
            out.extend(c.encode("utf-8", "replace"))
        i += 1
    return bytes(out)


# -- addresses (RFC 5322 §3.4)
def parse_addresses(value, strict=False):
    """A header value -> [(localpart, domain, full)] for each address of its
    address list, in order. Parsing stops at the first malformed item (what came
    before counts); a value with no address at all gives [(value, None, value)]
    (so :all sees the raw text and :localpart/:domain see nothing), as Pigeonhole.
    strict: None instead, for anything malformed or empty (redirect's address)."""
    toks = _addr_tokens(value)
    out = []
    i, n = 0, len(toks)

    def stop():
        if strict:
            return None
        if out:
            return out
        v = value.strip()
        return [(v, None, v)]
    while i < n:
        if toks[i] == (",",):
            i += 1
            continue
        j = _group_start(toks, i)
        if j is not None:                       # display-name ":" [mailbox-list] ";"
            i = j
            while i < n and toks[i] != (";",):
                if toks[i] == (",",):
                    i += 1
                    continue
                r = _mailbox(toks, i)
                if r is None:
                    return stop()
                out.append(r[0])
                i = r[1]
            i += 1
            continue
        r = _mailbox(toks, i)
        if r is None:
            return stop()
        out.append(r[0])
        i = r[1]
        if i < n and toks[i] != (",",):
            return stop()
    return out if out else stop()


_ATEXT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-")


def _dot_atom(text):
    """RFC 5322 §3.2.3 dot-atom-text: atext runs joined by single dots."""
    return all(part and all(c in _ATEXT for c in part) for part in text.split("."))


def _group_start(toks, i):
    j = i
    while j < len(toks) and len(toks[j]) == 2:
        j += 1
    if j > i and j < len(toks) and toks[j] == (":",):
        return j + 1
    return None


def _mailbox(toks, i):
    """name-addr or addr-spec at toks[i] -> ((local, domain, full), next index) or None."""
    n = len(toks)
    j = i
    while j < n and (len(toks[j]) == 2 or toks[j] == (".",)):
        j += 1
    if j < n and toks[j] == ("<",):
        k = j + 1
        if k < n and toks[k] == ("@",):        # obsolete route "@a,@b:"
            while k < n and toks[k] != (":",):
                k += 1
            k += 1
        r = _addr_spec(toks, k)
        if r is None or r[1] >= n or toks[r[1]] != (">",):
            return None
        return r[0], r[1] + 1
    return _addr_spec(toks, i)


def _addr_spec(toks, i):
    n = len(toks)
    local, j = [], i
    while j < n and len(toks[j]) == 2:
        local.append(toks[j][1])
        j += 1
        if j < n and toks[j] == (".",):
            local.append(".")
            j += 1
        else:
            break
    if not local or j >= n or toks[j] != ("@",):
        return None
    j += 1
    domain = []
    while j < n and toks[j][0] == "a":
        domain.append(toks[j][1])
        j += 1
        if j < n and toks[j] == (".",):
            domain.append(".")
            j += 1
        else:
            break
    if not domain or domain[-1] == ".":
        return None
    lp, dom = "".join(local), "".join(domain)
    if not lp.isascii():
        return None                  # an 8-bit local part is not an address (Pigeonhole: raw value)
    shown = lp if _dot_atom(lp) else '"' + lp.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (lp, dom, f"{shown}@{dom}"), j


def _addr_tokens(s):
    toks = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 1
            i += 1
            while i < n and depth:
                if s[i] == "\\":
                    i += 1
                elif s[i] == "(":
                    depth += 1
                elif s[i] == ")":
                    depth -= 1
                i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(s[j])
                j += 1
            toks.append(("q", "".join(buf)))
            i = j + 1
        elif c == "[":
            j = s.find("]", i)
            j = n if j < 0 else j + 1
            toks.append(("a", s[i:j]))
            i = j
        elif c in "<>@,;:.":
            toks.append((c,))
            i += 1
        else:
            j = i
            while j < n and s[j] not in ' \t\r\n()"<>@,;:.[':
                j += 1
            toks.append(("a", s[i:j]))
            i = j
    return toks
