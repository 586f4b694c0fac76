#!/usr/bin/env python3
"""sieve_bench.py: what a personal Sieve script adds to one pipe(8)-style delivery.

    bench/sieve_bench.py [-n 300] [--vdeliver [LABEL=]/opt/vdeliver/bin/vdeliver]... [--rules 50]
                         [--size 4096] [--no-anyof] [--importtime 20] [--callgrind 3]
                         [--callgrind-stages]

Runs each entry N times, interleaved (each round in a new random order), one
fresh process per message (as pipe(8) does), as the delivery user when run as
root (the approach of pipe_startup.py), and prints median / p90 wall ms from
spawn to reap and CPU ms per message, then what each script adds over the
recipient without one:

  python -I -S      /usr/bin/python3 -I -S -c pass: the interpreter alone
  no script         a real delivery to a recipient without ~/.dovecot.sieve
  roundcube         the same delivery with a RULES-rule script as Roundcube's
                    managesieve plugin writes it (~/sieve/roundcube.sieve, the
                    active-script link ~/.dovecot.sieve -> sieve/roundcube.sieve):
                    `# rule:[name]` + `if header :contains "subject" "[list-N]"
                    { fileinto "FolderN"; stop; }`; every folder exists; the
                    message matches only the last rule (every test runs)
  roundcube anyof   the same, each rule `anyof (header :contains "subject" ..,
                    header :contains "from" ..)`

--vdeliver again: the same entries for each launcher, named LABEL, in the same
interleaved rounds (to compare installs); the figures below are the first one's.

Then, in a fresh `python3 -I -S` (medians of --importtime runs): the stages of
the roundcube entry in process (loading the Sieve modules as the pipe command
does, the first compile, the first run, then a second compile and run: the
same code warm; with a compile cache, the same with the script loaded from
its cache text instead), and `python -X importtime` of vdeliver.sieve through
the import system, the modules over 0.1 ms, cumulative.

--callgrind-stages: the roundcube entry's added instructions stage by stage, each
stage one more step in a new `python3 -I -S` under callgrind, as a delivery takes
them: the route modules (SIEVE_ROUTE_MODULES), the Sieve modules (SIEVE_MODULES),
the extension the script requires, serial.load() of its compile-cache text, the run.

--callgrind RUNS: each entry also RUNS times under valgrind --tool=callgrind
(one process each, the same argv, user and stdin): the median instructions
executed (Ir) per delivery and what each script adds, which the load of other
processes on the machine does not move (about 0.1 % between runs here).

Figures move ±30 % between runs on a shared VM: compare within one run.
"""
import argparse
import os
import pwd
import random
import shutil
import statistics
import subprocess
import tempfile

from pipe_startup import percentile, run_once  # one process per message, as pipe(8)


def roundcube_script(rules, anyof):
    """A script as Roundcube's managesieve plugin saves it (rcube_sieve_script)."""
    lines = ['require ["fileinto"];']
    for n in range(1, rules + 1):
        lines.append(f"# rule:[Rule {n}]")
        if anyof:
            lines.append(f'if anyof (header :contains "subject" "[list-{n}]", '
                         f'header :contains "from" "sender{n}@example.org")')
        else:
            lines.append(f'if header :contains "subject" "[list-{n}]"')
        lines.append(f'{{\n\tfileinto "Folder{n}";\n\tstop;\n}}')
    return "\n".join(lines) + "\n"


def make_maildir(path, owner):
    for sub in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), 0o700, exist_ok=True)
        if owner:
            os.chown(os.path.join(path, sub), owner.pw_uid, owner.pw_gid)


def chown_tree(top, owner):
    if not owner:
        return
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)
    os.chown(top, owner.pw_uid, owner.pw_gid)


def callgrind_ir(argv, message_path, user, directory):
    """Instructions the process executed (callgrind's "totals:" line), children not traced."""
    out = os.path.join(directory, "callgrind.out")
    with open(message_path, "rb") as stdin:
        subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=no",
                        f"--callgrind-out-file={out}", *argv], stdin=stdin, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={"PATH": "/usr/bin:/bin"}, cwd="/", umask=0o077, **user)
    with open(out) as fh:
        total = next(int(line.split()[1]) for line in fh if line.startswith("totals:"))
    os.unlink(out)
    return total


