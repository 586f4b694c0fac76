"""The harness keeps its promises: loopback only, the snippet as written, no foreign vdeliver.cf replaced.

Never: change the running instance (these tests only look, or use a temporary path),
except the SIGTERM test, which stops and restarts the LMTP daemon (no mail in flight).
"""
from __future__ import annotations

import fcntl
import os
import pwd
import stat

import pytest

import harness
from postfix_config import postfix_command


def descendants(root_pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def listening_sockets() -> dict[int, str]:
    """{socket inode: 'hex address:port'} of every listening TCP socket (/proc/net/tcp*)."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for row in fh.readlines()[1:]:
                fields = row.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    out[int(fields[9])] = fields[1]
    return out


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def test_private_servers_listen_on_loopback_only(mail):
    """Postfix's smtpd and Dovecot's IMAP on 127.0.0.1; the LMTP daemon on no TCP port but its
    metrics endpoint (Harness(metrics=True)), on 127.0.0.1 too."""
    pids = set()
    for pid in (harness.postfix_master_pid(mail.spool), harness.dovecot_master_pid(mail.dovecot_conf),
                mail.lmtpd_pid()):
        assert pid, "Postfix, Dovecot and the LMTP daemon should be running"
        pids |= descendants(pid)
    listening = listening_sockets()
    ours = {listening[inode] for pid in pids for inode in socket_inodes(pid) if inode in listening}
    loopback = "0100007F"  # 127.0.0.1 in /proc/net/tcp's little-endian hex
    assert ours, "no listening socket found for the private servers"
    assert all(addr.startswith(loopback + ":") for addr in ours), ours
    ports = {int(addr.split(":")[1], 16) for addr in ours}
    assert ports == {mail.smtp_port, mail.imap_port} | ({mail.metrics_port} if mail.metrics else set()), ports


def test_snippet_is_installed_as_written(mail):
    """main.cf ends with the snippet's main.cf lines (pipe mode) or, in LMTP mode, with its
    commented LMTP lines instead; master.cf ends with its master.cf lines in both."""
    main_lines, master_lines = harness.read_snippet()
    with open(f"{mail.etc}/main.cf") as fh:
        main_cf = fh.read()
    with open(f"{mail.etc}/master.cf") as fh:
        master_cf = fh.read()
    assert main_cf.endswith("\n".join(harness.snippet_main_lines(mail.mode)) + "\n")
    assert master_cf.endswith("\n".join(master_lines) + "\n")


def postconf(mail, *args: str) -> str:
    return harness.run(postfix_command(harness.POSTCONF, mail.etc, *args)).stdout.strip()


@pytest.mark.mode("lmtp")
def test_lmtp_mode_follows_the_snippets_lmtp_lines(settled):
    """virtual_transport, lmtp_listen and lmtp_socket_owner as the snippet's comment says
    (the socket moved from /var/spool/postfix into the private queue_directory); the
    `lmtp` service chrooted, as in Debian's stock master.cf."""
    mail = settled
    settings, main_lines = harness.read_snippet_lmtp()
    transport = main_lines[0].split("=", 1)[1].strip()
    assert main_lines == [f"virtual_transport = {transport}"], main_lines
    assert postconf(mail, "-h", "virtual_transport") == transport == f"lmtp:unix:{mail.lmtp_socket_name}"
    with open(harness.VDELIVER_CF) as fh:
        vdeliver_cf = fh.read()
    assert f"\nlmtp_listen = unix:{mail.spool}/{mail.lmtp_socket_name}\n" in vdeliver_cf
    assert f"\nlmtp_socket_owner = {settings['lmtp_socket_owner']}\n" in vdeliver_cf
    fields = postconf(mail, "-M", "lmtp/unix").split()
    assert fields[:8] == ["lmtp", "unix", "-", "-", "y", "-", "-", "lmtp"], fields
    st = os.stat(mail.lmtp_socket)
    assert stat.S_ISSOCK(st.st_mode) and st.st_mode & 0o777 == 0o660, oct(st.st_mode)
    assert pwd.getpwuid(st.st_uid).pw_name == postconf(mail, "-h", "mail_owner") == "postfix"


def test_lmtp_daemon_serves_as_vmail_and_exits_0_on_sigterm(settled):
    """It dropped root (all uids vmail, no supplementary groups); SIGTERM: exit 0, pid file
    free; it starts again on the same socket (pipe mode, nothing queued: no LMTP traffic)."""
    mail = settled
    pid = mail.lmtpd_pid()
    assert pid
    with open(f"/proc/{pid}/status") as fh:
        status = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
    vmail = pwd.getpwnam(harness.VMAIL)
    assert status["Uid"].split() == [str(vmail.pw_uid)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(vmail.pw_gid)] * 4, status["Gid"]
    assert status["Groups"].split() in ([], [str(vmail.pw_gid)]), status["Groups"]
    with open(mail.lmtpd_pid_file) as fh:
        assert int(fh.read()) == pid
    assert mail.stop_lmtpd() == 0
    fd = os.open(mail.lmtpd_pid_file, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the daemon's flock is gone with it
    finally:
        os.close(fd)
    assert "LMTP daemon stopped" in mail.log_lines(rf"vdeliver/lmtp\[{pid}\]: ")[-1]
    mail.start_lmtpd()
    assert mail.lmtpd_pid() not in (None, pid)
    assert harness.lmtp_greets(mail.lmtp_socket)


def test_foreign_vdeliver_cf_is_never_replaced(mail, tmp_path, monkeypatch):
    foreign = tmp_path / "vdeliver.cf"
    foreign.write_text("virtual_mailbox_base = /var/vmail\n")
    monkeypatch.setattr(harness, "VDELIVER_CF", str(foreign))
    with pytest.raises(harness.HarnessError, match="not written by the e2e harness"):
        harness.write_vdeliver_cf(mail)
    assert foreign.read_text() == "virtual_mailbox_base = /var/vmail\n"
