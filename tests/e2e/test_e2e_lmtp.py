"""LMTP mode only: Postfix's lmtp client reaches vdeliver's daemon through the snippet's
relative socket path, chrooted (Debian's stock `lmtp` line) and not (`lmtp-nochroot`).

lmtp(8) resolves `unix:private/vdeliver-lmtp` against its working directory, the
queue directory, which is also the root of a chrooted lmtp(8); so one relative path
serves both. Also, talking to the daemon's socket directly: a DATA line over 1 MiB
is delivered whole.

Never: trust the master.cf column alone: the
running lmtp process's /proc/PID/root shows where it really is.
"""
from __future__ import annotations

import os
import smtplib

import pytest

import harness
from harness import HOSTED, NOCHROOT_RCPT, header_values, make_message


@pytest.mark.mode("lmtp")
@pytest.mark.parametrize("rcpt, service, root", [
    pytest.param(f"bob@{HOSTED}", "postfix/lmtp", "spool", id="chroot=y (virtual_transport)"),
    pytest.param(NOCHROOT_RCPT, "postfix/lmtp-nochroot/lmtp", "/", id="chroot=n (transport_maps)"),
])
def test_relative_socket_path_works_chrooted_and_not(settled, rcpt, service, root):
    mail = settled
    data, msgid = make_message(f"lmtp {service}", to=rcpt)
    queue_id = mail.send(data, rcpt)
    sent = mail.wait_status(queue_id, "sent")[0]
    assert f"{sent['tag']}/{sent['agent']}" == service, sent["line"]
    assert sent["relay"] == mail.relay and sent["dsn"] == "2.0.0", sent["line"]
    assert f"<{rcpt}> delivered" in sent["text"], sent["line"]
    found = mail.find(mail.maildir(f"bob@{HOSTED}"), msgid)
    assert len(found) == 1
    assert header_values(next(iter(found.values())), "Delivered-To") == [rcpt.encode()]
    # lmtp(8) waits max_idle (100s) for more work: it is still there to look at.
    where = os.readlink(f"/proc/{sent['pid']}/root")
    assert where == (mail.spool if root == "spool" else "/"), f"lmtp[{sent['pid']}] runs in {where}"
    with open(f"/proc/{sent['pid']}/cmdline", "rb") as fh:
        assert fh.read().split(b"\0")[0].endswith(b"lmtp")


@pytest.mark.mode("lmtp")
def test_line_over_1_mib_is_delivered(settled):
    """Postfix's lmtp client breaks lines at 998 bytes by default; with lmtp_line_length_limit = 0,
    or another client, a 2 MiB line reaches the daemon. It is streamed to the spool in bounded
    memory and delivered whole, as in pipe mode. Talks to the daemon's socket directly."""
    mail = settled
    lmtp = smtplib.LMTP(mail.lmtp_socket, timeout=30)
    try:
        assert lmtp.docmd("LHLO", "e2e.test")[0] == 250
        assert lmtp.mail(harness.SENDER)[0] == 250
        assert lmtp.rcpt(f"bob@{HOSTED}")[0] == 250
        lmtp.putcmd("DATA")
        assert lmtp.getreply()[0] == 354
        lmtp.send(b"Subject: one long line\r\n\r\n" + b"z" * (2 << 20) + b"\r\n.\r\n")
        code, text = lmtp.getreply()
    finally:
        lmtp.close()
        assert harness.lmtp_greets(mail.lmtp_socket), "the daemon should still serve"
    assert code == 250, (code, text)
    delivered = [data for data in mail.messages(mail.maildir(f"bob@{HOSTED}")).values()
                 if b"Subject: one long line" in data]
    assert len(delivered) == 1 and delivered[0].endswith(b"\n\n" + b"z" * (2 << 20) + b"\n")
