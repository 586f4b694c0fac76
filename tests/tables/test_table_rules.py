"""Unit tests of the table types: %-expansion rules, safe SQL, pcre translation,
LDAP escaping, cdb, the texthash cache, combinations, and each type's errors.
No database server needed (sqlite and ldap3's mock server stand in)."""
import os
import sqlite3
import sys

import pytest

import corpus
from tables_support import require_module
from vdeliver.errors import ConfigError, TableError
from vdeliver.tables import dbcommon, extension, open_table


def no_extension(package, name, full_name):
    raise ImportError(f"{full_name} hidden by the test")


# --- db_common: the %-codes ------------------------------------------------

def templates(query, result_format="%s", domain=None):
    return dbcommon.Templates(query, result_format, "test", domain)


@pytest.mark.parametrize("query, key, wanted", [
    pytest.param("'%s'", "User@Example.com", {"s": "User@Example.com"}, id="%s is the key"),
    pytest.param("'%u'", "user+ext@example.com", {"u": "user+ext"}, id="%u localpart"),
    pytest.param("'%u'", "postmaster", {"u": "postmaster"}, id="%u without @ is the whole key"),
    pytest.param("'%u'", "@example.com", None, id="%u with an @domain key skips"),
    pytest.param("'%d'", "user@example.com", {"d": "example.com"}, id="%d domain"),
    pytest.param("'%d'", "postmaster", None, id="%d without @ skips"),
    pytest.param("'%d'", "user@", None, id="%d with an empty domain skips"),
    pytest.param("'%d'", "@example.com", {"d": "example.com"}, id="%d with an @domain key"),
    pytest.param("'%1'", "a@mail.example.com", {"1": "com"}, id="%1 is the top level"),
    pytest.param("'%3.%2.%1'", "a@mail.example.com", {"3": "mail", "2": "example", "1": "com"},
                 id="%n from the right"),
    pytest.param("'%3'", "a@example.com", None, id="too few labels skips"),
    pytest.param("'%2'", "a@example..com.", {"2": "example", "1": "com"},
                 id="empty labels are dropped (argv_split)"),
    pytest.param("'%S %U %D'", "u@d.org", {"S": "u@d.org", "U": "u", "D": "d.org"},
                 id="upper case codes in the query"),
    pytest.param("'%U'", "@d.org", None, id="%U with an @domain key skips"),
    pytest.param("'%u@%d'", "a@b@c.org", {"u": "a@b", "d": "c.org"}, id="the last @ splits"),
    pytest.param("'%s'", "", None, id="an empty key is never queried"),
])
def test_query_codes(query, key, wanted):
    values = templates(query).query_values(key)
    if wanted is None:
        assert values is None
    else:
        assert values is not None
        for code, text in wanted.items():
            assert values[code] == text


def test_result_format_codes_refer_to_value_and_key():
    t = templates("'%s'", "%d/%u/%s/%D/%U/%S")
    assert t.result("bob@example.org", "x@y.net") == "example.org/bob/bob@example.org/y.net/x/x@y.net"
    assert t.result("novalue", "x@y.net") is None      # %d needs a domain in the value
    assert t.result("", "x@y.net") is None              # empty values are dropped
    assert t.result(None, "x@y.net") is None            # NULL too


def test_result_format_with_key_domain_skips_keys_without_domain_at_query_time():
    # db_common shares one context: %D in result_format makes %D-less keys skip.
    assert templates("'%s'", "%D/%s").query_values("postmaster") is None


@pytest.mark.parametrize("template", ["'%x'", "'%'", "abc%", "'%0'"])
def test_invalid_codes_are_config_errors(template):
    with pytest.raises(ConfigError):
        templates(template)


