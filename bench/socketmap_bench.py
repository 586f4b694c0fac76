#!/usr/bin/env python3
"""socketmap_bench.py: a pipe delivery whose mailbox comes from PostgreSQL through the LMTP
daemon's socketmap service, beside the same delivery from texthash: and from pgsql: directly.

    bench/socketmap_bench.py [-n 300] [--vdeliver /opt/vdeliver/bin/vdeliver] [--users 1000]
                             [--size 4096]

As root (it starts a private PostgreSQL, tests/tables/servers.py, and the
daemon; the deliveries run as vmail with pipe(8)'s environment). The table
holds --users mailboxes, in PostgreSQL and in a texthash: file (with its
compiled cache, as an installed vdeliver uses it). Each round runs every
entry once, in a new random order, one fresh process each, a random user of
the table each time:

  texthash        vdeliver, virtual_mailbox_maps = texthash:FILE
  socketmap       vdeliver, virtual_mailbox_maps =
                  socketmap:unix:SOCKET:virtual_mailbox_maps (the daemon: pgsql:)
  sm-texthash     the same socket, an export of the texthash: file (answered on
                  the daemon's event loop): the socket's own cost, without
                  PostgreSQL and the lookup thread
  pgsql           vdeliver, virtual_mailbox_maps = pgsql:FILE (psycopg per message)

each as a real delivery (Maildir, fsyncs) and as `-n` (start-up, config and
lookup, no write: no fsync noise). Prints median, p90 and mean CPU ms (the
child's own; the daemon's share of socketmap is in the wall time only) and the
median's difference from texthash in the same run.
"""
import argparse
import os
import pwd
import random
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..", "tests", "tables")]

from pipe_startup import percentile, run_once  # noqa: E402
from servers import DATABASE, PASSWORD, USER, PostgresServer  # noqa: E402


def write(path, text, mode=0o644):
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)


def cpu_ns(pids):
    """CPU time so far of every thread of pids (/proc/PID/task/*/schedstat, ns)."""
    total = 0
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
    return total


def server_pids(daemon, pg):
    """The daemon and the PostgreSQL backend serving it (its one persistent connection)."""
    import subprocess
    done = subprocess.run([f"{pg_bin()}/psql", "-X", "-At", "-h", pg.directory, "-p", str(pg.port),
                           "-U", "postgres", "-d", DATABASE, "-c",
                           f"SELECT pid FROM pg_stat_activity WHERE usename = '{USER}'"],
                          user="postgres", group="postgres", capture_output=True, text=True,
                          check=True, cwd=pg.directory)
    return [daemon.proc.pid] + [int(pid) for pid in done.stdout.split()]


