"""The LMTP daemon's socketmap service: its open tables, for the pipe command and Postfix.

A pipe delivery that opens a pgsql:, mysql: or ldap: table imports the driver
and connects, 45-240 ms per message. The daemon has those tables open
already; with `socketmap_listen = unix:/path` (or `inet:host:port`) it also
answers Sendmail's socketmap protocol (Postfix's socketmap_table(5)) on that
socket, and the pipe command reads `socketmap:unix:/path:virtual_mailbox_maps`
(tables/socketmap.py) with no driver at all. Postfix can use the same socket
(`postmap -q KEY socketmap:unix:/path:NAME`; smtpd's virtual_mailbox_maps).
It lives in the LMTP daemon rather than in a service of its own because the
daemon already has everything it needs: tables opened once and reopened on
SIGHUP or a changed file, the privilege drop, the pid file, the lookup
threads and the tables' pools of connections.

What it exports (socketmap_maps), each under a name:
  virtual_mailbox_maps, virtual_mailbox_quota_maps, virtual_home_maps
      the daemon's own list, searched as virtual(8) does (resolve.search():
      user+ext@domain, user@domain, @domain, quoted forms first). Postfix
      and vdeliver send a socketmap only the full address (it is a pattern
      table), so this is what makes the socket answer like the list itself.
  NAME=type:table
      one table of its own, asked the key as `postmap -q KEY type:table`
      would (folded for fixed-key tables), nothing derived.

Protocol (dict_sockmap.c is the client): each request a netstring `NAME KEY`,
each reply one netstring: `OK value`, `NOTFOUND `, `TEMP reason`, `TIMEOUT
reason` (the lookup took over socketmap_lookup_timeout), `PERM reason` (an
unknown NAME, a request without a key, a table's configuration error).
Requests on one connection are answered in order, one at a time. A key
Postfix would never send -- over 10000 bytes, a NUL, not UTF-8 under
smtputf8_enable = yes, empty -- is NOTFOUND, as Postfix's client treats it
("does not exist"). A value that would make a reply over 100000 bytes is
TEMP (the client could not read it).

Limits a hostile client meets: a request is at most MAX_REQUEST bytes (a
longer netstring length, a malformed netstring, or a request not complete
within socketmap_idle_timeout closes the connection: at most about twice
MAX_REQUEST buffered per connection); socketmap_max_connections at once
(more are closed at once); each connection is its own asyncio protocol,
driven by the event loop, so a slow one blocks no other. Lookups run on the
daemon's lookup threads (lmtp_delivery_threads of them), beside the LMTP
sessions' and the delivery threads' lookups: every table is safe for that by
itself (tables/__init__.py), a database table through its pool of
connections.

Never: run a lookup on the event loop; answer NOTFOUND for a lookup that
failed; close tables a lookup still uses (each request holds its Settings);
bind a socket by following a symlink as root (daemon.bind_unix/chown_socket);
export a list that asks this very socket (it would wait for itself).
"""
import asyncio
import time

from vdeliver import address, resolve
from vdeliver.errors import ConfigError, DeliveryError, internal_error, one_line

SEARCHED = {"virtual_mailbox_maps": "mailbox", "virtual_mailbox_quota_maps": "quota",
            "virtual_home_maps": "home"}
MAX_QUERY = 10000                       # Postfix's socketmap_max_query_size: longer keys: NOTFOUND
MAX_NAME = 100
MAX_REQUEST = MAX_NAME + 1 + MAX_QUERY  # bytes in one request netstring
MAX_REPLY = 100000                      # Postfix's socketmap_max_reply_size
MAX_LENGTH_DIGITS = len(str(MAX_REQUEST))


def open_exports(config, tables):
    """socketmap_maps -> {name: ("search", Tables attribute) | ("table", table)}; the
    tables of the second kind are opened here. ConfigError for a bad entry."""
    exports = {}
    if not config.get("socketmap_listen").strip():
        return exports
    own = config.get("socketmap_listen").strip()
    for parameter in SEARCHED:  # the LMTP side's lookups run on the thread that serves these
        for spec in config.get_list(parameter):
            refuse_loop(spec, own)
    try:
        for item in config.get_list("socketmap_maps"):
            name, equals, spec = item.partition("=")
            name, spec = name.strip(), spec.strip()
            if not name or len(name) > MAX_NAME or not name.isprintable() or ":" in name:
                raise ConfigError(f"socketmap_maps: bad name in {item!r}")
            if name in exports:
                raise ConfigError(f"socketmap_maps: {name} is listed twice")
            if equals:
                refuse_loop(spec, own)
                exports[name] = ("table", resolve.open_specs(config, [spec])[0])
            elif name in SEARCHED:
                exports[name] = ("search", SEARCHED[name])
            else:
                raise ConfigError(f"socketmap_maps: {name}: expected one of "
                                  f"{', '.join(SEARCHED)} or NAME=type:table")
    except BaseException:
        resolve.close_tables([table for kind, table in exports.values() if kind == "table"])
        raise
    return exports