def test_domain_list(tmp_path):
    names = tmp_path / "domains"
    names.write_text("# listed\nexample.net other.net\n")
    t = templates("'%s'", domain=dbcommon.DomainList(
        f"Example.com, !bad.example.com, {names}, inline:{{ fromtable.org=yes }}", "test"))
    assert t.check_domain("a@example.com") and t.check_domain("a@EXAMPLE.COM")
    assert t.check_domain("a@other.net") and t.check_domain("a@fromtable.org")
    assert not t.check_domain("a@bad.example.com")
    assert not t.check_domain("a@elsewhere.com")
    assert not t.check_domain("@example.com")      # empty localpart: not queried
    assert not t.check_domain("postmaster")


def test_results_join_and_limit():
    results = dbcommon.Results(templates("'%s'"), "k", 2, "test")
    for value in ["a", None, "", "b"]:
        results.add(value)
    assert results.value() == "a,b"
    with pytest.raises(TableError):
        results.add("c")
    assert dbcommon.Results(templates("'%s'"), "k", 0, "test").value() is None


# --- SQL built from a template ----------------------------------------------

@pytest.mark.parametrize("template, style, key, sql, params", [
    pytest.param("SELECT m FROM t WHERE e='%s'", "qmark", "o'brien@x",
                 "SELECT m FROM t WHERE e=?", ["o'brien@x"], id="quote in key"),
    pytest.param("SELECT m FROM t WHERE e='%u@%d' AND x LIKE 'a%%'", "format", "u@d",
                 "SELECT m FROM t WHERE e=%s AND x LIKE 'a%%'", ["u@d"], id="codes in one literal"),
    pytest.param("SELECT m FROM t WHERE e LIKE '%%@%d' AND 100%%=1", "qmark", "u@d",
                 "SELECT m FROM t WHERE e LIKE ? AND 100%=1", ["%@d"], id="percent literal"),
    pytest.param("SELECT m FROM t WHERE e='it''s %s'", "qmark", "k",
                 "SELECT m FROM t WHERE e=?", ["it's k"], id="doubled quote"),
    pytest.param("SELECT m FROM \"t\" WHERE e='%s'", "format", "'; drop table t; --",
                 "SELECT m FROM \"t\" WHERE e=%s", ["'; drop table t; --"], id="injection"),
])
def test_sql_query_parameters(template, style, key, sql, params):
    query = dbcommon.SqlQuery(template, "test", style)
    assert query.build(templates(template).query_values(key)) == (sql, params)


@pytest.mark.parametrize("template, kwargs", [
    pytest.param("SELECT m FROM t WHERE e=%s", {}, id="unquoted code"),
    pytest.param("SELECT m FROM t WHERE e=E'%s'", {}, id="E prefix"),
    pytest.param("SELECT m FROM t WHERE e='a\\b%s'", {}, id="backslash beside a code"),
    pytest.param("SELECT m FROM t WHERE e=\"%s\"", {}, id="code in an identifier"),
    pytest.param("SELECT m FROM t WHERE e='%s", {}, id="unterminated literal"),
])
def test_sql_templates_that_could_be_injected_are_refused(template, kwargs):
    with pytest.raises(ConfigError):
        dbcommon.SqlQuery(template, "test", "format", **kwargs)


def test_mysql_reads_double_quotes_and_backslashes_as_mysql_does():
    query = dbcommon.SqlQuery("SELECT m FROM t WHERE a='x\\'y' AND e=\"%s\"", "test", "format",
                              backslash_escapes=True, double_quoted_strings=True)
    assert query.build({"s": "k"}) == ("SELECT m FROM t WHERE a='x\\'y' AND e=%s", ["k"])


def sqlite_table(tmp_path, body, rows=(("a@x.org", "x.org/a/"),)):
    database = tmp_path / "t.sqlite"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE t (email TEXT, maildir TEXT)")
    connection.executemany("INSERT INTO t VALUES (?, ?)", rows)
    connection.commit()
    connection.close()
    config = tmp_path / "t.cf"
    config.write_text(f"dbpath = {database}\n{body}")
    return open_table(f"sqlite:{config}")


def test_sqlite_injection_is_not_found(tmp_path):
    table = sqlite_table(tmp_path, "query = SELECT maildir FROM t WHERE email='%s'\n")
    for key in ["' OR '1'='1", "'; DROP TABLE t; --", "%", "\\", "a@x.org' --"]:
        assert table.lookup(key) is None
    assert table.lookup("a@x.org") == "x.org/a/"


