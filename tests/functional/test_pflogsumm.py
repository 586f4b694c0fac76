"""pflogsumm(1) (Debian's pflogsumm, scripts/setup-e2e) counts vdeliver's own log lines.

A maillog of real deliveries, by the pipe command (with Postfix's -i ${queue_id})
and by the LMTP daemon: delivered, deferred and bounced, each as many as were made.
pflogsumm reads only lines whose program is NAME/SERVICE (`vdeliver/pipe[PID]:`,
`vdeliver/lmtp[PID]:`), given --syslog-name=vdeliver.
"""
import os
import re
import subprocess

from functional.test_lmtp import daemon, transaction  # noqa: F401 - daemon: the fixture
from support import require

PFLOGSUMM = "/usr/sbin/pflogsumm"


def totals(maillog):
    require(os.access(PFLOGSUMM, os.X_OK), "pflogsumm is missing: run scripts/setup-e2e")
    done = subprocess.run([PFLOGSUMM, "--syslog-name=vdeliver", "--problems-first", maillog],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    grand = done.stdout.split("Grand Totals", 1)[1].split("Per-", 1)[0]
    counts = {name: int(number) for number, name in re.findall(r"^\s+(\d+)\s+(\w+)", grand, re.M)}
    deferrals = re.search(r"deferred\s+\((\d+)\s+deferrals\)", grand)
    counts["deferrals"] = int(deferrals.group(1)) if deferrals else 0
    return counts


def make_unwritable_maildir(mail, name):
    os.makedirs(mail.path("example.com"), exist_ok=True)
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
    os.mkdir(mail.path(f"example.com/{name}"), 0o500)  # root's: deliveries there defer


def test_pflogsumm_counts_pipe_deliveries(mail):
    make_unwritable_maildir(mail, "alice")
    for n in range(3):
        assert mail.run("-i", f"4F2A31C0D{n}", "-f", "s@example.net", "--", "bob@example.com").code == 0
    for n in range(2):
        assert mail.run("-i", f"5A2A31C0D{n}", "--", "alice@example.com").code == 75
    assert mail.run("-i", "6B2A31C0D0", "--", "nobody@example.com").code == 67
    got = totals(mail.maillog)
    assert {k: got[k] for k in ("delivered", "deferred", "deferrals", "bounced")} == {
        "delivered": 3, "deferred": 2, "deferrals": 2, "bounced": 1}


def test_pflogsumm_counts_lmtp_deliveries(mail, daemon):
    make_unwritable_maildir(mail, "alice")
    lmtpd = daemon()
    lmtp = lmtpd.client()
    try:
        for _ in range(2):
            rcpt, data = transaction(lmtp, ["bob@example.com", "alice@example.com",
                                            "nobody@example.com", "carol@catchall.example"],
                                     b"Subject: pflogsumm\n\nbody\n")
            assert [code for code, _ in rcpt] == [250, 250, 550, 250], rcpt
            assert [code // 100 for code, _ in data] == [2, 4, 2], data
    finally:
        lmtp.quit()
    got = totals(mail.maillog)
    # The daemon's lines carry no queue id: pflogsumm's "deferred" counts distinct
    # recipients deferred, its "deferrals" every deferral.
    assert {k: got[k] for k in ("delivered", "deferred", "deferrals", "bounced")} == {
        "delivered": 4, "deferred": 1, "deferrals": 2, "bounced": 2}
