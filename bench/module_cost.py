#!/usr/bin/env python3
"""module_cost.py: what each module of the pipe command's start-up costs, in instructions.

    bench/module_cost.py [--vdeliver /opt/vdeliver/bin/vdeliver] [--list pipe|sieve|both]

A pipe delivery is a new process: the modules it loads are paid on every message.
This prints, for vdeliver.PIPE_MODULES (what every delivery loads) and
vdeliver.SIEVE_MODULES (what a delivery with a Sieve script adds, loaded after
SIEVE_ROUTE_MODULES and folders, as sieveroute.py does), the instructions
(valgrind --tool=callgrind, Ir) of a new `python3 -IS` that loads the first k
modules of the list and ends with posix._exit (as the launcher does), and the
difference each module makes: the cost of its code (each class about 50,000-80,000
instructions to create, each function far less) and of reading its .pyc.

It works on a copy of the install's site-packages in a temporary directory, whose
vdeliver/__init__.py it rewrites so that importing the package loads only a
prefix of PIPE_MODULES; the install itself is not touched. Runs as any user.
"""
import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile


def site_packages(launcher):
    python = os.path.join(os.path.dirname(os.path.realpath(launcher)), "python3")
    if not os.access(python, os.X_OK):
        python = "/usr/bin/python3"
    code = ("import sys; sys.path.insert(0, %r); import vdeliver, os; "
            "print(os.path.dirname(os.path.dirname(vdeliver.__file__)))"
            % (os.path.join(os.path.dirname(launcher), "..", "lib",
                            "python%d.%d" % sys.version_info[:2], "site-packages"),))
    return subprocess.run(["/usr/bin/python3", "-IS", "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def module_list(source, name):
    match = re.search(rf"^{name} = \((.*?)\)\n", source, re.S | re.M)
    return match, ast.literal_eval("(" + match.group(1) + ")")


def instructions(site, code):
    # once to write any .pyc the rewritten __init__ needs, then measured
    subprocess.run(["/usr/bin/python3", "-IS", "-c", code], check=True)
    err = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          "/usr/bin/python3", "-IS", "-c", code],
                         capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", err).group(1))


def table(title, rows):
    print(f"\n{title}\n{'module':28} {'M Ir':>8} {'added':>9}")
    previous = None
    for label, count in rows:
        added = "" if previous is None else f"{(count - previous) / 1e3:+8.0f}k"
        print(f"{label:28} {count / 1e6:8.3f} {added:>9}", flush=True)
        previous = count
    print(f"{'all of them':28} {'':8} {(rows[-1][1] - rows[0][1]) / 1e3:+8.0f}k")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vdeliver", default="/opt/vdeliver/bin/vdeliver")
    parser.add_argument("--list", choices=("pipe", "sieve", "both"), default="both")
    args = parser.parse_args()
    top = tempfile.mkdtemp(prefix="vdeliver-modcost-")
    try:
        site = os.path.join(top, "site-packages")
        shutil.copytree(site_packages(args.vdeliver), site, symlinks=True)  # keeps mtimes
        init = os.path.join(site, "vdeliver", "__init__.py")
        with open(init) as fh:
            source = fh.read()
        exit_now = "import posix; posix._exit(0)"
        print(f"module_cost: {args.vdeliver}, instructions of a new /usr/bin/python3 -IS "
              f"(valgrind --tool=callgrind)")
        print(f"{'python3 -IS alone':28} {instructions(site, exit_now) / 1e6:8.3f}")
        if args.list in ("pipe", "both"):
            match, modules = module_list(source, "PIPE_MODULES")
            rows = []
            for k in range(len(modules) + 1):
                with open(init, "w") as fh:
                    fh.write(source[:match.start()] + f"PIPE_MODULES = {tuple(modules[:k])!r}\n"
                             + source[match.end():])
                code = f"import sys; sys.path.insert(0, {site!r}); import vdeliver; {exit_now}"
                rows.append((modules[k - 1] if k else "package, no module", instructions(site, code)))
            with open(init, "w") as fh:
                fh.write(source)
            table("PIPE_MODULES, cumulative", rows)
        if args.list in ("sieve", "both"):
            _, modules = module_list(source, "SIEVE_MODULES")
            first = "vdeliver.load_modules(vdeliver.SIEVE_ROUTE_MODULES + ('folders',)); "
            rows = []
            for k in range(len(modules) + 1):
                code = (f"import sys; sys.path.insert(0, {site!r}); import vdeliver.cli; {first}"
                        f"vdeliver.load_modules({tuple(modules[:k])!r}); {exit_now}")
                rows.append((modules[k - 1] if k else "pipe + route modules", instructions(site, code)))
            table("SIEVE_MODULES after SIEVE_ROUTE_MODULES and folders, cumulative", rows)
    finally:
        shutil.rmtree(top)


if __name__ == "__main__":
    sys.exit(main())
