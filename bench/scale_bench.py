#!/usr/bin/env python3
"""scale_bench.py - one LMTP daemon at scale (issue 14): memory of many big sessions, lookups
in a large pgsql table. A benchmark that prints tables, not a test.

(a) memory: for each row (SESSIONS x MB), a fresh daemon (`PREFIX/bin/vdeliver --lmtp
--foreground`, as vmail, lmtp_max_connections raised to the sessions + 10, a texthash map
of one mailbox per session, started under RLIMIT_NOFILE soft --nofile, hard unchanged: the
usual 1024 of a service), then every session at once over TCP (connects 64 at a time, as
the daemon's listen backlog is 128): LHLO, MAIL, RCPT, DATA with one message of that size
(written in 256 KiB pieces, each drained), the final dot, its reply, QUIT. Reported: the
daemon's peak RSS (VmHWM of /proc/PID/status: one process, its threads included), its
RSS once every session ended, the file descriptors it had at most (sampled), 250 replies,
messages verified byte-exact in their Maildir (size and SHA-256 of all the file after the
Return-Path and Delivered-To lines), wall time.

(b) lookups: a private PostgreSQL (tests/tables/servers.py) with --mailboxes rows bulk
loaded with COPY (email primary key), the daemon with lmtp_delivery_threads = 8,
virtual_mailbox_maps = pgsql:FILE and lmtp_metrics_listen; C client processes (each C of
--clients) send RCPT TO after RCPT TO (no pipelining: each waits for its reply), sessions
of 50 RCPTs, random mailboxes, --unknown of them unknown (550); once as the table is,
once more for each --delay (ms the server adds to each query: a remote or busy
database, pg_sleep in a SQL function). Reported: the RCPT reply
time at the client (p50/p90/p99), the daemon's own time per table lookup (its
vdeliver_table_lookup_seconds histogram: mean, and the share under 0.5 and 1 ms), the
most connections the server saw from the daemon (pg_stat_activity). --compare PREFIX runs
the same against another install (e.g. /opt/vd-main: one lookup thread, one connection).

Usage (root, after scripts/install; the install's python has psycopg; every database server
and mail base is private, under /tmp or --work):
    /opt/vdeliver/bin/python bench/scale_bench.py --vdeliver /opt/vd-scale [--compare /opt/vd-main]
        [--part memory|lookups|both] [--sessions 1000] [--size 12] [--baseline 10x12,1000x1]
        [--clients 8,32] [--rcpts 4000] [--mailboxes 100000] [--unknown 0.2] [--delay 0,2]
        [--nofile 1024] [--env NAME=VALUE]
Never: leaves a daemon or a database server running, or writes outside its own directories.
"""
import argparse
import asyncio
import hashlib
import multiprocessing
import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tables"))
PIECE = 256 * 1024
SENDER = "bench@example.net"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Daemon:
    """The installed daemon on a private mail base; stop() on every exit path."""

    def __init__(self, prefix, top, maps, extra="", nofile=None, environment=()):
        self.user = pwd.getpwnam("vmail")
        self.top = top
        self.base = os.path.join(top, "mail")
        os.makedirs(self.base, 0o700, exist_ok=True)
        os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self.config = os.path.join(top, "vdeliver.cf")
        self.maillog = os.path.join(top, "maillog")
        open(self.maillog, "a").close()
        os.chown(self.maillog, self.user.pw_uid, self.user.pw_gid)
        with open(self.config, "w") as fh:
            fh.write(f"virtual_mailbox_base = {self.base}\nvirtual_mailbox_maps = {maps}\n"
                     f"lmtp_listen = inet:127.0.0.1:{self.port}\nlmtp_pid_file = {top}/lmtpd.pid\n"
                     f"lmtp_user = vmail\nmaillog_file = {self.maillog}\n{extra}")
        os.chmod(self.config, 0o644)

        def limit():
            if nofile:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))

        self.proc = subprocess.Popen([os.path.join(prefix, "bin", "vdeliver"), "--lmtp",
                                      "--foreground", "-c", self.config], cwd="/",
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=limit,
                                     env={**os.environ, **dict(item.split("=", 1)
                                                               for item in environment)})
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("daemon did not start: "
                                     f"{self.proc.stderr.read().decode()}") from None
                time.sleep(0.05)
        self.pid = self.proc.pid
        self.most_fds = 0
        self.sampling = threading.Event()
        self.sampler = threading.Thread(target=self.sample, daemon=True)
        self.sampler.start()

    def sample(self):
        while not self.sampling.wait(0.2):
            try:
                self.most_fds = max(self.most_fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            except OSError:
                return

    def soft_nofile(self):
        with open(f"/proc/{self.pid}/limits") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return 0

    def log_lines(self, text):
        with open(self.maillog, errors="replace") as fh:
            return [line.rstrip("\n") for line in fh if text in line]

    def stop(self):
        self.sampling.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


# ---------------------------------------------------------------- (a) memory

def make_body(megabytes, seed=14):
    """A message body of that many MB, LF form: base64-like lines of 76 characters (none
    starts with a dot), 1000 different ones in turn."""
    rng = random.Random(seed)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lines = [bytes(rng.choice(alphabet) for _ in range(76)) + b"\n" for _ in range(1000)]
    return b"".join(lines[i % 1000] for i in range(megabytes * 1024 * 1024 // 77))


async def one_session(port, number, head_lf, body_crlf, connecting, outcome):
    recipient = f"u{number}@scale.test"
    trailer = f"session {number} end\n".encode()
    async with connecting:
        for _attempt in range(50):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.2)
        else:
            outcome[number] = "connect failed"
            return
        greeting = await reader.readline()
    try:
        if not greeting.startswith(b"220"):
            outcome[number] = f"greeting {greeting[:60]!r}"
            return
        writer.write(b"LHLO bench.example\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        size = len(head_lf) + len(body_crlf) + len(trailer)
        writer.write(f"MAIL FROM:<{SENDER}> SIZE={size}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
        replies = [await reader.readline() for _ in range(3)]
        if not replies[2].startswith(b"354"):
            outcome[number] = f"before DATA {[r[:60] for r in replies]!r}"
            return
        writer.write(head_lf.replace(b"\n", b"\r\n"))
        view = memoryview(body_crlf)
        for start in range(0, len(view), PIECE):
            writer.write(view[start:start + PIECE])
            await writer.drain()
        writer.write(trailer.replace(b"\n", b"\r\n") + b".\r\n")
        reply = await reader.readline()
        outcome[number] = "250" if reply.startswith(b"250") else f"after DATA {reply[:80]!r}"
        writer.write(b"QUIT\r\n")
        await writer.drain()
        await reader.readline()
    except (OSError, asyncio.IncompleteReadError) as error:
        outcome[number] = f"{type(error).__name__}: {error}"
    finally:
        writer.close()


async def all_sessions(port, count, head_lf, body_crlf, timeout):
    connecting = asyncio.Semaphore(64)
    outcome = {}

    async def bounded(number):
        try:
            await asyncio.wait_for(one_session(port, number, head_lf, body_crlf, connecting,
                                               outcome), timeout)
        except asyncio.TimeoutError:
            outcome[number] = f"no answer within {timeout}s"

    await asyncio.gather(*(bounded(n) for n in range(count)))
    return outcome


def verify(base, count, head_lf, body_lf):
    """Messages whose file is exactly Return-Path + Delivered-To + the message (size, SHA-256)."""
    common = hashlib.sha256(head_lf)
    common.update(body_lf)
    good = 0
    for number in range(count):
        directory = os.path.join(base, "scale.test", f"u{number}", "new")
        try:
            (name,) = os.listdir(directory)
        except (OSError, ValueError):
            continue
        prefix = f"Return-Path: <{SENDER}>\nDelivered-To: u{number}@scale.test\n".encode()
        trailer = f"session {number} end\n".encode()
        wanted = common.copy()
        wanted.update(trailer)
        path = os.path.join(directory, name)
        if os.path.getsize(path) != len(prefix) + len(head_lf) + len(body_lf) + len(trailer):
            continue
        with open(path, "rb") as fh:
            if fh.read(len(prefix)) != prefix:
                continue
            digest = hashlib.sha256()
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        good += digest.digest() == wanted.digest()
    return good


def memory_row(prefix, sessions, megabytes, nofile, work, environment=(), timeout=900):
    top = tempfile.mkdtemp(prefix="vdeliver-scalebench-", dir=work)
    os.chmod(top, 0o755)
    table = os.path.join(top, "mailboxes")
    with open(table, "w") as fh:
        fh.writelines(f"u{n}@scale.test scale.test/u{n}/\n" for n in range(sessions))
    os.chmod(table, 0o644)
    body_lf = make_body(megabytes)
    body_crlf = body_lf.replace(b"\n", b"\r\n")
    head_lf = (f"From: {SENDER}\nTo: many@scale.test\nSubject: {megabytes} MB\n"
               "Message-ID: <scale@example.net>\n\n").encode()
    daemon = Daemon(prefix, top, f"texthash:{table}",
                    f"lmtp_max_connections = {sessions + 10}\n", nofile, environment)
    try:
        started_rss = status_kb(daemon.pid, "VmRSS")
        started = time.monotonic()
        outcome = asyncio.run(all_sessions(daemon.port, sessions, head_lf, body_crlf, timeout))
        elapsed = time.monotonic() - started
        time.sleep(1)
        peak, after = status_kb(daemon.pid, "VmHWM"), status_kb(daemon.pid, "VmRSS")
        threads = status_kb(daemon.pid, "Threads")
        soft = daemon.soft_nofile()
        emfile = daemon.log_lines("Too many open files")
        most_fds = daemon.most_fds
    finally:
        daemon.stop()
    ok = sum(value == "250" for value in outcome.values())
    problems = sorted({value for value in outcome.values() if value != "250"})
    verified = verify(daemon.base, sessions, head_lf, body_lf)
    shutil.rmtree(top, ignore_errors=True)
    return {"sessions": sessions, "mb": megabytes, "start": started_rss / 1024, "peak": peak / 1024,
            "after": after / 1024, "fds": most_fds, "soft": soft, "ok": ok, "verified": verified,
            "seconds": elapsed, "threads": threads, "emfile": len(emfile), "problems": problems[:3],
            "emfile_sample": emfile[0][-160:] if emfile else ""}


def memory_part(args, prefix):
    rows = []
    shape = [tuple(int(x) for x in item.split("x")) for item in args.baseline.split(",") if item]
    shape.append((args.sessions, args.size))
    for sessions, megabytes in shape:
        row = memory_row(prefix, sessions, megabytes, args.nofile, args.work, args.env,
                         args.session_timeout)
        rows.append(row)
        print(f"  {prefix}: {sessions} x {megabytes} MB: peak {row['peak']:.0f} MB, after "
              f"{row['after']:.0f} MB, {row['ok']} x 250, {row['verified']} verified, "
              f"{row['seconds']:.1f}s {row['problems']}", flush=True)
    return rows


def print_memory(prefix, rows, nofile):
    print(f"\n(a) memory: {prefix}, daemon started with RLIMIT_NOFILE soft {nofile or 'as is'}")
    print(f"{'sessions':>8} {'MB':>4} {'RSS start':>9} {'RSS peak':>9} {'RSS after':>9} "
          f"{'fds max':>7} {'nofile':>6} {'250':>5} {'verified':>8} {'EMFILE':>6} {'wall s':>7}")
    for r in rows:
        print(f"{r['sessions']:8d} {r['mb']:4d} {r['start']:8.0f}M {r['peak']:8.0f}M "
              f"{r['after']:8.0f}M {r['fds']:7d} {r['soft']:6d} {r['ok']:5d} {r['verified']:8d} "
              f"{r['emfile']:6d} {r['seconds']:7.1f}")
        if r["problems"]:
            print(f"{'':14}other replies: {r['problems']}")
        if r["emfile_sample"]:
            print(f"{'':14}log: ...{r['emfile_sample']}")


# ---------------------------------------------------------------- (b) lookups

def load_mailboxes(server, count):
    from servers import USER
    rows = "".join(f"user{n}@d{n % 100}.test\td{n % 100}.test/user{n}/\n" for n in range(count))
    server.sql("CREATE TABLE mailbox (email TEXT PRIMARY KEY, maildir TEXT NOT NULL);\n"
               f"COPY mailbox (email, maildir) FROM STDIN;\n{rows}\\.\nANALYZE mailbox;\n"
               # A database that takes longer to answer (another host, a busy server).
               "CREATE FUNCTION delayed(key TEXT, pause FLOAT) RETURNS SETOF TEXT LANGUAGE sql"
               " AS $$ SELECT pg_sleep(pause); SELECT maildir FROM mailbox WHERE email = key $$;\n",
               user=USER)
    (total,) = server_count(server)
    assert total == count, (total, count)


def rcpt_client(port, count, mailboxes, unknown, seed, results):
    rng = random.Random(seed)
    sock = socket.create_connection(("127.0.0.1", port))
    reader = sock.makefile("rb")

    def reply():
        while (line := reader.readline())[3:4] == b"-":
            pass
        return line

    times, wrong = [], 0
    reply()
    sock.sendall(b"LHLO bench.example\r\n")
    reply()
    done = 0
    while done < count:
        sock.sendall(f"MAIL FROM:<{SENDER}>\r\n".encode())
        reply()
        for _ in range(min(50, count - done)):
            n = rng.randrange(mailboxes)
            known = rng.random() >= unknown
            address = f"user{n}@d{n % 100}.test" if known else f"nobody{n}@d{n % 100}.test"
            started = time.perf_counter()
            sock.sendall(f"RCPT TO:<{address}>\r\n".encode())
            line = reply()
            times.append(time.perf_counter() - started)
            wrong += not line.startswith(b"250" if known else b"550")
            done += 1
        sock.sendall(b"RSET\r\n")
        reply()
    sock.sendall(b"QUIT\r\n")
    sock.close()
    results.put((times, wrong))


def scrape_lookups(port):
    """(count, sum, {le: cumulative}) of vdeliver_table_lookup_seconds, all tables."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    count = total = 0.0
    buckets = {}
    for line in text.splitlines():
        if line.startswith("vdeliver_table_lookup_seconds_bucket"):
            le = float(re.search(r'le="([^"]+)"', line).group(1))
            buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("vdeliver_table_lookup_seconds_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("vdeliver_table_lookup_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return count, total, buckets


def server_count(server):
    import psycopg
    from servers import DATABASE
    with psycopg.connect(host=server.directory, port=server.port, user="postgres",
                         dbname=DATABASE, autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM mailbox").fetchone()


def pg_connections(server, user):
    import psycopg
    with psycopg.connect(host=server.directory, port=server.port, user="postgres",
                         dbname="postgres", autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                                  (user,)).fetchone()[0]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def lookup_run(prefix, server, clients, delay, args):
    from servers import DATABASE, PASSWORD, USER
    top = tempfile.mkdtemp(prefix="vdeliver-scalebench-", dir=args.work)
    os.chmod(top, 0o755)
    cf = os.path.join(top, "mailbox.cf")
    with open(cf, "w") as fh:
        fh.write(f"hosts = {server.hosts()}\nuser = {USER}\npassword = {PASSWORD}\n"
                 f"dbname = {DATABASE}\n")
        if delay:
            fh.write(f"query = SELECT delayed('%s', {delay / 1000})\n")
        else:
            fh.write("query = SELECT maildir FROM mailbox WHERE email='%s'\n")
    os.chmod(cf, 0o644)
    metrics_port = free_port()
    daemon = Daemon(prefix, top, f"pgsql:{cf}",
                    f"lmtp_delivery_threads = 8\nlmtp_max_connections = {clients + 10}\n"
                    f"lmtp_metrics_listen = inet:127.0.0.1:{metrics_port}\n",
                    environment=args.env)
    most = [0]
    stop = threading.Event()

    def watch():
        while not stop.wait(0.1):
            most[0] = max(most[0], pg_connections(server, USER))

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        # Warm-up: every connection of the pool opened, the table in the server's cache.
        warm = multiprocessing.Queue()
        rcpt_client(daemon.port, 200, args.mailboxes, args.unknown, 1, warm)
        warm.get()
        before = scrape_lookups(metrics_port)
        watcher.start()
        results = multiprocessing.Queue()
        per_client = max(1, args.rcpts // clients)
        workers = [multiprocessing.Process(target=rcpt_client, args=(
            daemon.port, per_client, args.mailboxes, args.unknown, 100 + n, results))
            for n in range(clients)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        gathered = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
        stop.set()
        watcher.join()
        after = scrape_lookups(metrics_port)
    finally:
        stop.set()
        daemon.stop()
        shutil.rmtree(top, ignore_errors=True)
    times = [t for part, _ in gathered for t in part]
    wrong = sum(w for _, w in gathered)
    lookups = after[0] - before[0]
    under = {le: (after[2].get(le, 0) - before[2].get(le, 0)) / lookups for le in (0.0005, 0.001)}
    return {"clients": clients, "delay": delay, "rcpts": len(times), "wrong": wrong, "rate": len(times) / elapsed,
            "p50": percentile(times, 0.5) * 1000, "p90": percentile(times, 0.9) * 1000,
            "p99": percentile(times, 0.99) * 1000, "lookups": int(lookups),
            "mean": (after[1] - before[1]) / lookups * 1000, "u05": under[0.0005] * 100,
            "u1": under[0.001] * 100, "connections": most[0]}


def lookup_part(args, prefixes):
    from servers import PostgresServer
    server = PostgresServer().start()
    rows = []
    try:
        started = time.monotonic()
        load_mailboxes(server, args.mailboxes)
        print(f"  loaded {args.mailboxes} mailboxes with COPY in {time.monotonic() - started:.1f}s",
              flush=True)
        for delay in [float(d) for d in args.delay.split(",")]:
            for clients in [int(c) for c in args.clients.split(",")]:
                for prefix in prefixes:
                    row = lookup_run(prefix, server, clients, delay, args)
                    row["prefix"] = prefix
                    rows.append(row)
                    print(f"  {prefix} delay {delay:g} ms C={clients}: p50 {row['p50']:.2f} ms,"
                          f" p99 {row['p99']:.2f} ms, lookup mean {row['mean']:.3f} ms,"
                          f" {row['connections']} connections", flush=True)
    finally:
        server.stop()
    return rows


def print_lookups(rows, args):
    print(f"\n(b) lookups: pgsql table of {args.mailboxes} mailboxes, lmtp_delivery_threads = 8, "
          f"{args.unknown:.0%} unknown recipients, RCPTs one at a time per client")
    print("delay: what the server adds to each query (pg_sleep), as a remote or busy database")
    print(f"{'install':<14} {'delay':>5} {'C':>3} {'RCPTs':>6} {'wrong':>5} {'RCPT/s':>7} {'p50 ms':>7} "
          f"{'p90 ms':>7} {'p99 ms':>7} {'lookups':>7} {'lookup mean ms':>14} {'<0.5ms':>6} "
          f"{'<1ms':>6} {'pg conns':>8}")
    for r in rows:
        print(f"{r['prefix']:<14} {r['delay']:5g} {r['clients']:3d} {r['rcpts']:6d} {r['wrong']:5d} {r['rate']:7.0f} "
              f"{r['p50']:7.2f} {r['p90']:7.2f} {r['p99']:7.2f} {r['lookups']:7d} "
              f"{r['mean']:14.3f} {r['u05']:5.1f}% {r['u1']:5.1f}% {r['connections']:8d}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vdeliver", default="/opt/vdeliver", help="installed prefix")
    parser.add_argument("--compare", action="append", default=[], help="another prefix")
    parser.add_argument("--part", choices=("memory", "lookups", "both"), default="both")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--size", type=int, default=12, help="MB per message")
    parser.add_argument("--baseline", default="10x12,1000x1", help="SESSIONSxMB,...")
    parser.add_argument("--nofile", type=int, default=1024,
                        help="the daemon's soft RLIMIT_NOFILE at start (0: as is)")
    parser.add_argument("--session-timeout", type=int, default=900,
                        help="seconds a memory session may take in all")
    parser.add_argument("--clients", default="8,32")
    parser.add_argument("--rcpts", type=int, default=4000, help="RCPTs per run, all clients")
    parser.add_argument("--mailboxes", type=int, default=100000)
    parser.add_argument("--unknown", type=float, default=0.2)
    parser.add_argument("--delay", default="0,2", help="ms the server adds to each query, ...")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE in the daemon's environment (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--work", default="/var/tmp", help="where mail bases go")
    args = parser.parse_args()
    prefixes = [args.vdeliver] + args.compare
    print(f"scale_bench {' '.join(sys.argv[1:])}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.part in ("memory", "both"):
        results = [(prefix, memory_part(args, prefix)) for prefix in prefixes]
        for prefix, rows in results:
            print_memory(prefix, rows, args.nofile)
    if args.part in ("lookups", "both"):
        print_lookups(lookup_part(args, prefixes), args)


if __name__ == "__main__":
    sys.exit(main())
