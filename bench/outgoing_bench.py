#!/usr/bin/env python3
"""outgoing_bench.py: what Sieve's outgoing mail adds to one pipe(8)-style delivery.

    bench/outgoing_bench.py [-n 30] [--vdeliver /opt/vdeliver/bin/vdeliver]

Runs four recipients N times each, interleaved, one fresh process per message, as
the delivery user (vmail) when run as root, with sendmail_path a one-line shell
script that keeps the message (so the figures are vdeliver's and /bin/sh's, not
Postfix's), and prints median / p90 wall ms from spawn to reap and median CPU ms
(the child's user + system time, which a loaded machine disturbs less):

  keep              a script that only keeps (the Sieve path, nothing outgoing)
  vacation refused  a vacation script on a List-Id message: the outgoing modules
                    load, the checks refuse, no database, no sendmail
  vacation sent     a new sender each time: the database claim (SQLite, two
                    fsyncs) and one sendmail run, after the commit
  redirect only     the redirect submitted before the commit, nothing stored

Never: send mail anywhere (the sendmail is the script's); touch anything outside
its own temporary directory.
"""
import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time

KINDS = {"keep": "keep;\n",
         "vacation refused": 'require "vacation";\nvacation "away";\n',
         "vacation sent": 'require "vacation";\nvacation :days 1 "away";\n',
         "redirect only": 'redirect "x@example.org";\n'}


def setup(top, user):
    base = f"{top}/mail"
    os.mkdir(base, 0o700)
    outbox = f"{top}/outbox"
    os.mkdir(outbox, 0o700)
    with open(f"{top}/sendmail", "w") as fh:
        fh.write(f"#!/bin/sh\ncat > {outbox}/$$.msg\n")
    os.chmod(f"{top}/sendmail", 0o755)
    with open(f"{top}/table", "w") as fh:
        fh.write("".join(f"{n}@example.com box{n}/\n" for n in range(len(KINDS))))
    with open(f"{top}/vdeliver.cf", "w") as fh:
        fh.write(f"virtual_mailbox_base = {base}\nvirtual_mailbox_maps = texthash:{top}/table\n"
                 f"sendmail_path = {top}/sendmail\n")
    for n, script in enumerate(KINDS.values()):
        os.mkdir(f"{base}/box{n}", 0o700)
        with open(f"{base}/box{n}/.dovecot.sieve", "w") as fh:
            fh.write(script)
    for directory, _dirs, files in os.walk(top):
        for name in [directory] + [os.path.join(directory, f) for f in files]:
            if user is not None:
                os.chown(name, user.pw_uid, user.pw_gid)
    for name in ("table", "vdeliver.cf"):
        os.chmod(f"{top}/{name}", 0o644)
    return outbox


def run_once(command, message, user):
    kwargs = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                            umask=0o077, **kwargs)
    proc.stdin.write(message)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{command}: exit {proc.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--vdeliver", default="/opt/vdeliver/bin/vdeliver")
    args = parser.parse_args()
    user = pwd.getpwnam("vmail") if os.geteuid() == 0 else None
    top = tempfile.mkdtemp(prefix="outgoing-bench-", dir="/var/tmp")
    os.chmod(top, 0o755)
    try:
        outbox = setup(top, user)
        walls = {kind: [] for kind in KINDS}
        cpus = {kind: [] for kind in KINDS}
        for n in range(args.n):
            for k, kind in enumerate(KINDS):
                extra = "List-Id: <l.example.org>\n" if kind == "vacation refused" else ""
                message = (f"From: s{n}@example.net\nTo: {k}@example.com\nSubject: x\n"
                           f"Message-ID: <{n}.{k}@example.net>\n{extra}\nbody\n").encode()
                command = [args.vdeliver, "-c", f"{top}/vdeliver.cf", "-f", f"s{n}@example.net",
                           "--", f"{k}@example.com"]
                wall, cpu = run_once(command, message, user)
                walls[kind].append(wall)
                cpus[kind].append(cpu)
        print(f"{'recipient':18} {'wall median':>11} {'wall p90':>9} {'CPU median':>11}"
              f"   (ms; N={args.n}, interleaved; load {os.getloadavg()[0]:.1f})")
        for kind in KINDS:
            wall = sorted(walls[kind])
            print(f"{kind:18} {statistics.median(wall):11.1f} {wall[int(len(wall) * 0.9) - 1]:9.1f}"
                  f" {statistics.median(cpus[kind]):11.1f}")
        print(f"sendmail runs: {len(os.listdir(outbox))} (vacation sent + redirect only: {2 * args.n})")
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
