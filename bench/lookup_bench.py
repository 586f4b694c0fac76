"""What a lookup table adds to one vdeliver delivery: open + one lookup, in a fresh process.

    /opt/vdeliver/bin/python bench/lookup_bench.py [-n RUNS] [--keys 1000000]
        [--text-lines 100000] [--dir DIR] [--python /opt/vdeliver/bin/python3]

Builds, with Postfix's postmap, hash:, cdb: and lmdb: tables of --keys keys
and a texthash: source of --text-lines lines, then starts the interpreter
the way the installed launcher does (python3 -I -S, site-packages put on the
path by hand, the pipe modules run from their .pyc files) RUNS times without a
table and RUNS times with each table (interleaved in a shuffled order, so
drift hits all alike), the child opening the table and looking up one key that exists. The
table's cost is the median fresh-process time with it minus the median
without. texthash is measured with its compiled cache (built once before) and
without (CACHE_DIRECTORY = "", parsed every time).

Needs postmap with the cdb and lmdb plugins (scripts/setup-databases) and the
bdb extra in the measured venv. Prints one table; writes nothing but
its tables (in a temporary directory unless --dir is given).
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys
sys.path.insert(0, {site!r})
import vdeliver.tables
from vdeliver.tables import texthash
texthash.CACHE_DIRECTORY = {cache!r}
spec = {spec!r}
if spec:
    value = vdeliver.tables.open_table(spec).lookup({key!r})
    if value is None:
        raise SystemExit("lookup failed: " + spec)
import posix
posix._exit(0)
"""


def build(directory, keys, text_lines):
    source = os.path.join(directory, "vmailbox")
    key = f"user{keys // 2}@example{keys // 2 % 100}.com"
    with open(source, "w") as fh:
        for number in range(keys):
            fh.write(f"user{number}@example{number % 100}.com example{number % 100}.com/user{number}/\n")
    past = time.time() - 60  # Postfix waits for files changed in the last second
    os.utime(source, (past, past))
    specs = {}
    for table_type in ("hash", "cdb", "lmdb"):
        started = time.monotonic()
        subprocess.run(["/usr/sbin/postmap", f"{table_type}:{source}"], check=True)
        specs[table_type] = (f"{table_type}:{source}", time.monotonic() - started)
    text = os.path.join(directory, "vmailbox.txt")
    with open(source) as fh, open(text, "w") as out:
        for number, line in enumerate(fh):
            if number >= text_lines:
                break
            out.write(line)
    os.utime(text, (past, past))
    text_key = f"user{text_lines // 2}@example{text_lines // 2 % 100}.com"
    return key, text_key, specs, text


def run_child(python, code):
    started = time.perf_counter()
    subprocess.run([python, "-I", "-S", "-c", code], check=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=101)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--text-lines", type=int, default=100_000)
    parser.add_argument("--dir")
    parser.add_argument("--python", default=os.path.join(os.path.dirname(sys.executable), "python3"))
    args = parser.parse_args()
    site = subprocess.run([args.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    directory = args.dir or tempfile.mkdtemp(prefix="vdeliver-lookup-bench-")
    cache = os.path.join(directory, "cache")
    os.makedirs(cache, exist_ok=True)
    try:
        print(f"building tables of {args.keys} keys and a texthash of {args.text_lines} lines"
              f" in {directory} ...", file=sys.stderr)
        key, text_key, specs, text = build(directory, args.keys, args.text_lines)
        cases = [("(no table)", "", "", "")]
        for table_type, (spec, _) in specs.items():
            cases.append((f"{table_type}: {args.keys} keys", spec, key, ""))
        cases.append((f"texthash: {args.text_lines} lines, cached", f"texthash:{text}", text_key, cache))
        cases.append((f"texthash: {args.text_lines} lines, no cache", f"texthash:{text}", text_key, ""))
        codes = [CHILD.format(site=site, cache=cache_dir, spec=spec, key=k)
                 for _, spec, k, cache_dir in cases]
        for code in codes:  # warm up: page cache, .pyc files, the texthash cache
            run_child(args.python, code)
            run_child(args.python, code)
        times = [[] for _ in cases]
        order = list(range(len(cases)))
        shuffle = random.Random(4).shuffle
        for _ in range(args.runs):
            shuffle(order)  # no case always runs after the expensive one
            for index in order:
                times[index].append(run_child(args.python, codes[index]))
        base = statistics.median(times[0])
        print(f"\nfresh-process cost of open + one lookup, median of {args.runs} runs"
              f" ({args.python} -I -S)")
        print(f"{'table':40} {'median ms':>10} {'added ms':>9} {'p90 added':>9}")
        for (name, *_), samples in zip(cases, times):
            median = statistics.median(samples)
            p90 = sorted(samples)[int(len(samples) * 0.9)]
            print(f"{name:40} {median * 1000:10.2f} {(median - base) * 1000:9.2f}"
                  f" {(p90 - base) * 1000:9.2f}")
        print("\npostmap build times: " + ", ".join(
            f"{table_type} {seconds:.1f}s" for table_type, (_, seconds) in specs.items()))
        sizes = {table_type: os.path.getsize(spec.split(":", 1)[1] + {"hash": ".db", "cdb": ".cdb",
                                                                        "lmdb": ".lmdb"}[table_type])
                 for table_type, (spec, _) in specs.items()}
        print("file sizes: " + ", ".join(f"{t} {s / 1e6:.0f} MB" for t, s in sizes.items()))
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
