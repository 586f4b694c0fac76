"""resolve.py: virtual(8) lookup order across tables, path safety, not found vs error."""
import pytest

from vdeliver import config
from vdeliver.errors import ConfigError, TableError, UnknownUser, UnsafeMailboxPath
from vdeliver.resolve import MAILDIR, MBOX, Tables, resolve


def make_config(maps, delimiter="+"):
    return config.from_text(
        f"virtual_mailbox_base = /base\nvirtual_mailbox_maps = {maps}\n"
        f"recipient_delimiter = {delimiter}\n".encode(), "t")


@pytest.mark.parametrize("recipient, path, key", [
    pytest.param("bob@example.com", "example.com/bob/", "bob@example.com", id="exact"),
    pytest.param("Bob+Tag@EXAMPLE.com", "example.com/bob/", "bob@example.com", id="extension and case"),
    pytest.param("bob+special@example.com", "example.com/special/", "bob+special@example.com", id="full key first"),
    pytest.param("anyone@catch.example", "catch/all/", "@catch.example", id="catch-all"),
    pytest.param("x@second.example", "second/x/", "x@second.example", id="second table"),
])
def test_lookup_order(recipient, path, key):
    cfg = make_config("inline:{ bob@example.com=example.com/bob/, "
                      "bob+special@example.com=example.com/special/, @catch.example=catch/all/ },"
                      " inline:{ x@second.example=second/x/, bob@example.com=never/ }")
    mailbox = resolve(recipient, cfg)
    assert (mailbox.path, mailbox.key, mailbox.format) == (path, key, MAILDIR)


def test_each_key_goes_to_every_table_before_the_next_key():
    cfg = make_config("inline:{ @example.com=catchall/ }, inline:{ bob@example.com=bob/ }")
    assert resolve("bob@example.com", cfg).path == "bob/"


def test_regexp_sees_only_the_full_address(tmp_path):
    rules = tmp_path / "re"
    rules.write_text("/^bob@example\\.com$/ regexp/\n/^@example\\.com$/ wrong/\n")
    cfg = make_config(f"regexp:{rules}, inline:{{ @example.com=catch/ }}")
    assert resolve("bob+x@example.com", cfg).path == "catch/"
    assert resolve("bob@example.com", cfg).path == "regexp/"


def test_unknown_user_bounces():
    with pytest.raises(UnknownUser) as caught:
        resolve("nobody@example.com", make_config("inline:{ a@b=c/ }"))
    assert (caught.value.exit_code, caught.value.status) == (67, "5.1.1")


@pytest.mark.parametrize("result", [
    pytest.param("/etc/", id="absolute"),
    pytest.param("a/../../etc/", id="dotdot component"),
    pytest.param("..", id="dotdot alone"),
    pytest.param("a/..", id="trailing dotdot"),
    pytest.param("a\nb/", id="newline"),
])
def test_unsafe_results_defer(result):
    cfg = config.Config({**config.DEFAULTS, "virtual_mailbox_maps": "static:x",
                         "virtual_mailbox_base": "/b"}, "t")
    from vdeliver.tables.static import StaticTable
    with pytest.raises(UnsafeMailboxPath) as caught:
        resolve("a@b", cfg, Tables([StaticTable("static:x", result)]))
    assert caught.value.exit_code == 75 and caught.value.status == "4.3.5"


def test_dotdot_inside_a_name_is_fine_and_mbox_is_recognised():
    cfg = make_config("inline:{ a@b=a..b/ , c@b=mail/c }")
    assert resolve("a@b", cfg).path == "a..b/"
    assert resolve("c@b", cfg).format == MBOX


def test_empty_result_is_an_error_not_a_miss():
    with pytest.raises(TableError):
        resolve("a@b", make_config("static:{}"))


def test_empty_maps_defer():
    with pytest.raises(ConfigError):
        resolve("a@b", make_config(""))


def test_quota_lookup_uses_the_opened_tables_in_the_same_order():
    """quota.limit_for() goes through resolve.search() over Tables.quota: nothing is reopened
    (the configured file does not even exist), and the keys come in virtual(8)'s order."""
    from vdeliver import quota
    from vdeliver.tables import open_table
    cfg = config.from_text(
        b"virtual_mailbox_base = /base\nvirtual_mailbox_maps = inline:{ a@b=a/ }\n"
        b"recipient_delimiter = +\nvirtual_mailbox_quota_maps = texthash:/nonexistent/quotas\n", "t")
    tables = Tables([], [open_table("inline:{ @b=5M }"), open_table("inline:{ a@b=1C, a+x@b=2C }")])
    assert quota.limit_for("A+x@B", cfg, tables).definition() == "2C"
    assert quota.limit_for("a+y@b", cfg, tables).definition() == "1C"  # user@domain before @domain
    assert quota.limit_for("c@b", cfg, tables).definition() == "5242880S"
    with pytest.raises(TableError):  # the pipe command opens them itself
        quota.limit_for("a@b", cfg)


def test_search_reports_every_step_to_trace():
    from vdeliver.resolve import SKIPPED, search
    from vdeliver.tables import open_table
    steps = []
    tables = [open_table("regexp:/dev/null"), open_table("inline:{ @x.org=all/ }")]
    found = search(tables, "bob+t@x.org", "+", lambda key, table, outcome: steps.append(
        (key, table.spec.partition(":")[0], outcome)))
    assert found[1:] == ("@x.org", "all/")
    assert steps == [("bob+t@x.org", "regexp", None), ("bob+t@x.org", "inline", None),
                     ("bob@x.org", "regexp", SKIPPED), ("bob@x.org", "inline", None),
                     ("@x.org", "regexp", SKIPPED), ("@x.org", "inline", "all/")]
