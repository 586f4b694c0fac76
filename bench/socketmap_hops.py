#!/usr/bin/env python3
"""socketmap_hops.py: where a socketmap lookup of PostgreSQL spends its time, hop by hop.

    bench/socketmap_hops.py [-n 300] [--vdeliver /opt/vdeliver/bin/vdeliver] [--gap-ms 10]

bench/socketmap_bench.py times whole pipe deliveries; this one times the
lookup alone, from a client process that is already running (no interpreter
start-up, no import of _socket), so that the figures add up to the
difference socketmap_bench.py shows. As root: it starts a private PostgreSQL
(tests/tables/servers.py) and the daemon's socketmap service
(tests/socketmap_daemon.py) with two exports of the same 1000 mailboxes:

  in-loop      socketmap -> daemon -> a texthash: export, answered on the
               event loop (two wake-ups: the daemon's, the client's)
  pgsql        socketmap -> daemon -> lookup thread -> PostgreSQL -> lookup
               thread -> event loop -> client (six wake-ups)
  direct       the same query straight from this process (psycopg, one open
               connection): PostgreSQL's own round trip

each first back to back (every process hot), then with --gap-ms between
requests, as pipe(8)'s deliveries arrive: each wake-up is then one of a
sleeping thread or process, which on this VM costs far more than the work.
Prints median and p90 microseconds per request. A new connection per request
for the socket kinds, as a pipe delivery makes one.
"""
import argparse
import os
import pwd
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..", "tests", "tables")]

from pipe_startup import percentile  # noqa: E402
from servers import DATABASE, PASSWORD, USER, PostgresServer  # noqa: E402


def ask(path, name, key):
    request = f"{name} {key}".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        started = time.perf_counter()
        sock.connect(path)
        sock.sendall(b"%d:%s," % (len(request), request))
        reply = sock.recv(4096)
        took = time.perf_counter() - started
    if b":OK " not in reply[:8]:
        raise SystemExit(f"unexpected reply {reply!r}")
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--vdeliver", default="/opt/vdeliver/bin/vdeliver")
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--user", default="vmail")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it starts PostgreSQL and the daemon")
    import psycopg
    import socketmap_daemon
    socketmap_daemon.VDELIVER = args.vdeliver
    owner = pwd.getpwnam(args.user)
    top = tempfile.mkdtemp(prefix="vdeliver-socketmap-hops-", dir="/var/tmp")
    os.chmod(top, 0o755)
    pg = daemon = None
    try:
        pg = PostgresServer().start()
        pg.sql("CREATE TABLE mailbox (email VARCHAR(255) PRIMARY KEY, maildir VARCHAR(255));"
               " INSERT INTO mailbox SELECT 'user' || i || '@example.com', 'example.com/user' || i || '/'"
               " FROM generate_series(100, 999) AS i;", user=USER)
        with open(os.path.join(top, "mailboxes"), "w") as fh:
            fh.writelines(f"user{i}@example.com example.com/user{i}/\n" for i in range(100, 1000))
        with open(os.path.join(top, "pgsql.cf"), "w") as fh:
            fh.write(f"hosts = {pg.hosts()}\nuser = {USER}\npassword = {PASSWORD}\n"
                     f"dbname = {DATABASE}\nquery = SELECT maildir FROM mailbox WHERE email='%s'\n")
        for name in ("mailboxes", "pgsql.cf"):
            os.chmod(os.path.join(top, name), 0o644)
        daemon = socketmap_daemon.LookupDaemon(
            top, owner, f"pgsql:{top}/pgsql.cf",
            f"socketmap_maps = virtual_mailbox_maps, texthash=texthash:{top}/mailboxes\n")
        daemon.start()
        host, port = pg.hosts().removeprefix("inet:").rsplit(":", 1)
        direct = psycopg.connect(host=host, port=port, user=USER, password=PASSWORD,
                                 dbname=DATABASE, autocommit=True)

        def query(key):
            started = time.perf_counter()
            row = direct.execute("SELECT maildir FROM mailbox WHERE email=%s", (key,),
                                 prepare=False).fetchone()
            took = time.perf_counter() - started
            if row is None:
                raise SystemExit(f"no row for {key}")
            return took

        kinds = {"in-loop": lambda key: ask(daemon.socket_path, "texthash", key),
                 "pgsql": lambda key: ask(daemon.socket_path, "virtual_mailbox_maps", key),
                 "direct": query}
        pick = random.Random(14)
        samples = {(kind, gap): [] for kind in kinds for gap in (0, args.gap_ms)}
        for gap in (0, args.gap_ms):
            for _ in range(3):  # warm-up
                for fn in kinds.values():
                    fn("user100@example.com")
            for _ in range(args.n):
                order = list(kinds)
                pick.shuffle(order)
                for kind in order:
                    samples[kind, gap].append(kinds[kind](f"user{pick.randrange(100, 1000)}@example.com"))
                    if gap:
                        time.sleep(gap / 1000)
        direct.close()
        print(f"socketmap_hops: n={args.n} per entry, interleaved, {args.vdeliver}")
        print(f"{'request':10} {'hot med us':>11} {'p90':>7} {'gap ' + format(args.gap_ms, 'g') + ' ms med':>15} {'p90':>7}")
        print("-" * 54)
        for kind in kinds:
            hot, cold = [1e6 * x for x in samples[kind, 0]], [1e6 * x for x in samples[kind, args.gap_ms]]
            print(f"{kind:10} {statistics.median(hot):11.0f} {percentile(hot, 0.9):7.0f}"
                  f" {statistics.median(cold):15.0f} {percentile(cold, 0.9):7.0f}")
    finally:
        if daemon is not None:
            daemon.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
