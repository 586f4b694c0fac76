"""The LMTP daemon (vdeliver --lmtp) as Postfix's lmtp client would use it."""
import os
import shutil
import signal
import smtplib
import socket
import stat
import struct
import subprocess
import time

import pytest

from functional.outbox import Outbox, envelope, parse
from support import VDELIVER, require, wait_until


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemon:
    """`vdeliver --lmtp --foreground`, optionally under a wrapper (strace) given as `wrap`."""

    def __init__(self, mail, extra="", wrap=(), env=None):
        self.mail = mail
        self.port = free_port()
        self.pid_file = os.path.join(mail.top, "lmtpd.pid")
        self.socket_path = os.path.join(mail.top, "lmtp.sock")
        mail.write_config(f"lmtp_listen = inet:127.0.0.1:{self.port}, unix:{self.socket_path}\n"
                          f"lmtp_pid_file = {self.pid_file}\nlmtp_socket_owner = {mail.user.pw_name}\n"
                          f"lmtp_user = {mail.user.pw_name}\n" + extra)
        self.proc = subprocess.Popen([*wrap, VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                                     env=None if env is None else {"PATH": "/usr/bin:/bin", **env})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited: {self.proc.communicate()}") from None
                time.sleep(0.05)
        raise AssertionError("daemon did not start listening")

    @property
    def pid(self):
        """The daemon's pid (not a wrapper's): from its pid file."""
        with open(self.pid_file) as fh:
            return int(fh.read())

    def client(self):
        lmtp = smtplib.LMTP("127.0.0.1", self.port, timeout=30)
        assert lmtp.docmd("LHLO", "client.example")[0] == 250
        return lmtp

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture
def daemon(mail):
    started = []

    def start(extra="", wrap=(), env=None):
        started.append(Daemon(mail, extra, wrap, env))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def stuffed(message):
    """CRLF line ends and dot-stuffing, as an LMTP client sends DATA."""
    return b"\r\n".join(b"." + line if line.startswith(b".") else line
                         for line in message.split(b"\n"))


def transaction(lmtp, recipients, message, sender="sender@example.net"):
    """MAIL, RCPTs, DATA; return (rcpt replies, data replies) with one DATA reply per accepted RCPT."""
    assert lmtp.mail(sender)[0] == 250
    rcpt_replies = [lmtp.rcpt(r) for r in recipients]
    accepted = sum(1 for code, _ in rcpt_replies if code == 250)
    lmtp.putcmd("DATA")
    assert lmtp.getreply()[0] == 354
    lmtp.send(stuffed(message) + b".\r\n")
    return rcpt_replies, [lmtp.getreply() for _ in range(accepted)]


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_per_recipient_replies_unknown_over_quota_good_and_duplicate(mail, daemon):
    with open(os.path.join(mail.top, "quotas"), "w") as fh:
        fh.write("alice@example.com 1C\n")
    os.chmod(os.path.join(mail.top, "quotas"), 0o644)
    lmtpd = daemon(f"virtual_mailbox_quota_maps = texthash:{mail.top}/quotas\n"
                   "quota_exceeded_action = bounce\n")
    lmtp = lmtpd.client()
    transaction(lmtp, ["alice@example.com"], b"Subject: fill\n\nfirst\n")
    rcpt, data = transaction(lmtp, ["bob@example.com", "nobody@example.com", "alice@example.com",
                                    "anyone@catchall.example", "BOB@example.com"],
                             b"Subject: multi\n\n.dot line\nbody\n")
    assert [code for code, _ in rcpt] == [250, 550, 250, 250, 250]
    assert rcpt[1][1].startswith(b"5.1.1 ")
    assert [code for code, _ in data] == [250, 552, 250, 250]
    assert data[1][1].startswith(b"5.2.2 mailbox full")
    assert data[0][1] == data[3][1] == b"2.0.0 <bob@example.com> delivered"
    (bob,) = mail.new_files("example.com/bob")  # the duplicate was delivered once
    assert read(bob) == (b"Return-Path: <sender@example.net>\nDelivered-To: bob@example.com\n"
                         b"Subject: multi\n\n.dot line\nbody\n")
    assert len(mail.new_files("catchall")) == 1
    assert len(mail.new_files("example.com/alice")) == 1
    assert os.stat(bob).st_uid == mail.user.pw_uid
    lmtp.quit()
    assert lmtpd.stop() == 0


def test_temporary_failure_is_451_and_loop_554(mail, daemon):
    lmtpd = daemon()
    os.makedirs(mail.path("example.com/alice/new"))
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)  # alice/ stays root's
    lmtp = lmtpd.client()
    _, data = transaction(lmtp, ["alice@example.com", "bob@example.com"],
                          b"Delivered-To: bob@example.com\nSubject: x\n\nbody\n")
    assert data[0][0] == 451 and data[0][1].startswith(b"4.2.0 ")
    assert data[1][0] == 554 and data[1][1].startswith(b"5.4.6 ")
    assert mail.new_files("example.com/bob") == []


def test_an_unmounted_root_owned_base_defers_4_3_0_not_as_a_spool_error(mail, daemon):
    """virtual_mailbox_base_mounted = yes and the base an empty root-owned mount point (the
    safe way to leave one): the DATA spool, which lives in the base, cannot be opened
    either, and that must not hide the reason: 451 4.3.0 mail store not mounted, as the
    pipe command says, not 4.2.0 about the spool."""
    lmtpd = daemon("virtual_mailbox_base_mounted = yes\n")
    os.chown(mail.base, 0, 0)
    os.chmod(mail.base, 0o755)
    lmtp = lmtpd.client()
    assert lmtp.mail("sender@example.net")[0] == 250
    assert [lmtp.rcpt(r)[0] for r in ("bob@example.com", "alice@example.com")] == [250, 250]
    assert lmtp.docmd("DATA") == (451, b"4.3.0 mail store not mounted")
    assert os.listdir(mail.base) == []
    with open(mail.maillog, "rb") as fh:
        assert b"is not a mount point and holds no .vdeliver-mounted" in fh.read()
    lmtp.quit()


def test_dot_stuffing_crlf_and_8bit(mail, daemon):
    lmtp = daemon().client()
    message = b"Subject: \xe9t\xe9\n\n..two dots\n.\t.tab\nFrom x\n"
    _, data = transaction(lmtp, ["bob@example.com"], message)
    assert data[0][0] == 250
    (path,) = mail.new_files("example.com/bob")
    assert read(path).endswith(b"Subject: \xe9t\xe9\n\n..two dots\n.\t.tab\nFrom x\n")