def refuse_loop(spec, own):
    if f"socketmap:{own}:" in spec:
        raise ConfigError(f"{spec} is this daemon's own socketmap_listen:"
                          " a lookup would wait for itself")


def bind(config, uid, gid):
    """The listening sockets of socketmap_listen, bound as the daemon's starting user; a
    unix socket gets socketmap_socket_mode at bind() and, as root, the owner
    socketmap_socket_owner (default: the user the daemon runs as) through a descriptor
    that did not follow a link (daemon.listen_socket, as for lmtp_listen)."""
    from vdeliver import daemon
    sockets = []
    mode = daemon.socket_mode(config, "socketmap_socket_mode")
    owner = config.get("socketmap_socket_owner").strip()
    for spec in config.get_list("socketmap_listen"):
        try:
            family, where = daemon.parse_listen(spec)
        except ConfigError:
            raise ConfigError(f"socketmap_listen: {spec!r} is not unix:/path or"
                              " inet:host:port") from None
        sockets.append(daemon.listen_socket(
            "socketmap_listen", spec, family, where, mode,
            lambda: daemon.owner_ids(owner) if owner else (uid, gid)))
    return sockets


async def start(server, sockets, lookup_pool):
    """Serve socketmap requests on sockets; the asyncio servers (daemon.py closes them).
    server: the lmtp.Server, whose current Settings each request uses."""
    service = Service(server, lookup_pool)
    loop = asyncio.get_running_loop()
    listeners = []
    for sock in sockets:
        if sock.family == 1:  # AF_UNIX
            listeners.append(await loop.create_unix_server(service.connection, sock=sock))
        else:
            listeners.append(await loop.create_server(service.connection, sock=sock))
    return listeners


class ProtocolError(Exception):
    """The client broke the netstring framing or a limit: the connection is closed."""


class Service:
    """What all connections share: the daemon's Server (its current Settings), the
    lookup threads, the count of connections."""

    def __init__(self, server, lookup_pool):
        self.server = server
        self.lookup_pool = lookup_pool
        self.connections = 0
        self.checked = 0.0  # when a changed table file was last looked for

    def connection(self):
        return Connection(self)

    def limits(self):
        """(max connections, idle timeout, lookup timeout) of the current configuration."""
        settings = self.server.settings
        limits = getattr(settings, "socketmap_limits", None)
        if limits is None:
            config = settings.config
            limits = settings.socketmap_limits = (
                config.get_int("socketmap_max_connections"),
                config.get_time("socketmap_idle_timeout"),
                config.get_time("socketmap_lookup_timeout"))
        return limits

    def refresh(self):
        """At most once a second, let the daemon reload a changed table file (as before an
        LMTP transaction); this request is answered with the tables it has."""
        now = time.monotonic()
        if now - self.checked >= 1:
            self.checked = now
            task = asyncio.ensure_future(self.server.refresh())
            task.add_done_callback(lambda done: done.cancelled() or done.exception())

    def answer(self, request, reply):
        """Answer one request: reply(bytes) is called once, now or when the lookup is done."""
        self.refresh()
        name, space, key = request.partition(b" ")
        settings = self.server.settings
        export = settings.tables.exports.get(name.decode("utf-8", "replace"))
        if export is None:
            return reply(b"PERM unknown socketmap name "
                         + one_line(name.decode("utf-8", "replace"), 100).encode())
        if not space:
            return reply(b"PERM request without a key")
        key = request_key(key)
        if key is None:
            return reply(b"NOTFOUND ")
        if in_memory(settings, export):  # as lmtp.py's RCPT: no thread hop for these
            try:
                return reply(value_reply(look_up(settings, export, key)))
            except DeliveryError as error:
                return reply(error_reply(error))
        settings.acquire()  # its tables stay open until the lookup thread is done with them
        loop = asyncio.get_running_loop()
        answered = []

        def once(data):
            if not answered:
                answered.append(True)
                reply(data)

        def done(future):  # on the event loop
            settings.release()
            timer.cancel()
            try:
                once(value_reply(future.result()))
            except DeliveryError as error:
                once(error_reply(error))
            except Exception as error:  # noqa: BLE001 - a bug: temporary, said to the client
                once(b"TEMP " + internal_error(error).text().encode("utf-8", "replace"))

        timeout = self.limits()[2]
        timer = loop.call_later(timeout, once, b"TIMEOUT lookup not done within %ds" % timeout)
        try:
            future = self.lookup_pool.submit(look_up, settings, export, key)
        except RuntimeError:  # the pool is shut down: the daemon is stopping
            settings.release()
            timer.cancel()
            return once(b"TEMP the lookup service is stopping")
        future.add_done_callback(lambda future: loop.call_soon_threadsafe(done, future))
        return None


