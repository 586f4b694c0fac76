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