def test_quoted_rcpt_is_unquoted_as_pipe_gets_it(mail, daemon):
    """Postfix's lmtp client sends the external (quoted) form: unquoted for the lookup (as pipe
    mode gets it), quoted again in the headers (as pipe mode writes them)."""
    mail.write_table('"john doe"@example.com  example.com/jd/\n"a>b"@example.com  example.com/ab/\n')
    lmtp = daemon().client()
    assert lmtp.docmd("MAIL", 'FROM:<"s x"@example.net>')[0] == 250
    assert lmtp.docmd("RCPT", 'TO:<"John Doe"@example.com>')[0] == 250
    assert lmtp.docmd("RCPT", 'TO:<"a>b"@example.com> NOTIFY=NEVER')[0] == 250
    assert lmtp.docmd("RCPT", 'TO:<"nobody here"@example.com>')[0] == 550
    lmtp.putcmd("DATA")
    assert lmtp.getreply()[0] == 354
    lmtp.send(b"Subject: q\r\n\r\nbody\r\n.\r\n")
    assert [lmtp.getreply() for _ in range(2)] == [(250, b"2.0.0 <John Doe@example.com> delivered"),
                                                   (250, b"2.0.0 <a>b@example.com> delivered")]
    (path,) = mail.new_files("example.com/jd")
    assert read(path) == (b'Return-Path: <"s x"@example.net>\nDelivered-To: "john doe"@example.com\n'

                          b"Subject: q\n\nbody\n")
    assert len(mail.new_files("example.com/ab")) == 1


def test_orcpt_becomes_x_original_to(mail, daemon):
    lmtp = daemon().client()
    assert lmtp.mail("s@example.net")[0] == 250
    assert lmtp.docmd("RCPT", "TO:<bob@example.com> ORCPT=rfc822;Bobby+2B1@example.com")[0] == 250
    assert lmtp.data(b"Subject: x\r\n\r\nx\r\n")[0] == 250
    assert b"X-Original-To: Bobby+1@example.com\n" in read(mail.new_files("example.com/bob")[0])


def lhlo_keywords(lmtpd):
    lmtp = smtplib.LMTP("127.0.0.1", lmtpd.port, timeout=10)
    code, text = lmtp.docmd("LHLO", "client.example")
    lmtp.quit()
    assert code == 250
    return [line.split()[0] for line in text.decode().splitlines()[1:]]


@pytest.fixture
def outbox(mail):
    return Outbox(mail)


def test_dsn_is_announced_unless_lmtp_dsn_no(mail, daemon):
    """Postfix's lmtp client sends ORCPT (X-Original-To) only to a server announcing DSN."""
    first = daemon()
    assert "DSN" in lhlo_keywords(first)
    assert first.stop() == 0
    assert "DSN" not in lhlo_keywords(daemon("lmtp_dsn = no\n"))


@pytest.mark.parametrize("mail_params, rcpt_params, warning", [
    pytest.param("RET=BODY", "NOTIFY=SUCCESS", "RET must be FULL or HDRS", id="RET not FULL or HDRS"),
    pytest.param("ENVID=a=b", "NOTIFY=SUCCESS", "not xtext", id="ENVID not xtext"),
    pytest.param("ENVID=" + "x" * 101, "NOTIFY=SUCCESS", "ENVID must be 1 to 100", id="ENVID too long"),
    pytest.param("", "NOTIFY=NEVER,SUCCESS", "NOTIFY must be", id="NOTIFY NEVER with others"),
    pytest.param("", "NOTIFY=SUCCESS,ALWAYS", "NOTIFY must be", id="NOTIFY unknown word"),
    pytest.param("", "NOTIFY=SUCCESS ORCPT=bob@example.com", None, id="ORCPT without type"),
    pytest.param("", "NOTIFY=SUCCESS ORCPT=rfc822;" + "b" * 600 + "@example.com", None,
                 id="ORCPT longer than RFC 3461 allows"),
])
def test_malformed_dsn_parameters_are_ignored_never_refused(mail, daemon, outbox, mail_params,
                                                            rcpt_params, warning):
    """A 501 at MAIL or RCPT would make Postfix bounce the mail over a notice: the parameter
    is logged and ignored (a malformed NOTIFY: no report), a malformed ORCPT only loses
    X-Original-To; the message is delivered."""
    lmtp = daemon(outbox.config()).client()
    assert lmtp.docmd("MAIL", f"FROM:<s@example.net> {mail_params}")[0] == 250
    assert lmtp.docmd("RCPT", f"TO:<bob@example.com> {rcpt_params}")[0] == 250
    code, text = lmtp.data(b"Subject: x\r\n\r\nx\r\n")
    lmtp.quit()
    assert (code, text.split()[0]) == (250, b"2.0.0")
    (path,) = mail.new_files("example.com/bob")
    if "ORCPT=bob" in rcpt_params:
        assert b"X-Original-To" not in read(path)
    # A malformed NOTIFY asks for nothing; with a well-formed one the report goes out.
    assert len(outbox.sent()) == (0 if warning and "NOTIFY" in warning else 1)
    if warning is not None:
        assert any("ignoring a malformed DSN parameter" in line and warning in line
                   for line in mail.log_lines()), mail.log_lines()


def test_dsn_parameters_are_ignored_with_lmtp_dsn_no(mail, daemon):
    lmtp = daemon("lmtp_dsn = no\n").client()
    assert lmtp.docmd("MAIL", "FROM:<s@x> RET=BODY")[0] == 250
    assert lmtp.docmd("RCPT", "TO:<bob@example.com> NOTIFY=ALWAYS")[0] == 250
    lmtp.quit()