class Connection(asyncio.Protocol):
    """One client: netstring requests in, one reply each, in order, one at a time.

    Bounded: the input buffer holds at most one request beyond the one being answered
    (reading pauses meanwhile, and while the client does not read its replies); a
    malformed or oversized netstring, or no complete request within the idle timeout,
    closes the connection without a reply."""

    def __init__(self, service):
        self.service = service
        self.transport = None
        self.buffer = bytearray()
        self.busy = False          # a request is being answered
        self.writing = True        # the client reads what we write
        self.paused = False
        self.timer = None

    def connection_made(self, transport):
        self.transport = transport
        self.service.connections += 1
        max_connections, idle, _ = self.service.limits()
        if self.service.connections > max_connections:
            transport.abort()
            return
        self.idle = idle
        self.timer = asyncio.get_running_loop().call_later(idle, self.expire)

    def connection_lost(self, exc):
        self.service.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def expire(self):
        if self.busy:  # a slow lookup is not the client's idleness
            self.timer = asyncio.get_running_loop().call_later(self.idle, self.expire)
        elif self.transport is not None:
            self.transport.abort()

    def data_received(self, data):
        self.buffer += data
        self.next_request()

    def pause_writing(self):
        self.writing = False

    def resume_writing(self):
        self.writing = True
        self.next_request()

    def next_request(self):
        if self.transport is None or self.busy or not self.writing:
            return self.flow()
        try:
            request = take_netstring(self.buffer)
        except ProtocolError:
            self.transport.abort()
            return None
        if request is None:
            return self.flow()
        self.busy = True
        self.timer.cancel()
        self.service.answer(request, self.reply)
        return self.flow()

    def reply(self, data):
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(b"%d:%s," % (len(data), data))
        self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.idle, self.expire)
        self.next_request()

    def flow(self):
        """Pause reading while a whole request waits, or the client is not reading."""
        if self.transport is None:
            return
        full = len(self.buffer) > MAX_REQUEST + MAX_LENGTH_DIGITS + 2 or not self.writing
        if full and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        elif not full and self.paused:
            self.transport.resume_reading()
            self.paused = False


def take_netstring(buffer):
    """Remove one complete netstring from the front of buffer and return its payload;
    None if it is not complete yet; ProtocolError if malformed or over MAX_REQUEST."""
    colon = buffer.find(b":", 0, MAX_LENGTH_DIGITS + 1)
    if colon < 0:
        if len(buffer) > MAX_LENGTH_DIGITS or not bytes(buffer).isdigit():
            if buffer:
                raise ProtocolError("bad netstring length")
        return None
    digits = bytes(buffer[:colon])
    if not digits or not digits.isdigit():
        raise ProtocolError("bad netstring length")
    length = int(digits)
    if length > MAX_REQUEST:
        raise ProtocolError(f"request of {length} bytes")
    end = colon + 1 + length
    if len(buffer) <= end:
        return None
    if buffer[end] != ord(","):
        raise ProtocolError("netstring without its ','")
    payload = bytes(buffer[colon + 1:end])
    del buffer[:end + 1]
    return payload


def error_reply(error):
    """A table's DeliveryError: PERM for a configuration error (4.3.5), else TEMP."""
    word = b"PERM " if error.status == "4.3.5" else b"TEMP "
    return word + one_line(error.text(), 500).encode("utf-8", "replace")


def value_reply(value):
    if value is None:
        return b"NOTFOUND "
    reply = b"OK " + value.encode("utf-8", "surrogateescape")
    if len(reply) > MAX_REPLY:
        return b"TEMP result longer than the socketmap reply limit"
    return reply


def in_memory(settings, export):
    """True when every table the export asks is answered from memory (lmtp.IN_MEMORY_TABLES)."""
    from vdeliver.lmtp import IN_MEMORY_TABLES
    kind, target = export
    tables = [target] if kind == "table" else getattr(settings.tables, target)
    return all(table.spec.split(":", 1)[0] in IN_MEMORY_TABLES for table in tables)


def request_key(raw):
    """The key as text, or None for one Postfix would never send (answered NOTFOUND)."""
    if not raw or len(raw) > MAX_QUERY or b"\0" in raw:
        return None
    if address.SMTPUTF8_ENABLE:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return raw.decode("utf-8", "surrogateescape")


def look_up(settings, export, key):
    """On a lookup thread: the value for key, or None."""
    kind, target = export
    tables = settings.tables
    if kind == "table":
        return target.lookup(address.fold(key) if target.fixed_keys else key)
    folded = address.fold(address.unquote_local_part(key))
    delimiter = settings.config.get("recipient_delimiter")
    found = resolve.search(getattr(tables, target), folded, delimiter)
    return None if found is None else found[2]
