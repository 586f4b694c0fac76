#!/usr/bin/env python3
"""e2e_bench.py - end to end, SMTP -> private Postfix -> agent -> Maildir: virtual(8) vs vdeliver.

Three variants in one run, on one private Postfix (tests/e2e/harness.py: its own config
and queue directories under /tmp/vdeliver-e2e-<pid>/, smtpd on 127.0.0.1, the system
instance untouched), each with its own domain and Maildirs, so no reload between trials:

  virtual   Postfix's own virtual(8) (transport_maps: virtual:)
  pipe      vdeliver through pipe(8): master.cf.snippet as written (virtual_transport =
            vdeliver:, vdeliver_destination_recipient_limit = 1), one process per message
  lmtp      vdeliver's LMTP daemon (`vdeliver --lmtp --foreground`, started by the harness)
            through Postfix's lmtp client (transport_maps: lmtp:unix:private/vdeliver-lmtp,
            the snippet's socket; Debian's stock chrooted lmtp service)

One trial: empty the variant's Maildirs, wait for an empty queue, send N messages (a
seeded mix: mostly 2-10 KB text, some 10-50 KB, a few 100-300 KB with a base64 part; each
to one of K mailboxes) over C parallel SMTP sessions, and poll new/ every 5 ms until N files
are there; then check every file ends with its message byte for byte. Rounds run the three
variants interleaved (the order rotates each round); the table shows medians over rounds:

  msg/s      N / (time the last file appeared in new/ - first SMTP connect)
  srv cpu    CPU ms per message of the whole Postfix process tree plus the LMTP daemon:
             utime+stime of every live process and cutime+cstime (its reaped children:
             pipe(8)'s vdeliver processes, exited Postfix daemons), before and after
  cpu cap    cores x 1000 / srv cpu: the msg/s if CPU were the only limit
  d med      Postfix's own `delays=a/b/c/d` d (the delivery agent's time), ms
  x virtual  msg/s over virtual(8)'s msg/s in the same round, median over rounds

A second table splits srv cpu by program (Postfix daemons by name, pipe(8)'s reaped vdeliver
runs, the LMTP daemon). Default Postfix settings (concurrency 20 per destination), except
delay_logging_resolution_limit = 3; vdeliver.cf has no quota tables (--set adds lines, for
experiments). The injector's CPU (this process: smtplib and the polling) is shown per round,
not counted. --profile runs two more, unmeasured LMTP trials with py-spy sampling the daemon:
every non-idle thread (where the wall time goes: a thread in fsync counts), then only the
GIL holder (where the Python CPU goes); it prints the hottest functions of each.

Usage (root; after scripts/setup-e2e and scripts/install; py-spy from PyPI in a scratch venv):
  /usr/bin/python3 bench/e2e_bench.py [-n 500] [--rounds 3] [--connections 4]
      [--variants virtual,pipe,lmtp] [--json FILE] [--keep] [--set NAME=VALUE]...
      [--profile [--py-spy PATH]]
Never: touch the system's Postfix; leave anything running (the harness stops Postfix and
the daemon on every exit path, the daemon with SIGTERM, and its exit status is printed).
"""
from __future__ import annotations

import argparse
import base64
import collections
import datetime
import glob
import json
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
import harness  # noqa: E402

VARIANTS = ("virtual", "pipe", "lmtp")
STALL_SECONDS = 20   # no new file for this long after the injection: the rest is deferred, give up
SENDER = "bench@bounces.example"
WORDS = ("mail delivery queue maildir postfix virtual mailbox table lookup recipient sender domain "
         "report meeting invoice project status update attached regards thanks schedule review "
         "the of and to in is for on that with as this by be are from at or it an").split()


def domain_of(variant: str) -> str:
    return f"{variant}.bench.test"


# --------------------------------------------------------------------------- messages

class Message:
    __slots__ = ("msgid", "data", "wire", "kind")

    def __init__(self, msgid: bytes, data: bytes, kind: str):
        self.msgid, self.data, self.kind = msgid, data, kind
        self.wire = data.replace(b"\n", b"\r\n")  # as an SMTP client sends it (precomputed)


