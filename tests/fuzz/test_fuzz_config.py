"""Random and truncated configuration and table files.

In-process (cheap, many examples): the parsers of vdeliver.cf, postmap
source text, regexp: and pcre: rules, the config files of sqlite:, pgsql:,
mysql: and ldap: tables, and quota values raise nothing but the
DeliveryError they document (a ConfigError or TableError defers; anything
else is a bug, deferred as 4.3.0 "internal software error" at best).
Through the installed command: a random config defers 4.3.x and writes
nothing; a truncated or mutated config, a random texthash table, a random
maildirsize and odd message file names under a quota keep every invariant
of fuzz_support (exit 0 delivers exactly, inside the base).

Found here: `isdigit()` is true for '²', which `int()` refuses; config.py,
quota.py (also for a `,S=²` file name, which stopped every delivery to that
mailbox), tables/regexp.py, tables/dbcommon.py and tables/ldap.py now take
ASCII digits only; ldap3's own refusal of a bad server_host is a ConfigError.
"""
import os

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fuzz_support import check_outside, check_status, check_store, examples
from vdeliver import config as config_module
from vdeliver import quota
from vdeliver.errors import ConfigError, DeliveryError
from vdeliver.tables import pcre, regexp, textfile

MESSAGE = b"Subject: config fuzz\n\nbody\n"
WANTED = b"Return-Path: <s@x>\nDelivered-To: bob@example.com\n" + MESSAGE

CONFIG_WORDS = ["virtual_mailbox_base", "virtual_mailbox_maps", "recipient_delimiter", "time_limit",
                "quota_grace", "virtual_mailbox_quota_default", "extension_folder", "$", "${", "$(",
                "}", ")", "?", ":", "=", " = ", "\n", "\n ", "\t", "#", ",", "{", "texthash:", "inline:{",
                "static:", "regexp:", "proxy:", "/", "..", "600s", "10m", "1w", "yes", "no", "\\", "\0",
                "$$", "${time_limit?x}", "${recipient_delimiter:y}", "$virtual_mailbox_base", "é", "\udcff",
                "\ntime_limit = \u00b2s\n", "\nlmtp_recipient_limit = \u00b2\n", "\u00b2", "\u0663"]
TABLE_WORDS = ["bob@example.com", "@example.com", "example.com/bob/", "example.com/mbox", "../", "/",
               "..", ".", "./", "\"", "\\", " ", "\t", "\n", "\n ", "#", "\r", "\0", "\x01", "é",
               "\udcff", "~", "%", "$1", "bob", "mbox", "a//b/", "lost+found/"]
RULE_WORDS = ["/", "!", "^", "$", "(", ")", "[", "]", "[:alpha:]", "[[:digit:]]", "{", "}", "{2,}",
              "*", "+", "?", "|", ".", "\\", "\\1", "$1", "${1}", "$(2)", "$$", "(?", "(?i)", "i", "m",
              "x", "s", "U", "A", "E", "X", " ", "\n", "\n ", "if", "endif", "IF", "ENDIF", "@", "%",
              "a", "example.com/", "\\Q", "\\E", "\\x{41}", "\\z", "\\p{L}", "(*ACCEPT)", "é", "\udcff",
              "/(a)/ $\u00b2", "/(a)/ ${\u00b2}", "\u00b2", "\u0663"]


def words(vocabulary, max_size=40):
    return st.lists(st.one_of(st.sampled_from(vocabulary), st.text(max_size=5)), max_size=max_size).map("".join)


# --- in process ------------------------------------------------------------------------------

@settings(max_examples=examples(500))
@given(text=st.one_of(words(CONFIG_WORDS), st.text(max_size=200)),
       overrides=st.lists(words(CONFIG_WORDS, 6), max_size=3))
def test_config_parser_raises_only_config_error(text, overrides):
    try:
        config = config_module.from_text(text.encode("utf-8", "surrogateescape"), "fuzz.cf", overrides)
    except ConfigError:
        return
    for name in config_module.DEFAULTS:
        for getter in (config.get, config.get_list, config.get_bool, config.get_int, config.get_time,
                       lambda name: config.get_choice(name, ("defer", "bounce"))):
            try:
                getter(name)
            except ConfigError:
                pass


@settings(max_examples=examples(500))
@given(text=st.one_of(words(TABLE_WORDS), st.text(max_size=300)))
def test_postmap_source_parser_never_raises(text):
    entries = textfile.parse_entries(text)
    for key, value in entries.items():
        assert key and value and "\n" not in key + value


@pytest.mark.parametrize("module", [regexp, pcre], ids=["regexp", "pcre"])
@settings(max_examples=examples(500))
@given(text=words(RULE_WORDS, 30), key=st.sampled_from(["bob@example.com", "a", "", "é@x", "\udcff@x"]))
def test_pattern_table_parsers_raise_only_delivery_errors(module, text, key):
    try:
        table = module.RegexpTable("fuzz", module.parse_rules(text)) if module is regexp else \
            module.PcreTable("fuzz", module.parse_rules(text))
    except DeliveryError as error:
        event(type(error).__name__)
        return
    event("parsed")
    try:
        value = table.lookup(key)
    except DeliveryError:
        return
    assert value is None or isinstance(value, str)


