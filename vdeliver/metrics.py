"""The LMTP daemon's metrics: a Prometheus/OpenMetrics text endpoint (lmtp_metrics_listen).

Off by default: `current` is NULL, whose hooks do nothing (a call each, no import).
With `lmtp_metrics_listen = inet:127.0.0.1:9119` or `unix:/path`, enable() imports
prometheus_client (the `metrics` extra) and the daemon serves GET /metrics (any
path) on that socket from its event loop, one HTTP/1.0 answer per connection.

    vdeliver_lmtp_deliveries_total{outcome,status}   one per log line: sent, deferred
                                  or bounced, with the RFC 3463 status (2.0.0, 4.3.0, 5.1.1)
    vdeliver_lmtp_delivery_seconds                   histogram, sent deliveries (its
                                  count is the sent counter)
    vdeliver_lmtp_delivered_bytes_total              message bytes of the sent copies
    vdeliver_lmtp_sessions                           LMTP sessions open
    vdeliver_lmtp_deliveries_in_flight               copies being written now
    vdeliver_table_lookup_seconds{table}             histogram per table (type:name)
    vdeliver_table_lookup_errors_total{table}        lookups that could not look
    vdeliver_quota_warnings_total                    quota warnings delivered
    vdeliver_sieve_actions_total{action}             keep, fileinto, discard, reject,
                                  redirect, vacation, notify, error (from the delivery's notes)
    vdeliver_reloads_total{result}                   ok, failed

A unix socket is made as the LMTP socket is (daemon.bind_unix, daemon.chown_socket:
its mode from the umask at bind(), lmtp_socket_owner by a chown through an O_PATH
descriptor; a stale socket removed, anything else there refused): no symlink is
followed as root.

Never: change a delivery's outcome (every hook of the enabled Metrics swallows its
own errors, and the first is logged, once); import prometheus_client when disabled;
block the event loop on a slow scraper (each request has a time limit and a size limit).
"""
import time

from vdeliver.errors import ConfigError

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LOOKUP_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5)
REQUEST_TIMEOUT = 10       # seconds a scraper has to send its request
MAX_REQUEST = 8192         # bytes of request head read
SIEVE_NOTES = (("sieve: discarded", "discard"), ("sieve: redirect", "redirect"),
               ("sieve: vacation", "vacation"),
               ("sieve: notify", "notify"))


class _NoContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


NO_CONTEXT = _NoContext()


class Null:
    """Metrics off: every hook is a no-op."""
    enabled = False

    def session(self):
        return NO_CONTEXT

    def delivering(self):
        return NO_CONTEXT

    def sent(self, started, delivery=None):
        pass

    def failed(self, error):
        pass

    def sent_bytes(self, size):
        pass

    def reloaded(self, ok):
        pass

    def instrument(self, tables):
        return tables


NULL = Null()
current = NULL


def guarded(method):
    """A hook that never raises: the first error is logged, later ones are counted only."""
    def hook(self, *args):
        try:
            return method(self, *args)
        except Exception as error:  # noqa: BLE001 - a metric must never change an outcome
            self.broken(method.__name__, error)
            return None
    hook.__name__ = method.__name__
    return hook


class Gauge:
    """`with` block that counts itself in a gauge (never raises)."""
    __slots__ = ("metrics", "gauge")

    def __init__(self, metrics, gauge):
        self.metrics, self.gauge = metrics, gauge

    def __enter__(self):
        try:
            self.gauge.inc()
        except Exception as error:  # noqa: BLE001 - see guarded()
            self.metrics.broken("gauge", error)
        return self

    def __exit__(self, *exc):
        try:
            self.gauge.dec()
        except Exception as error:  # noqa: BLE001 - see guarded()
            self.metrics.broken("gauge", error)
        return False


