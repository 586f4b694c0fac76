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
thread that owns the table connections.

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
(more are closed at once); each connection is its own task, so a slow one
blocks no other. Lookups run on the daemon's one lookup thread (the
connections of virtual_mailbox_maps belong to it), those of the quota and
home lists also under Tables.quota_lock (the delivery threads use them).

Never: run a lookup on the event loop; answer NOTFOUND for a lookup that
failed; close tables a lookup still uses (each request holds its Settings);
bind a socket by following a symlink as root (daemon.bind_unix/chown_socket);
export a list that asks this very socket (it would wait for itself).
"""
import asyncio

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
    that did not follow a link (daemon.py does the same for lmtp_listen)."""
    import os
    import socket
    from vdeliver import daemon
    sockets = []
    mode = config.get("socketmap_socket_mode").strip()
    if not mode or any(ch not in "01234567" for ch in mode):
        raise ConfigError(f"socketmap_socket_mode = {mode}: expected an octal mode like 0660")
    owner = config.get("socketmap_socket_owner").strip()
    for spec in config.get_list("socketmap_listen"):
        try:
            family, where = daemon.parse_listen(spec)
        except ConfigError:
            raise ConfigError(f"socketmap_listen: {spec!r} is not unix:/path or"
                              " inet:host:port") from None
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_UNIX:
                daemon.remove_stale_socket(where)
                daemon.bind_unix(sock, where, int(mode, 8))
                if os.geteuid() == 0:
                    daemon.chown_socket(where, *(daemon.owner_ids(owner) if owner else (uid, gid)))
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(where)
            sock.listen(128)
        except OSError as err:
            sock.close()
            raise ConfigError(f"socketmap_listen {spec}: {err.strerror}") from None
        except (ConfigError, KeyError) as error:
            sock.close()
            text = error.detail if isinstance(error, ConfigError) else f"unknown owner {owner}"
            raise ConfigError(f"socketmap_listen {spec}: {text}") from None
        sockets.append(sock)
    return sockets


async def start(server, sockets, lookup_pool):
    """Serve socketmap requests on sockets; the asyncio servers (daemon.py closes them).
    server: the lmtp.Server, whose current Settings each request uses."""
    service = Service(server, lookup_pool)
    listeners = []
    for sock in sockets:
        if sock.family == 1:  # AF_UNIX
            listeners.append(await asyncio.start_unix_server(service.handle, sock=sock,
                                                             limit=MAX_REQUEST + 64))
        else:
            listeners.append(await asyncio.start_server(service.handle, sock=sock,
                                                        limit=MAX_REQUEST + 64))
    return listeners


class ProtocolError(Exception):
    """The client broke the netstring framing or a limit: the connection is closed."""


class Service:
    def __init__(self, server, lookup_pool):
        self.server = server
        self.lookup_pool = lookup_pool
        self.connections = 0

    async def handle(self, reader, writer):
        config = self.server.settings.config
        self.connections += 1
        try:
            if self.connections > config.get_int("socketmap_max_connections"):
                return
            idle = config.get_time("socketmap_idle_timeout")
            while True:
                try:
                    request = await asyncio.wait_for(read_request(reader), idle)
                except (asyncio.TimeoutError, ProtocolError, asyncio.IncompleteReadError,
                        asyncio.LimitOverrunError):
                    return
                if request is None:
                    return
                reply = await self.answer(request)
                writer.write(b"%d:%s," % (len(reply), reply))
                await asyncio.wait_for(writer.drain(), idle)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        except Exception as error:  # noqa: BLE001 - a bug ends this connection, logged; the client defers
            from vdeliver import log
            log.log(self.server.settings.config,
                    f"socketmap connection ended by {internal_error(error).text()}", "error")
        finally:
            self.connections -= 1
            writer.close()

    async def answer(self, request):
        name, space, key = request.partition(b" ")
        name = name.decode("utf-8", "replace")
        await self.server.refresh()  # a changed table file is reopened, as for LMTP
        settings = self.server.settings.acquire()
        released = False
        try:
            export = settings.tables.exports.get(name)
            if export is None:
                return b"PERM unknown socketmap name " + one_line(name, 100).encode()
            if not space:
                return b"PERM request without a key"
            key = request_key(key)
            if key is None:
                return b"NOTFOUND "
            if in_memory(settings, export):  # as lmtp.py's RCPT: no thread hop for these
                try:
                    value = look_up(settings, export, key)
                except DeliveryError as error:
                    return error_reply(error)
                return value_reply(value)
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self.lookup_pool, look_up, settings, export, key)
            future.add_done_callback(lambda _: settings.release())  # tables stay open till then
            released = True
            timeout = settings.config.get_time("socketmap_lookup_timeout")
            try:
                value = await asyncio.wait_for(asyncio.shield(future), timeout)
            except asyncio.TimeoutError:
                return b"TIMEOUT lookup not done within %ds" % timeout
            except DeliveryError as error:
                return error_reply(error)
            except Exception as error:  # noqa: BLE001 - a bug, or the pool shut down: temporary
                return b"TEMP " + internal_error(error).text().encode("utf-8", "replace")
            return value_reply(value)
        finally:
            if not released:
                settings.release()


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


async def read_request(reader):
    """One netstring's payload; None at EOF before it; ProtocolError when malformed or too long."""
    try:
        head = await reader.readuntil(b":")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise ProtocolError("EOF inside a netstring length") from None
    digits = head[:-1]
    if not digits or len(digits) > MAX_LENGTH_DIGITS or not digits.isdigit():
        raise ProtocolError("bad netstring length")
    length = int(digits)
    if length > MAX_REQUEST:
        raise ProtocolError(f"request of {length} bytes")
    data = await reader.readexactly(length + 1)
    if data[-1:] != b",":
        raise ProtocolError("netstring without its ','")
    return data[:-1]


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
    """On the lookup thread: the value for key, or None."""
    kind, target = export
    tables = settings.tables
    if kind == "table":
        return target.lookup(address.fold(key) if target.fixed_keys else key)
    folded = address.fold(address.unquote_local_part(key))
    delimiter = settings.config.get("recipient_delimiter")
    if target == "mailbox":  # the lookup thread's own connections
        found = resolve.search(tables.mailbox, folded, delimiter)
    else:  # the delivery threads ask these too, under the lock
        with tables.quota_lock:
            found = resolve.search(getattr(tables, target), folded, delimiter)
    return None if found is None else found[2]
