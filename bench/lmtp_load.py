#!/usr/bin/env python3
"""lmtp_load.py - the LMTP daemon's own CPU per message, under load, without Postfix.

Starts the installed daemon (`vdeliver --lmtp --foreground`, as the delivery user vmail)
on a private mail base under /tmp, then C client processes each open one connection and
send M messages over it the way Postfix's lmtp client does: MAIL, RCPT and DATA pipelined
in one write, the message, the final dot, then RSET before the next one. Messages are
seeded: mostly 2-10 KB text, 1 in 16 with a 100 KB base64 part, to R mailboxes in a
texthash table. The daemon's utime/stime (from /proc/PID/stat, its threads included) is
read before and after; every file in new/ is checked to end with its message.

Prints one line per round and a table: msg/s, daemon CPU ms per message (user, sys).
Usage (root, after scripts/install): /usr/bin/python3 bench/lmtp_load.py [-n 2000]
    [--connections 8] [--rounds 3] [--recipients 10] [--set NAME=VALUE]... [--vdeliver PATH]
    [--wrap 'valgrind --tool=callgrind ...']
Never: leaves the daemon running (SIGTERM on every exit path) or writes outside its /tmp dir.
"""
import argparse
import base64
import multiprocessing
import os
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")


def make_messages(count, seed=7):
    rng = random.Random(seed)
    words = "mail queue maildir table lookup the of and to in is for on report status".split()
    messages = []
    for number in range(count):
        body = "\n".join(" ".join(rng.choice(words) for _ in range(12))
                         for _ in range(rng.randint(30, 150)))
        if number % 16 == 0:
            body += "\n\n" + base64.encodebytes(rng.randbytes(75000)).decode()
        text = (f"From: load@example.net\nTo: user@load.test\nSubject: load {number}\n"
                f"Message-ID: <{number}.load@example.net>\n\n{body}\n.\nFrom the end\n")
        messages.append(text.encode())
    return messages


def stuffed(message):
    return b"\r\n".join(b"." + line if line.startswith(b".") else line
                        for line in message.split(b"\n"))


def read_reply(sock_file):
    while True:
        line = sock_file.readline()
        if not line:
            raise ConnectionError("daemon closed the connection")
        if line[3:4] != b"-":
            return line


