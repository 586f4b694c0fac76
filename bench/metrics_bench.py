"""What the LMTP daemon's metrics hooks (vdeliver/metrics.py) cost per delivery, off and on.

    /opt/vdeliver/bin/python bench/metrics_bench.py [-n DELIVERIES] [--trials 5]

One delivery's hooks, in the order lmtp.py and the tables call them: a session
opened and closed, three table lookups (resolve.search's derived keys), the
in-flight gauge, the sent counter and latency histogram (with a delivery whose
notes are read for Sieve actions and quota warnings), the bytes counter. Runs
them DELIVERIES times with metrics off (metrics.NULL, the default) and on
(metrics.Metrics, prometheus_client), interleaved for TRIALS trials, and prints
the median time per delivery of each, beside a bare loop with a table lookup
only (what the hooks add to). A wall-clock in-process figure: run it on a quiet
machine, or read the ratio; a delivery itself costs ~1 ms (fsyncs).
Writes nothing.
"""
import argparse
import statistics
import time

from vdeliver import deliver, metrics, resolve


class Table:
    spec = "texthash:/etc/vdeliver/mailboxes"
    fixed_keys = True

    def lookup(self, key):
        return None if key != "bob@example.com" else "example.com/bob/"


def one_delivery(m, tables, delivery):
    with m.session():
        for key in ("bob+x@example.com", "bob@example.com", "@example.com"):
            tables.mailbox[0].lookup(key)
        with m.delivering():
            started = time.monotonic()
        m.sent(started, delivery)
        m.sent_bytes(4096)


def run(m, count):
    tables = m.instrument(resolve.Tables([Table()]))
    mailbox = resolve.Mailbox("bob@example.com", Table.spec, "bob@example.com", "example.com/bob/")
    delivery = deliver.Delivery(mailbox, "example.com/bob/new/1", ["sieve: ran a.sieve"])
    started = time.perf_counter()
    for _ in range(count):
        one_delivery(m, tables, delivery)
    return (time.perf_counter() - started) / count


def bare(count):
    table = Table()
    started = time.perf_counter()
    for _ in range(count):
        for key in ("bob+x@example.com", "bob@example.com", "@example.com"):
            table.lookup(key)
        time.monotonic()
    return (time.perf_counter() - started) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="deliveries per trial")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    on = metrics.Metrics(print)
    times = {"bare (3 lookups)": [], "metrics off": [], "metrics on": []}
    for _ in range(args.trials):
        times["bare (3 lookups)"].append(bare(args.n))
        times["metrics off"].append(run(metrics.NULL, args.n))
        times["metrics on"].append(run(on, args.n))
    base = statistics.median(times["bare (3 lookups)"])
    print(f"{'hooks of one delivery':24} {'median us':>10} {'added us':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24} {median * 1e6:10.2f} {(median - base) * 1e6:9.2f}")


if __name__ == "__main__":
    main()