DB_KEYS = ["hosts", "dbname", "user", "password", "query", "result_format", "domain", "expansion_limit",
           "connect_timeout", "query_timeout", "busy_timeout", "dbpath", "table", "select_field",
           "where_field", "additional_conditions", "select_function", "server_host", "server_port",
           "search_base", "query_filter", "result_attribute", "scope", "bind", "timeout", "size_limit",
           "dereference", "start_tls", "version", "chase_referrals", "bind_dn", "option_file"]
DB_VALUES = ["", "1", "0", "-1", "5", "\u00b2", "\u0663", "x", "yes", "no", "sub", "base", "%s", "'%s'",
             "%u", "%d", "%1", "%9", "%%", "%", "'%s' OR '1'='1'", "\"%s\"", "h:\u00b2", "h:1", "127.0.0.1:5432",
             "inet:h:\u00b2", "unix:/nonexistent", "ldap://h:\u00b2", "ldap://h", "/nonexistent.db",
             "SELECT v FROM m WHERE k='%s'", "example.com", "dc=%2,dc=%1", "(mail=%s)", "\udcff", "é"]
VALID_DB_CONFIG = {  # random lines follow, and override these (the last setting wins)
    "sqlite": "dbpath = /nonexistent.db\nquery = SELECT v FROM m WHERE k='%s'\n",
    "pgsql": "hosts = 127.0.0.1:1\ndbname = vmail\nquery = SELECT v FROM m WHERE k='%s'\n",
    "mysql": "hosts = inet:127.0.0.1:1\ndbname = vmail\nquery = SELECT v FROM m WHERE k='%s'\n",
    "ldap": "server_host = ldap://127.0.0.1:1\nsearch_base = dc=example\nbind = no\n",
}
db_config = st.lists(st.builds(lambda key, value: f"{key} = {value}", st.sampled_from(DB_KEYS),
                               st.lists(st.sampled_from(DB_VALUES), max_size=3).map("".join)),
                     max_size=12).map("\n".join)


@pytest.mark.parametrize("kind", ["sqlite", "pgsql", "mysql", "ldap"])
@settings(max_examples=examples(300))
@given(text=st.one_of(db_config, words(DB_KEYS + DB_VALUES + [" = ", "\n", "\n "], 30)),
       key=st.sampled_from(["bob@example.com", "@example.com", "bob", "a@b@c", ""]))
def test_database_table_configs_raise_only_delivery_errors(tmp_path_factory, kind, text, key):
    """Opening a table from its config file parses everything and connects to nothing."""
    from vdeliver.tables import open_table
    path = tmp_path_factory.mktemp("db") / f"{kind}.cf"
    path.write_bytes((VALID_DB_CONFIG[kind] + text).encode("utf-8", "surrogateescape"))
    try:
        table = open_table(f"{kind}:{path}")
    except DeliveryError as error:
        event(type(error).__name__)
        return
    event("opened")
    if hasattr(table, "templates"):
        try:
            table.templates.check_domain(key) and table.templates.query_values(key)
        except DeliveryError:
            pass


@settings(max_examples=examples(300))
@given(text=st.one_of(st.text(max_size=20), words(["1", "0", "G", "M", "K", "T", "S", "C", "s", "c", ",",
                                                    " ", "%", "-", "1G,10000C", "\udcff", "9" * 30, "\u00b2", "\u0663"], 8)))
def test_quota_values_raise_only_config_error(text):
    for parse in (quota.parse_limit, lambda value: quota.parse_grace(value, quota.Limit(1000, 10))):
        try:
            parse(text)
        except ConfigError:
            pass


# --- through the installed command ----------------------------------------------------------

@pytest.fixture(scope="module")
def config_mail(fuzz_mail):
    fuzz_mail.valid_config = (f"virtual_mailbox_base = {fuzz_mail.base}\n"
                              f"virtual_mailbox_maps = texthash:{fuzz_mail.table_path}\n"
                              "recipient_delimiter = +\ntime_limit = 30s\nextension_folder = no\n")
    return fuzz_mail


def use_config(fuzz, config_bytes):
    with open(fuzz.config_path, "wb") as fh:
        fh.write(config_bytes)
    os.chmod(fuzz.config_path, 0o644)
    fuzz.rebaseline()
    fuzz.reset()


def run_with_config(fuzz, config_bytes, *options):
    use_config(fuzz, config_bytes)
    return fuzz.run_with_file(*options, "-f", "s@x", "--", "bob@example.com", message=MESSAGE)


