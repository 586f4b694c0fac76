#!/usr/bin/env python3
"""pipe_startup.py: what one pipe(8)-style vdeliver process costs, beside its floors.

    bench/pipe_startup.py [-n 300] [--vdeliver [LABEL=]/opt/vdeliver/bin/vdeliver]... [--size 4096]
                          [--dry-run-only]

Runs each entry N times, interleaved round-robin, one fresh process per
message (as pipe(8) does), as the delivery user when run as root, and prints
a table: median / p90 wall ms from spawn to reap, and CPU ms per message.

  python -I -S      /usr/bin/python3 -I -S -c pass: the interpreter alone
  python fsync      python -I -S doing the delivery syscalls with posix only
                    (tmp O_EXCL, write, fsync, link, fsync new/, unlink)
  vdeliver -n       dry run: start-up + config + table lookup, no write
  vdeliver          a real delivery (texthash table, Maildir)
                    (--vdeliver again: one pair per launcher, named LABEL, in the
                    same interleaved rounds, to compare start-up variants;
                    --dry-run-only keeps only the -n entries, which have no fsync noise)
  in-process fsync  fsync of a 4 KiB file + its directory, no process: the disk floor

  --callgrind K     also run each entry K times under valgrind --tool=callgrind and
                    print its user-space instructions (median, millions): repeatable
                    on a loaded machine, where wall and CPU time are not

Needs no peers installed. Figures move ±30 % between runs on a shared VM:
compare within one run.
"""
import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PY_FSYNC = r"""
import posix, sys
d = sys.argv[1]
name = "%d.P%d" % (posix.getpid(), 1)
fd = posix.open(d + "/tmp/" + name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o600)
while True:
    b = posix.read(0, 65536)
    if not b:
        break
    posix.write(fd, b)
posix.fsync(fd); posix.close(fd)
posix.link(d + "/tmp/" + name, d + "/new/" + name)
nd = posix.open(d + "/new", posix.O_RDONLY); posix.fsync(nd); posix.close(nd)
posix.unlink(d + "/tmp/" + name)
"""


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_once(argv, message_path, user):
    with open(message_path, "rb") as stdin:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
                                cwd="/", umask=0o077, **user)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    return elapsed * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def instructions(argv, message_path, user, directory):
    """User-space instructions of one run of argv (callgrind's total), in millions."""
    out = tempfile.mkstemp(prefix="callgrind.", dir=directory)[1]
    if user:
        os.chown(out, user["user"], user["group"])
    with open(message_path, "rb") as stdin:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                              stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={"PATH": "/usr/bin:/bin"}, cwd="/", umask=0o077, **user)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} under valgrind exited {proc.returncode}")
    with open(out) as fh:
        total = next(line.split()[1] for line in fh if line.startswith(("summary:", "totals:")))
    os.unlink(out)
    return int(total) / 1e6