def test_notify_success_gets_a_delivered_report_once_the_copy_is_durable(mail, daemon, outbox):
    lmtp = daemon(outbox.config()).client()
    assert lmtp.docmd("MAIL", "FROM:<sender@example.net> RET=FULL ENVID=QQ+2B1")[0] == 250
    assert lmtp.docmd("RCPT", "TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE "
                              "ORCPT=rfc822;Bobby+2B1@example.com")[0] == 250
    assert lmtp.docmd("RCPT", "TO:<alice@example.com> NOTIFY=FAILURE")[0] == 250
    lmtp.putcmd("DATA")
    assert lmtp.getreply()[0] == 354
    lmtp.send(stuffed(b"Subject: report me\nMessage-ID: <dsn1@x>\n\nthe secret body\n") + b".\r\n")
    assert [lmtp.getreply()[0] for _ in range(2)] == [250, 250]
    lmtp.quit()
    assert b"X-Original-To: Bobby+1@example.com\n" in read(mail.new_files("example.com/bob")[0])
    ((args, data),) = outbox.sent()  # none for alice: she asked for FAILURE only
    assert envelope(args) == ("<>", ["sender@example.net"])
    report = parse(data)
    assert report.get_content_type() == "multipart/report"
    text, status, headers = report.iter_parts()
    assert status.get_content_type() == "message/delivery-status"
    assert ("Original-Envelope-Id: QQ+1\n" in data.decode()
            and "Final-Recipient: rfc822; bob@example.com\n"
                "Original-Recipient: rfc822; Bobby+1@example.com\nAction: delivered\nStatus: 2.0.0\n"
            in data.decode())
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"Subject: report me\n" in data and b"the secret body" not in data
    lines = [line for line in mail.log_lines() if "to=<bob@example.com>" in line]
    assert "status=sent" in lines[-1] and "success DSN sent to sender@example.net" in lines[-1]


@pytest.mark.parametrize("sender, notify", [
    pytest.param("", "SUCCESS", id="null sender"),
    pytest.param("s@example.net", "NEVER", id="NOTIFY=NEVER"),
    pytest.param("s@example.net", "FAILURE,DELAY", id="no SUCCESS"),
])
def test_no_report_unless_success_was_asked_by_a_real_sender(mail, daemon, outbox, sender, notify):
    lmtp = daemon(outbox.config()).client()
    assert lmtp.docmd("MAIL", f"FROM:<{sender}>")[0] == 250
    assert lmtp.docmd("RCPT", f"TO:<bob@example.com> NOTIFY={notify}")[0] == 250
    assert lmtp.data(b"Subject: x\r\n\r\nx\r\n")[0] == 250
    lmtp.quit()
    assert len(mail.new_files("example.com/bob")) == 1
    assert outbox.sent() == []


def test_a_report_that_cannot_be_sent_leaves_the_copy_delivered(mail, daemon, outbox):
    outbox.fail_with(75)
    lmtp = daemon(outbox.config()).client()
    assert lmtp.docmd("MAIL", "FROM:<s@example.net>")[0] == 250
    assert lmtp.docmd("RCPT", "TO:<bob@example.com> NOTIFY=SUCCESS")[0] == 250
    code, text = lmtp.data(b"Subject: x\r\n\r\nx\r\n")
    lmtp.quit()
    assert (code, text.split()[0]) == (250, b"2.0.0")
    assert len(mail.new_files("example.com/bob")) == 1 and outbox.sent() == []
    lines = [line for line in mail.log_lines() if "to=<bob@example.com>" in line]
    assert "status=sent" in lines[-1] and "success DSN to s@example.net not sent" in lines[-1]


def test_a_malformed_orcpt_only_loses_x_original_to(mail, daemon):
    """ORCPT decoding to a control character: before, RCPT got 550 5.1.3 (a bounce over a
    header); now the message is delivered without X-Original-To and the log says why."""
    lmtp = daemon().client()
    assert lmtp.mail("s@example.net")[0] == 250
    assert lmtp.docmd("RCPT", "TO:<bob@example.com> ORCPT=rfc822;bob+01@example.com")[0] == 250
    assert lmtp.data(b"Subject: x\r\n\r\nx\r\n")[0] == 250
    data = read(mail.new_files("example.com/bob")[0])
    assert b"X-Original-To" not in data and data.endswith(b"Subject: x\n\nx\n")
    assert any("malformed original recipient" in line and "status=sent" in line
               for line in mail.log_lines())


def test_message_size_limit(mail, daemon):
    lmtp = daemon("lmtp_message_size_limit = 1000\n").client()
    assert lmtp.docmd("MAIL", "FROM:<s@x> SIZE=5000")[0] == 552
    _, data = transaction(lmtp, ["bob@example.com", "alice@example.com"], b"Subject: big\n\n" + b"x" * 2000 + b"\n")
    assert [reply[0] for reply in data] == [552, 552] and data[0][1].startswith(b"5.3.4")
    assert mail.new_files("example.com/bob") == []
    assert lmtp.noop()[0] == 250  # the session goes on
    lines = mail.log_lines()  # the bounces are logged, one line each, as every delivery is
    assert any("SIZE=5000 is over lmtp_message_size_limit" in line for line in lines), lines
    for rcpt in ("bob@example.com", "alice@example.com"):
        assert any(f"to=<{rcpt}>" in line and "dsn=5.3.4, status=bounced" in line
                   for line in lines), lines


def slow_deliveries(mail, daemon, seconds):
    """A daemon whose every delivery takes `seconds` after its commit: each recipient asks
    NOTIFY=SUCCESS and the report's sendmail sleeps (the report goes before the reply)."""
    program = os.path.join(mail.top, "slow-sendmail")
    with open(program, "w") as fh:
        fh.write(f"#!/bin/sh\ncat >/dev/null\nsleep {seconds}\n")
    os.chmod(program, 0o755)
    return daemon(f"sendmail_path = {program}\n")


def pipelined_to_the_dot(lmtpd, recipients, after_dot=b"QUIT\r\n"):
    """A raw session, as Postfix's lmtp client pipelines it: the DATA with QUIT behind the
    final dot in the same write. Returns the socket, its greeting to 354 read."""
    client = socket.create_connection(("127.0.0.1", lmtpd.port), timeout=30)
    client.sendall(b"LHLO x\r\nMAIL FROM:<s@example.net>\r\n" + b"".join(
        b"RCPT TO:<%s> NOTIFY=SUCCESS\r\n" % r.encode() for r in recipients) + b"DATA\r\n")
    seen = b""
    while not seen.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n"):
        seen += client.recv(4096)
    client.sendall(b"Subject: slow\r\n\r\nbody\r\n.\r\n" + after_dot)
    return client


