"""tables: texthash (postmap syntax), inline, static, regexp (regexp_table(5))."""
import os
import time

import pytest

from vdeliver import address
from vdeliver.errors import ConfigError, TableError
from vdeliver.tables import open_table
from vdeliver.tables.regexp import parse_rules, RegexpTable
from vdeliver.tables.textfile import parse_entries


def test_postmap_syntax():
    entries = parse_entries(
        "# comment\n"
        "Bob@Example.com   example.com/bob/\n"
        "   \n"
        "long@example.com  part1\n"
        "  part2\n"
        "# a comment does not end the logical line\n"
        "  part3\n"
        "novalue@example.com\n"
        "dup@example.com first\n"
        "DUP@example.com second\n"
        '"quoted key"@example.com  q/\n'
        "hash # not a comment\n")
    assert entries["bob@example.com"] == "example.com/bob/"
    assert entries["long@example.com"] == "part1  part2  part3"
    assert "novalue@example.com" not in entries
    assert entries["dup@example.com"] == "first"
    assert entries['"quoted key"@example.com'] == "q/"
    assert entries["hash"] == "# not a comment"


def test_texthash_missing_file_is_a_table_error_not_a_miss(tmp_path):
    with pytest.raises(TableError) as caught:
        open_table(f"texthash:{tmp_path}/absent")
    assert caught.value.exit_code == 75


def test_texthash_lookup(tmp_path):
    path = tmp_path / "t"
    path.write_text("a@x.org a/\n")
    table = open_table(f"texthash:{path}")
    assert table.lookup("a@x.org") == "a/" and table.lookup("b@x.org") is None
    assert table.fixed_keys


def test_inline_and_static():
    table = open_table("inline:{ A@x=a/, { b@x = b with, comma } }")
    assert table.lookup("a@x") == "a/"
    assert table.lookup("b@x") == "b with, comma"
    assert open_table("static:{ same / }").lookup("anything") == "same /"
    with pytest.raises(ConfigError):
        open_table("inline:{ novalue }")


@pytest.mark.parametrize("spec", ["nosuchtype:/x", "texthash", "hash"])
def test_unknown_table_type_defers(spec):
    with pytest.raises(ConfigError):
        open_table(spec)


def test_proxy_prefix_opens_directly():
    assert open_table("proxy:static:x").lookup("k") == "x"


REGEXP_TABLE = r"""
# comment
/^(.*)@re\.example$/        re/$1/
/^postmaster@/              admin/
if /@cond\.example$/
/^a/                        cond-a/
!/^a/                       cond-other/
endif
/^x(y)?z@opt\.example$/     opt/${1}end/
/[[:digit:]]+@digits\.example$/ digits/
/a\/b@slash\.example/       slash/
/^CASE@/i                   sensitive/
/money@/                    $$cost/
!/@never\.example$/!/^q/    neg/
"""


@pytest.mark.parametrize("key, value", [
    ("bob@re.example", "re/bob/"),
    ("postmaster@any.example", "admin/"),
    ("abc@cond.example", "cond-a/"),
    ("zzz@cond.example", "cond-other/"),
    ("xz@opt.example", "opt/end/"),
    ("xyz@opt.example", "opt/yend/"),
    ("someone@else.example", "neg/"),
    ("q@else.example", None),
    ("123@digits.example", "digits/"),
    ("a/b@slash.example", "slash/"),
    ("case@x", "neg/"),
    ("CASE@x", "sensitive/"),
    ("money@x", "$cost/"),
])
def test_regexp_rules(key, value):
    table = RegexpTable("regexp:test", parse_rules(REGEXP_TABLE))
    assert table.lookup(key) == value
    assert not table.fixed_keys


@pytest.mark.parametrize("rule", [
    pytest.param("/(?i)x/ y", id="python-only group syntax"),
    pytest.param("/a*?/ y", id="lazy quantifier"),
    pytest.param("/a/x y", id="basic regexp flag"),
    pytest.param("/a/q y", id="unknown flag"),
    pytest.param("/a y", id="no closing delimiter"),
    pytest.param("/(a)/ $2", id="group out of range"),
    pytest.param("!/(a)/ $1", id="group in negative match"),
    pytest.param("/[[:nosuch:]]/ y", id="unknown class"),
    pytest.param("word y", id="unrecognized line"),
])
def test_regexp_refuses_what_it_cannot_match_faithfully(rule):
    with pytest.raises(ConfigError):
        parse_rules(rule + "\n")