def fsync_probe(directory):
    path = os.path.join(directory, "probe")
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"x" * 4096)
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(directory, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    os.unlink(path)
    return (time.perf_counter() - started) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--vdeliver", action="append", metavar="[LABEL=]PATH")
    parser.add_argument("--dry-run-only", action="store_true")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--user", default="vmail")
    parser.add_argument("--callgrind", type=int, default=0, metavar="K")
    args = parser.parse_args()
    variants = [(v.partition("=")[0], v.partition("=")[2]) if "=" in v else ("vdeliver", v)
                for v in args.vdeliver or ["/opt/vdeliver/bin/vdeliver"]]

    top = tempfile.mkdtemp(prefix="vdeliver-bench-", dir="/var/tmp")
    os.chmod(top, 0o755)
    user, owner = {}, None
    if os.geteuid() == 0:
        owner = pwd.getpwnam(args.user)
        user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    base = os.path.join(top, "mail")
    for sub in ("", "py", "py/tmp", "py/new", "py/cur"):
        os.mkdir(os.path.join(base, sub), 0o700)
        if owner:
            os.chown(os.path.join(base, sub), owner.pw_uid, owner.pw_gid)
    # Each launcher its own config and table: the texthash cache file is named after the
    # table, and trees whose cache identities differ would rebuild each other's every time.
    configs = []
    for number in range(len(variants)):
        table = os.path.join(top, f"mailboxes-{number}")
        with open(table, "w") as fh:
            fh.write("".join(f"user{i}@example.com example.com/user{i}/\n" for i in range(100)))
            fh.write("bob@example.com example.com/bob/\n")
        configs.append(os.path.join(top, f"vdeliver-{number}.cf"))
        with open(configs[-1], "w") as fh:
            fh.write(f"virtual_mailbox_base = {base}\nvirtual_mailbox_maps = texthash:{table}\n"
                     "recipient_delimiter = +\n")
        for name in (table, configs[-1]):
            os.chmod(name, 0o644)
            os.utime(name, (time.time() - 60,) * 2)  # not "hot": texthash caches it at once
    message = os.path.join(top, "message")
    with open(message, "wb") as fh:
        body = b"Subject: bench\nFrom: a@example.net\n\n"
        fh.write(body + b"x" * (args.size - len(body) - 1) + b"\n")
    os.chmod(message, 0o644)

    entries = [
        ("python -I -S", ["/usr/bin/python3", "-I", "-S", "-c", "pass"]),
        ("python fsync", ["/usr/bin/python3", "-I", "-S", "-c", PY_FSYNC, os.path.join(base, "py")]),
    ]
    for (label, path), cfg in zip(variants, configs):
        entries.append((f"{label} -n", [path, "-c", cfg, "-n", "bob+x@example.com"]))
        if not args.dry_run_only:
            entries.append((label, [path, "-c", cfg, "-f", "a@example.net", "--", "bob+x@example.com"]))
    samples = {name: ([], []) for name, _ in entries}
    samples["in-process fsync"] = ([], [])
    for _ in range(3):  # warm-up
        for _name, argv in entries:
            run_once(argv, message, user)
    for round_number in range(args.n):
        order = entries[round_number % len(entries):] + entries[:round_number % len(entries)]
        for name, argv in order:
            wall, cpu = run_once(argv, message, user)
            samples[name][0].append(wall)
            samples[name][1].append(cpu)
        samples["in-process fsync"][0].append(fsync_probe(top))
    counts = {}
    if args.callgrind:
        scratch = tempfile.mkdtemp(prefix="callgrind-", dir=top)
        os.chmod(scratch, 0o777)
        for name, argv in entries:
            counts[name] = statistics.median(instructions(argv, message, user, scratch)
                                             for _ in range(args.callgrind))
    new = os.path.join(base, "example.com", "bob", "new")
    delivered = len(os.listdir(new)) if os.path.isdir(new) else 0

    floor = statistics.median(samples["python -I -S"][0])
    print(f"pipe_startup: n={args.n} per entry, {args.size}-byte message, "
          f"run as {args.user if owner else 'self'}, python {sys.version.split()[0]}")
    width = max(18, *(len(name) for name in samples))
    instr = f" {'Minstr':>7}" if counts else ""
    print(f"{'entry':{width}} {'med ms':>7} {'p90':>7} {'cpu ms':>7} {'x py-IS':>8}{instr}")
    print("-" * (width + 33 + len(instr)))
    for name, (walls, cpus) in samples.items():
        median = statistics.median(walls)
        cpu = f"{statistics.mean(cpus):7.2f}" if cpus else "      -"
        instr = (f" {counts[name]:7.2f}" if name in counts else "       -") if counts else ""
        print(f"{name:{width}} {median:7.2f} {percentile(walls, 0.9):7.2f} {cpu} {median / floor:8.2f}"
              f"{instr}")
    wanted = (0 if args.dry_run_only else len(variants) * (args.n + 3)) + (
        0 if args.dry_run_only else len(variants) * args.callgrind)
    print(f"verify: vdeliver delivered {delivered} of {wanted} messages")
    shutil.rmtree(top)
    if delivered != wanted:
        raise SystemExit("vdeliver did not deliver every message")


if __name__ == "__main__":
    main()