@settings(max_examples=examples(120))
@given(data=st.one_of(st.binary(max_size=300), words(CONFIG_WORDS).map(lambda t: t.encode("utf-8", "surrogateescape"))))
def test_random_config_defers_and_writes_nothing(config_mail, data):
    result = run_with_config(config_mail, data)
    status = check_status(result)
    event(f"exit {result.code} {status}")
    assert result.code == 75 and status.startswith("4.")
    check_outside(config_mail)
    check_store(config_mail, result)


@settings(max_examples=examples(150))
@given(cut=st.integers(0, 10_000), insert_at=st.integers(0, 10_000),
       insert=st.one_of(st.just(b""), st.binary(max_size=6),
                        st.sampled_from([b"\n", b" ", b"$", b"#", b"/..", b"\0", b"${", b"\n "])),
       truncate=st.booleans())
def test_truncated_or_mutated_config_keeps_the_invariants(config_mail, cut, insert_at, insert, truncate):
    valid = config_mail.valid_config.encode()
    data = valid[:cut % (len(valid) + 1)] if truncate else valid
    position = insert_at % (len(data) + 1)
    data = data[:position] + insert + data[position:]
    result = run_with_config(config_mail, data)
    status = check_status(result)
    event(f"exit {result.code} {status}")
    assert result.code in (0, 75), result
    check_outside(config_mail)
    check_store(config_mail, result, expected=WANTED)


TABLE_LINES = st.one_of(
    st.builds(lambda key, value: key + " " + value,
              st.sampled_from(["bob@example.com", "BOB@example.com", "bob", "@example.com", '"bob@example.com"']),
              words(TABLE_WORDS, 6)),
    words(TABLE_WORDS, 8))


@settings(max_examples=examples(150))
@given(lines=st.lists(TABLE_LINES, max_size=8), garbage=st.binary(max_size=40))
def test_random_table_keeps_the_invariants(config_mail, lines, garbage):
    table = "\n".join(lines).encode("utf-8", "surrogateescape") + garbage
    with open(config_mail.table_path, "wb") as fh:
        fh.write(table)
    try:
        result = run_with_config(config_mail, config_mail.valid_config.encode())
        status = check_status(result)
        event(f"exit {result.code} {status}")
        assert result.code in (0, 67, 75), result
        if result.code == 67:
            assert status == "5.1.1"
        check_outside(config_mail)
        path = check_store(config_mail, result, expected=WANTED, mbox_expected=WANTED + b"\n")
        assert path is None or path.startswith(config_mail.base + "/")
    finally:
        config_mail.write_table("bob@example.com example.com/bob/\n")


MESSAGE_NAMES = st.one_of(
    st.sampled_from(["1.M1P1.host,S=\u00b2:2,S", "1.M1P1.host,S=\u0663:2,", "1.x,S=:2,", "1.x,S=,S=5",
                     "1.x,S=99999999999999999999", "1.x,S=-5", "1.x,S=12,W=13:2,S", "plain", ".hidden"]),
    st.text(st.characters(exclude_characters="/\0", exclude_categories=["Cs"]), min_size=1, max_size=40)
    .filter(lambda name: name not in (".", "..") and len(name.encode()) < 200))


@settings(max_examples=examples(100))
@given(data=st.one_of(st.binary(max_size=200),
                      words(["1073741824S", "10000C", "0S", ",", "\n", " ", "-1", "5", "100 1", "1e9",
                             "99999999999999999999", "\0", "S", "C", "x", "\u00b2"], 20)
                      .map(lambda t: t.encode())),
       name=MESSAGE_NAMES)
def test_random_maildirsize_and_file_names_are_recalculated_or_trusted(config_mail, data, name):
    """Whatever maildirsize holds and whatever the names in cur/ (a user's IMAP client
    names them), a delivery under a quota succeeds or is over quota (4.2.2)."""
    use_config(config_mail, (config_mail.valid_config + "virtual_mailbox_quota_default = 1G\n").encode())
    for sub in ("tmp", "new", "cur"):
        os.makedirs(config_mail.path(f"example.com/bob/{sub}"), exist_ok=True)
    with open(config_mail.path("example.com/bob/maildirsize"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(config_mail.path("example.com/bob/cur"), name), "wb") as fh:
        fh.write(b"Subject: old\n\nold\n")
    for root, dirs, files in os.walk(config_mail.base):
        for entry in dirs + files:
            os.chown(os.path.join(root, entry), config_mail.user.pw_uid, config_mail.user.pw_gid)
    result = config_mail.run_with_file("-f", "s@x", "--", "bob@example.com", message=MESSAGE)
    status = check_status(result)
    event(f"exit {result.code} {status}")
    assert result.code == 0 or (result.code == 75 and status == "4.2.2"), result
    check_outside(config_mail)
    new, tmp, _ = config_mail.store()
    assert tmp == [] and len(new) == (1 if result.code == 0 else 0)
