#!/usr/bin/env python3
"""cluster_bench.py - several delivery hosts behind one Postfix: throughput with 1, 2 and 3
hosts, and the duplicates a kill -9 and a SIGSTOP leave. A correctness run, not a scaling
claim: every host, Postfix and PostgreSQL share this machine's cores.

The set-up is tests/cluster's (cluster.py): hosts h1..h3 in their own network, UTS, PID and
mount namespaces, each `vdeliver --lmtp` on 10.213.0.1N:24, a shared loop-mounted ext4 (or
--storage moosefs), every table in one private PostgreSQL, a private Postfix in front
(tests/e2e/harness.py) configured from the README's "Several hosts" blocks.

Throughput: for 1, 2, 3 hosts (transport lmtp:inet:vdpoolN:24, a name with the first N
hosts' addresses; the others idle), interleaved over --rounds rounds, N messages (as the
cluster tests send them: every third to one shared mailbox under a quota, the rest over 50
users) over 4 SMTP sessions; msg/s = N / (queue empty - first connect). The median over
rounds, and each round's figure, are printed.

Faults: one run of --fault-messages (5000) over the three hosts with the cluster test's
faults (kill -9 h3 at 6 s, h3 back at 14 s, SIGSTOP h2 at 18 s, SIGCONT at 30 s); it
prints the files, the duplicates (each message found twice, with Postfix's "may be sent
more than once" for it) and the per-host counts, and checks what the test checks.

Usage (root; after scripts/setup-e2e, scripts/setup-databases, scripts/setup-cluster and
scripts/install):
  VDELIVER_BIN=/opt/vdeliver/bin/vdeliver /usr/bin/python3 bench/cluster_bench.py
      [-n 1500] [--rounds 3] [--fault-messages 5000] [--storage ext4|moosefs]
"""
import argparse
import os
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "cluster"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import cluster  # noqa: E402

SHARED = f"shared@{cluster.DOMAIN}"


def recipients(c, first, count):
    return {seq: SHARED if seq % 3 == 0 else c.users[seq % len(c.users)]
            for seq in range(first, first + count)}


def one_trial(c, postfix, hosts, first, count):
    c.set_transports({cluster.DOMAIN: f"lmtp:inet:vdpool{hosts}:24"})
    wanted = recipients(c, first, count)
    started = time.monotonic()
    accepted, refused, _ = cluster.burst(postfix, wanted)
    cluster.drain(postfix)
    seconds = time.monotonic() - started
    if refused or len(accepted) != count:
        raise SystemExit(f"{len(refused)} refused in the {hosts}-host trial")
    return count / seconds


def fault_run(c, postfix, first, count):
    c.set_transports({cluster.DOMAIN: "lmtp:inet:vdpool:24"})
    wanted = recipients(c, first, count)
    before = {r.name for r in cluster.delivered(c, sorted(set(wanted.values())))}
    faults = [(6, lambda: c.hosts[2].kill()), (14, lambda: c.replace(3)),
              (18, lambda: c.hosts[1].signal(signal.SIGSTOP)),
              (30, lambda: c.hosts[1].signal(signal.SIGCONT))]
    started = time.monotonic()
    accepted, refused, _ = cluster.burst(postfix, wanted, faults)
    cluster.drain(postfix)
    seconds = time.monotonic() - started
    records = [r for r in cluster.delivered(c, sorted(set(wanted.values())))
               if r.seq in wanted and r.name not in before]
    copies = {}
    for r in records:
        copies.setdefault(r.seq, []).append(r)
    lost = set(wanted) - set(copies)
    ambiguous = cluster.ambiguous_attempts(postfix)
    duplicates = {seq: rs for seq, rs in copies.items() if len(rs) > 1}
    faulted = {c.hosts[1].address, c.hosts[2].address}
    explained = sum(1 for seq, rs in duplicates.items()
                    if len(rs) == 2 and ambiguous.get(accepted[seq], set()) & faulted)
    per_host = {}
    for r in records:
        per_host[r.host] = per_host.get(r.host, 0) + 1
    usage, store = cluster.maildirsize_totals(c, SHARED), cluster.store_totals(c, SHARED)
    exact = usage == store
    return {"messages": count, "accepted": len(accepted), "refused": len(refused),
            "files": len(records), "lost": len(lost), "duplicates": len(duplicates),
            "explained": explained, "per_host": per_host, "maildirsize_exact": exact,
            "maildirsize": f"{usage} (bytes, messages) vs new/+cur/ {store}",
            "seconds": seconds}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1500, help="messages per throughput trial")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fault-messages", type=int, default=5000)
    parser.add_argument("--storage", default="ext4", choices=("ext4", "directory", "moosefs"))
    args = parser.parse_args(argv)
    vdeliver = os.environ.get("VDELIVER_BIN", "/opt/vdeliver/bin/vdeliver")
    c = cluster.Cluster(3, storage=args.storage, vdeliver=vdeliver,
                        quota_users={SHARED: "10G"})
    postfix = None
    try:
        c.start()
        postfix = cluster.postfix_in_front(c, [SHARED])
        postfix.start()
        cluster.write_chroot_hosts(postfix, c)
        results = {1: [], 2: [], 3: []}
        seq = 1_000_000
        one_trial(c, postfix, 3, seq, 200)  # warm-up: connections, caches, first mailboxes
        seq += 200
        for rounds in range(args.rounds):
            order = [1, 2, 3][rounds % 3:] + [1, 2, 3][:rounds % 3]
            for hosts in order:
                results[hosts].append(one_trial(c, postfix, hosts, seq, args.n))
                seq += args.n
        faults = fault_run(c, postfix, seq, args.fault_messages) if args.fault_messages else None
    finally:
        if postfix is not None:
            postfix.stop()
        c.stop()
    print(f"cluster_bench -n {args.n} --rounds {args.rounds} --fault-messages "
          f"{args.fault_messages} --storage {args.storage}, {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} cores shared by the hosts, Postfix, PostgreSQL and the injector")
    print(f"{'hosts':>5} {'msg/s':>8}  per round")
    for hosts, values in results.items():
        if not values:
            continue
        print(f"{hosts:>5} {statistics.median(values):8.1f}  "
              + ", ".join(f"{v:.1f}" for v in values))
    if faults:
        print(f"\nfault run: {faults['messages']} messages over 3 hosts, kill -9 h3 at 6 s "
              f"(back at 14 s), SIGSTOP h2 18-30 s, {faults['seconds']:.1f} s to an empty queue")
        for key in ("accepted", "refused", "files", "lost", "duplicates", "explained",
                    "maildirsize_exact", "maildirsize", "per_host"):
            print(f"  {key:18} {faults[key]}")
        print("  (explained: found exactly twice, and Postfix logged 'may be sent more than "
              "once' for that queue id on a faulted host)")
        print("  (maildirsize may be short by a delivery killed between its link and its usage"
              " line; quota.py's next recalculation repairs it)")
        if faults["lost"] or faults["duplicates"] != faults["explained"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