def test_regexp_missing_file(tmp_path):
    with pytest.raises(TableError):
        open_table(f"regexp:{tmp_path}/none")


# --- the rule-file grammar regexp: and pcre: share (tables/rulefile.py) ---

def pattern_table(kind, text):
    from vdeliver.tables import pcre, regexp
    if kind == "regexp":
        return regexp.RegexpTable("regexp:t", regexp.parse_rules(text, "regexp:t"))
    return pcre.PcreTable("pcre:t", pcre.parse_rules(text, "pcre:t"))


NESTED = ("# comment\n"
          "if /@a\\.example$/\n"
          "IF !/^x/\n"
          "/^(.)/ $1/\n"
          "\n"
          "endif\n"
          "/^x/\n"
          "  x/\n"            # a continuation line: the result of the rule above
          "EndIf\n"
          "/./ other\n")


@pytest.mark.parametrize("kind", ["regexp", "pcre"])
@pytest.mark.parametrize("key, wanted", [
    pytest.param("bob@a.example", "b/", id="both IFs hold"),
    pytest.param("xena@a.example", "x/", id="inner IF fails: skipped to its ENDIF"),
    pytest.param("bob@b.example", "other", id="outer IF fails: skipped past both"),
])
def test_if_endif_nesting_and_continuation_in_both_dialects(kind, key, wanted):
    assert pattern_table(kind, NESTED).lookup(key) == wanted


@pytest.mark.parametrize("kind", ["regexp", "pcre"])
@pytest.mark.parametrize("text, key, wanted", [
    pytest.param("if /^a/\n/b/ ab\n", "ab", "ab", id="IF left open runs to the end"),
    pytest.param("if /^a/\n/b/ ab\n", "bb", None, id="IF left open: failing skips the rest"),
    pytest.param("endif\n/b/ b\n", "b", "b", id="ENDIF without IF is ignored"),
    pytest.param("ENDIF\u00e9\n/b/ b\n", "b", "b", id="ENDIF then a non-ASCII letter is ENDIF (C ISALNUM)"),
    pytest.param("if/^a/\n/b/ ab\nendif\n", "ab", "ab", id="IF right before the delimiter"),
    pytest.param("\udcffb\udcff b\n", "b", "b", id="a non-UTF-8 byte is a one-byte delimiter"),
])
def test_shared_grammar_edges(kind, text, key, wanted):
    assert pattern_table(kind, text).lookup(key) == wanted


@pytest.mark.parametrize("kind", ["regexp", "pcre"])
@pytest.mark.parametrize("text, where", [
    pytest.param("/a/ a\n\n# c\nword b\n", "line 4", id="unrecognized line, physical number"),
    pytest.param("/a/ a\n\u00e9b\u00e9 r\n", "line 2", id="multi-byte delimiter (Postfix skips the rule)"),
    pytest.param("ifx /a/\n", "line 1", id="IFx is no IF"),
])
def test_shared_grammar_refusals_name_the_line(kind, text, where):
    with pytest.raises(ConfigError) as error:
        pattern_table(kind, text)
    assert f"{kind}:t, {where}:" in error.value.detail


@pytest.mark.parametrize("smtputf8_enable, wanted", [
    pytest.param(True, {"strasse@x": "s/", "jösé@x": "j/"}, id="yes: folded, the Latin-1 line skipped"),
    pytest.param(False, {"straße@x": "s/", "jÖsÉ@x": "j/", "latin1-\udce9@x": "l/"},
                 id="no: ASCII folded, the Latin-1 line kept"),
])
def test_postmap_syntax_under_smtputf8_enable(monkeypatch, smtputf8_enable, wanted):
    """postmap.c, dict_thash.c: non-UTF-8 lines are dropped only in UTF-8 mode."""
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", smtputf8_enable)
    source = "STRAßE@x s/\nJÖSÉ@x j/\n".encode() + b"latin1-\xe9@x l/\n"
    assert parse_entries(source.decode("utf-8", "surrogateescape")) == wanted


