"""vdeliver.sieve.lexer: tokens with their lines, and every malformed token with its line."""
import re

import pytest

from vdeliver.sieve import lexer
from vdeliver.sieve.lexer import EOF, IDENT, NUMBER, PUNCT, STRING, TAG


def kinds(src):
    return [(t.kind, t.value, t.line) for t in lexer.tokenize(src)[:-1]]


@pytest.mark.parametrize("src, want", [
    pytest.param(b"keep;", [(IDENT, "keep", 1), (PUNCT, ";", 1)], id="identifier and semicolon"),
    pytest.param(b':is :Comparator', [(TAG, "is", 1), (TAG, "Comparator", 1)], id="tags keep their case"),
    pytest.param(b"1 10K 2M 1G 0", [(NUMBER, 1, 1), (NUMBER, 10240, 1), (NUMBER, 2 << 20, 1),
                                     (NUMBER, 1 << 30, 1), (NUMBER, 0, 1)], id="numbers with quantifiers"),
    pytest.param(b"18446744073709551615", [(NUMBER, 2**64 - 1, 1)], id="largest number (64 bits)"),
    pytest.param(b'"a\\"b\\\\c\\d"', [(STRING, 'a"b\\cd', 1)], id="quoted string escapes"),
    pytest.param(b'"two\nlines" x', [(STRING, "two\nlines", 1), (IDENT, "x", 2)], id="newline inside quoted string"),
    pytest.param(b"text:\r\nline 1\r\n..dot\r\n.\r\n", [(STRING, "line 1\r\n.dot\r\n", 1)],
                 id="multi-line with dot-stuffing"),
    pytest.param(b"text: # comment\nx\n.\nkeep;", [(STRING, "x\r\n", 1), (IDENT, "keep", 4), (PUNCT, ";", 4)],
                 id="multi-line with hash comment, lines counted"),
    pytest.param(b"# c\n/* a\nb */ [ ] { } ( ) ,", [(PUNCT, c, 3) for c in "[]{}(),"],
                 id="comments skipped, lines counted"),
    pytest.param(b'"\xff"', [(STRING, "\ufffd", 1)], id="invalid UTF-8 becomes U+FFFD"),
])
def test_tokens(src, want):
    assert kinds(src) == want


@pytest.mark.parametrize("src, line, message", [
    pytest.param(b'keep;\n"abc\n\n', 4, "end of file before end of quoted string started at line 2",
                 id="unterminated quoted string: line of the end"),
    pytest.param(b"x text:\nno end\n", 3, "end of file before end of multi-line string", id="unterminated text:"),
    pytest.param(b"/* x\nkeep;\n", 3, "end of file before end of bracket comment", id="unterminated comment"),
    pytest.param(b"\n18446744073709551616", 2, "number exceeds integer limit", id="number too large"),
    pytest.param(b"5Gx", 1, "after number", id="junk after number"),
    pytest.param(b"keep;\n@", 2, "unexpected character", id="stray character"),
    pytest.param(b": x", 1, "tag name expected", id="lone colon"),
    pytest.param(b'"a\x00b"', 1, "NUL character", id="NUL in string"),
    pytest.param(b"text: x\n.\n", 1, "expected end of line", id="junk after text:"),
])
def test_errors(src, line, message):
    with pytest.raises(lexer.LexError) as e:
        lexer.tokenize(src)
    assert e.value.line == line
    assert message in e.value.message


# A one-regex lexer (the fast path vdeliver had before: in a new process `re` and
# this pattern cost more than they saved) as an independent reference: the lexer
# must agree with it on every input it accepts (None: it found a malformed token).
_TOKEN = re.compile(r"""
    (?:[ \t\r\n]+|\#[^\n]*|/\*(?:[^*]|\*(?!/))*\*/)*
  (?:
    (?P<punct>[\[\]{}(),;])
  | "(?P<qs>[^"\\\x00]*)"
  | (?P<qe>"(?:[^"\\\x00]|\\[^\x00])*")
  | :(?P<tag>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9]++)(?P<q>[KMGkmg])?+(?![A-Za-z_])
  | (?P<ml>[Tt][Ee][Xx][Tt]:[ \t]*(?:\#[^\n]*)?\r?\n(?:(?!\.\r?\n)[^\n]*\n)*?\.\r?\n)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*+)(?!:)
  | (?P<end>\Z)
  | (?P<bad>.)
  )
""", re.VERBOSE | re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def regex_tokens(text):
    tokens = []
    append = tokens.append
    line, last = 1, 0
    count = text.count
    # "bad" matches any character no token starts with, so finditer never skips text
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        start = m.start(kind)
        line += count("\n", last, start)
        last = start
        if kind == "id":
            append(lexer.Token(IDENT, m.group(kind), line))
        elif kind == "punct":
            append(lexer.Token(PUNCT, m.group(kind), line))
        elif kind == "qs":
            append(lexer.Token(STRING, m.group(kind), line))
        elif kind == "tag":
            append(lexer.Token(TAG, m.group(kind), line))
        elif kind == "num" or kind == "q":
            value = int(m.group("num"))
            q = m.group("q")
            if q:
                value *= lexer._QUANTIFIERS[q.upper()]
            if value > lexer.MAX_NUMBER:
                return None
            append(lexer.Token(NUMBER, value, line))
        elif kind == "end":
            break
        elif kind == "bad":
            return None
        elif kind == "qe":
            append(lexer.Token(STRING, _UNESCAPE.sub(r"\1", m.group(kind)[1:-1]), line))
        else:                                   # ml: text: ... .
            body = m.group(kind)
            lines = body.split("\n")[1:-2]       # drop the "text:" line, the "." line and the end
            out = []
            for ln in lines:
                if ln.endswith("\r"):
                    ln = ln[:-1]
                if "\0" in ln:
                    return None
                out.append((ln[1:] if ln.startswith("..") else ln) + "\r\n")
            append(lexer.Token(STRING, "".join(out), line, multiline=True))
    append(lexer.Token(EOF, None, line))
    return tokens


from hypothesis import given, settings, strategies as st  # noqa: E402

_PIECES = st.sampled_from(["keep", ";", " ", "\n", "\r\n", "\t", '"', "\\", ":is", ":", "1", "5K", "9G",
                           "text:", "text: # c\n", ".", "..", "\n.\n", "/*", "*/", "#", "[", "]", "{", "}", "(",
                           ")", ",", "é", "\x00", "x_1", "99999999999", "a", "*", "/"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_lexer_agrees_with_a_regex_lexer(text):
    reference = regex_tokens(text)
    try:
        tokens = lexer.tokenize(text)
    except lexer.LexError:
        tokens = None
    if reference is not None:
        assert tokens == reference