class Metrics:
    enabled = True

    def __init__(self, log):
        import prometheus_client as prom
        self.prom = prom
        self.log = log              # log(text): the daemon's log, for the one error line
        self.said = False
        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        self.deliveries = prom.Counter("vdeliver_lmtp_deliveries", "Deliveries by outcome and"
                                       " RFC 3463 status", ("outcome", "status"), registry=registry)
        self.latency = prom.Histogram("vdeliver_lmtp_delivery_seconds", "Time to deliver one"
                                      " copy (sent only)", buckets=BUCKETS, registry=registry)
        self.bytes = prom.Counter("vdeliver_lmtp_delivered_bytes", "Message bytes of the copies"
                                  " delivered", registry=registry)
        self.sessions = prom.Gauge("vdeliver_lmtp_sessions", "LMTP sessions open",
                                   registry=registry)
        self.in_flight = prom.Gauge("vdeliver_lmtp_deliveries_in_flight", "Copies being"
                                    " delivered", registry=registry)
        self.lookups = prom.Histogram("vdeliver_table_lookup_seconds", "Table lookup time",
                                      ("table",), buckets=LOOKUP_BUCKETS, registry=registry)
        self.lookup_errors = prom.Counter("vdeliver_table_lookup_errors", "Table lookups that"
                                          " could not look", ("table",), registry=registry)
        self.quota_warnings = prom.Counter("vdeliver_quota_warnings", "Quota warnings delivered",
                                           registry=registry)
        self.sieve_actions = prom.Counter("vdeliver_sieve_actions", "Sieve actions by kind",
                                          ("action",), registry=registry)
        self.reloads = prom.Counter("vdeliver_reloads", "Configuration reloads by result",
                                    ("result",), registry=registry)
        self.sent_counter = self.deliveries.labels("sent", "2.0.0")
        self.children = {}  # (metric, labels) -> child: labels() costs more than inc()

    def child(self, metric, *labels):
        found = self.children.get((id(metric), labels))
        if found is None:
            found = self.children[(id(metric), labels)] = metric.labels(*labels)
        return found

    def broken(self, where, error):
        if not self.said:
            self.said = True
            try:
                self.log(f"metrics: {where}: {type(error).__name__}: {error}"
                         " (metrics may be wrong from now on; deliveries are not affected)")
            except Exception:  # noqa: BLE001 - nothing more to do
                pass

    def session(self):
        return Gauge(self, self.sessions)

    def delivering(self):
        return Gauge(self, self.in_flight)

    @guarded
    def sent(self, started, delivery=None):
        self.sent_counter.inc()
        self.latency.observe(time.monotonic() - started)
        if delivery is not None:
            self.count_notes(delivery)

    def count_notes(self, delivery):
        notes = delivery.notes
        if any(note.startswith("quota warning") and " delivered to " in note for note in notes):
            self.quota_warnings.inc()
        if not any(note.startswith("sieve: ran ") for note in notes):
            return
        for prefix, action in SIEVE_NOTES:
            for note in notes:
                if note.startswith(prefix):
                    self.child(self.sieve_actions, action).inc()
        if any(note.startswith("sieve: ") and " failed (" in note for note in notes):
            self.child(self.sieve_actions, "error").inc()
        box = delivery.mailbox.path.rstrip("/") + "/"
        for name in delivery.file.split(", "):
            if name.startswith(box):
                folder = name[len(box):].startswith(".")
                self.child(self.sieve_actions, "fileinto" if folder else "keep").inc()

    @guarded
    def failed(self, error):
        outcome = "bounced" if error.is_bounce else "deferred"
        self.child(self.deliveries, outcome, error.status).inc()
        if type(error).__name__ == "SieveReject":
            self.child(self.sieve_actions, "reject").inc()

    @guarded
    def sent_bytes(self, size):
        self.bytes.inc(size)

    @guarded
    def reloaded(self, ok):
        self.child(self.reloads, "ok" if ok else "failed").inc()

    def instrument(self, tables):
        """Time every lookup of a resolve.Tables (in place); returns it."""
        for name in ("mailbox", "quota", "home"):
            setattr(tables, name, [TimedTable(self, table) for table in getattr(tables, name)])
        return tables

    def exposition(self):
        return self.prom.generate_latest(self.registry), self.prom.CONTENT_TYPE_LATEST


class TimedTable:
    """A table whose lookups are timed; everything else is the table's own."""

    def __init__(self, metrics, table):
        self._table, self._metrics = table, metrics
        label = table.spec if len(table.spec) <= 100 else table.spec[:97] + "..."
        self._histogram = metrics.lookups.labels(label)
        self._errors = metrics.lookup_errors.labels(label)

    def __getattr__(self, name):
        return getattr(self._table, name)

    def lookup(self, key):
        started = time.perf_counter()
        try:
            return self._table.lookup(key)
        except Exception:
            self.count(self._errors.inc)
            raise
        finally:
            self.count(self._histogram.observe, time.perf_counter() - started)

    def count(self, function, *args):
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - see guarded()
            self._metrics.broken("table lookup", error)


def parse_listen(spec):
    """`unix:/path` or `inet:host:port` -> (family, address), as lmtp_listen."""
    from vdeliver import daemon
    try:
        return daemon.parse_listen(spec)
    except ConfigError:
        raise ConfigError(f"lmtp_metrics_listen: {spec!r} is not unix:/path or inet:host:port")\
            from None


def bind(config):
    """The listening socket of lmtp_metrics_listen (as the starting user), or None when unset;
    a unix socket made as the LMTP ones are (daemon.listen_socket: lmtp_socket_mode at bind,
    lmtp_socket_owner through a descriptor that did not follow a link)."""
    from vdeliver import daemon
    spec = config.get("lmtp_metrics_listen").strip()
    if not spec:
        return None
    family, where = parse_listen(spec)
    owner = config.get("lmtp_socket_owner").strip()
    return daemon.listen_socket("lmtp_metrics_listen", spec, family, where,
                                daemon.socket_mode(config, "lmtp_socket_mode"),
                                lambda: daemon.owner_ids(owner) if owner else None)


def enable(log):
    """Metrics on (after the daemon dropped root): `current` becomes a Metrics."""
    global current
    current = Metrics(log)
    return current


async def serve(sock):
    """Answer scrapes on sock from the running event loop; returns the asyncio server."""
    import asyncio
    import socket

    async def answer(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            body, kind = current.exposition()
            head = (f"HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + body)
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except Exception:  # noqa: BLE001 - a bad or slow scraper only loses its answer
            pass
        finally:
            writer.close()
    if sock.family == socket.AF_UNIX:
        return await asyncio.start_unix_server(answer, sock=sock, limit=MAX_REQUEST)
    return await asyncio.start_server(answer, sock=sock, limit=MAX_REQUEST)
