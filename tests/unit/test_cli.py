"""cli.py: argument parsing, and the one place errors become exit codes."""
import pytest

from vdeliver import cli
from vdeliver.errors import ConfigError


def test_parse_args_contract():
    options = cli.parse_args(["-c", "/x.cf", "-o", "a=b", "-oc=d", "-f", "", "-a", "o@x", "--", "r@x"])
    assert (options.config, options.overrides, options.sender, options.original_recipient,
            options.recipients) == ("/x.cf", ["a=b", "c=d"], "", "o@x", ["r@x"])


def test_recipient_starting_with_dash_after_double_dash():
    assert cli.parse_args(["--", "-r@x"]).recipients == ["-r@x"]


@pytest.mark.parametrize("argv", [["-q", "r@x"], ["-c"]])
def test_bad_usage_is_a_config_error(argv):
    with pytest.raises(ConfigError):
        cli.parse_args(argv)


def test_a_bug_defers_with_75_never_a_traceback(monkeypatch, capfd, tmp_path):
    # A fault that cannot be produced for real: an unexpected exception in the core.
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(cli, "run", broken)
    code = cli.main(["-c", str(tmp_path / "none.cf"), "r@x"])
    out, err = capfd.readouterr()
    assert code == 75
    assert out.startswith("4.3.0 internal software error: ZeroDivisionError at test_cli.py:")
    assert "\n" not in out and "Traceback" not in out + err
