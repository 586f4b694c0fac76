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


@pytest.mark.parametrize("argv, mode, index", [
    pytest.param(["-q", "r@x"], "query", 0, id="-q first"),
    pytest.param(["-c", "x.cf", "-q", "r@x"], "query", 2, id="-q after -c"),
    pytest.param(["--lmtp", "--foreground"], "lmtp", 0, id="--lmtp"),
    pytest.param(["--foreground", "--lmtp"], "lmtp", 1, id="--lmtp after --foreground"),
    pytest.param(["-f", "-q", "--", "r@x"], "deliver", None, id="-q as the sender"),
    pytest.param(["-a", "--lmtp", "r@x"], "deliver", None, id="--lmtp as the original recipient"),
    pytest.param(["-o", "-q", "r@x"], "deliver", None, id="-q as an -o value"),
    pytest.param(["--", "-q"], "deliver", None, id="-q as the recipient"),
])
def test_the_mode_comes_from_an_option_position_only(argv, mode, index):
    options = cli.parse_args(argv)
    assert (options.mode, options.mode_index) == (mode, index)


@pytest.mark.parametrize("argv", [["-x", "r@x"], ["-c"]])
def test_bad_usage_is_a_config_error(argv):
    with pytest.raises(ConfigError):
        cli.parse_args(argv)


def test_a_bug_defers_with_75_never_a_traceback(monkeypatch, capfd, tmp_path):
    # A fault that cannot be produced for real: an unexpected exception in the core.
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(cli, "run", broken)
    logged = []
    monkeypatch.setattr(cli.log, "log", lambda config, text, priority="info": logged.append(text))
    code = cli.main(["-c", str(tmp_path / "none.cf"), "r@x"])
    out, err = capfd.readouterr()
    assert code == 75
    # Public reason only: the exception class and source line go to the log line.
    assert out == "4.3.0 internal software error"
    assert "status=deferred (internal software error: ZeroDivisionError at test_cli.py:" in logged[0]
    assert "Traceback" not in out + err


def test_a_bug_after_the_commit_point_is_still_a_delivery(monkeypatch, capfd, tmp_path):
    from vdeliver import commitpoint

    def delivered_then_broken(*args, **kwargs):
        commitpoint.PROCESS.enter()
        commitpoint.PROCESS.done()
        raise ZeroDivisionError("after the commit")
    monkeypatch.setattr(cli, "run", delivered_then_broken)
    monkeypatch.setattr(commitpoint, "PROCESS", commitpoint.CommitPoint())
    monkeypatch.setattr(cli, "PROCESS", commitpoint.PROCESS)
    assert cli.main(["-c", str(tmp_path / "none.cf"), "r@x"]) == 0
    assert capfd.readouterr().out == ""
