"""address.py: folding, +extension split, virtual(8) lookup order, refusal of control bytes."""
import pytest

from vdeliver import address, lmtptext
from vdeliver.errors import BadRecipientAddress, BadSenderAddress


@pytest.mark.parametrize("addr, delimiters, keys", [
    pytest.param("bob@example.com", "+", ["bob@example.com", "@example.com"], id="plain"),
    pytest.param("bob+tag@example.com", "+", ["bob+tag@example.com", "bob@example.com", "@example.com"], id="extension"),
    pytest.param("bob+tag@example.com", "", ["bob+tag@example.com", "@example.com"], id="no delimiter set"),
    pytest.param("bob-x+y@example.com", "+-", ["bob-x+y@example.com", "bob@example.com", "@example.com"], id="first of several delimiters"),
    pytest.param("+foo@example.com", "+", ["+foo@example.com", "@example.com"], id="leading delimiter not split"),
    pytest.param("u+@example.com", "+", ["u+@example.com", "u@example.com", "@example.com"], id="empty extension"),
    pytest.param("mailer-daemon@example.com", "-", ["mailer-daemon@example.com", "@example.com"], id="mailer-daemon never split"),
    pytest.param("postmaster+x@example.com", "+", ["postmaster+x@example.com", "postmaster@example.com", "@example.com"], id="postmaster with extension is split"),
    pytest.param("a@b@example.com", "+", ["a@b@example.com", "@example.com"], id="split at last at"),
    pytest.param("local", "+", ["local"], id="no domain"),
])
def test_lookup_keys(addr, delimiters, keys):
    assert address.lookup_keys(addr, delimiters) == keys


def test_fold_ascii_and_unicode():
    assert address.fold("Bob@Example.COM") == "bob@example.com"
    assert address.fold("STRASSE@ÉX.de") == "strasse@éx.de"


LATIN1 = b"Latin1-\xc9@X".decode("utf-8", "surrogateescape")  # not UTF-8: surrogate-escaped


@pytest.mark.parametrize("smtputf8_enable, text, folded", [
    pytest.param(True, "JÖSÉ@EXÄMPLE.COM", "jösé@exämple.com", id="yes: UTF-8 folds"),
    pytest.param(True, "STRAßE@x", "strasse@x", id="yes: full folding, ß is ss"),
    pytest.param(True, LATIN1, LATIN1.replace("L", "l").replace("X", "x"),
                 id="yes: bytes that are not UTF-8 are kept, the rest folds"),
    pytest.param(False, "JÖSÉ@EXÄMPLE.COM", "jÖsÉ@exÄmple.com", id="no: ASCII only"),
    pytest.param(False, "STRAßE@x", "straße@x", id="no: ß stays"),
    pytest.param(False, LATIN1, LATIN1.replace("L", "l").replace("X", "x"), id="no: bytes kept"),
    pytest.param(False, "Bob@Example.COM", "bob@example.com", id="no: ASCII folds"),
])
def test_fold_follows_smtputf8_enable(monkeypatch, smtputf8_enable, text, folded):
    """casefold.c: ICU folding of UTF-8 with smtputf8_enable = yes, lowercase() with no."""
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", smtputf8_enable)
    assert address.fold(text) == folded


def test_table_key_and_value_follow_smtputf8_enable(monkeypatch):
    """dict_utf8.c (yes): a non-UTF-8 key is not looked up, a non-UTF-8 value refused;
    without it (no) both are bytes as they are."""
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", True)
    assert address.table_key("jösé@x") == "jösé@x".encode()
    assert address.table_key(LATIN1) is None
    assert address.table_value(b"a\xe9/") is None and address.table_value(b"\xc3\xa4/") == "ä/"
    address.set_smtputf8(False)
    assert address.SMTPUTF8_ENABLE is False
    assert address.table_key(LATIN1) == b"Latin1-\xc9@X"
    assert address.to_bytes(address.table_value(b"a\xe9/")) == b"a\xe9/"


@pytest.mark.parametrize("bad", ["a\r\nb@x", "a\nb@x", "a\0@x", "a\x1b@x", "", "x" * 1001 + "@x"])
def test_recipient_with_control_characters_is_refused(bad):
    with pytest.raises(BadRecipientAddress):
        address.check_recipient(bad)


def test_sender_with_newline_is_refused_but_empty_is_null_sender():
    assert address.check_sender("") == ""
    with pytest.raises(BadSenderAddress):
        address.check_sender("a@b\nX-Evil: 1")


def test_to_bytes_round_trips_8bit_argv():
    raw = "jöe@exämple.com".encode("utf-8")
    text = raw.decode("utf-8", "surrogateescape")
    assert address.to_bytes(text) == raw
    latin1 = b"j\xf6e@x"
    assert address.to_bytes(latin1.decode("utf-8", "surrogateescape")) == latin1