@pytest.mark.parametrize("body, error", [
    pytest.param("", ConfigError, id="no query"),
    pytest.param("query = SELECT maildir FROM t WHERE email=%s\n", ConfigError, id="unquoted"),
    pytest.param("query = SELECT nothing FROM nowhere WHERE e='%s'\n", TableError, id="bad SQL"),
    pytest.param("query = SELECT maildir FROM t WHERE email='%s'\nexpansion_limit = x\n",
                 ConfigError, id="bad number"),
])
def test_sqlite_errors(tmp_path, body, error):
    with pytest.raises(error):
        sqlite_table(tmp_path, body).lookup("a@x.org")


def test_sqlite_missing_database_defers(tmp_path):
    config = tmp_path / "t.cf"
    config.write_text(f"dbpath = {tmp_path}/absent.sqlite\nquery = SELECT 1 WHERE '%s'=''\n")
    with pytest.raises(TableError):
        open_table(f"sqlite:{config}").lookup("a@x.org")
    assert not (tmp_path / "absent.sqlite").exists()


@pytest.mark.parametrize("spec", ["sqlite:relative.cf", "pgsql:/nonexistent/pg.cf",
                                  "mysql:/nonexistent/my.cf", "ldap:/nonexistent/ldap.cf"])
def test_config_file_problems_are_config_errors(spec):
    with pytest.raises(ConfigError):
        open_table(spec)


@pytest.mark.parametrize("table_type, module, extra", [
    ("pgsql", "psycopg", "pgsql"), ("mysql", "pymysql", "mysql"), ("ldap", "ldap3", "ldap")])
