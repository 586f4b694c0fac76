#!/usr/bin/env python3
"""lmtp_sieve_cost.py: what a 50-rule script costs the LMTP daemon per message, in process.

    bench/lmtp_sieve_cost.py [--vdeliver [LABEL=]/opt/vdeliver/bin/vdeliver]... [-n 300]
                             [--rules 50] [--callgrind]

The daemon's delivery thread without the daemon: deliver.deliver() with the
tables opened once (resolve.open_tables, as daemon.py does) and the
in-process compile cache, for 10 mailboxes as postfix_bench.py's
vdeliver-lmtp variant has them (bench/postfix_bench_sieve_setup.sh: homes
through virtual_home_maps, a Roundcube-style script none of whose rules
matches, so every test runs and the message is kept), and the same
mailboxes without virtual_home_maps or scripts. Prints the thread CPU ms per
message of each (fsyncs included: noisy on a shared machine) and, with
--callgrind, the instructions per message under valgrind --tool=callgrind
(Ir of a run of N+50 messages minus a run of 50, divided by N): the figure
the load of other processes does not move. Runs as the caller (root is fine:
nothing is chowned, no privileges are dropped in process).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from sieve_bench import make_maildir, roundcube_script

WORKER = r"""
import os, sys, time
site, top, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, site)
from vdeliver import commitpoint, config as config_module, deliver, resolve
config = config_module.load(f"{top}/{mode}.cf")
tables = resolve.open_tables(config)
message = open(f"{top}/message", "rb").read()

def once(i):
    chunks = [message]
    envelope = deliver.Envelope("a@example.net", f"user{i % 10}@bench.test")
    mailbox = resolve.resolve(envelope.recipient, config, tables)
    return deliver.deliver(envelope, config, lambda: chunks.pop() if chunks else b"", tables,
                           mailbox, commitpoint.CommitPoint())

for i in range(20):  # warm: every script compiled, every module loaded
    once(i)
started = time.thread_time()
for i in range(n):
    delivery = once(i)
print((time.thread_time() - started) / n * 1000, delivery.notes)
"""


def setup(top, rules):
    script = roundcube_script(rules, False).replace("[list-", "no such word ")
    homes, boxes = [], []
    for i in range(10):
        address = f"user{i}@bench.test"
        make_maildir(f"{top}/mail/bench.test/user{i}", None)
        boxes.append(f"{address} bench.test/user{i}/\n")
        home = f"{top}/mail/homes/{address}"
        os.makedirs(f"{home}/sieve")
        with open(f"{home}/sieve/roundcube.sieve", "w") as fh:
            fh.write(script)
        os.symlink("sieve/roundcube.sieve", f"{home}/.dovecot.sieve")
        homes.append(f"{address} homes/{address}/\n")
    for name, lines in (("vmailbox", boxes), ("homes.map", homes)):
        with open(f"{top}/{name}", "w") as fh:
            fh.writelines(lines)
        # older than texthash's HOT_SECONDS: the first run builds its cache, not a later one
        os.utime(f"{top}/{name}", (0, 0))
    common = (f"virtual_mailbox_base = {top}/mail\nvirtual_mailbox_maps = texthash:{top}/vmailbox\n"
              f"table_cache_directory = {top}/cache\n")
    with open(f"{top}/plain.cf", "w") as fh:
        fh.write(common)
    with open(f"{top}/sieve.cf", "w") as fh:
        fh.write(common + f"virtual_home_maps = texthash:{top}/homes.map\n")
    with open(f"{top}/message", "wb") as fh:
        head = b"Subject: weekly digest\nFrom: someone@example.net\nTo: user0@bench.test\n\n"
        fh.write(head + b"x" * (4096 - len(head) - 1) + b"\n")


def cpu_ms(python, site, top, mode, n):
    out = subprocess.run([python, "-I", "-c", WORKER, site, top, mode, str(n)],
                         capture_output=True, text=True, check=True).stdout
    ms, _, notes = out.partition(" ")
    if mode == "sieve" and "sieve: ran" not in notes:
        raise SystemExit(f"no script ran: {notes}")
    return float(ms)


def instructions(python, site, top, mode, n):
    counts = []
    for count in (50, n + 50):
        out = os.path.join(top, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", python, "-I",
                        "-c", WORKER, site, top, mode, str(count)],
                       capture_output=True, check=True)
        with open(out) as fh:
            counts.append(next(int(line.split()[1]) for line in fh if line.startswith("totals:")))
        os.unlink(out)
    return (counts[1] - counts[0]) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--vdeliver", action="append", metavar="[LABEL=]PATH")
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    variants = [(v.partition("=")[0], v.partition("=")[2]) if "=" in v else (v, v)
                for v in args.vdeliver or ["/opt/vdeliver/bin/vdeliver"]]
    top = tempfile.mkdtemp(prefix="vdeliver-lmtp-sieve-", dir="/var/tmp")
    try:
        setup(top, args.rules)
        print(f"lmtp_sieve_cost: n={args.n}, {args.rules} rules, in process (deliver.deliver with "
              "open tables), 4096-byte message")
        print(f"{'install':16} {'cpu ms plain':>12} {'with Sieve':>10} {'added':>7}"
              + (f" {'M Ir plain':>10} {'with Sieve':>10} {'added':>7}" if args.callgrind else ""))
        for label, path in variants:
            python = os.path.join(os.path.dirname(os.path.realpath(path)), "python3")
            site = subprocess.run([python, "-I", "-c", "import vdeliver, os; "
                                   "print(os.path.dirname(os.path.dirname(vdeliver.__file__)))"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            plain, sieve = (cpu_ms(python, site, top, mode, args.n) for mode in ("plain", "sieve"))
            line = f"{label:16} {plain:12.3f} {sieve:10.3f} {sieve - plain:+7.3f}"
            if args.callgrind:
                plain_ir, sieve_ir = (instructions(python, site, top, mode, args.n) / 1e6
                                      for mode in ("plain", "sieve"))
                line += f" {plain_ir:10.3f} {sieve_ir:10.3f} {sieve_ir - plain_ir:+7.3f}"
            print(line)
    finally:
        shutil.rmtree(top)


if __name__ == "__main__":
    sys.exit(main())