def test_a_texthash_cache_is_used_only_under_the_smtputf8_enable_that_wrote_it(tmp_path, monkeypatch):
    from vdeliver.tables import texthash
    monkeypatch.setattr(texthash, "CACHE_DIRECTORY", str(tmp_path / "cache"))
    path = tmp_path / "t"
    path.write_bytes("STRAßE@x s/\n".encode())
    os.utime(path, (time.time() - 60, time.time() - 60))
    spec = f"texthash:{path}"
    assert isinstance(open_table(spec), texthash.TextHashTable)  # parsed; the cache written
    cached = open_table(spec)
    assert isinstance(cached, texthash.CachedTextHashTable) and cached.lookup("strasse@x") == "s/"
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", False)
    table = open_table(spec)
    assert isinstance(table, texthash.TextHashTable)  # the yes cache does not answer for no
    assert table.lookup("strasse@x") is None and table.lookup("straße@x") == "s/"
    assert open_table(spec).lookup("straße@x") == "s/"  # from its own cache now


@pytest.mark.parametrize("smtputf8_enable", [True, False])
def test_the_postmap_fallback_gets_a_private_main_cf_that_states_smtputf8_enable(monkeypatch,
                                                                                smtputf8_enable):
    """Never the system's /etc/postfix/main.cf (absent on a Debian installed without
    configuration; postmap dies without one) and never one that is still "hot"
    (Postfix re-reads such a file for 2 s)."""
    from vdeliver.tables import postmap
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", smtputf8_enable)
    directory = postmap.private_config_directory()
    try:
        assert os.listdir(directory) == ["main.cf"]
        with open(f"{directory}/main.cf") as fh:
            text = fh.read()
        st = os.stat(f"{directory}/main.cf")
    finally:
        postmap.remove_private(directory)
    assert not os.path.exists(directory)
    assert f"smtputf8_enable = {'yes' if smtputf8_enable else 'no'}\n" in text
    assert "compatibility_level = 2\n" in text
    assert f"meta_directory = {directory}\n" in text  # not /etc/postfix's dynamicmaps.cf
    assert time.time() - st.st_mtime >= 30 and st.st_mode & 0o077 == 0


@pytest.mark.parametrize("options, key, code", [
    pytest.param([], "STRASSE@x", 0, id="yes: ss finds ß"),
    pytest.param(["-o", "smtputf8_enable=no"], "STRASSE@x", 1, id="no: it does not"),
    pytest.param(["-o", "smtputf8_enable=no"], "STRAßE@x", 0, id="no: ASCII folds"),
])
def test_the_query_tool_folds_as_the_config_says(tmp_path, monkeypatch, capsys, options, key, code):
    from vdeliver import query
    monkeypatch.setattr(address, "SMTPUTF8_ENABLE", True)  # restored after the test
    empty = tmp_path / "vdeliver.cf"
    empty.write_text("")
    argv = ["-c", str(empty), *options, key, "inline:{ straße@x=s/ }"]
    assert query.main(argv) == code, capsys.readouterr()


def test_the_postmap_fallback_remembers_a_bounded_number_of_answers(monkeypatch):
    """The LMTP daemon keeps a table open for days and a dictionary attack sends a new key
    with every RCPT: the answers postmap gave are remembered, but not without bound."""
    from vdeliver.tables import postmap
    asked = []
    monkeypatch.setattr(postmap, "query", lambda spec, type_name, key: asked.append(key) or None)
    monkeypatch.setattr(postmap, "MAX_ANSWERS", 100)
    table = postmap.PostmapTable("hash:/x", "hash:/x")
    for n in range(250):
        assert table.lookup(f"user{n}@example.com") is None
    assert table.lookup("user249@example.com") is None and len(asked) == 250  # remembered
    assert len(table.answers) <= 100
