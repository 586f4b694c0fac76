"""The LMTP daemon's metrics endpoint (lmtp_metrics_listen): real deliveries, then a scrape.

Counted as the log lines are: sent, deferred and bounced with their status; the
histogram's count is the sent counter; a unix endpoint is made as the LMTP socket is
(a symlink planted at its path is refused, never followed); off, nothing of
prometheus_client is imported.
"""
import os
import signal
import socket
import subprocess
import time

from functional.sievelayout import activate
from functional.test_lmtp import daemon, free_port, transaction  # noqa: F401 - daemon: the fixture
from support import VDELIVER

MESSAGE = b"Subject: metrics\n\nbody\n"


def scrape_inet(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return http_get(sock)


def scrape_unix(path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        return http_get(sock)


def http_get(sock):
    sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 "), head
    return body.decode()


def value(text, name, **labels):
    """The sample `name{labels}` of an exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, number = line.rpartition(" ")
        metric, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == wanted:
            return float(number)
    return 0.0


def test_counters_equal_the_deliveries_made(mail, daemon):
    port = free_port()
    lmtpd = daemon(f"lmtp_metrics_listen = inet:127.0.0.1:{port}\n")
    os.mkdir(mail.path("example.com"))
    os.chown(mail.path("example.com"), mail.user.pw_uid, mail.user.pw_gid)
    os.mkdir(mail.path("example.com/alice"), 0o500)  # root's, not writable: alice defers
    lmtp = lmtpd.client()
    try:
        for _ in range(3):
            rcpt, data = transaction(lmtp, ["bob@example.com", "nobody@example.com",
                                            "alice@example.com"], MESSAGE)
            assert [code for code, _ in rcpt] == [250, 550, 250], rcpt
            assert [code for code, _ in data][:1] == [250] and data[1][0] // 100 == 4, data
    finally:
        lmtp.quit()
    text = scrape_inet(port)
    lines = mail.log_lines()
    by_log = {outcome: sum(f"status={outcome} " in line for line in lines)
              for outcome in ("sent", "deferred", "bounced")}
    assert by_log == {"sent": 3, "deferred": 3, "bounced": 3}, lines
    assert value(text, "vdeliver_lmtp_deliveries_total", outcome="sent", status="2.0.0") == 3
    assert value(text, "vdeliver_lmtp_deliveries_total", outcome="bounced", status="5.1.1") == 3
    deferred = [line for line in text.splitlines()
                if line.startswith('vdeliver_lmtp_deliveries_total{outcome="deferred"')]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in deferred) == 3, deferred
    assert value(text, "vdeliver_lmtp_delivery_seconds_count") == 3
    assert value(text, "vdeliver_lmtp_delivered_bytes_total") == 3 * len(MESSAGE)
    assert value(text, "vdeliver_lmtp_sessions") == 0
    assert value(text, "vdeliver_lmtp_deliveries_in_flight") == 0
    table = f"texthash:{mail.table_path}"
    assert value(text, "vdeliver_table_lookup_seconds_count", table=table) >= 9
    assert value(text, "vdeliver_table_lookup_errors_total", table=table) == 0


def test_sieve_actions_and_reloads_are_counted(mail, daemon):
    activate(mail, 'require ["fileinto", "mailbox"];\nfileinto :create "Reports";\n',
             box="example.com/bob")
    activate(mail, 'require "reject";\nreject "No reports.";\n', box="example.com/alice")
    activate(mail, "discard;\n", box="catchall")
    port = free_port()
    lmtpd = daemon(f"lmtp_metrics_listen = inet:127.0.0.1:{port}\n")
    _, data = transaction(lmtpd.client(), ["bob@example.com", "alice@example.com",
                                           "x@catchall.example", "carol@catchall.example"], MESSAGE)
    assert [code for code, _ in data] == [250, 550, 250, 250], data
    lmtpd.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not any("reloaded" in line for line in mail.log_lines()):
        assert time.monotonic() < deadline, "no reload logged"
        time.sleep(0.05)
    text = scrape_inet(port)
    actions = {action: value(text, "vdeliver_sieve_actions_total", action=action)
               for action in ("keep", "fileinto", "discard", "reject", "redirect", "vacation",
                              "notify", "error")}
    assert actions == {"keep": 0, "fileinto": 1, "discard": 2, "reject": 1, "redirect": 0,
                       "vacation": 0, "notify": 0, "error": 0}
    assert value(text, "vdeliver_lmtp_deliveries_total", outcome="bounced", status="5.7.1") == 1
    assert value(text, "vdeliver_lmtp_deliveries_total", outcome="sent", status="2.0.0") == 3
    assert value(text, "vdeliver_reloads_total", result="ok") == 1


def test_a_unix_endpoint_is_made_as_the_lmtp_socket(mail, daemon):
    path = os.path.join(mail.top, "metrics.sock")
    lmtpd = daemon(f"lmtp_metrics_listen = unix:{path}\nlmtp_socket_mode = 0600\n")
    st = os.lstat(path)
    assert (oct(st.st_mode & 0o7777), st.st_uid) == (oct(0o600), mail.user.pw_uid)
    transaction(lmtpd.client(), ["bob@example.com"], MESSAGE)
    text = scrape_unix(path)
    assert value(text, "vdeliver_lmtp_deliveries_total", outcome="sent", status="2.0.0") == 1
    assert value(text, "vdeliver_lmtp_delivery_seconds_count") == 1


def test_a_symlink_at_the_unix_endpoint_is_refused(mail):
    path = os.path.join(mail.top, "metrics.sock")
    victim = os.path.join(mail.top, "victim")
    with open(victim, "w") as fh:
        fh.write("keep\n")
    os.symlink(victim, path)
    mail.write_config(f"lmtp_listen = inet:127.0.0.1:{free_port()}\n"
                      f"lmtp_pid_file = {mail.top}/lmtpd.pid\nlmtp_user = {mail.user.pw_name}\n"
                      f"lmtp_metrics_listen = unix:{path}\n")
    proc = subprocess.run([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert proc.returncode == 1
    assert proc.stderr == f"vdeliver --lmtp: mail system configuration error: lmtp_metrics_listen unix:{path}: Address already in use\n"
    assert os.path.islink(path) and open(victim).read() == "keep\n"
    assert os.stat(victim).st_uid == 0


def test_a_bad_value_is_refused_at_start(mail):
    mail.write_config(f"lmtp_listen = inet:127.0.0.1:{free_port()}\n"
                      f"lmtp_pid_file = {mail.top}/lmtpd.pid\nlmtp_user = {mail.user.pw_name}\n"
                      "lmtp_metrics_listen = http://localhost:9119\n")
    proc = subprocess.run([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert (proc.returncode, proc.stderr) == (1, "vdeliver --lmtp: mail system configuration error: lmtp_metrics_listen:"
                                              " 'http://localhost:9119' is not unix:/path or"
                                              " inet:host:port\n")


def test_off_imports_nothing_of_prometheus_client():
    python = os.path.join(os.path.dirname(VDELIVER), "python3")
    code = ("import sys, vdeliver.daemon, vdeliver.lmtp, vdeliver.metrics as m\n"
            "assert m.current is m.NULL\n"
            "print('prometheus_client' in sys.modules)\n")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr
