"""Operations against the real private Postfix: `vdeliver check` finds nothing wrong with the
harness's setup (master.cf.snippet as written) in either mode but the table mismatch it makes
on purpose, and one that Postfix would
trip on (its lmtp client cannot connect) it names; the LMTP daemon's metrics count a
bounce, a deferral and the delivery after it, by outcome and status; pflogsumm counts
vdeliver's own log lines of such deliveries, in both modes.

Never: read the system's /etc/postfix (check gets the private config with -C).
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile

import pytest

import harness
from harness import HOSTED, UNKNOWN, make_message


def check(mail, *args) -> tuple[int, list[str]]:
    done = subprocess.run([harness.snippet_command(), "check", "-C", mail.etc, *args],
                          capture_output=True, text=True, timeout=120, cwd="/",
                          env={"PATH": "/usr/bin:/bin"})
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout.splitlines()


def on_purpose():
    """What check says of the harness's setup: Postfix's table has two addresses vdeliver's
    lacks (ghost@, to test that bounce; the test sender's, for the bounces it gets)."""
    only_postfix = sorted(set(harness.POSTFIX_TABLE) - set(harness.VDELIVER_TABLE))
    assert only_postfix == sorted([UNKNOWN, harness.SENDER])
    return (f"vdeliver: error: Postfix: 2 key(s) of main.cf's virtual_mailbox_maps are not in"
            f" vdeliver.cf's (such as {only_postfix[0].lower()}): mail that Postfix accepts and"
            " vdeliver bounces (backscatter)")


def test_check_finds_only_what_the_harness_set_up_on_purpose(settled, mode):
    assert check(settled) == (1, [on_purpose()])


@pytest.mark.mode("lmtp")
def test_check_names_a_socket_postfix_cannot_connect_to(settled):
    mail = settled
    st = os.stat(mail.lmtp_socket)
    os.chown(mail.lmtp_socket, st.st_uid, 0)  # owner postfix, group root ...
    os.chmod(mail.lmtp_socket, 0o060)         # ... and only the group may connect
    try:
        code, lines = check(mail)
    finally:
        os.chmod(mail.lmtp_socket, st.st_mode & 0o7777)
        os.chown(mail.lmtp_socket, st.st_uid, st.st_gid)
    assert (code, lines) == (1, [
        on_purpose(),
        f"vdeliver: error: Postfix: virtual_transport = lmtp:unix:{mail.lmtp_socket_name}: LMTP"
        f" socket {mail.lmtp_socket}: owner {st.st_uid}:0, mode 0060: Postfix's lmtp client"
        " (mail_owner postfix) cannot connect (see lmtp_socket_owner, lmtp_socket_mode)"])


DORA = f"dora@{HOSTED}"


def dora_maildir(mail) -> str:
    """dora's Maildir, made by a first delivery if need be."""
    maildir = mail.maildir(DORA)
    if not os.path.isdir(os.path.join(maildir, "new")):  # a first delivery makes the Maildir
        mail.wait_status(mail.send(make_message("make the Maildir", to=DORA)[0], DORA), "sent")
    return maildir


def bounce_defer_deliver(mail, maildir) -> dict[str, str]:
    """One bounce (a recipient Postfix knows and vdeliver does not), one deferral (dora's
    Maildir mode 0) and its delivery after the fix; Postfix's log line of the deferral."""
    bounced = mail.send(make_message("unknown to vdeliver", to=UNKNOWN)[0], UNKNOWN)
    mail.wait_status(bounced, "bounced")
    old = os.stat(maildir).st_mode & 0o7777
    os.chmod(maildir, 0)
    try:
        deferred = mail.send(make_message("deferred, then delivered", to=DORA)[0], DORA)
        logged = mail.wait_status(deferred, "deferred")[0]
    finally:
        os.chmod(maildir, old)
    mail.flush()
    mail.wait_status(deferred, "sent", timeout=60)
    mail.wait_queue_empty(30)
    return logged


@pytest.mark.mode("lmtp")
def test_metrics_count_each_outcome(settled):
    mail = settled
    maildir = dora_maildir(mail)
    before = mail.scrape()
    logged = bounce_defer_deliver(mail, maildir)
    after = mail.scrape()
    grown = {name: after[name] - before.get(name, 0) for name in after
             if name.startswith("vdeliver_lmtp_deliveries_total{") and after[name] != before.get(name, 0)}
    assert grown == {
        'vdeliver_lmtp_deliveries_total{outcome="bounced",status="5.1.1"}': 1,
        f'vdeliver_lmtp_deliveries_total{{outcome="deferred",status="{logged["dsn"]}"}}': 1,
        'vdeliver_lmtp_deliveries_total{outcome="sent",status="2.0.0"}': 1}, grown
    assert after["vdeliver_lmtp_delivery_seconds_count"] - before["vdeliver_lmtp_delivery_seconds_count"] == 1


def test_pflogsumm_counts_vdeliver_lines(settled, mode):
    """vdeliver's own lines of these deliveries (as a maillog_file of its own would hold
    them), read by pflogsumm --syslog-name=vdeliver: what was made, by outcome."""
    mail = settled
    maildir = dora_maildir(mail)
    offset = len(mail.log_text())
    for n in range(3):
        mail.wait_status(mail.send(make_message(f"pflogsumm {n}", to=DORA)[0], DORA), "sent")
    bounce_defer_deliver(mail, maildir)
    own = [line for line in mail.log_text()[offset:].splitlines()
           if re.search(r" vdeliver/(pipe|lmtp)\[\d+\]: ", line)]
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log:
        log.write("".join(line + "\n" for line in own))
        log.flush()
        done = subprocess.run(["/usr/sbin/pflogsumm", "--syslog-name=vdeliver", log.name],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    grand = done.stdout.split("Grand Totals", 1)[1].split("Per-", 1)[0]
    counts = {name: int(number) for number, name in re.findall(r"^\s+(\d+)\s+(\w+)", grand, re.M)}
    assert (counts["delivered"], counts["deferred"], counts["bounced"]) == (4, 1, 1), (own, grand)
