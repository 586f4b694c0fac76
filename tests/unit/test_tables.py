"""tables: texthash (postmap syntax), inline, static, regexp (regexp_table(5))."""
import pytest

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