def text_body(rng: random.Random, size: int) -> bytes:
    """About `size` bytes of prose in lines under 80 bytes, with a few lines that trip
    careless agents: 'From ' (no mbox quoting in a Maildir) and a lone '.' (SMTP dot-stuffing)."""
    lines, total = [], 0
    while total < size:
        roll = rng.random()
        if roll < 0.01:
            line = "From the desk of the postmaster"
        elif roll < 0.02:
            line = "."
        else:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def make_messages(count: int, seed: int) -> list[Message]:
    """The seeded mix: 92 % text 2-10 KB, 6 % 10-50 KB, 2 % 100-300 KB with a base64 part."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        roll = rng.random()
        msgid = f"<bench-{seed}-{n}@e2e-bench.test>"
        head = (f"From: Bench Sender <{SENDER}>\nTo: bench@bench.test\nSubject: bench message {n}\n"
                f"Date: Wed, 25 Nov 2026 08:00:00 +0000\nMessage-ID: {msgid}\nMIME-Version: 1.0\n")
        if roll < 0.92:
            kind, body = "text", text_body(rng, rng.randint(2_000, 10_000) - 300)
            data = head.encode() + b"Content-Type: text/plain; charset=us-ascii\n\n" + body
        elif roll < 0.98:
            kind, body = "medium", text_body(rng, rng.randint(10_000, 50_000) - 300)
            data = head.encode() + b"Content-Type: text/plain; charset=us-ascii\n\n" + body
        else:
            kind = "large"
            blob = base64.encodebytes(rng.randbytes(rng.randint(75_000, 225_000)))
            data = (head.encode() + b"Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n"
                    b"Content-Type: text/plain\n\n" + text_body(rng, 1_000) +
                    b"--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
                    blob + b"--b1--\n")
        out.append(Message(msgid.encode(), data, kind))
    return out


# --------------------------------------------------------------------------- measuring

def proc_snapshot(roots: list[int]) -> dict[int, tuple[str, int, float, float]]:
    """{pid: (name, parent, own CPU s, reaped children's CPU s)} for the trees under `roots`:
    utime+stime, and cutime+cstime (what it reaped: pipe(8)'s vdeliver runs, exited daemons)."""
    hz = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = collections.defaultdict(list)
    stats: dict[int, tuple[str, int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        pid, parent = int(entry), int(fields[1])
        children[parent].append(pid)
        stats[pid] = (name, parent, (int(fields[11]) + int(fields[12])) / hz,
                      (int(fields[13]) + int(fields[14])) / hz)
    out, todo = {}, list(roots)
    while todo:
        pid = todo.pop()
        if pid in out or pid not in stats:
            continue
        out[pid] = stats[pid]
        todo.extend(children.get(pid, ()))
    return out


def cpu_used(before: dict, after: dict) -> tuple[float, dict[str, float]]:
    """CPU seconds used between two snapshots: (total, by program). A process that exited in
    between was reaped by its parent (its whole life is in the parent's reaped CPU): what it
    used after the first snapshot goes under 'exited, reaped by <parent>'."""
    by_name: collections.Counter = collections.Counter()
    for pid, (name, _parent, own, reaped) in after.items():
        own0, reaped0 = before[pid][2:] if pid in before else (0.0, 0.0)
        by_name[name] += own - own0
        exited = sum(b[2] + b[3] for p, b in before.items() if b[1] == pid and p not in after)
        if reaped - reaped0 - exited:
            label = f"children of {name}" if name != "master" else "exited, reaped by master"
            by_name[label] += reaped - reaped0 - exited
    return sum(by_name.values()), dict(by_name)


def reset_maildirs(base: str, variant: str, users: list[str]) -> list[str]:
    """Fresh, empty Maildirs (tmp, new, cur; 0700, vmail) for the variant's users."""
    top = os.path.join(base, domain_of(variant))
    shutil.rmtree(top, ignore_errors=True)
    vmail = pwd.getpwnam(harness.VMAIL)
    out = []
    for user in users:
        path = os.path.join(top, user)
        for sub in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(path, sub), 0o700, exist_ok=True)
    for dirpath, _, _ in os.walk(top):
        os.chown(dirpath, vmail.pw_uid, vmail.pw_gid)
        os.chmod(dirpath, 0o700)
    for user in users:
        out.append(os.path.join(top, user))
    return out


def count_new(maildirs: list[str]) -> int:
    total = 0
    for maildir in maildirs:
        with os.scandir(os.path.join(maildir, "new")) as entries:
            total += sum(1 for _ in entries)
    return total


def queue_files(spool: str) -> int:
    total = 0
    for queue in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(spool, queue)):
            total += len(files)
    return total


def inject(port: int, messages: list[Message], rcpts: list[str], connections: int,
           errors: list[str], connects: list[float]) -> None:
    """Send message i to rcpts[i % K] over `connections` parallel SMTP sessions."""
    def worker(k: int) -> None:
        try:
            connects.append(time.perf_counter())
            with smtplib.SMTP("127.0.0.1", port, local_hostname="injector.e2e-bench.test",
                              timeout=120) as smtp:
                for i in range(k, len(messages), connections):
                    smtp.sendmail(SENDER, [rcpts[i % len(rcpts)]], messages[i].wire)
        except Exception as err:  # noqa: BLE001 - the trial is then marked failed
            errors.append(f"session {k}: {err!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def verify(maildirs: list[str], messages: list[Message]) -> dict:
    """Every message once, each file ending with its message byte for byte."""
    by_id = {m.msgid: m for m in messages}
    seen: set[bytes] = set()
    bad: list[str] = []
    files = duplicates = 0
    for maildir in maildirs:
        folder = os.path.join(maildir, "new")
        for name in os.listdir(folder):
            files += 1
            with open(os.path.join(folder, name), "rb") as fh:
                data = fh.read()
            ids = harness.header_values(data, "Message-ID")
            message = by_id.get(ids[0]) if ids else None
            if message is None:
                bad.append(f"{name}: unknown Message-ID {ids}")
            elif message.msgid in seen:
                duplicates += 1
            else:
                seen.add(message.msgid)
                if not data.endswith(message.data):
                    bad.append(f"{name}: content differs")
    ok = files == len(messages) == len(seen) and not bad and not duplicates
    return {"ok": ok, "files": files, "found": len(seen), "duplicates": duplicates, "bad": bad[:5]}


DELAYS = re.compile(r"postfix/(?:[\w-]+/)*[\w-]+\[\d+\]: [0-9A-F]+: to=<[^@>]+@([^>]+)>,.*? "
                    r"delays=[\d.]+/[\d.]+/[\d.]+/([\d.]+),.*?status=(\w+)")


def log_since(maillog: str, offset: int) -> str:
    with open(maillog, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", "replace")


def delivery_times(maillog: str, offset: int, domain: str) -> tuple[list[float], int]:
    """(d of each sent delivery in ms, number not sent) for `domain` in the log after offset."""
    sent, other = [], 0
    for match in DELAYS.finditer(log_since(maillog, offset)):
        if match.group(1) == domain:
            if match.group(3) == "sent":
                sent.append(float(match.group(2)) * 1e3)
            else:
                other += 1
    return sent, other


def trial(h: harness.Harness, variant: str, messages: list[Message], users: list[str],
          connections: int, timeout: float) -> dict:
    base = h.postfix_mail if variant == "virtual" else h.mail_base
    maildirs = reset_maildirs(base, variant, users)
    harness.wait_until(lambda: queue_files(h.spool) == 0, 120, "an empty queue", 0.05)
    offset = os.path.getsize(h.maillog)
    master, daemon = harness.postfix_master_pid(h.spool), h.lmtpd_pid()
    cpu0, daemon0 = proc_snapshot([master]), proc_snapshot([daemon])
    self0 = os.times()
    rcpts = [f"{user}@{domain_of(variant)}" for user in users]
    errors: list[str] = []
    connects: list[float] = []
    start = time.perf_counter()
    sender = threading.Thread(target=inject,
                              args=(h.smtp_port, messages, rcpts, connections, errors, connects))
    sender.start()
    done, progress = 0, (0, start)
    while True:
        done = count_new(maildirs)
        now = time.perf_counter()
        if done > progress[0]:
            progress = (done, now)
        stalled = now - progress[1] > STALL_SECONDS and not sender.is_alive()
        if done >= len(messages) or now - start > timeout or stalled or (errors and not sender.is_alive()):
            break
        time.sleep(0.005)
    last = now
    sender.join()
    time.sleep(0.3)  # let exited processes be reaped before the CPU snapshot
    cpu1, daemon1 = proc_snapshot([master]), proc_snapshot([daemon])
    self1 = os.times()
    first = min(connects) if connects else start
    postfix_cpu, by_program = cpu_used(cpu0, cpu1)
    daemon_cpu, _ = cpu_used(daemon0, daemon1)
    n = len(messages)
    d_ms, not_sent = delivery_times(h.maillog, offset, domain_of(variant))
    check = verify(maildirs, messages)
    complete = done >= n and not errors
    problems = []
    if not complete or not_sent:
        problems = [line for line in log_since(h.maillog, offset).splitlines()
                    if f"@{domain_of(variant)}>" in line and "status=sent" not in line and "to=<" in line][:5]
        harness.run([harness.POSTSUPER, "-c", h.etc, "-d", "ALL"], check=False)  # unblock the next trial
    return {"variant": variant, "n": n, "delivered": done, "complete": complete,
            "seconds": last - first, "msgs_per_s": n / (last - first) if complete else float("nan"),
            "server_cpu_ms_per_msg": (postfix_cpu + daemon_cpu) * 1e3 / n,
            "daemon_cpu_ms_per_msg": daemon_cpu * 1e3 / n,
            "cpu_by_program": {**{name: value * 1e3 / n for name, value in by_program.items()},
                               "LMTP daemon": daemon_cpu * 1e3 / n},
            "injector_cpu_ms_per_msg": (self1.user + self1.system - self0.user - self0.system) * 1e3 / n,
            "d_med_ms": statistics.median(d_ms) if d_ms else float("nan"), "not_sent": not_sent,
            "errors": errors, "verify": check, "problems": problems}


# --------------------------------------------------------------------------- profiling

def profile_lmtp(h: harness.Harness, messages: list[Message], users: list[str], connections: int,
                 py_spy: str, out_dir: str, gil: bool) -> None:
    """One unmeasured LMTP trial with `py-spy record` on the daemon; prints the functions with
    the most samples, self and inclusive. gil=False: every thread not idle (a thread blocked in
    fsync counts: where the wall time goes); gil=True: only the thread holding the GIL (where
    the Python CPU time goes)."""
    raw = os.path.join(out_dir, f"lmtpd-py-spy-{'gil' if gil else 'wall'}.txt")
    pid = h.lmtpd_pid()
    spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "1000" if gil else "250",
                            "--format", "raw", "--output", raw, "--nonblocking"] + (["--gil"] if gil else []),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    result = trial(h, "lmtp", messages, users, connections, 300)
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(10)
    print(f"\nprofile ({'GIL holder only' if gil else 'all non-idle threads'}): one LMTP trial with py-spy on "
          f"the daemon (pid {pid}): {result['msgs_per_s']:.1f} msg/s, daemon cpu "
          f"{result['daemon_cpu_ms_per_msg']:.2f} ms/msg (py-spy shares the cores); raw stacks: {raw}")
    if not os.path.exists(raw):
        print(f"  py-spy wrote nothing: {spy.stderr.read().decode(errors='replace')[-500:]}")
        return
    summarize_profile(raw)


def summarize_profile(raw: str, top: int = 18) -> None:
    """Collapsed stacks ('frame;frame;... count') -> top self and inclusive functions."""
    self_count: collections.Counter = collections.Counter()
    incl_count: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    with open(raw, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            count = int(count)
            frames = [re.sub(r" \((?:/[^)]*/)?([^/)]+)\)$", r" (\1)", f) for f in stack.split(";") if f]
            total += count
            if frames:
                threads[frames[0].split(" (")[0] if "thread" in frames[0].lower() else "?"] += count
                self_count[frames[-1]] += count
                for frame in set(frames):
                    incl_count[frame] += count
    if not total:
        print("  no samples")
        return
    print(f"  {total} samples (non-idle) in the daemon")
    print(f"  {'self %':>7}  function (file:line)")
    for frame, count in self_count.most_common(top):
        print(f"  {100.0 * count / total:7.1f}  {frame}")
    print(f"  {'incl %':>7}  function (file:line)")
    for frame, count in incl_count.most_common(top + 8):
        print(f"  {100.0 * count / total:7.1f}  {frame}")


# --------------------------------------------------------------------------- report

def summarize(variants: list[str], trials: dict[str, list[dict]]) -> dict:
    def median(values):
        values = [v for v in values if v == v]  # drop NaN
        return statistics.median(values) if values else float("nan")

    out = {}
    for v in variants:
        recs = trials[v]
        ratios = [x["msgs_per_s"] / y["msgs_per_s"] for x, y in zip(recs, trials.get("virtual", []))
                  if x["complete"] and y["complete"]]
        out[v] = {"msgs_per_s": median([r["msgs_per_s"] for r in recs]),
                  "per_round": [round(r["msgs_per_s"], 1) for r in recs],
                  "server_cpu_ms_per_msg": median([r["server_cpu_ms_per_msg"] for r in recs]),
                  "daemon_cpu_ms_per_msg": median([r["daemon_cpu_ms_per_msg"] for r in recs]),
                  "injector_cpu_ms_per_msg": median([r["injector_cpu_ms_per_msg"] for r in recs]),
                  "d_med_ms": median([r["d_med_ms"] for r in recs]),
                  "x_virtual": median(ratios),
                  "ok": all(r["complete"] and r["verify"]["ok"] and not r["not_sent"] for r in recs)}
    return out


def print_table(variants: list[str], summary: dict, cores: int) -> None:
    head = (f"{'variant':<8} {'ok':>3} {'msg/s':>7} {'srv cpu':>8} {'daemon':>7} {'cpu cap':>8} "
            f"{'d med':>7} {'x virtual':>9}  msg/s per round")
    print("\n" + head + "\n" + "-" * len(head))
    for v in variants:
        s = summary[v]
        cap = cores * 1000.0 / s["server_cpu_ms_per_msg"] if s["server_cpu_ms_per_msg"] else float("nan")
        print(f"{v:<8} {'ok' if s['ok'] else 'BAD':>3} {s['msgs_per_s']:7.1f} "
              f"{s['server_cpu_ms_per_msg']:8.2f} {s['daemon_cpu_ms_per_msg']:7.2f} {cap:8.0f} "
              f"{s['d_med_ms']:7.1f} {s['x_virtual']:9.2f}  {s['per_round']}")
    print(f"(msg/s: N / (last file in new/ - first SMTP connect), median over rounds; srv cpu: ms per\n"
          f" message of the Postfix tree + the LMTP daemon (daemon: its part); cpu cap = {cores} cores x 1000 /\n"
          f" srv cpu; d med: Postfix's delivery-agent time per message, ms; x virtual: msg/s / virtual(8)'s\n"
          f" msg/s in the same round, median over rounds)")


def print_cpu_breakdown(variants: list[str], trials: dict[str, list[dict]]) -> None:
    """CPU ms per message by program (median over rounds); '<x> children': what x reaped."""
    names = sorted({name for v in variants for r in trials[v] for name in r["cpu_by_program"]})
    rows = []
    for name in names:
        values = [statistics.median([r["cpu_by_program"].get(name, 0.0) for r in trials[v]])
                  for v in variants]
        if any(value >= 0.05 for value in values):
            rows.append((name, values))
    print("\nserver CPU ms per message, by program (median over rounds; 'children of pipe': the vdeliver runs\n"
          "that a live pipe(8) reaped; 'exited, reaped by master': Postfix processes that ended during the\n"
          "trial, e.g. pipe(8) or lmtp(8) after max_use deliveries, with what they had reaped):")
    print(f"  {'program':<26}" + "".join(f"{v:>9}" for v in variants))
    for name, values in sorted(rows, key=lambda row: -max(row[1])):
        print(f"  {name:<26}" + "".join(f"{value:9.2f}" for value in values))


def installed_stamp() -> float:
    """Newest mtime of the installed vdeliver (command and package): a reinstall shows."""
    command = harness.snippet_command()
    newest = os.stat(command).st_mtime
    for top in glob.glob(os.path.join(os.path.dirname(os.path.dirname(command)), "lib", "python3*",
                                      "site-packages", "vdeliver")):
        for dirpath, _, files in os.walk(top):
            for name in files:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--count", type=int, default=500, help="messages per trial (default 500)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the variants (default 3)")
    ap.add_argument("--connections", type=int, default=4, help="parallel SMTP sessions (default 4)")
    ap.add_argument("--recipients", type=int, default=10, help="mailboxes per variant (default 10)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list of " + ",".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per trial at most")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs, Maildirs)")
    ap.add_argument("--profile", action="store_true", help="one more LMTP trial under py-spy")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy-venv/bin/py-spy")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="add a line to vdeliver.cf (an experiment, e.g. lmtp_delivery_threads=20)")
    a = ap.parse_args(argv)
    variants = [v for v in a.variants.split(",") if v]
    if not variants or any(v not in VARIANTS for v in variants):
        ap.error(f"--variants: choose from {', '.join(VARIANTS)}")
    if a.profile and not os.access(a.py_spy, os.X_OK):
        ap.error(f"--profile needs py-spy ({a.py_spy} is missing: pip install py-spy into a scratch venv)")
    missing = harness.missing_prerequisites()
    if missing:
        print("e2e_bench: " + "; ".join(missing), file=sys.stderr)
        return 1

    installed = installed_stamp()
    messages = make_messages(a.count, a.seed)
    kinds = collections.Counter(m.kind for m in messages)
    sizes = sorted(len(m.data) for m in messages)
    users = [f"user{k}" for k in range(a.recipients)]
    h = harness.Harness(keep=a.keep, mode="pipe", dovecot=False)
    h.extra_domains = [domain_of(v) for v in VARIANTS]
    h.quotas = {}
    h.extra_main_cf = "delay_logging_resolution_limit = 3\n"   # d in ms, not 10 ms steps
    h.extra_vdeliver_cf = "".join(f"{item.partition('=')[0].strip()} = {item.partition('=')[2].strip()}\n"
                                  for item in a.set)
    for v in VARIANTS:
        for user in users:
            address, path = f"{user}@{domain_of(v)}", f"{domain_of(v)}/{user}/"
            h.postfix_table[address] = path        # smtpd's check; virtual(8)'s path
            if v != "virtual":
                h.vdeliver_table[address] = path
    h.transports[domain_of("virtual")] = "virtual:"
    h.transports[domain_of("lmtp")] = f"lmtp:unix:{h.lmtp_socket_name}"
    # pipe.bench.test: no entry, so virtual_transport (the snippet's vdeliver:) applies.

    trials: dict[str, list[dict]] = {v: [] for v in variants}
    cores = os.cpu_count() or 1
    started = time.time()
    try:
        h.start()
        print(f"e2e_bench: {a.count} messages x {a.rounds} rounds x {', '.join(variants)}; {a.recipients} "
              f"mailboxes each; {a.connections} SMTP sessions; sizes median {sizes[len(sizes) // 2]} B, "
              f"max {sizes[-1]} B ({dict(kinds)}); {cores} cores; load {os.getloadavg()[0]:.2f}\n"
              f"  postfix -c {h.etc} (master {harness.postfix_master_pid(h.spool)}), LMTP daemon "
              f"{h.lmtpd_pid()} on {h.lmtp_socket}", flush=True)
        warm = make_messages(5, a.seed + 1000)
        for v in variants:  # unmeasured: pipe processes, lmtp sessions, page cache
            result = trial(h, v, warm, users[:1], 1, 60)
            if not result["complete"] or not result["verify"]["ok"]:
                print(f"!! warm-up through {v} failed: {result}; see {h.maillog}")
                return 1
        for r in range(a.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:
                result = trial(h, v, messages, users, a.connections, a.timeout)
                result["round"] = r
                trials[v].append(result)
                flag = "" if result["verify"]["ok"] else f" VERIFY {result['verify']}"
                errors = f" ERRORS {result['errors']}" if result["errors"] else ""
                print(f"  round {r + 1} {v:<8} {result['delivered']}/{result['n']} in {result['seconds']:.2f}s: "
                      f"{result['msgs_per_s']:6.1f} msg/s, server cpu {result['server_cpu_ms_per_msg']:.2f} "
                      f"ms/msg (daemon {result['daemon_cpu_ms_per_msg']:.2f}; injector "
                      f"{result['injector_cpu_ms_per_msg']:.2f}), d med {result['d_med_ms']:.1f} ms{flag}{errors}",
                      flush=True)
                for line in result["problems"]:
                    print(f"    !! {line}")
        if a.profile:
            try:
                for gil in (False, True):
                    profile_lmtp(h, messages, users, a.connections, a.py_spy, h.root if a.keep else "/tmp", gil)
            except (TimeoutError, OSError, harness.HarnessError) as err:
                print(f"!! profiling failed: {err}")
    finally:
        h.stop()
        print(f"stopped: Postfix, and the LMTP daemon with SIGTERM (exit {h.lmtpd_exits}); "
              f"{time.time() - started:.0f}s in all", flush=True)
    if installed_stamp() != installed:
        print(f"!! {harness.snippet_command()} was reinstalled during the run: the numbers mix two versions")
    summary = summarize(variants, trials)
    print_table(variants, summary, cores)
    if all(trials[v] for v in variants):
        print_cpu_breakdown(variants, trials)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"tool": "e2e_bench", "time": datetime.datetime.now().isoformat(timespec="seconds"),
                       "count": a.count, "rounds": a.rounds, "connections": a.connections,
                       "recipients": a.recipients, "cores": cores, "summary": summary, "trials": trials},
                      fh, indent=1)
        print(f"json: {a.json}")
    ok = all(s["ok"] for s in summary.values()) and all(status == 0 for status in h.lmtpd_exits)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
