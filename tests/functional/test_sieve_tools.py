"""The admin's Sieve tools: `vdeliver --sieve-check` (like sievec), `--sieve-test` (like sieve-test)."""
import os
import subprocess

import pytest

from support import VDELIVER

GOOD = b'require ["fileinto", "imap4flags"];\n# rule:[work]\nif header :contains "subject" "work" {\n' \
       b'  fileinto :flags "\\\\Seen" "Work";\n  stop;\n}\n'
BAD = b'require "fileinto";\nif header :contains "subject" "x" {\n  fileinto "A"\n}\n'


def write(mail, name, data):
    path = os.path.join(mail.top, name)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o644)
    return path


def tool(mail, *args, as_root=False):
    ids = {} if as_root else {"user": mail.user.pw_uid, "group": mail.user.pw_gid, "extra_groups": []}
    proc = subprocess.run([VDELIVER, *args],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          timeout=60, **ids)
    return proc.returncode, proc.stdout, proc.stderr


def test_sieve_check_reports_errors_with_their_line(mail):
    good, bad = write(mail, "good.sieve", GOOD), write(mail, "bad.sieve", BAD)
    assert tool(mail, "--sieve-check", "-c", mail.config_path, good)[:2] == (0, "")
    code, out, _ = tool(mail, "--sieve-check", "-c", mail.config_path, good, bad)
    assert code == 1
    (line,) = out.splitlines()
    assert line.startswith(f"{bad}: bad: line 4: error: "), line


@pytest.mark.parametrize("subject, folders, wanted", [
    pytest.param("work item", ["Work"], ["store: .Work flags: \\Seen"], id="fileinto an existing folder"),
    pytest.param("hello", [], ["store: INBOX"], id="implicit keep"),
])
def test_sieve_test_prints_what_the_delivery_would_do(mail, subject, folders, wanted):
    script = write(mail, "good.sieve", GOOD)
    message = write(mail, "m.eml", f"Subject: {subject}\n\nbody\n".encode())
    folder_args = [arg for name in folders for arg in ("-F", name)]
    code, out, _ = tool(mail, "--sieve-test", "-c", mail.config_path, *folder_args, "-f", "a@example.org",
                        "-r", "bob@example.com", script, message)
    assert code == 0, out
    assert out.splitlines() == [f"script: {script}", *wanted]
    assert os.listdir(mail.base) == []  # nothing delivered


def test_sieve_test_a_missing_folder_keeps(mail):
    script = write(mail, "good.sieve", GOOD)
    message = write(mail, "m.eml", b"Subject: work\n\nbody\n")
    code, out, _ = tool(mail, "--sieve-test", "-c", mail.config_path, script, message)
    assert code == 0 and "store: INBOX" in out.splitlines(), out
    assert any("mailbox does not exist" in line for line in out.splitlines()), out


def test_the_sieve_tools_refuse_to_run_as_root(mail):
    script = write(mail, "good.sieve", GOOD)
    code, out, err = tool(mail, "--sieve-check", script, as_root=True)
    assert (code, out) == (64, "") and "as root" in err