def test_a_missing_driver_names_the_extra(tmp_path, monkeypatch, table_type, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    monkeypatch.setattr(extension, "load_directly", no_extension)
    config = tmp_path / "t.cf"
    config.write_text("dbname = x\nquery = SELECT 1 WHERE 'a'='%s'\n")
    with pytest.raises(ConfigError) as caught:
        open_table(f"{table_type}:{config}")
    assert f"pip install vdeliver[{extra}]" in caught.value.detail


# --- LDAP ---------------------------------------------------------------------

def test_ldap_escaping():
    from vdeliver.tables.ldap import dn_escape, filter_escape
    assert filter_escape("a*b(c)d\\e\0") == "a\\2Ab\\28c\\29d\\5Ce\\00"
    assert dn_escape("a,b+c=d #x") == "a\\2Cb\\2Bc\\3Dd\\20\\23x"


def test_ldap_lookup_with_a_mock_server(tmp_path):
    require_module("ldap3", "ldap")
    import ldap3
    config = tmp_path / "ldap.cf"
    config.write_text("server_host = ldap://127.0.0.1:1\nsearch_base = ou=%d,dc=example,dc=com\n"
                      "query_filter = (&(objectClass=person)(mail=%s))\n"
                      "result_attribute = maildrop, mailbox\nresult_format = %s/\n"
                      "expansion_limit = 3\n")
    table = open_table(f"ldap:{config}")
    connection = ldap3.Connection(ldap3.Server("mock"), client_strategy=ldap3.MOCK_SYNC,
                                  raise_exceptions=True)
    add = connection.strategy.add_entry
    add("ou=example.org,dc=example,dc=com", {"objectClass": "organizationalUnit"})
    add("cn=bob,ou=example.org,dc=example,dc=com",
        {"objectClass": "person", "mail": "bob@example.org", "maildrop": ["a", "b"], "mailbox": "m"})
    add("cn=star,ou=example.org,dc=example,dc=com",
        {"objectClass": "person", "mail": "*@example.org", "maildrop": "star"})
    add("cn=many,ou=example.org,dc=example,dc=com",
        {"objectClass": "person", "mail": "many@example.org", "maildrop": ["1", "2", "3", "4"]})
    connection.bind()
    table.connection = connection
    assert table.lookup("bob@example.org") == "a/,b/,m/"
    assert table.lookup("*@example.org") == "star/"
    assert table.lookup("b*@example.org") is None             # no wildcard from the key
    assert table.lookup("(mail=*)@example.org") is None
    assert table.lookup("bob@nosuch.org") is None              # dynamic base missing: not found
    assert table.lookup("postmaster") is None                  # %d: no domain, no query
    with pytest.raises(TableError):
        table.lookup("many@example.org")                      # over expansion_limit


def test_ldap_server_down_defers(tmp_path):
    require_module("ldap3", "ldap")
    from servers import free_port
    config = tmp_path / "ldap.cf"
    config.write_text(f"server_host = 127.0.0.1:{free_port()}\nsearch_base = dc=x\ntimeout = 2\n")
    with pytest.raises(TableError):
        open_table(f"ldap:{config}").lookup("a@x.org")


@pytest.mark.parametrize("setting", ["special_result_attribute = member", "bind = sasl",
                                     "leaf_result_attribute = x"])
def test_ldap_unsupported_settings_are_refused(tmp_path, setting):
    require_module("ldap3", "ldap")
    config = tmp_path / "ldap.cf"
    config.write_text(f"search_base = dc=x\n{setting}\n")
    with pytest.raises(ConfigError):
        open_table(f"ldap:{config}")


# --- pcre ---------------------------------------------------------------------

def pcre(rules):
    from vdeliver.tables.pcre import PcreTable, parse_rules
    return PcreTable("pcre:test", parse_rules(rules))


@pytest.mark.parametrize("rule, key, wanted", [
    pytest.param(r"/^a.c$/ y", "a\nc", "y", id="s flag on: dot matches newline"),
    pytest.param(r"/^a.c$/s y", "a\nc", None, id="s toggles off"),
    pytest.param(r"/^ABC$/ y", "abc", "y", id="caseless by default"),
    pytest.param(r"/^ABC$/i y", "abc", None, id="i toggles"),
    pytest.param(r"/^é$/ y", "É", None, id="caseless is ASCII only (no UTF mode)"),
    pytest.param(r"/^.$/ y", "é", None, id="dot is one byte"),
    pytest.param(r"/^..$/ y", "é", "y", id="two bytes"),
    pytest.param(r"/b/A y", "ab", None, id="A anchors"),
    pytest.param(r"/c$/E y", "abc\n", None, id="E: dollar only at the end"),
    pytest.param(r"/c$/ y", "abc\n", "y", id="dollar before a final newline"),
    pytest.param(r"/c\z/ y", "abc\n", None, id="\\z"),
    pytest.param(r"/c\Z/ y", "abc\n", "y", id="\\Z"),
    pytest.param(r"/^(a+)(a*)$/U $1-$2", "aaa", "a-aa", id="U: ungreedy"),
    pytest.param(r"/^(a+?)(a*)$/U $1-$2", "aaa", "aaa-", id="U: ? makes it greedy"),
    pytest.param(r"/^ a b $/x y", "ab", "y", id="x ignores whitespace"),
    pytest.param(r"/^(?<n>\w+)@/ $1", "bob@x", "bob", id="named group"),
    pytest.param(r"/^a{,2}$/ y", "a{,2}", "y", id="{,n} is literal in PCRE2 10.42"),
    pytest.param(r"/^\Qa.b\E$/ y", "a.b", "y", id="\\Q..\\E"),
    pytest.param(r"/^\Qa.b\E$/ y", "axb", None, id="\\Q..\\E is literal"),
    pytest.param(r"/^[[:upper:]]+$/i y", "abc", None, id="posix class, case-sensitive"),
    pytest.param(r"/^\x41\x{42}\103$/i y", "ABC", None, id="\\103 is a back reference try"),
    pytest.param(r"/^(?i)abc$/i y", "ABC", "y", id="leading (?i)"),
    pytest.param(r"/(?-i)^abc$/ y", "ABC", None, id="leading (?-i)"),
    pytest.param(r"/^a(b)?c$/ [$1]", "ac", "[]", id="unset group is empty"),
    pytest.param(r"/^a\h\v$/ y", "a \n", "y", id="\\h \\v"),
    pytest.param(r"/^(x)(y)$/ ${2}$(1)$$", "xy", "yx$", id="result syntax"),
])
def test_pcre_semantics(rule, key, wanted):
    if "\\103" in rule:
        with pytest.raises(ConfigError):
            pcre(rule)
        return
    assert pcre(rule + "\n").lookup(key) == wanted


@pytest.mark.parametrize("rule", [
    pytest.param("/(?R)/ y", id="recursion"),
    pytest.param("/(?|a|b)/ y", id="branch reset"),
    pytest.param("/(?(1)a|b)/ y", id="conditional"),
    pytest.param("/(*UTF)a/ y", id="verb"),
    pytest.param(r"/\p{L}/ y", id="unicode property"),
    pytest.param(r"/\k<n>/ y", id="\\k"),
    pytest.param("/a(?i)b/ y", id="option change mid-pattern"),
    pytest.param("/[[:^alpha:]]/ y", id="negated posix class"),
    pytest.param("/(?<=a|bc)x/ y", id="variable look-behind"),
    pytest.param("/a/q y", id="unknown flag"),
    pytest.param("/a y", id="no closing delimiter"),
    pytest.param("/(a)/ $2", id="$n beyond the groups"),
    pytest.param("!/(a)/ $1", id="$n in a negative rule"),
    pytest.param("/a/ $", id="empty macro name"),
    pytest.param("/a/x!/b/ y", id="regexp's two-pattern form is not pcre"),
    pytest.param("/a +/Ux y", id="U with x"),
    pytest.param("word y", id="unrecognized line"),
    pytest.param(r"/\x{100}/ y", id="code point above 0xff"),
])
def test_pcre_refuses_what_it_cannot_match_faithfully(rule):
    from vdeliver.tables.pcre import parse_rules
    with pytest.raises(ConfigError):
        parse_rules(rule + "\n")


def test_pcre_result_errors_and_non_utf8_keys(tmp_path, postfix):
    """Checked against postmap key by key (postmap dies on the first error)."""
    from tables_support import require_type
    require_type(postfix.supported, "pcre", "postfix-pcre")
    path = tmp_path / "rules.pcre"
    path.write_bytes(b"/^(.).*@first/ first/$1\n/^latin/ latin/\n/^empty@/\n/^ok@/ ok/\n"
                     b"/^(ok2|\xe9)@/ ok2/\n/^bad@/ bad\xe9/\n")  # Latin-1 rules stay rules
    corpus.cool(path)
    spec = f"pcre:{path}"
    keys = ["ä@first".encode(), b"a@first", b"latin1-\xe9@x", b"ok@x", b"none", b"ok2@x",
            b"bad@x"]
    expected = corpus.postmap_answers(postfix, spec, keys)
    actual = corpus.vdeliver_answers(open_table(spec), keys)
    assert expected["ä@first".encode()] == "error" and actual == expected
    assert expected[b"ok2@x"] == b"ok2/" and expected[b"bad@x"] == "error"
    with pytest.raises(TableError):  # an empty result: maps.c makes it an error
        open_table(spec).lookup("empty@x")


def test_pcre_if_endif_nesting():
    table = pcre("if /@a\\.example$/\nif !/^x/\n/^(.)/ $1/\nendif\n/^x/ x/\nendif\n/./ other\n")
    assert table.lookup("bob@a.example") == "b/"
    assert table.lookup("xena@a.example") == "x/"
    assert table.lookup("bob@b.example") == "other"


# --- cdb, texthash cache --------------------------------------------------------

def test_cdb_writer_and_reader_round_trip(tmp_path):
    from vdeliver.tables.cdb import CdbFile, write
    items = [(f"key{i}".encode(), f"value{i}".encode()) for i in range(3000)] + [(b"", b"empty")]
    write(str(tmp_path / "t.cdb"), items)
    reader = CdbFile(str(tmp_path / "t.cdb"))
    assert all(reader.get(key) == value for key, value in items)
    assert reader.get(b"missing") is None


def test_cdb_truncated_or_missing_defers(tmp_path):
    from vdeliver.tables.cdb import write
    with pytest.raises(TableError):
        open_table(f"cdb:{tmp_path}/absent")
    write(str(tmp_path / "t.cdb"), [(b"a", b"b")])
    data = (tmp_path / "t.cdb").read_bytes()
    (tmp_path / "t.cdb").write_bytes(data[:2060])
    with pytest.raises(TableError):
        open_table(f"cdb:{tmp_path}/t").lookup("a")


def cached_texthash(tmp_path, monkeypatch, text):
    from vdeliver.tables import texthash
    monkeypatch.setattr(texthash, "CACHE_DIRECTORY", str(tmp_path / "cache"))
    source = tmp_path / "vmailbox"
    source.write_text(text)
    corpus.cool(source)
    return texthash, source


def test_texthash_cache_is_built_used_and_invalidated(tmp_path, monkeypatch):
    texthash, source = cached_texthash(tmp_path, monkeypatch, "a@x.org a/\nb@x.org b/\n")
    first = open_table(f"texthash:{source}")
    assert isinstance(first, texthash.TextHashTable) and first.lookup("a@x.org") == "a/"
    second = open_table(f"texthash:{source}")
    assert isinstance(second, texthash.CachedTextHashTable)
    assert second.lookup("a@x.org") == "a/" and second.lookup("c@x.org") is None
    assert sorted(os.listdir(tmp_path / "cache")) == [
        os.path.basename(texthash.cache_path(str(source))),
        os.path.basename(texthash.cache_path(str(source))) + ".lock"]
    source.write_text("a@x.org changed/\n")  # same size class, new mtime/size
    corpus.cool(source)
    os.utime(source, (1, 1))
    third = open_table(f"texthash:{source}")
    assert isinstance(third, texthash.TextHashTable) and third.lookup("a@x.org") == "changed/"
    assert open_table(f"texthash:{source}").lookup("b@x.org") is None


def test_texthash_hot_file_is_not_cached(tmp_path, monkeypatch):
    texthash, source = cached_texthash(tmp_path, monkeypatch, "a@x.org a/\n")
    os.utime(source)  # just written: Postfix would wait for it to cool down
    open_table(f"texthash:{source}")
    assert not os.path.exists(texthash.cache_path(str(source)))


def test_texthash_untrusted_cache_is_ignored(tmp_path, monkeypatch):
    texthash, source = cached_texthash(tmp_path, monkeypatch, "a@x.org a/\n")
    open_table(f"texthash:{source}")
    os.chmod(texthash.cache_path(str(source)), 0o666)
    assert isinstance(open_table(f"texthash:{source}"), texthash.TextHashTable)


def test_texthash_unwritable_cache_directory_still_works(tmp_path, monkeypatch):
    from vdeliver.tables import texthash
    monkeypatch.setattr(texthash, "CACHE_DIRECTORY", "/proc/no-such-directory")
    source = tmp_path / "vmailbox"
    source.write_text("a@x.org a/\n")
    corpus.cool(source)
    assert open_table(f"texthash:{source}").lookup("a@x.org") == "a/"


def test_texthash_duplicate_fails_like_virtual8_also_from_the_cache(tmp_path, monkeypatch):
    texthash, source = cached_texthash(tmp_path, monkeypatch, "a@x.org a/\nA@x.org b/\n")
    for _ in range(2):  # parsed, then from the cache
        with pytest.raises(TableError) as caught:
            open_table(f"texthash:{source}").lookup("b@x.org")
        assert "duplicate entry" in caught.value.detail


# --- Berkeley DB, combinations, fail ---------------------------------------------

def test_without_the_binding_hash_is_native_and_btree_falls_back_to_postmap(tmp_path, monkeypatch,
                                                                            postfix):
    monkeypatch.setitem(sys.modules, "berkeleydb", None)
    monkeypatch.setitem(sys.modules, "berkeleydb._berkeleydb", None)
    monkeypatch.setattr(extension, "load_directly", no_extension)
    for kind in ("hash", "btree"):  # both write NAME.db: one source each
        source = tmp_path / kind
        source.write_text("a@x.org a/\n")
        corpus.cool(source)
        postfix.build(kind, source)
    native = open_table(f"hash:{tmp_path / 'hash'}")
    assert native.note is None and native.get.__qualname__ == "HashFile.get"
    assert native.lookup("a@x.org") == "a/" and native.lookup("-") is None
    fallback = open_table(f"btree:{tmp_path / 'btree'}")
    assert "pip install vdeliver[bdb]" in fallback.note
    assert fallback.lookup("a@x.org") == "a/" and fallback.lookup("-") is None
    for kind in ("hash", "btree"):
        with pytest.raises(TableError):
            open_table(f"{kind}:{tmp_path}/absent").lookup("a@x.org")


def test_hash_binding_errors(tmp_path, postfix):
    require_module("berkeleydb", "bdb")
    source = tmp_path / "vmailbox"
    source.write_text("a@x.org a/\n")
    corpus.cool(source)
    postfix.build("btree", source)
    assert open_table(f"btree:{source}").lookup("a@x.org") == "a/"
    with pytest.raises(TableError):
        open_table(f"hash:{source}")  # a btree file is not a hash file, as in Postfix
    with pytest.raises(TableError):
        open_table(f"hash:{tmp_path}/absent")


def test_unionmap_pipemap_fail():
    union = open_table("unionmap:{inline:{a=1, b=2}, static:s, inline:{a=3}}")
    assert union.lookup("a") == "1,s,3" and union.fixed_keys
    assert open_table("unionmap:{inline:{a=1}, inline:{b=2}}").lookup("c") is None
    pipe = open_table("pipemap:{inline:{a=B}, inline:{b=final}}")
    assert pipe.lookup("a") == "final" and pipe.lookup("b") is None
    fail = open_table("fail:why")
    assert not fail.fixed_keys
    with pytest.raises(TableError):
        fail.lookup("a")
    with pytest.raises(TableError):
        open_table("unionmap:{inline:{a=1}, fail:x}").lookup("a")
    for bad in ["unionmap:{}", "unionmap:inline:{a=1}", "pipemap:{nocolon}"]:
        with pytest.raises(ConfigError):
            open_table(bad)


# --- the query tool ------------------------------------------------------------------

def run_query(*argv, stdin=""):
    import io
    from vdeliver import query
    out, err = io.StringIO(), io.StringIO()
    status = query.main(list(argv), io.StringIO(stdin), out, err)
    return status, out.getvalue(), err.getvalue()


def test_query_tool_table_form(tmp_path):
    assert run_query("A@X.org", "inline:{a@x.org=a/}") == (0, "a/\n", "")
    assert run_query("A@X.org", "regexp:/dev/null")[0] == 1
    assert run_query("x", "fail:x")[0] == 75
    status, out, _ = run_query("-", "inline:{a=1, b=2}", stdin="a\nc\nB\n")
    assert (status, out) == (0, "a\t1\nB\t2\n")
    assert run_query()[0] == 64


def test_query_tool_address_form(tmp_path):
    config = tmp_path / "vdeliver.cf"
    config.write_text("virtual_mailbox_base = /var/mail/vhosts\nrecipient_delimiter = +\n"
                      "virtual_mailbox_maps = regexp:/dev/null, inline:{ @x.org=x.org/all/ }\n")
    status, out, _ = run_query("-c", str(config), "Bob+tag@X.org")
    assert status == 0
    assert "bob+tag@x.org\tregexp:/dev/null\tnot found" in out
    assert "bob@x.org\tregexp:/dev/null\t(skipped: full address only)" in out
    assert out.endswith("result: maildir x.org/all/ (table inline:{ @x.org=x.org/all/ }, key @x.org)\n")
    assert run_query("-c", str(config), "bob@y.org")[0] == 1
