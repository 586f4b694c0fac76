"""The harness keeps its promises: loopback only, the snippet as written, no foreign vdeliver.cf replaced.

Never: change the running instance (these tests only look, or use a temporary path).
"""
from __future__ import annotations

import os

import pytest

import harness


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
    pids = set()
    for pid in (harness.postfix_master_pid(mail.spool), harness.dovecot_master_pid(mail.dovecot_conf)):
        assert pid, "Postfix and Dovecot should be running"
        pids |= descendants(pid)
    listening = listening_sockets()
    ours = {listening[inode] for pid in pids for inode in socket_inodes(pid) if inode in listening}
    loopback = "0100007F"  # 127.0.0.1 in /proc/net/tcp's little-endian hex
    assert ours, "no listening socket found for the private servers"
    assert all(addr.startswith(loopback + ":") for addr in ours), ours
    ports = {int(addr.split(":")[1], 16) for addr in ours}
    assert ports == {mail.smtp_port, mail.imap_port}, ports


def test_snippet_is_installed_as_written(mail):
    main_lines, master_lines = harness.read_snippet()
    with open(f"{mail.etc}/main.cf") as fh:
        main_cf = fh.read()
    with open(f"{mail.etc}/master.cf") as fh:
        master_cf = fh.read()
    assert main_cf.endswith("\n".join(main_lines) + "\n")
    assert master_cf.endswith("\n".join(master_lines) + "\n")


def test_foreign_vdeliver_cf_is_never_replaced(mail, tmp_path, monkeypatch):
    foreign = tmp_path / "vdeliver.cf"
    foreign.write_text("virtual_mailbox_base = /var/vmail\n")
    monkeypatch.setattr(harness, "VDELIVER_CF", str(foreign))
    with pytest.raises(harness.HarnessError, match="not written by the e2e harness"):
        harness.write_vdeliver_cf(mail)
    assert foreign.read_text() == "virtual_mailbox_base = /var/vmail\n"