def test_each_reply_after_the_dot_goes_out_when_its_copy_is_durable(mail, daemon):
    """Postfix pipelines QUIT behind the final dot and waits for each reply in turn
    (lmtp_data_done_timeout). The replies were held back until the last copy was
    delivered: with enough recipients Postfix timed out and delivered them all again."""
    mail.write_table("".join(f"u{n}@example.com example.com/u{n}/\n" for n in range(3)))
    lmtpd = slow_deliveries(mail, daemon, 1)
    client = pipelined_to_the_dot(lmtpd, [f"u{n}@example.com" for n in range(3)])
    start, arrivals, seen = time.monotonic(), [], b""
    while len(arrivals) < 4:  # three 250s and the 221
        chunk = client.recv(4096)
        assert chunk, seen
        seen += chunk
        while seen.count(b"\r\n") > len(arrivals):
            arrivals.append(time.monotonic() - start)
    client.close()
    assert seen.split(b"\r\n")[:4] == [b"250 2.0.0 <u0@example.com> delivered",
                                       b"250 2.0.0 <u1@example.com> delivered",
                                       b"250 2.0.0 <u2@example.com> delivered", b"221 2.0.0 Bye"]
    assert arrivals[1] - arrivals[0] > 0.7 and arrivals[2] - arrivals[1] > 0.7, arrivals


def test_a_client_gone_after_the_dot_gets_no_more_copies_committed(mail, daemon):
    """A copy committed after the client went away gets no reply, and the client sends
    it again: once the connection is closed (or reset) no further delivery starts."""
    mail.write_table("".join(f"u{n}@example.com example.com/u{n}/\n" for n in range(6)))
    lmtpd = slow_deliveries(mail, daemon, 1)
    client = pipelined_to_the_dot(lmtpd, [f"u{n}@example.com" for n in range(6)])
    first = b""
    while b"\r\n" not in first:
        first += client.recv(4096)
    assert first.startswith(b"250 2.0.0 <u0@example.com> delivered"), first
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # a reset, as a client that timed out may leave
    assert wait_until(lambda: b"LMTP client gone after the final dot" in read(mail.maillog), 15)
    time.sleep(1.5)  # a delivery started by mistake would be on disk by now
    copies = sum(len(mail.new_files(f"example.com/u{n}")) for n in range(6))
    # u0, and u1 whose delivery starts as u0's reply goes out (before the reset arrives,
    # all but always); none after. Before: all 6.
    assert 1 <= copies <= 2, copies
    assert b"%d recipient(s) not delivered" % (6 - copies) in read(mail.maillog)


def test_rcpt_lines_as_long_as_postfix_writes_are_taken_and_longer_ones_answered(mail, daemon):
    """Postfix xtext-quotes ORCPT: for a 700-character UTF-8 original recipient a 4268-byte
    RCPT line. It got 500 and the connection was closed (Postfix bounces a recipient on a
    5xx). A line over 16 KB gets one 500 and the session goes on."""
    lmtp = daemon().client()
    original = ("é" * 700 + "@example.net").encode()
    orcpt = b"".join(b"+%02X" % c if c > 126 or c < 33 or c in b"+=" else bytes([c])
                     for c in original)
    assert lmtp.mail("s@x")[0] == 250
    line = b"RCPT TO:<bob@example.com> ORCPT=rfc822;" + orcpt + b" NOTIFY=FAILURE\r\n"
    assert len(line) > 4096
    lmtp.send(line)
    assert lmtp.getreply()[0] == 250
    lmtp.send(b"NOOP " + b"x" * 20000 + b"\r\nNOOP\r\n")
    assert lmtp.getreply() == (500, b"5.5.2 line too long")
    assert lmtp.getreply()[0] == 250  # one reply per command: still in step
    assert lmtp.data(b"Subject: long\r\n\r\nx\r\n")[0] == 250
    (path,) = mail.new_files("example.com/bob")
    assert read(path).startswith(b"Return-Path: <s@x>\nX-Original-To: " + original + b"\n")


def test_commands_not_offered_get_502_unknown_ones_500_and_the_session_goes_on(mail, daemon):
    """RFC 5321 4.2.4: 502 for a command the server knows and does not offer, 500 for one it
    does not recognise, 501 for VRFY without its argument (it got 252, as a VRFY with one)."""
    lmtp = daemon().client()
    assert lmtp.docmd("VRFY")[0] == 501
    assert lmtp.docmd("VRFY", "bob@example.com")[0] == 252
    for verb in ("EXPN staff", "HELP", "ETRN example.com", "STARTTLS", "BDAT 10 LAST"):
        assert lmtp.docmd(verb) == (502, b"5.5.1 command not implemented"), verb
    assert lmtp.docmd("FROBNICATE") == (500, b"5.5.2 command not recognized")
    assert lmtp.mail("s@x")[0] == 250
    assert lmtp.rcpt("bob@example.com")[0] == 250
    assert lmtp.data(b"Subject: after\r\n\r\nx\r\n")[0] == 250
    assert len(mail.new_files("example.com/bob")) == 1


def test_recipient_limit(mail, daemon):
    lmtp = daemon("lmtp_recipient_limit = 2\n").client()
    assert lmtp.mail("s@x")[0] == 250
    codes = [lmtp.rcpt("bob@example.com")[0] for _ in range(3)]
    assert codes == [250, 250, 452]


def test_lhlo_required_and_helo_refused(mail, daemon):
    lmtpd = daemon()
    lmtp = smtplib.LMTP("127.0.0.1", lmtpd.port, timeout=10)
    assert lmtp.docmd("HELO", "x")[0] == 500
    assert lmtp.docmd("MAIL", "FROM:<s@x>")[0] == 503
    code, text = lmtp.docmd("LHLO", "x")
    assert code == 250 and b"PIPELINING" in text and b"ENHANCEDSTATUSCODES" in text


def test_unix_socket_mode_and_owner(mail, daemon):
    lmtpd = daemon()
    st = os.stat(lmtpd.socket_path)
    assert (st.st_mode & 0o777) == 0o660 and st.st_uid == mail.user.pw_uid
    client = socket.socket(socket.AF_UNIX)
    client.connect(lmtpd.socket_path)
    assert client.recv(100).startswith(b"220 ")
    client.close()


