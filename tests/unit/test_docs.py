"""The man pages agree with the code: DIAGNOSTICS lists every error class; groff is clean."""
import os
import shutil
import subprocess

import pytest

from support import require
from vdeliver import config, errors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(name):
    with open(os.path.join(ROOT, name)) as fh:
        return fh.read()


def diagnostics():
    """(exit, status, text) rows of vdeliver.8's EXIT STATUS AND DIAGNOSTICS."""
    lines = read("man/vdeliver.8").splitlines()
    rows = []
    for index, line in enumerate(lines):
        if line.startswith('.B "') and index > 0 and lines[index - 1] == ".TP":
            code, status = line[4:-1].split()
            rows.append((int(code), status, lines[index + 1]))
    return rows


@pytest.mark.parametrize("error_class", errors.CATALOGUE, ids=lambda c: c.__name__)
def test_every_error_is_documented(error_class):
    wanted = (error_class.exit_code, error_class.status)
    assert any((code, status) == wanted and text.startswith(error_class.reason)
               for code, status, text in diagnostics()), error_class


def test_nothing_documented_that_the_code_lacks():
    known = {(c.exit_code, c.status, c.reason) for c in errors.CATALOGUE}
    for code, status, text in diagnostics():
        assert any((code, status) == (k[0], k[1]) and text.startswith(k[2]) for k in known), text


def test_bounces_only_for_recipient_or_message():
    for error_class in errors.CATALOGUE:
        if error_class.status.startswith("5"):
            assert issubclass(error_class, errors.Bounce)
        else:
            assert error_class.exit_code == 75


@pytest.mark.parametrize("page", ["man/vdeliver.8", "man/vdeliver.cf.5"])
def test_groff_prints_no_warnings(page):
    require(shutil.which("groff"), "groff is not installed (Debian's groff-base;"
            " scripts/setup-e2e and scripts/setup-databases install it)")
    result = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(ROOT, page)],
                            capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(config.DEFAULTS))
def test_every_parameter_is_documented(name):
    assert f".B {name}\n" in read("man/vdeliver.cf.5")
    assert name in read("README.md")


def test_snippet_has_no_D_R_O_flags_and_passes_the_contract_arguments():
    snippet = read("master.cf.snippet")
    flags = [line.split("flags=")[1].split()[0] for line in snippet.splitlines() if "flags=" in line
             and not line.lstrip().startswith("#")]
    assert flags and not set("DRO") & set(flags[0])
    assert "null_sender=" in snippet
    assert "-i ${queue_id} -f ${sender} -a ${original_recipient} -- ${recipient}" in snippet
    assert "vdeliver_destination_recipient_limit = 1" in snippet
