"""`vdeliver check`: one line per finding, exit 1 with findings, 0 when clean; `-n` as postconf -n."""
import os
import socket
import subprocess

import pytest

from support import VDELIVER


def check(mail, *args):
    proc = subprocess.run([VDELIVER, "check", "-c", mail.config_path, *args], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/", timeout=60)
    return proc.returncode, proc.stdout.splitlines()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_clean_setup_has_no_findings(mail):
    assert check(mail) == (0, [])


@pytest.mark.parametrize("extra, wanted", [
    pytest.param("virtual_mailbox_mpas = x\n",
                 "vdeliver: error: {cf}, line 5: unknown parameter virtual_mailbox_mpas"
                 " (did you mean virtual_mailbox_maps?)", id="misspelled parameter"),
    pytest.param("time_limit = soon\n",
                 "vdeliver: error: {cf}, line 5: time_limit = soon: expected a time like 600s or 10m",
                 id="value that does not parse"),
    pytest.param("quota_exceeded_action = maybe\n",
                 "vdeliver: error: {cf}, line 5: quota_exceeded_action = maybe: expected one of"
                 " defer, bounce", id="not one of the choices"),
    pytest.param("syslog_name = $nosuch\n",
                 "vdeliver: error: {cf}, line 5: syslog_name: undefined parameter $nosuch",
                 id="expansion that does not resolve"),
    pytest.param("virtual_mailbox_quota_maps = texthash:/nonexistent\n",
                 "vdeliver: error: virtual_mailbox_quota_maps: texthash:/nonexistent: cannot open"
                 " texthash:/nonexistent: No such file or directory", id="table that does not open"),
    pytest.param("sendmail_path = sendmail -t\n",
                 "vdeliver: error: sendmail_path = sendmail -t: not an absolute path",
                 id="sendmail_path not absolute"),
    pytest.param("sendmail_path = /nonexistent/sendmail\n",
                 "vdeliver: warning: sendmail_path: /nonexistent/sendmail is not an executable file:"
                 " Sieve's vacation, redirect and notify will fail (the mail is kept)",
                 id="sendmail_path missing"),
    pytest.param("sieve_redirect_envelope_from = someone\n",
                 "vdeliver: error: sieve_redirect_envelope_from = someone: expected sender, recipient,"
                 " orig_recipient or <address>", id="redirect envelope sender that does not parse"),
    pytest.param("sieve_vacation_max_period = long\n",
                 "vdeliver: error: {cf}, line 5: sieve_vacation_max_period = long: expected a time"
                 " like 600s or 10m", id="vacation period that does not parse"),
])
def test_each_finding_is_one_exact_line(mail, extra, wanted):
    mail.write_config(extra)
    code, lines = check(mail)
    assert (code, lines) == (1, [wanted.format(cf=mail.config_path)])


def test_several_findings_are_all_reported(mail):
    mail.write_config("virtual_mailbox_mpas = x\ntime_limit = soon\n")
    code, lines = check(mail)
    assert code == 1 and len(lines) == 2, lines


def test_a_database_that_is_down_is_named(mail):
    pg = os.path.join(mail.top, "pg.cf")
    with open(pg, "w") as fh:
        fh.write(f"hosts = 127.0.0.1:{closed_port()}\nuser = u\npassword = p\ndbname = d\n"
                 "query = SELECT 'x' WHERE '%s' = ''\nconnect_timeout = 1\n")
    os.chmod(pg, 0o644)
    mail.write_config(maps=f"texthash:{mail.table_path}, pgsql:{pg}")
    code, lines = check(mail)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"vdeliver: error: virtual_mailbox_maps: pgsql:{pg}: ") and \
        "no database server answered" in lines[0], lines


@pytest.mark.parametrize("mode, wanted", [
    pytest.param(0o777, "is writable by group or others", id="world-writable base"),
])
def test_the_mail_base_is_checked(mail, mode, wanted):
    os.chmod(mail.base, mode)
    code, lines = check(mail)
    assert code == 1 and lines == [f"vdeliver: error: virtual_mailbox_base {mail.base} {wanted}"]


def test_a_root_owned_base_is_an_error(mail):
    os.chown(mail.base, 0, 0)
    code, lines = check(mail)
    assert code == 1
    assert f"vdeliver: error: virtual_mailbox_base {mail.base} is owned by root:" in lines[0], lines


def test_n_prints_what_differs_from_the_defaults(mail):
    mail.write_config("time_limit = 600s\nsieve = no\n")  # the first is the default's text
    code, lines = check(mail, "-n")
    assert code == 0
    assert lines == sorted(lines) and "sieve = no" in lines and not any(
        line.startswith("time_limit") for line in lines), lines
    assert f"virtual_mailbox_base = {mail.base}" in lines