def test_runs_as_the_delivery_user_and_pid_file_refuses_a_second_instance(mail, daemon):
    lmtpd = daemon()
    with open(lmtpd.pid_file) as fh:
        assert int(fh.read()) == lmtpd.proc.pid
    with open(f"/proc/{lmtpd.proc.pid}/status") as fh:
        uid_line = next(line for line in fh if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(mail.user.pw_uid)] * 4
    second = subprocess.run([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                            capture_output=True, timeout=30)
    assert second.returncode == 1 and b"already running (pid %d" % lmtpd.proc.pid in second.stderr


def test_refuses_write_delivery_headers_no(mail):
    mail.write_config("write_delivery_headers = no\n")
    done = subprocess.run([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path], capture_output=True,
                          timeout=30, cwd="/")
    assert done.returncode == 1 and b"write_delivery_headers = no is for pipe(8)" in done.stderr, done


def test_detaches_without_foreground(mail):
    port = free_port()
    pid_file = os.path.join(mail.top, "detached.pid")
    mail.write_config(f"lmtp_listen = inet:127.0.0.1:{port}\nlmtp_pid_file = {pid_file}\n"
                      f"lmtp_user = {mail.user.pw_name}\n")
    result = subprocess.run([VDELIVER, "--lmtp", "-c", mail.config_path], capture_output=True, timeout=30)
    assert result.returncode == 0
    deadline = time.monotonic() + 10
    pid = 0
    while time.monotonic() < deadline and not pid:  # the detached child writes its pid
        if os.path.exists(pid_file) and os.path.getsize(pid_file):
            pid = int(open(pid_file).read())
        else:
            time.sleep(0.05)
    assert pid, "the detached daemon wrote no pid"
    try:
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
            assert lmtp.docmd("LHLO", "x")[0] == 250
        assert os.getsid(pid) != os.getsid(0)  # a session of its own: detached
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def stop_detached(pid_file):
    """SIGTERM to the detached daemon of `pid_file`, if one is running; wait for its end."""
    try:
        pid = int(open(pid_file).read())
    except (OSError, ValueError):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)


@pytest.mark.parametrize("case", ["relative table", "table unreadable to the delivery user"])
def test_a_detached_start_that_fails_after_the_detach_exits_1(mail, case):
    """The tables open only in the detached child (as the delivery user, in /): the start
    command used to exit 0 there and the daemon die at once, nothing listening."""
    port = free_port()
    pid_file = os.path.join(mail.top, "detached.pid")
    if case == "relative table":
        maps, cwd = "texthash:mailboxes", mail.top  # found from the starting directory only
    else:
        os.chmod(mail.table_path, 0o600)  # root's; the daemon serves as the delivery user
        maps, cwd = None, "/"
    mail.write_config(f"lmtp_listen = inet:127.0.0.1:{port}\nlmtp_pid_file = {pid_file}\n"
                      f"lmtp_user = {mail.user.pw_name}\n", maps=maps)
    try:
        result = subprocess.run([VDELIVER, "--lmtp", "-c", mail.config_path], capture_output=True,
                                timeout=30, cwd=cwd)
        assert result.returncode == 1, result
        assert b"vdeliver --lmtp: not started: " in result.stderr, result
        assert b"cannot open texthash:" in result.stderr or b"texthash:" in result.stderr, result
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert b"LMTP daemon not started: " in read(mail.maillog)
    finally:
        stop_detached(pid_file)


def test_a_detached_start_with_a_relative_config_serves_and_reloads(mail):
    """`-c vdeliver.cf` from the config's directory: the detached child (in /) and every
    SIGHUP read the same file, made absolute before the detach."""
    port = free_port()
    pid_file = os.path.join(mail.top, "detached.pid")
    mail.write_config(f"lmtp_listen = inet:127.0.0.1:{port}\nlmtp_pid_file = {pid_file}\n"
                      f"lmtp_user = {mail.user.pw_name}\n")
    try:
        result = subprocess.run([VDELIVER, "--lmtp", "-c", os.path.basename(mail.config_path)],
                                capture_output=True, timeout=30, cwd=mail.top)
        assert (result.returncode, result.stderr) == (0, b""), result
        pid = int(open(pid_file).read())  # written before the daemon's word: no waiting
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"reload" not in read(mail.maillog):
            time.sleep(0.05)
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
            assert lmtp.docmd("LHLO", "x")[0] == 250
            assert transaction(lmtp, ["bob@example.com"], b"Subject: rel\n\nbody\n")[1] == [
                (250, b"2.0.0 <bob@example.com> delivered")]
        assert b"failed" not in read(mail.maillog), read(mail.maillog)
    finally:
        stop_detached(pid_file)


