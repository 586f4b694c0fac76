#!/usr/bin/env python3
"""spool_truncate.py: what truncating the LMTP DATA spool after every message costs.

    bench/spool_truncate.py [DIRECTORY] [-n 20000] [--size 8192]

One O_TMPFILE spool in DIRECTORY (default /var/tmp: put it on the mail base's
filesystem), written and read back N times with SIZE bytes, as a session's
messages are, once truncated to 0 after each message (vdeliver before
2026-12-02) and once overwritten in place (spool.py now, up to spool.KEEP);
prints CPU and wall microseconds per message, two interleaved passes each.
"""
import argparse
import os
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", default="/var/tmp")
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
    data = os.urandom(args.size)
    print(f"{'mode':10} {'cpu us':>8} {'wall us':>8}   per message, {args.size} bytes, {args.directory}")
    for mode in ("truncate", "overwrite") * 2:
        fd = os.open(args.directory, os.O_RDWR | os.O_TMPFILE, 0o600)
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.n):
                os.pwrite(fd, data, 0)
                os.pread(fd, args.size, 0)
                if mode == "truncate":
                    os.ftruncate(fd, 0)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            os.close(fd)
        print(f"{mode:10} {cpu / args.n * 1e6:8.1f} {wall / args.n * 1e6:8.1f}")


if __name__ == "__main__":
    main()
