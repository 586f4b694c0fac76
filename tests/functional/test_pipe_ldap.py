"""Pipe mode with `virtual_mailbox_maps = ldap:FILE`: the installed vdeliver, run as pipe(8)
runs it, delivers to the mailbox a private slapd's entry names (maildrop, Postfix's default
result_attribute), bounces an address no entry accepts, and defers 75 `4.3.0 temporary
lookup failure` while slapd is stopped: the public text only, the server's in the log.
"""
import os
import shutil
import sys

import pytest

from support import assert_public, require

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tables"))
from servers import SLAPD, SUFFIX, SlapdServer  # noqa: E402

ENTRY = (f"dn: uid=bob,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: postfixRecipient\n"
         "uid: bob\ncn: bob\nsn: bob\nmailacceptinggeneralid: bob@example.com\n"
         "mailacceptinggeneralid: robert@example.com\nmaildrop: example.com/bob/\n")
MESSAGE = b"From: sender@example.net\nSubject: via ldap\n\nbody\n"


@pytest.fixture(scope="module")
def slapd():
    require(os.geteuid() == 0, "starting a private slapd needs root (to run it as openldap)")
    require(os.access(SLAPD, os.X_OK) and shutil.which("ldapadd"),
            "slapd and ldap-utils are not installed (scripts/setup-databases)")
    server = SlapdServer().start(ENTRY)
    yield server
    server.stop()


@pytest.fixture
def ldap_mail(mail, slapd):
    cf = os.path.join(mail.top, "ldap-mailbox.cf")
    with open(cf, "w") as fh:
        fh.write(f"server_host = {slapd.url()}\nsearch_base = {SUFFIX}\nversion = 3\n"
                 "timeout = 2\n")
    os.chmod(cf, 0o644)
    mail.write_config(maps=f"ldap:{cf}")
    return mail


def test_delivers_to_the_mailbox_the_ldap_entry_names(ldap_mail):
    for recipient in ("bob@example.com", "Robert@Example.COM", "bob+tag@example.com"):
        result = ldap_mail.run("-f", "sender@example.net", "--", recipient, stdin=MESSAGE)
        assert (result.code, result.stdout) == (0, b""), result
    paths = ldap_mail.new_files("example.com/bob")
    assert len(paths) == 3 and ldap_mail.tmp_files("example.com/bob") == []
    with open(paths[0], "rb") as fh:
        assert fh.read().endswith(MESSAGE)


def test_an_address_no_entry_accepts_bounces(ldap_mail):
    result = ldap_mail.run("-f", "s@x", "--", "nobody@example.com")
    assert (result.code, result.stdout) == (67, b"5.1.1 user unknown: nobody@example.com"), result


def test_slapd_stopped_defers_4_3_0_and_delivers_nothing(ldap_mail, slapd):
    results = []
    slapd.restart(during=lambda: results.append(
        ldap_mail.run("-i", "4LdAp1", "-f", "s@x", "--", "bob@example.com", stdin=MESSAGE)))
    (result,) = results
    assert result.code == 75, result
    assert result.stdout == b"4.3.0 temporary lookup failure", result
    assert_public(result.stdout)
    assert ldap_mail.new_files("example.com/bob") == [] and ldap_mail.tmp_files("example.com/bob") == []
    (line,) = result.log.splitlines()
    assert b"4LdAp1: to=<bob@example.com>" in line and b"status=deferred" in line, line
    assert b"no LDAP server answered" in line and b"127.0.0.1" in line, line
    # back up: the same message is delivered on the retry
    result = ldap_mail.run("-f", "s@x", "--", "bob@example.com", stdin=MESSAGE)
    assert (result.code, len(ldap_mail.new_files("example.com/bob"))) == (0, 1), result