@pytest.mark.parametrize("addr, queries", [
    pytest.param("bob+tag@example.com", [("bob+tag@example.com", True), ("bob@example.com", False),
                                         ("@example.com", False)], id="dot-string: as lookup_keys"),
    pytest.param("john doe@example.com", [('"john doe"@example.com', True), ("john doe@example.com", True),
                                          ("@example.com", False)], id="space: quoted first"),
    pytest.param("a..b+x@example.com", [('"a..b+x"@example.com', True), ("a..b+x@example.com", True),
                                        ('"a..b"@example.com', False), ("a..b@example.com", False),
                                        ("@example.com", False)], id="double dot, with extension"),
    pytest.param(".a@example.com", [('".a"@example.com', True), (".a@example.com", True),
                                    ("@example.com", False)], id="leading dot"),
    pytest.param("a.@example.com", [('"a."@example.com', True), ("a.@example.com", True),
                                    ("@example.com", False)], id="trailing dot"),
    pytest.param('a"b\\c@example.com', [('"a\\"b\\\\c"@example.com', True), ('a"b\\c@example.com', True),
                                        ("@example.com", False)], id="quote and backslash escaped"),
    pytest.param("a@b@example.com", [('"a@b"@example.com', True), ("a@b@example.com", True),
                                     ("@example.com", False)], id="at sign in the local part"),
    pytest.param("jörg@example.com", [("jörg@example.com", True), ("@example.com", False)],
                 id="8-bit is not quoted"),
    pytest.param("john doe", [('"john doe"', True), ("john doe", True)], id="no domain"),
])
def test_lookup_queries_quote_as_virtual8(addr, queries):
    assert address.lookup_queries(addr, "+") == queries


@pytest.mark.parametrize("external, internal", [
    ('"john doe"@example.com', "john doe@example.com"),
    ('"a\\"b\\\\c"@example.com', 'a"b\\c@example.com'),
    ('"a@b"@example.com', "a@b@example.com"),
    ("plain@example.com", "plain@example.com"),
    ('"x"@"odd"', 'x@"odd"'),  # text after the last unquoted @ is kept as it is
])
def test_unquote_local_part_inverts_quoting(external, internal):
    assert address.unquote_local_part(external) == internal
    if internal.count('"') == 0:
        assert address.quote_local_part(internal) in (external, internal)


@pytest.mark.parametrize("argument, keyword, wanted", [
    pytest.param("FROM:<a@b> SIZE=10", "FROM:", ("a@b", {"SIZE": "10"}), id="path and a parameter"),
    pytest.param("from:<a@b> size=10 body=8BITMIME", "FROM:", ("a@b", {"SIZE": "10", "BODY": "8BITMIME"}),
                 id="keyword and parameter names in any case"),
    pytest.param("FROM: <a@b>", "FROM:", ("a@b", {}), id="space after the colon"),
    pytest.param("FROM:<>", "FROM:", ("", {}), id="null sender"),
    pytest.param("TO:<@r1,@r2:u@d>", "TO:", ("u@d", {}), id="source route dropped"),
    pytest.param('TO:<"a>b"@x> NOTIFY=NEVER', "TO:", ('"a>b"@x', {"NOTIFY": "NEVER"}), id="quoted bracket"),
    pytest.param('TO:<"a\\">"@x>', "TO:", ('"a\\">"@x', {}), id="escaped quote inside quotes"),
    pytest.param("FROM:a@b", "FROM:", (None, {}), id="no brackets"),
    pytest.param("TO:<a@b", "TO:", (None, {}), id="unterminated"),
    pytest.param("TO:<a@b>", "FROM:", (None, {}), id="wrong keyword"),
    pytest.param("", "TO:", (None, {}), id="empty"),
])
def test_parse_path(argument, keyword, wanted):
    assert lmtptext.parse_path(argument, keyword) == wanted


@pytest.mark.parametrize("value, wanted", [
    pytest.param("rfc822;Bobby+2B1@example.com", "Bobby+1@example.com", id="xtext plus"),
    pytest.param("RFC822;a@b", "a@b", id="type in upper case"),
    pytest.param("rfc822;a+3Db@x", "a=b@x", id="xtext equals"),
    pytest.param("x400;a@b", "", id="other address types ignored"),
    pytest.param("rfc822;j+C3+B6rg@example.com", "j\u00f6rg@example.com", id="xtext of UTF-8 bytes"),
    pytest.param('rfc822;"john+20doe"@example.com', '"john doe"@example.com', id="quoted form kept"),
    pytest.param("utf-8;a@b", "a@b", id="utf-8 plain"),
    pytest.param("UTF-8;jos\u00e9@b", "jos\u00e9@b", id="utf-8 as it is"),
    pytest.param("utf-8;jos\\x{E9}@b", "jos\u00e9@b", id="utf-8 escape"),
    pytest.param("utf-8;a\\x{0A}b@c", "a\\x{0A}b@c", id="utf-8 escape of a control kept"),
    pytest.param("utf-8;a\\x{D800}b", "a\\x{D800}b", id="utf-8 escape of a surrogate kept"),
    pytest.param("utf-8;a\\x{E9", "a\\x{E9", id="utf-8 unterminated escape kept"),
    pytest.param("rfc822;", "", id="empty address"),
    pytest.param("", "", id="no ORCPT"),
    pytest.param("rfc822;a+2", "a+2", id="truncated xtext kept"),
    pytest.param("rfc822;a+ZZb", "a+ZZb", id="not hex: kept"),
    pytest.param("rfc822;a+ 1@b", "a+ 1@b", id="space is not a hex digit"),
    pytest.param("rfc822;a+-1@b", "a+-1@b", id="sign is not a hex digit"),
])
def test_decode_orcpt(value, wanted):
    assert lmtptext.decode_orcpt(value) == wanted