def pg_bin():
    from servers import PG_BIN
    return PG_BIN


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--vdeliver", default="/opt/vdeliver/bin/vdeliver")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--user", default="vmail")
    parser.add_argument("--extension", action="store_true",
                        help="recipients user+bench@: two lookups (user+bench@, then user@)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it starts PostgreSQL and the daemon")
    import socketmap_daemon
    socketmap_daemon.VDELIVER = args.vdeliver
    owner = pwd.getpwnam(args.user)
    as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    top = tempfile.mkdtemp(prefix="vdeliver-socketmap-bench-", dir="/var/tmp")
    os.chmod(top, 0o755)
    pg = daemon = None
    try:
        pg = PostgresServer().start()
        rows = ", ".join(f"('user{i}@example.com', 'example.com/user{i}/')" for i in range(args.users))
        pg.sql("CREATE TABLE mailbox (email VARCHAR(255) PRIMARY KEY, maildir VARCHAR(255));"
               f" INSERT INTO mailbox VALUES {rows};", user=USER)
        base, cache = os.path.join(top, "mail"), os.path.join(top, "cache")
        for directory in (base, cache):
            os.mkdir(directory, 0o700)
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        write(os.path.join(top, "mailboxes"), "".join(
            f"user{i}@example.com example.com/user{i}/\n" for i in range(args.users)))
        write(os.path.join(top, "pgsql.cf"),
              f"hosts = {pg.hosts()}\nuser = {USER}\npassword = {PASSWORD}\ndbname = {DATABASE}\n"
              "query = SELECT maildir FROM mailbox WHERE email='%s'\n")
        daemon = socketmap_daemon.LookupDaemon(
            top, owner, f"pgsql:{top}/pgsql.cf",
            f"socketmap_maps = virtual_mailbox_maps, texthash=texthash:{top}/mailboxes\n")
        daemon.start()
        common = f"virtual_mailbox_base = {base}\nrecipient_delimiter = +\ntable_cache_directory = {cache}\n"
        maps = {"texthash": f"texthash:{top}/mailboxes",
                "socketmap": daemon.spec("virtual_mailbox_maps"),
                "sm-texthash": daemon.spec("texthash"),
                "pgsql": f"pgsql:{top}/pgsql.cf"}
        if args.extension:  # a literal export finds no user+bench@ key
            del maps["sm-texthash"]
        for name, spec in maps.items():
            write(os.path.join(top, f"{name}-vdeliver.cf"), common + f"virtual_mailbox_maps = {spec}\n")
        message = os.path.join(top, "message")
        body = "Subject: bench\nFrom: a@example.net\n\n"
        write(message, body + "x" * (args.size - len(body) - 1) + "\n")

        entries = []
        for name in maps:
            config = os.path.join(top, f"{name}-vdeliver.cf")
            entries.append((f"{name} -n", [args.vdeliver, "-c", config, "-n"]))
            entries.append((name, [args.vdeliver, "-c", config, "-f", "a@example.net", "--"]))
        pick = random.Random(14)
        samples = {name: ([], []) for name, _ in entries}
        delivered = 0
        servers, server_cpu = [], 0
        for round_number in range(-3, args.n):  # 3 warm-up rounds
            if round_number == 0:
                servers = server_pids(daemon, pg)
                server_cpu = [cpu_ns([pid]) for pid in servers]
            order = list(entries)
            pick.shuffle(order)
            for name, argv in order:
                recipient = f"user{pick.randrange(args.users)}{'+bench' if args.extension else ''}@example.com"
                wall, cpu = run_once(argv + [recipient], message, as_user)
                delivered += not name.endswith("-n")
                if round_number >= 0:
                    samples[name][0].append(wall)
                    samples[name][1].append(cpu)
        server_cpu = [cpu_ns([pid]) - before for pid, before in zip(servers, server_cpu)]
        on_disk = sum(len(files) for directory, _, files in os.walk(base) if directory.endswith("/new"))
        print(f"socketmap_bench: n={args.n} per entry, interleaved in random order, {args.size}-byte"
              f" message, {args.users} mailboxes, recipients user{'+bench' if args.extension else ''}"
              f"@example.com, as {args.user}, {args.vdeliver}")
        print(f"{'entry':14} {'med ms':>7} {'p90':>7} {'cpu ms':>7} {'med - texthash':>15}")
        print("-" * 54)
        for suffix in (" -n", ""):
            floor = statistics.median(samples["texthash" + suffix][0])
            for name in maps:
                walls, cpus = samples[name + suffix]
                median = statistics.median(walls)
                print(f"{name + suffix:14} {median:7.2f} {percentile(walls, 0.9):7.2f}"
                      f" {statistics.mean(cpus):7.2f} {median - floor:+15.2f}")
        lookups = 2 * args.n * (1 + ("sm-texthash" in maps))
        print(f"server CPU (schedstat): the daemon's threads {server_cpu[0] / lookups / 1e6:.3f} ms"
              f" per socketmap lookup (of either kind), its PostgreSQL backend"
              f" {sum(server_cpu[1:]) / (2 * args.n) / 1e6:.3f} ms per socketmap lookup of PostgreSQL")
        print(f"verify: {on_disk} of {delivered} messages in new/")
        if on_disk != delivered:
            raise SystemExit("not every delivery is on disk")
    finally:
        if daemon is not None:
            daemon.stop()
        if pg is not None:
            pg.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
