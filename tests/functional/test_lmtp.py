"""The LMTP daemon (vdeliver --lmtp) as Postfix's lmtp client would use it."""
import os
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from support import VDELIVER


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemon:
    def __init__(self, mail, extra=""):
        self.mail = mail
        self.port = free_port()
        self.pid_file = os.path.join(mail.top, "lmtpd.pid")
        self.socket_path = os.path.join(mail.top, "lmtp.sock")
        mail.write_config(f"lmtp_listen = inet:127.0.0.1:{self.port}, unix:{self.socket_path}\n"
                          f"lmtp_pid_file = {self.pid_file}\nlmtp_socket_owner = {mail.user.pw_name}\n"
                          f"lmtp_user = {mail.user.pw_name}\n" + extra)
        self.proc = subprocess.Popen([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited: {self.proc.communicate()}")
                time.sleep(0.05)
        raise AssertionError("daemon did not start listening")

    def client(self):
        lmtp = smtplib.LMTP("127.0.0.1", self.port, timeout=30)
        assert lmtp.docmd("LHLO", "client.example")[0] == 250
        return lmtp

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture
def daemon(mail):
    started = []

    def start(extra=""):
        started.append(Daemon(mail, extra))
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


def test_message_size_limit(mail, daemon):
    lmtp = daemon("lmtp_message_size_limit = 1000\n").client()
    assert lmtp.docmd("MAIL", "FROM:<s@x> SIZE=5000")[0] == 552
    _, data = transaction(lmtp, ["bob@example.com", "alice@example.com"], b"Subject: big\n\n" + b"x" * 2000 + b"\n")
    assert [reply[0] for reply in data] == [552, 552] and data[0][1].startswith(b"5.3.4")
    assert mail.new_files("example.com/bob") == []
    assert lmtp.noop()[0] == 250  # the session goes on


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