def importtime(python, site, runs):
    """[(module, median cumulative µs)] of `import vdeliver.sieve` in a fresh python -I -S."""
    # vdeliver.cli first: what the pipe command has imported before it reaches a script
    code = f"import sys; sys.path.insert(0, {site!r}); import vdeliver.cli; import vdeliver.sieve"
    samples = {}
    order = []
    for _ in range(runs):
        err = subprocess.run([python, "-I", "-S", "-X", "importtime", "-c", code],
                             capture_output=True, text=True, check=True).stderr
        for line in err.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            _self, cumulative, name = line[len("import time:"):].split("|")
            samples.setdefault(name.rstrip(), []).append(int(cumulative))
            if name.rstrip() not in order:
                order.append(name.rstrip())
    return [(name, statistics.median(samples[name])) for name in order]


STAGES = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import vdeliver.cli
import vdeliver
clock = time.perf_counter
source, data = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
cached = sys.argv[4] == "cache"
t0 = clock()
from_pyc = hasattr(vdeliver, "SIEVE_MODULES")
if from_pyc:  # as sieveroute.SieveRoute does
    vdeliver.load_modules(vdeliver.SIEVE_MODULES)
from vdeliver import filtering, sieve
if from_pyc:
    import gc
    gc.freeze()
t1 = clock()
if cached:  # what sievecache.get() does after reading the entry
    from vdeliver.sieve import serial
    script = serial.load(sys.argv[5], sieve.default_extensions())
else:
    if hasattr(vdeliver, "SIEVE_COMPILER_MODULES"):  # as sieveroute.load_compiler()
        vdeliver.load_modules(vdeliver.SIEVE_COMPILER_MODULES)
    script = sieve.compile(source, name="roundcube")
t2 = clock()
envelope = sieve.Envelope(sender="a@example.net", recipient="bob@example.com")
result = sieve.run(script, sieve.Message.from_bytes(data), envelope)
t3 = clock()
sieve.run(sieve.compile(source, name="roundcube"), sieve.Message.from_bytes(data), envelope)
t4 = clock()
assert result.actions and not result.errors, result
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""

DUMP = r"""
import sys
sys.path.insert(0, sys.argv[1])
from vdeliver import sieve
from vdeliver.sieve import serial
print(serial.dump(sieve.compile(open(sys.argv[2], "rb").read(), name="roundcube")), end="")
"""


STAGE_IR = r"""
import posix, sys
sys.path.insert(0, sys.argv[1])
stage = int(sys.argv[2])
import vdeliver.cli
import vdeliver
if stage >= 1:
    vdeliver.load_modules(vdeliver.SIEVE_ROUTE_MODULES)
if stage >= 2:
    vdeliver.load_modules(("folders",) + vdeliver.SIEVE_MODULES)  # as sieveroute.SieveRoute
    from vdeliver import filtering, sieve
    from vdeliver.sieve import registry, serial
    import gc
    gc.freeze()
if stage >= 3:
    registry.load("fileinto")
if stage >= 4:
    script = serial.load(open(sys.argv[3]).read(), sieve.default_extensions())
if stage >= 5:
    envelope = sieve.Envelope(sender="a@example.net", recipient="bob@example.com")
    result = sieve.run(script, sieve.Message.from_bytes(open(sys.argv[4], "rb").read()), envelope)
    assert result.actions and not result.errors, result
posix._exit(0)
"""
STAGE_NAMES = ("route modules", "Sieve modules", "fileinto extension", "serial.load", "run")


def stage_instructions(site, script_path, message_path, directory):
    """Instructions each stage of STAGE_IR adds (callgrind), [(name, Ir)]."""
    text_path = os.path.join(directory, "compiled.txt")
    with open(text_path, "w") as fh:
        fh.write(subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", DUMP, site, script_path],
                                capture_output=True, text=True, check=True,
                                errors="surrogatepass").stdout)
    totals = []
    for stage in range(len(STAGE_NAMES) + 1):
        out = os.path.join(directory, f"stage{stage}.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "/usr/bin/python3", "-I", "-S", "-c", STAGE_IR, site, str(stage),
                        text_path, message_path], capture_output=True, check=True)
        with open(out) as fh:
            totals.append(next(int(line.split()[1]) for line in fh if line.startswith("totals:")))
    return [(name, totals[i + 1] - totals[i]) for i, name in enumerate(STAGE_NAMES)]


