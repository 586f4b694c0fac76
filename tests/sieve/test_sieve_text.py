"""The str-method checks that replaced regular expressions on the delivery path (a
new process pays 5 ms to import `re`) agree with those expressions on any input."""
import re

from hypothesis import given, settings, strategies as st

from vdeliver.sieve import message
from vdeliver.sieve.extensions import core

# Characters around every boundary the expressions draw, and some beyond ASCII.
_CHARS = st.sampled_from(list(" \t\r\n\x00\x1f\x7f!:;~9.@\"\\]()%{*=?aZ0é\u2028\xa0"))
_TEXT = st.lists(_CHARS, max_size=20).map("".join)


@settings(max_examples=1000, deadline=None)
@given(_TEXT)
def test_unfold_is_the_regex(text):
    assert message.unfold(text) == re.sub(r"\r?\n[ \t]", " ", text).strip(" \t")


@settings(max_examples=1000, deadline=None)
@given(_TEXT)
def test_dot_atom_is_the_regex(text):
    atext = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
    assert message._dot_atom(text) == bool(re.fullmatch(rf"{atext}(?:\.{atext})*", text))


@settings(max_examples=1000, deadline=None)
@given(_TEXT)
def test_keyword_is_the_regex(text):
    if not text.startswith("\\"):
        assert core.valid_flag(text) == bool(re.fullmatch(r"[^\x00-\x20\x7f(){%*\"\\\]]+", text))


@settings(max_examples=1000, deadline=None)
@given(_TEXT)
def test_field_name_is_the_regex(text):
    assert core.valid_field_name(text) == bool(re.fullmatch(r"[!-9;-~]+", text))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(list("=_aF09g? ")), max_size=12).map("".join))
def test_q_decoding_of_hex_pairs(text):
    want = re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.replace("_", " ").encode())
    assert message._q_decode(text) == want


def decode_2047_by_regex(v):
    """RFC 2047 decoding as vdeliver did it with `re`: the reference."""
    v = re.sub(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)[ \t]+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)", r"\1", v)
    return re.sub(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=", lambda m: message._decode_word(m.group(1), m.group(2).upper(), m.group(3),
                                                       m.group(0)), v)


_PART = st.lists(st.sampled_from(["a", "é", "=", "?", " ", "\t", "\x1c", "\xa0", "=C3=A9", "_", "w6k"]),
                 max_size=3).map("".join)
_WORD = st.builds("=?{}?{}?{}?=".format, st.sampled_from(["utf-8", "UTF-8*en", "x-unknown", "iso-8859-1", ""])
                  | _PART, st.sampled_from(["q", "Q", "b", "B", "x", ""]), _PART)
_PIECE = _WORD | st.sampled_from(["=?", "?=", "?", "=", " ", "\t", " \t ", "\n", "a", "é"])


@settings(max_examples=4000, deadline=None)
@given(st.lists(_PIECE, max_size=8).map("".join))
def test_rfc2047_decoding_is_the_regex(text):
    assert message.decode_2047(text) == decode_2047_by_regex(text)
