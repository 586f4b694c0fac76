"""Nothing in the table tests reads the system's /etc/postfix (issue 11).

Their outcome must be the same whether /etc/postfix/main.cf is absent (a
Debian Postfix installed without configuration), empty, or says
`compatibility_level = 0`: proven by never reading it, traced with strace(1),
rather than by creating such a file on the machine. A control shows the trace
sees postconf read the system's main.cf when it is not given `-c`.
"""
import os
import shutil
import subprocess
import sys

import pytest

import corpus
from postfix_config import ENVIRONMENT, POSTCONF
from support import require

SYSTEM = "/etc/postfix"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# The tests that run postmap and postconf, the differential ones both ways, and the
# hash: fallback through vdeliver's own postmap -q (vdeliver/tables/postmap.py).
TRACED_TESTS = ["tests/tables/test_differential.py", "tests/tables/test_lmdb_native.py",
                "tests/tables/test_bdb_hash_native.py"]


@pytest.fixture(scope="module")
def strace():
    path = shutil.which("strace")
    require(path, "needs strace (scripts/setup-e2e and scripts/setup-databases install it)")
    done = subprocess.run([path, "-f", "-o", "/dev/null", "true"], capture_output=True)
    require(done.returncode == 0, f"strace cannot trace here: {done.stderr.decode(errors='replace')}")
    return path


def traced(strace, tmp_path, argv, env, name="trace"):
    """Run argv under strace -f (file system calls); returns (completed, [traced lines])."""
    log = tmp_path / f"{name}.strace"
    done = subprocess.run([strace, "-f", "-qq", "-e", "trace=%file", "-o", str(log), *argv],
                          env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=900)
    return done, log.read_text(errors="replace").splitlines()


def touching(lines, directory):
    return [line for line in lines if f'"{directory}/' in line or f'"{directory}"' in line]


def test_the_trace_sees_postconf_read_the_system_main_cf(strace, tmp_path):
    """The control: without -c, postconf opens /etc/postfix/main.cf (absent here: it dies)."""
    _, lines = traced(strace, tmp_path, [POSTCONF, "-m"], dict(ENVIRONMENT))
    assert touching(lines, f"{SYSTEM}/main.cf")  # or nothing below would prove anything


def test_the_helpers_commands_never_touch_etc_postfix(strace, tmp_path, postfix_configs):
    for mode, postfix in postfix_configs.items():
        source = tmp_path / f"table-{mode}"
        source.write_bytes(corpus.source_bytes(generated=10))
        corpus.cool(source)
        commands = (postfix.postconf("-m"), postfix.postmap(f"cdb:{source}"),
                    postfix.postmap("-q", "bob@example.com", f"cdb:{source}"))
        for number, argv in enumerate(commands):
            done, lines = traced(strace, tmp_path, argv, dict(ENVIRONMENT), f"{mode}-{number}")
            assert done.returncode == 0, done.stdout
            assert touching(lines, SYSTEM) == [], argv


def test_the_differential_tests_never_read_etc_postfix(strace, tmp_path):
    """The differential tests, in a child pytest under strace: they pass, and neither
    they, postmap, postconf nor vdeliver's postmap fallback look at /etc/postfix, nor
    at a MAIL_CONFIG left in the environment whose main.cf says compatibility_level = 0
    (what an empty main.cf means)."""
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "main.cf").write_text("compatibility_level = 0\nsmtputf8_enable = no\n")
    env = dict(os.environ, MAIL_CONFIG=str(trap), PYTHONDONTWRITEBYTECODE="1")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            f"--basetemp={tmp_path / 'child'}", *TRACED_TESTS]
    done, lines = traced(strace, tmp_path, argv, env)
    output = done.stdout.decode(errors="replace")
    assert done.returncode == 0, output[-3000:]
    assert " passed" in output and " skipped" not in output, output[-3000:]
    assert touching(lines, SYSTEM) == []
    assert touching(lines, str(trap)) == []
    assert any("/usr/sbin/postmap" in line for line in lines)  # postmap did run, traced