def client(socket_path, jobs, errors):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(socket_path)
    reader = sock.makefile("rb")
    read_reply(reader)
    sock.sendall(b"LHLO load.example\r\n")
    read_reply(reader)
    for recipient, message in jobs:
        sock.sendall(f"MAIL FROM:<load@example.net> SIZE={len(message)}\r\nRCPT TO:<{recipient}>\r\n"
                     "DATA\r\n".encode())
        replies = [read_reply(reader) for _ in range(3)]
        if not replies[2].startswith(b"354"):
            errors.put(repr(replies))
            return
        sock.sendall(stuffed(message) + b".\r\n")
        reply = read_reply(reader)
        if not reply.startswith(b"250"):
            errors.put(repr(reply))
        sock.sendall(b"RSET\r\n")
        read_reply(reader)
    sock.sendall(b"QUIT\r\n")
    read_reply(reader)
    sock.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def context_switches(pid):
    """Voluntary + involuntary context switches of all the daemon's threads so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as fh:
                for line in fh:
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=10)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--vdeliver", default="/opt/vdeliver/bin/vdeliver")
    parser.add_argument("--wrap", default="", help="a command the daemon runs under, e.g. "
                        "'valgrind --tool=callgrind --callgrind-out-file=DIR/cg.%%p' (instructions "
                        "per message: the difference of two runs with different -n)")
    args = parser.parse_args()
    user = pwd.getpwnam("vmail")
    top = tempfile.mkdtemp(prefix="vdeliver-lmtpload-")
    os.chmod(top, 0o755)
    base = os.path.join(top, "mail")
    os.mkdir(base, 0o700)
    os.chown(base, user.pw_uid, user.pw_gid)
    socket_path = os.path.join(top, "lmtp.sock")
    with open(os.path.join(top, "mailboxes"), "w") as fh:
        for round_number in range(1, args.rounds + 1):
            for number in range(args.recipients):
                fh.write(f"user{number}@load{round_number}.test load{round_number}.test/user{number}/\n")
    with open(os.path.join(top, "vdeliver.cf"), "w") as fh:
        fh.write(f"virtual_mailbox_base = {base}\nvirtual_mailbox_maps = texthash:{top}/mailboxes\n"
                 f"lmtp_listen = unix:{socket_path}\nlmtp_pid_file = {top}/lmtpd.pid\n"
                 f"lmtp_user = vmail\nlmtp_socket_owner = vmail\nlmtp_max_connections = 100\n"
                 f"maillog_file = {top}/maillog\n" + "".join(line + "\n" for line in args.set))
    for name in ("mailboxes", "vdeliver.cf"):
        os.chmod(os.path.join(top, name), 0o644)
    open(os.path.join(top, "maillog"), "a").close()
    os.chown(os.path.join(top, "maillog"), user.pw_uid, user.pw_gid)
    daemon = subprocess.Popen(args.wrap.split() + [args.vdeliver, "--lmtp", "--foreground", "-c", os.path.join(top, "vdeliver.cf")],
                              cwd="/", stderr=subprocess.PIPE)
    messages = make_messages(args.n)
    rows = []
    try:
        deadline = time.monotonic() + (120 if args.wrap else 15)
        while not os.path.exists(socket_path):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start: {daemon.stderr.read().decode()}")
            time.sleep(0.05)
        time.sleep(0.3)
        for round_number in range(1, args.rounds + 1):
            # A fresh domain directory per round, nothing deleted until the end: on ext4
            # without a journal, creating files right after mass deletion scans the
            # recently deleted inodes (recently_deleted()), which would dominate the figures.
            domain = f"load{round_number}.test"
            jobs = [[] for _ in range(args.connections)]
            for number, message in enumerate(messages):
                jobs[number % args.connections].append((f"user{number % args.recipients}@{domain}", message))
            errors = multiprocessing.Queue()
            workers = [multiprocessing.Process(target=client, args=(socket_path, job, errors)) for job in jobs]
            user0, sys0 = cpu_seconds(daemon.pid)
            switches0 = context_switches(daemon.pid)
            started = time.monotonic()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            elapsed = time.monotonic() - started
            user1, sys1 = cpu_seconds(daemon.pid)
            switches = (context_switches(daemon.pid) - switches0) / args.n
            failures = []
            while not errors.empty():
                failures.append(errors.get())
            delivered = sum(len(os.listdir(os.path.join(base, domain, f"user{n}", "new")))
                            for n in range(args.recipients)
                            if os.path.isdir(os.path.join(base, domain, f"user{n}", "new")))
            ok = "ok" if delivered == args.n and not failures else f"BAD ({delivered}, {failures[:2]})"
            row = (args.n / elapsed, (user1 - user0) * 1000 / args.n, (sys1 - sys0) * 1000 / args.n,
                   switches)
            rows.append(row)
            print(f"round {round_number}: {args.n} messages over {args.connections} connections in "
                  f"{elapsed:.2f}s: {row[0]:.0f} msg/s, daemon cpu {row[1] + row[2]:.2f} ms/msg "
                  f"(user {row[1]:.2f}, sys {row[2]:.2f}), {switches:.1f} context switches/msg {ok}", flush=True)
        check = 0
        for name in sorted(os.listdir(os.path.join(base, domain, "user0", "new")))[:50]:
            with open(os.path.join(base, domain, "user0", "new", name), "rb") as fh:
                data = fh.read()
            check += any(data.endswith(m) for m in messages[::args.recipients])
        print(f"checked 50 files of user0: {check} end with their message byte for byte")
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(300 if args.wrap else 30)
        shutil.rmtree(top, ignore_errors=True)
    print(f"\n{'msg/s':>8} {'cpu ms':>7} {'user':>6} {'sys':>6} {'cs/msg':>7}   (median over {args.rounds} rounds; daemon exit {status})")
    print(f"{statistics.median(r[0] for r in rows):8.0f} {statistics.median(r[1] + r[2] for r in rows):7.2f} "
          f"{statistics.median(r[1] for r in rows):6.2f} {statistics.median(r[2] for r in rows):6.2f} "
          f"{statistics.median(r[3] for r in rows):7.1f}")


if __name__ == "__main__":
    sys.exit(main())
