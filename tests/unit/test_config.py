"""config.py: main.cf syntax, expansion, lists, errors that defer."""
import pytest

from vdeliver import config
from vdeliver.errors import ConfigError


def parse(text, overrides=()):
    return config.from_text(text.encode(), "test.cf", overrides)


def test_comments_blank_lines_and_continuations():
    cfg = parse("# comment\n\nvirtual_mailbox_maps = texthash:/a,\n   texthash:/b\n"
                "  # comment inside\nvirtual_mailbox_base=/m\n")
    assert cfg.get("virtual_mailbox_maps") == "texthash:/a,   texthash:/b"
    assert cfg.get_list("virtual_mailbox_maps") == ["texthash:/a", "texthash:/b"]


@pytest.mark.parametrize("value, expected", [
    pytest.param("$virtual_mailbox_base/x", "/base/x", id="bare name"),
    pytest.param("${virtual_mailbox_base}x", "/basex", id="braces"),
    pytest.param("$(virtual_mailbox_base)x", "/basex", id="parens"),
    pytest.param("a$$b", "a$b", id="literal dollar"),
    pytest.param("${virtual_mailbox_base?yes}", "yes", id="if set"),
    pytest.param("${recipient_delimiter?yes}", "", id="if set, empty"),
    pytest.param("${recipient_delimiter:no}", "no", id="if unset"),
])
def test_expansion(value, expected):
    cfg = parse(f"virtual_mailbox_base = /base\nmaillog_file = {value}\n")
    assert cfg.get("maillog_file") == expected


@pytest.mark.parametrize("text", [
    pytest.param("no equals sign\n", id="missing equals"),
    pytest.param("unknown_parameter = 1\n", id="unknown name"),
    pytest.param("maillog_file = $nosuch\n", id="undefined reference"),
    pytest.param("maillog_file = ${virtual_mailbox_base\n", id="unbalanced brace"),
    pytest.param("maillog_file = $maillog_file\n", id="self reference loops"),
    pytest.param("  indented = first line\n", id="continuation first"),
    pytest.param("maillog_file = a\0b\n", id="NUL byte"),
    pytest.param("time_limit = soon\n", id="bad time"),
    pytest.param("enable_original_recipient = maybe\n", id="bad bool"),
])
def test_garbled_config_is_a_config_error(text):
    with pytest.raises(ConfigError) as caught:
        cfg = parse(text)
        cfg.get("maillog_file")
        cfg.get_time("time_limit")
        cfg.get_bool("enable_original_recipient")
    assert caught.value.exit_code == 75 and caught.value.status.startswith("4.")


def test_invalid_utf8_is_a_config_error():
    with pytest.raises(ConfigError):
        config.from_text(b"maillog_file = \xff\n", "x")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(str(tmp_path / "absent.cf"))


def test_overrides_win_and_must_be_known():
    cfg = parse("recipient_delimiter = +\n", ["recipient_delimiter=-"])
    assert cfg.get("recipient_delimiter") == "-"
    with pytest.raises(ConfigError):
        parse("", ["nonsense=1"])


@pytest.mark.parametrize("value, seconds", [("600", 600), ("600s", 600), ("10m", 600), ("1h", 3600)])
def test_time_units(value, seconds):
    assert parse(f"time_limit = {value}\n").get_time("time_limit") == seconds


def test_list_keeps_brace_groups():
    assert config.split_list("inline:{ a=b, c=d }, texthash:/x static:{ a b }") == [
        "inline:{ a=b, c=d }", "texthash:/x", "static:{ a b }"]


@pytest.mark.parametrize("text, wanted", [
    pytest.param("", True, id="default yes, as Postfix with compatibility_level >= 1"),
    pytest.param("smtputf8_enable = no\n", False, id="no, as an admin's main.cf may say"),
])
def test_smtputf8_enable(text, wanted):
    assert parse(text).get_bool("smtputf8_enable") is wanted