def stages(python, site, script_path, message_path, runs, mode="compile"):
    """Medians (ms) of: load the Sieve modules, first compile (or the load of the
    compiled script's cache text), first run, compile+run again."""
    extra = []
    if mode == "cache":
        extra = [subprocess.run([python, "-I", "-S", "-c", DUMP, site, script_path],
                                capture_output=True, text=True, check=True,
                                errors="surrogatepass").stdout]
    samples = [[], [], [], []]
    for _ in range(runs):
        out = subprocess.run([python, "-I", "-S", "-c", STAGES, site, script_path, message_path,
                              mode] + extra, capture_output=True, text=True, check=True).stdout.split()
        for i, value in enumerate(out):
            samples[i].append(float(value) * 1000)
    return [statistics.median(s) for s in samples]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--vdeliver", action="append", metavar="[LABEL=]PATH")
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--no-anyof", action="store_true")
    parser.add_argument("--importtime", type=int, default=20, metavar="RUNS")
    parser.add_argument("--callgrind", type=int, default=0, metavar="RUNS")
    parser.add_argument("--callgrind-stages", action="store_true")
    parser.add_argument("--user", default="vmail")
    args = parser.parse_args()
    variants = [(v.partition("=")[0] + " ", v.partition("=")[2]) if "=" in v else ("", v)
                for v in args.vdeliver or ["/opt/vdeliver/bin/vdeliver"]]

    top = tempfile.mkdtemp(prefix="vdeliver-sieve-bench-", dir="/var/tmp")
    os.chmod(top, 0o755)
    user, owner = {}, None
    if os.geteuid() == 0:
        owner = pwd.getpwnam(args.user)
        user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    base = os.path.join(top, "mail")
    os.mkdir(base, 0o700)
    recipients = {"no script": ("alice", None), "roundcube": ("bob", False)}
    if not args.no_anyof:
        recipients["roundcube anyof"] = ("carol", True)
    for local, anyof in recipients.values():
        home = os.path.join(base, "example.com", local)
        make_maildir(home, owner)
        if anyof is None:
            continue
        for n in range(1, args.rules + 1):
            make_maildir(os.path.join(home, f".Folder{n}"), owner)
        os.makedirs(os.path.join(home, "sieve"), 0o700)
        with open(os.path.join(home, "sieve", "roundcube.sieve"), "w") as fh:
            fh.write(roundcube_script(args.rules, anyof))
        os.symlink("sieve/roundcube.sieve", os.path.join(home, ".dovecot.sieve"))
    chown_tree(base, owner)
    with open(os.path.join(top, "vdeliver.cf"), "w") as fh:
        fh.write(f"virtual_mailbox_base = {base}\nvirtual_mailbox_maps = texthash:{top}/mailboxes\n"
                 "recipient_delimiter = +\n")
    with open(os.path.join(top, "mailboxes"), "w") as fh:
        fh.write("".join(f"user{i}@example.com example.com/user{i}/\n" for i in range(100)))
        fh.write("".join(f"{local}@example.com example.com/{local}/\n"
                         for local, _ in recipients.values()))
    message = os.path.join(top, "message")
    with open(message, "wb") as fh:
        head = (f"Subject: [list-{args.rules}] weekly digest\nFrom: someone@example.net\n"
                "To: bob@example.com\n\n").encode()
        fh.write(head + b"x" * (args.size - len(head) - 1) + b"\n")
    for name in ("vdeliver.cf", "mailboxes", "message"):
        os.chmod(os.path.join(top, name), 0o644)
    # Older than texthash's HOT_SECONDS: the first deliveries build its cache, not a later one.
    os.utime(os.path.join(top, "mailboxes"), (0, 0))

    cfg = os.path.join(top, "vdeliver.cf")
    entries = [("python -I -S", ["/usr/bin/python3", "-I", "-S", "-c", "pass"])]
    for label, path in variants:
        for name, (local, _) in recipients.items():
            entries.append((label + name, [path, "-c", cfg, "-f", "a@example.net", "--",
                                           f"{local}@example.com"]))
    samples = {name: ([], []) for name, _ in entries}
    for _ in range(3):  # warm-up
        for _name, argv in entries:
            run_once(argv, message, user)
    shuffle = random.Random(1).shuffle
    for _ in range(args.n):
        # A new order every round: rotating one order would give each entry the same
        # predecessor every time, and what ran just before moves a run by 0.5 ms here
        # (the launcher after `python -I -S` starts with colder caches).
        order = entries[:]
        shuffle(order)
        for name, argv in order:
            wall, cpu = run_once(argv, message, user)
            samples[name][0].append(wall)
            samples[name][1].append(cpu)

    instructions = {}
    if args.callgrind:
        scratch = os.path.join(top, "callgrind")
        os.mkdir(scratch, 0o777)
        os.chmod(scratch, 0o777)
        for _ in range(args.callgrind):
            for name, argv in entries:
                instructions.setdefault(name, []).append(callgrind_ir(argv, message, user, scratch))

    # Every message went where the script says: the last rule's folder (or INBOX).
    wanted = (args.n + 3 + args.callgrind) * len(variants)
    verify = []
    for name, (local, anyof) in recipients.items():
        folder = "" if anyof is None else f".Folder{args.rules}"
        new = os.path.join(base, "example.com", local, folder, "new")
        got = len(os.listdir(new))
        verify.append(f"{name}: {got} of {wanted} in {folder or 'INBOX'}")
        if got != wanted:
            raise SystemExit("verify: " + "; ".join(verify))

    print(f"sieve_bench: n={args.n} per entry, {args.size}-byte message, {args.rules} rules, "
          f"run as {args.user if owner else 'self'}, " + ", ".join(path for _, path in variants))
    width = max(len(name) for name in samples)
    print(f"{'entry':{width}} {'med ms':>7} {'p90':>7} {'cpu med':>7} {'cpu p90':>7}")
    print("-" * (width + 32))
    for name, (walls, cpus) in samples.items():
        print(f"{name:{width}} {statistics.median(walls):7.2f} {percentile(walls, 0.9):7.2f} "
              f"{statistics.median(cpus):7.2f} {percentile(cpus, 0.9):7.2f}")
    for label, _ in variants:
        base_wall = statistics.median(samples[label + "no script"][0])
        base_cpu = statistics.median(samples[label + "no script"][1])
        for name in recipients:
            if name == "no script":
                continue
            walls, cpus = samples[label + name]
            print(f"added by {label}{name}: {statistics.median(walls) - base_wall:+.2f} ms wall, "
                  f"{statistics.median(cpus) - base_cpu:+.2f} ms CPU (medians)")
    print("verify: " + "; ".join(verify))
    if instructions:
        print(f"\ncallgrind, median of {args.callgrind} runs: instructions per delivery (Ir, millions)")
        for name, counts in instructions.items():
            print(f"  {name:{width}} {statistics.median(counts) / 1e6:9.2f}")
        for label, _ in variants:
            base_ir = statistics.median(instructions[label + "no script"])
            for name in recipients:
                if name != "no script":
                    added = statistics.median(instructions[label + name]) - base_ir
                    print(f"added by {label}{name}: {added / 1e6:+.2f} M instructions "
                          f"({added / base_ir:+.1%} of the delivery without a script)")

    # The first install's site-packages and the roundcube recipient's script, for the
    # in-process figures below.
    python = os.path.join(os.path.dirname(os.path.realpath(variants[0][1])), "python3")
    site = subprocess.run([python, "-I", "-c", "import vdeliver, os; "
                           "print(os.path.dirname(os.path.dirname(vdeliver.__file__)))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    script_path = os.path.join(base, "example.com", "bob", "sieve", "roundcube.sieve")
    if args.callgrind_stages:
        scratch = os.path.join(top, "stages")
        os.mkdir(scratch)
        rows = stage_instructions(site, script_path, message, scratch)
        print("\ncallgrind, the roundcube entry's stages in one new python3 -I -S (Ir, millions added):")
        for name, added in rows:
            print(f"  {name:20} {added / 1e6:+7.2f}")
        print(f"  {'all':20} {sum(added for _, added in rows) / 1e6:+7.2f}")

    if args.importtime:
        load, compiled, ran, again = stages("/usr/bin/python3", site, script_path, message,
                                            args.importtime)
        print(f"\nroundcube in process, median of {args.importtime} new python3 -I -S: load modules "
              f"{load:.2f} ms, first compile {compiled:.2f}, first run {ran:.2f} "
              f"(compile + run again: {again:.2f})")
        cached = subprocess.run([python, "-I", "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                                 " import vdeliver.sieve.serial", site], capture_output=True).returncode == 0
        if cached:
            load, from_cache, ran, _ = stages("/usr/bin/python3", site, script_path, message,
                                              args.importtime, mode="cache")
            print(f"the same from the compile cache's text: load modules {load:.2f} ms, "
                  f"serial.load {from_cache:.2f}, first run {ran:.2f}")
        rows = importtime("/usr/bin/python3", site, args.importtime)
        print(f"\npython3 -I -S -X importtime: import vdeliver.sieve, median of {args.importtime} "
              "runs, after vdeliver.cli;\n"
              "modules over 0.1 ms cumulative (ms; indented: imported by the next line up "
              "that is less indented)")
        names = [name.strip() for name, _ in rows]
        start = names.index("vdeliver.cli") + 1 if "vdeliver.cli" in names else 0
        for name, micros in rows[start:]:
            if micros >= 100:
                print(f"  {micros / 1000:6.2f}  {name}")
    shutil.rmtree(top)


if __name__ == "__main__":
    main()