def test_sigterm_during_large_data_delivers_nothing_and_sends_no_250(mail, daemon):
    lmtpd = daemon()
    client = socket.create_connection(("127.0.0.1", lmtpd.port), timeout=30)
    client.sendall(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    replies = b""
    while replies.count(b"\r\n") < 10:  # greeting, 6 LHLO lines, MAIL, RCPT, 354
        replies += client.recv(4096)
    assert replies.rstrip().endswith(b"354 End data with <CR><LF>.<CR><LF>")
    client.sendall(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 5000)
    time.sleep(0.3)
    lmtpd.proc.send_signal(signal.SIGTERM)
    rest = b""
    while True:  # the daemon closes the connection without any reply
        chunk = client.recv(4096)
        if not chunk:
            break
        rest += chunk
    assert rest == b""
    client.close()
    assert lmtpd.stop() == 0
    assert mail.new_files("example.com/bob") == [] and mail.tmp_files("example.com/bob") == []


def test_sighup_reloads_tables(mail, daemon):
    lmtpd = daemon()
    lmtp = lmtpd.client()
    assert lmtp.mail("s@x")[0] == 250
    assert lmtp.rcpt("carol@example.com")[0] == 550
    lmtp.rset()
    with open(mail.table_path, "a") as fh:
        fh.write("carol@example.com example.com/carol/\n")
    lmtpd.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("reloaded" in line for line in mail.log_lines()):
        time.sleep(0.05)
    assert lmtp.mail("s@x")[0] == 250
    assert lmtp.rcpt("carol@example.com")[0] == 250


def test_a_changed_table_is_reloaded_without_sighup(mail, daemon):
    lmtpd = daemon()
    lmtp = lmtpd.client()
    assert lmtp.mail("s@x")[0] == 250
    assert lmtp.rcpt("dave@example.com")[0] == 550
    lmtp.rset()
    time.sleep(1.1)  # the daemon looks at most once a second
    with open(mail.table_path, "a") as fh:
        fh.write("dave@example.com example.com/dave/\n")
    assert lmtp.mail("s@x")[0] == 250
    assert lmtp.rcpt("dave@example.com")[0] == 250
    assert any("reloaded" in line for line in mail.log_lines())


def test_idle_timeout(mail, daemon):
    lmtpd = daemon("lmtp_idle_timeout = 1s\n")
    client = socket.create_connection(("127.0.0.1", lmtpd.port))
    client.settimeout(10)
    data = b""
    while True:
        chunk = client.recv(1000)
        if not chunk:
            break
        data += chunk
    assert b"421 4.4.2" in data


def test_commands_pipelined_after_the_final_dot(mail, daemon):
    lmtpd = daemon()
    client = socket.create_connection(("127.0.0.1", lmtpd.port), timeout=30)
    client.sendall(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    replies = b""
    while not replies.rstrip().endswith(b"<CR><LF>.<CR><LF>"):
        replies += client.recv(4096)
    # The message, its end and two more transactions' commands in one packet.
    client.sendall(b"Subject: one\r\n\r\n..x\r\n.\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice@example.com>\r\n"
                   b"DATA\r\n")
    replies = b""
    while b"354" not in replies:
        replies += client.recv(4096)
    assert replies.split(b"\r\n")[:3] == [b"250 2.0.0 <bob@example.com> delivered", b"250 2.1.0 Ok",
                                          b"250 2.1.5 Ok"]
    client.sendall(b"Subject: two\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    replies = b""
    while b"221" not in replies:
        replies += client.recv(4096)
    assert replies.startswith(b"250 2.0.0 <alice@example.com> delivered\r\n221 ")
    client.close()
    assert read(mail.new_files("example.com/bob")[0]).endswith(b"Subject: one\n\n.x\n")
    assert read(mail.new_files("example.com/alice")[0]).endswith(b"Subject: two\n\nbody\n")


def sqlite_quota_table(mail, rows):
    import sqlite3
    database = os.path.join(mail.top, "quota.sqlite")
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE quota (address TEXT, quota TEXT)")
        connection.executemany("INSERT INTO quota VALUES (?, ?)", rows)
    connection.close()
    config = os.path.join(mail.top, "quota.cf")
    with open(config, "w") as fh:
        fh.write(f"dbpath = {database}\nquery = SELECT quota FROM quota WHERE address = '%s'\n")
    for path in (database, config):
        os.chmod(path, 0o644)
    return database, config


def test_quota_tables_are_opened_once_per_daemon_not_per_message(mail, daemon):
    """virtual_mailbox_quota_maps belong to the tables the daemon keeps (resolve.Tables): one
    sqlite connection for all deliveries, shared by the delivery threads. Before, each
    delivery opened the quota tables again (a new database connection per message)."""
    import shutil
    require(shutil.which("strace"), "needs strace (scripts/setup-e2e installs it)")
    database, config = sqlite_quota_table(mail, [("bob@example.com", "1M"), ("alice@example.com", "1C")])
    lmtpd = daemon(f"virtual_mailbox_quota_maps = sqlite:{config}\nquota_exceeded_action = bounce\n")
    trace = os.path.join(mail.top, "trace")
    # Attached after start-up: only what the deliveries open is seen.
    strace = subprocess.Popen(["strace", "-f", "-e", "trace=open,openat", "-o", trace,
                               "-p", str(lmtpd.proc.pid)], stderr=subprocess.PIPE)
    try:
        assert b"attached" in strace.stderr.readline()
        lmtp = lmtpd.client()
        for number in range(4):
            rcpt, data = transaction(lmtp, ["bob@example.com"], b"Subject: %d\n\nbody\n" % number)
            assert data == [(250, b"2.0.0 <bob@example.com> delivered")], (number, data)
        _, data = transaction(lmtp, ["alice@example.com"], b"Subject: a\n\nbody\n")
        assert data[0][0] == 250
        _, data = transaction(lmtp, ["alice@example.com"], b"Subject: b\n\nbody\n")
        assert data[0][0] == 552 and data[0][1].startswith(b"5.2.2 "), data  # the table answers
        lmtp.quit()
    finally:
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=30)
        strace.stderr.close()
    with open(trace) as fh:
        opens = [line for line in fh if f'"{database}"' in line and "= -1" not in line]
    assert len(opens) == 1, opens
    assert len(mail.new_files("example.com/bob")) == 4
    assert lmtpd.stop() == 0


def test_a_changed_quota_table_is_reloaded_with_the_other_tables(mail, daemon):
    """The quota maps' files are watched like virtual_mailbox_maps' (daemon.table_files)."""
    quotas = os.path.join(mail.top, "quotas")
    mail.write_table("bob@example.com 1C\n", quotas)
    lmtpd = daemon(f"virtual_mailbox_quota_maps = texthash:{quotas}\nquota_exceeded_action = bounce\n")
    lmtp = lmtpd.client()
    assert transaction(lmtp, ["bob@example.com"], b"Subject: 1\n\nbody\n")[1][0][0] == 250
    assert transaction(lmtp, ["bob@example.com"], b"Subject: 2\n\nbody\n")[1][0][0] == 552
    time.sleep(1.1)  # the daemon looks at most once a second
    mail.write_table("bob@example.com 10C\n", quotas)
    assert transaction(lmtp, ["bob@example.com"], b"Subject: 3\n\nbody\n")[1][0][0] == 250
    assert any("reloaded" in line for line in mail.log_lines())
    lmtp.quit()
    assert lmtpd.stop() == 0


# --- issue 11 -------------------------------------------------------------------------------

def read_until_closed(sock):
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_message_size_limit_0_means_no_limit(mail, daemon):
    """As Postfix's message_size_limit = 0: no limit, and LHLO announces a plain SIZE."""
    lmtp = daemon("lmtp_message_size_limit = 0\n").client()
    code, text = lmtp.docmd("LHLO", "client.example")
    assert code == 250 and text.split(b"\n")[-1] == b"SIZE"
    assert lmtp.docmd("MAIL", "FROM:<s@example.net> SIZE=500000000")[0] == 250
    lmtp.rset()
    message = b"Subject: big\n\n" + b"z" * 70000 + b"\n"
    _, data = transaction(lmtp, ["bob@example.com"], message)
    assert data == [(250, b"2.0.0 <bob@example.com> delivered")]
    (path,) = mail.new_files("example.com/bob")
    assert read(path) == (b"Return-Path: <sender@example.net>\nDelivered-To: bob@example.com\n"
                          + message)


def test_client_stalling_mid_data_gets_421_4_4_2_and_a_timeout_log_line(mail, daemon):
    lmtpd = daemon("lmtp_idle_timeout = 1s\n")
    client = socket.create_connection(("127.0.0.1", lmtpd.port), timeout=30)
    client.sendall(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    replies = b""
    while not replies.rstrip().endswith(b"<CR><LF>.<CR><LF>"):
        replies += client.recv(4096)
    client.sendall(b"Subject: stalled\r\n\r\nhalf a mess")
    rest = read_until_closed(client)
    client.close()
    assert rest == b"421 4.4.2 timeout during DATA, closing connection\r\n"
    assert mail.new_files("example.com/bob") == [] and mail.tmp_files("example.com/bob") == []
    lines = mail.log_lines()
    assert not any("internal software error" in line for line in lines), lines
    assert any("LMTP session: timeout during DATA" in line for line in lines), lines


def run_refused(mail, config_extra, wrap=(), during=None):
    """Start the daemon as root with config_extra; (exit code, stderr). It must exit by itself."""
    mail.write_config(config_extra)
    proc = subprocess.Popen([*wrap, VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        if during:
            during()
        _, err = proc.communicate(timeout=20)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        return None, b"the daemon started (still running)"
    finally:
        if proc.poll() is None:  # it started: stop the daemon itself (strace does not pass
            for line in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                       text=True).stdout.split():  # SIGTERM on)
                os.kill(int(line), signal.SIGTERM)
            proc.terminate()
            proc.wait(timeout=30)


def victim_file(mail):
    """A root-owned file an attacker would like truncated, chmodded or chowned."""
    victim = os.path.join(mail.top, "victim")
    with open(victim, "wb") as fh:
        fh.write(b"precious\n")
    os.chmod(victim, 0o644)
    return victim


def assert_untouched(victim):
    st = os.lstat(victim)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o644)
    assert read(victim) == b"precious\n"


@pytest.mark.parametrize("case", [
    pytest.param("symlink", id="symlink planted at lmtp_pid_file"),
    pytest.param("world-writable directory", id="pid file in a mode 1777 directory"),
    pytest.param("directory of another user", id="pid file in the delivery user's directory"),
])
def test_pid_file_refused_when_an_attacker_could_plant_it(mail, case):
    victim = victim_file(mail)
    directory = os.path.join(mail.top, "run")
    os.mkdir(directory, 0o755)
    pid_file = os.path.join(directory, "lmtpd.pid")
    if case == "symlink":
        os.symlink(victim, pid_file)
    elif case == "world-writable directory":
        os.chmod(directory, 0o1777)
    else:
        os.chown(directory, mail.user.pw_uid, mail.user.pw_gid)
    code, err = run_refused(mail, f"lmtp_listen = inet:127.0.0.1:{free_port()}\n"
                                  f"lmtp_pid_file = {pid_file}\nlmtp_user = {mail.user.pw_name}\n")
    assert code == 1 and b"lmtp_pid_file " + pid_file.encode() in err, err
    assert_untouched(victim)
    if case == "symlink":
        assert os.readlink(pid_file) == victim


def test_symlink_planted_at_the_socket_path_is_refused(mail):
    victim = victim_file(mail)
    socket_path = os.path.join(mail.top, "lmtp.sock")
    os.symlink(victim, socket_path)
    code, err = run_refused(mail, f"lmtp_listen = unix:{socket_path}\nlmtp_pid_file = {mail.top}/pid\n"
                                  f"lmtp_socket_owner = {mail.user.pw_name}\nlmtp_user = {mail.user.pw_name}\n")
    assert code == 1 and f"lmtp_listen unix:{socket_path}".encode() in err, err
    assert_untouched(victim)


def test_socket_swapped_for_a_symlink_after_bind_is_never_chowned_or_chmodded(mail):
    """The owner of the socket's directory (postfix, for private/) replaces the socket by a
    symlink between bind() and the chmod/chown: strace holds bind() for 2 s to open the
    window. The daemon must refuse, and the symlink's target keep its owner and mode."""
    require(shutil.which("strace"), "needs strace")
    victim = victim_file(mail)
    socket_path = os.path.join(mail.top, "lmtp.sock")

    def swap():
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if stat.S_ISSOCK(os.lstat(socket_path).st_mode):
                    break
            except FileNotFoundError:
                time.sleep(0.01)
        else:
            raise AssertionError("the daemon never bound its socket")
        os.symlink(victim, socket_path + ".new")
        os.replace(socket_path + ".new", socket_path)

    code, err = run_refused(
        mail, f"lmtp_listen = unix:{socket_path}\nlmtp_pid_file = {mail.top}/pid\n"
              f"lmtp_socket_owner = {mail.user.pw_name}\nlmtp_user = {mail.user.pw_name}\n",
        wrap=["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=bind",
              "-e", "inject=bind:delay_exit=2000000"], during=swap)
    assert code == 1 and f"lmtp_listen unix:{socket_path}".encode() in err, err
    assert_untouched(victim)


def test_maillog_created_by_the_daemon_belongs_to_the_delivery_user(mail, daemon):
    """Started as root with no maillog yet: the file is created after the privilege drop,
    so every line, from 'started' to 'stopped', is written."""
    logs = os.path.join(mail.top, "log")
    os.mkdir(logs, 0o755)
    os.chown(logs, mail.user.pw_uid, mail.user.pw_gid)
    maillog = os.path.join(logs, "maillog")
    lmtpd = daemon(f"maillog_file = {maillog}\n")
    lmtp = lmtpd.client()
    _, data = transaction(lmtp, ["bob@example.com"], b"Subject: log\n\nx\n")
    assert data[0][0] == 250
    lmtp.quit()
    assert lmtpd.stop() == 0
    st = os.stat(maillog)
    assert (st.st_uid, st.st_mode & 0o777) == (mail.user.pw_uid, 0o600)
    text = read(maillog)
    assert b"LMTP daemon started" in text and b"status=sent" in text and b"LMTP daemon stopped" in text


def test_reload_runs_off_the_event_loop(mail, daemon):
    """A reload whose table is slow to open (a FIFO nobody writes yet) must not stop the
    daemon from answering other sessions."""
    lmtpd = daemon()
    lmtp = lmtpd.client()
    fifo = mail.table_path + ".fifo"
    os.mkfifo(fifo, 0o644)
    os.replace(fifo, mail.table_path)
    lmtpd.proc.send_signal(signal.SIGHUP)
    try:
        time.sleep(0.5)
        lmtp.sock.settimeout(3)
        assert lmtp.noop()[0] == 250
    finally:
        fd = os.open(mail.table_path, os.O_WRONLY)  # the reload is waiting to read it
        os.write(fd, b"bob@example.com example.com/bob/\ncarol@example.com example.com/carol/\n")
        os.close(fd)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("reloaded" in line for line in mail.log_lines()):
        time.sleep(0.05)
    lmtp.sock.settimeout(30)
    assert lmtp.mail("s@x")[0] == 250
    assert lmtp.rcpt("carol@example.com")[0] == 250


def test_reload_closes_the_old_tables(mail, daemon):
    from vdeliver.tables import cdb
    table = os.path.join(mail.top, "boxes")
    cdb.write(table + ".cdb", [(b"bob@example.com\0", b"example.com/bob/\0")])
    os.chmod(table + ".cdb", 0o644)
    lmtpd = daemon(f"virtual_mailbox_maps = cdb:{table}\n")

    def open_copies():
        fds = f"/proc/{lmtpd.pid}/fd"
        return sum(1 for fd in os.listdir(fds) if os.readlink(f"{fds}/{fd}") == table + ".cdb")

    # The daemon listens before it opens its tables; its greeting comes once they are open.
    lmtpd.client().quit()
    assert open_copies() == 1
    for round in range(1, 4):
        lmtpd.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum("reloaded" in line for line in mail.log_lines()) < round:
            time.sleep(0.05)
    time.sleep(0.2)
    assert open_copies() == 1
    lmtp = lmtpd.client()
    _, data = transaction(lmtp, ["bob@example.com"], b"Subject: cdb\n\nx\n")
    assert data[0][0] == 250

def test_held_maildirsize_lock_gets_451_4_2_0_and_frees_the_delivery_thread(mail, daemon):
    """A process holding maildirsize.lock: the delivery thread waits quota_lock_timeout and
    answers 451 4.2.0 (before locks.py its flock had no timeout: the thread hung for ever)."""
    import fcntl
    quotas = os.path.join(mail.top, "quotas")
    mail.write_table("bob@example.com 1M\n", quotas)
    lmtpd = daemon(f"virtual_mailbox_quota_maps = texthash:{quotas}\nquota_lock_timeout = 1s\n")
    lmtp = lmtpd.client()
    assert transaction(lmtp, ["bob@example.com"], b"Subject: 1\n\nbody\n")[1][0][0] == 250
    holder = os.open(mail.path("example.com/bob/maildirsize.lock"), os.O_RDWR)
    fcntl.lockf(holder, fcntl.LOCK_EX)  # a POSIX lock, as another host holds it (issue 15)
    try:
        started = time.monotonic()
        _, data = transaction(lmtp, ["bob@example.com"], b"Subject: 2\n\nbody\n")
        elapsed = time.monotonic() - started
    finally:
        os.close(holder)
    assert data[0][0] == 451 and data[0][1].startswith(b"4.2.0 "), data
    assert 0.9 < elapsed < 10, (data, elapsed)
    assert any("maildirsize.lock is locked" in line for line in mail.log_lines())  # private detail
    assert transaction(lmtp, ["bob@example.com"], b"Subject: 3\n\nbody\n")[1][0][0] == 250
    assert len(mail.new_files("example.com/bob")) == 2
    lmtp.quit()
    assert lmtpd.stop() == 0


def test_a_latin1_lang_changes_no_byte_of_a_mailbox_path(mail, daemon, latin1_locale):
    """The daemon started by an init system whose LANG is Latin-1: a Python outside UTF-8
    mode wrote the Maildir `example.com/jörg/` as the Latin-1 bytes j\\xf6rg, beside the one
    the table names, and could not encode 李 at all (451 4.3.0)."""
    mail.write_table("jörg@example.com example.com/jörg/\n李@example.com example.com/李/\n")
    lmtpd = daemon(env=latin1_locale)
    lmtp = lmtpd.client()
    lmtp.send("MAIL FROM:<sénder@example.net> SMTPUTF8\r\n".encode())
    assert lmtp.getreply()[0] == 250
    for rcpt in ("jörg@example.com", "李@example.com"):
        lmtp.send(f"RCPT TO:<{rcpt}>\r\n".encode())
        assert lmtp.getreply()[0] == 250
    lmtp.putcmd("DATA")
    assert lmtp.getreply()[0] == 354
    lmtp.send(stuffed(b"Subject: utf8\n\nbody\n") + b".\r\n")
    assert [lmtp.getreply() for _ in range(2)] == [
        (250, "2.0.0 <jörg@example.com> delivered".encode()),
        (250, "2.0.0 <李@example.com> delivered".encode())]
    assert sorted(os.listdir(mail.base.encode() + b"/example.com")) == sorted(
        [b"j\xc3\xb6rg", "李".encode()])
    (path,) = mail.new_files("example.com/李")
    assert read(path).startswith("Return-Path: <sénder@example.net>\nDelivered-To: 李@example.com\n"
                                 .encode())
    lmtp.quit()


@pytest.mark.parametrize("smtputf8_enable, codes", [
    pytest.param("yes", [250, 250, 250], id="yes: STRASSE finds straße, JÖRG jörg"),
    pytest.param("no", [550, 250, 550], id="no: ASCII folding only"),
])
def test_smtputf8_enable_decides_how_rcpt_folds(mail, daemon, smtputf8_enable, codes):
    """As Postfix's casefold() under the same main.cf setting (tests/functional/test_pipe.py
    checks the pipe front end)."""
    mail.write_table("straße@example.com example.com/strasse/\njörg@example.com example.com/joerg/\n")
    lmtpd = daemon(f"smtputf8_enable = {smtputf8_enable}\n")
    lmtp = lmtpd.client()
    assert lmtp.mail("sender@example.net", ["SMTPUTF8"])[0] == 250
    replies = []
    for rcpt in ("STRASSE@example.com", "STRAßE@example.com", "JÖRG@example.com"):
        lmtp.send(f"RCPT TO:<{rcpt}>\r\n".encode())
        replies.append(lmtp.getreply()[0])
    assert replies == codes
    lmtp.quit()
