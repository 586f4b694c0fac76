"""socketmap: a Sendmail-style socketmap server as a table (Postfix's dict_sockmap.c).

    socketmap:unix:/path:name        socketmap:inet:host:port:name

The name after the last `:` goes on the wire; the rest is the endpoint
(`local:` is `unix:`, as in Postfix's auto_clnt). One request per lookup, a
netstring `name key`; one netstring reply: `OK data`, `NOTFOUND `, `TEMP
reason`, `TIMEOUT reason`, `PERM reason`. This is how the pipe command asks
the LMTP daemon's socketmap service (socketmapd.py) for a mailbox without
importing any database driver: only _socket is loaded (0.1 ms; `socket`
would cost 6 ms).

Semantics as dict_sockmap.c:
  - a pattern table (DICT_FLAG_PATTERN): it sees only the full address, never
    user@domain or @domain (socketmapd's virtual_mailbox_maps export does
    virtual(8)'s whole search on its side);
  - the key is sent as given (resolve.py has folded it already);
  - a key longer than MAX_QUERY (10000) bytes, or not UTF-8 under
    smtputf8_enable = yes, is "not found" without asking (dict_sockmap.c,
    dict_utf8.c);
  - a reply longer than MAX_REPLY (100000) bytes, a malformed netstring, a
    connection that fails or is closed, TEMP, TIMEOUT and any unknown word:
    TableError (temporary, 4.3.0); PERM: ConfigError (DICT_ERR_CONFIG, 4.3.5);
    `OK` with no data: an empty result, which Postfix's maps.c and vdeliver
    both treat as an error;
  - a connection closed by the server (it restarted, or closed an idle
    connection) is retried once, a timeout never.

Unlike Postfix (100 s), each lookup -- connect, send and the whole reply --
must finish within TIMEOUT seconds (socketmap_timeout, set by resolve.py
from the configuration): a daemon that is down or hung defers the mail in
seconds, far inside pipe(8)'s time limit. One connection per table, kept for
the process's life; the table's own lock lets one lookup at a time use it
(its replies come in order), so threads may share the table (_thread: no
import).

Never: answer "not found" for a lookup that could not be made; follow more
than MAX_REPLY bytes of a reply; wait longer than TIMEOUT.
"""
import _socket
import _thread
import time

from vdeliver import address
from vdeliver.errors import ConfigError, TableError, one_line

MAX_QUERY = 10000    # bytes of key (socketmap_max_query_size)
MAX_REPLY = 100000   # bytes of reply payload (socketmap_max_reply_size)
TIMEOUT = 10.0       # seconds per lookup (socketmap_timeout)


class Failed(Exception):
    """One lookup's I/O went wrong; retry says whether a fresh connection may help."""

    def __init__(self, text, retry=False):
        super().__init__(text)
        self.retry = retry


class SocketmapTable:
    fixed_keys = False  # dict_sockmap_open(): DICT_FLAG_PATTERN
    note = None

    def __init__(self, spec, endpoint, family, where, name):
        self.spec = spec
        self.endpoint = endpoint  # unix:/path or inet:host:port, for messages
        self.family = family
        self.where = where        # connect() argument
        self.name = name
        self.sock = None
        self.buffer = b""
        self.lock = _thread.allocate_lock()  # one request at a time on the connection

    def lookup(self, key):
        with self.lock:
            return self.ask_for(key)

    def ask_for(self, key):
        encoded = address.table_key(key)
        if encoded is None or len(encoded) > MAX_QUERY or b"\0" in encoded:
            return None  # as dict_sockmap.c and dict_utf8.c: such a key "does not exist"
        request = self.name.encode() + b" " + encoded
        request = b"%d:%s," % (len(request), request)
        for attempt in (0, 1):
            try:
                reply = self.ask(request)
                break
            except Failed as failure:
                self.close()
                if attempt == 0 and failure.retry:
                    continue
                raise TableError(f"{self.spec}: socketmap server {self.endpoint}: {failure}",
                                 hint="lookup service not answering") from None
        return self.parse(reply)

    def ask(self, request):
        deadline = time.monotonic() + TIMEOUT
        if self.sock is None:
            self.connect()
        try:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            self.sock.sendall(request)
            return self.read_netstring(deadline)
        except TimeoutError:
            raise Failed(f"no reply within {TIMEOUT:g}s") from None
        except OSError as err:  # EPIPE, ECONNRESET: the server went away
            raise Failed(err.strerror or str(err), retry=True) from None

    def connect(self):
        sock = _socket.socket(self.family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(self.where)
        except TimeoutError:
            sock.close()
            raise Failed(f"connect: no answer within {TIMEOUT:g}s") from None
        except OSError as err:
            sock.close()
            raise Failed(f"connect: {err.strerror or err}") from None
        self.sock, self.buffer = sock, b""

    def read_netstring(self, deadline):
        """`<digits>:<payload>,` -> payload, at most MAX_REPLY bytes of it."""
        while b":" not in self.buffer:
            if len(self.buffer) > len(str(MAX_REPLY)):
                raise Failed("malformed reply (no netstring length)")
            self.receive(deadline)
        head, _, rest = self.buffer.partition(b":")
        if not head or not head.isdigit():
            raise Failed("malformed reply (no netstring length)")
        length = int(head)
        if length > MAX_REPLY:
            raise Failed(f"reply of {length} bytes is over the {MAX_REPLY}-byte limit")
        self.buffer = rest
        while len(self.buffer) < length + 1:
            self.receive(deadline)
        payload, end, self.buffer = (self.buffer[:length], self.buffer[length:length + 1],
                                     self.buffer[length + 1:])
        if end != b",":
            raise Failed("malformed reply (netstring without its ',')")
        return payload

    def receive(self, deadline):
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = self.sock.recv(65536)
        if not chunk:
            # dict_sockmap.c retries EOF once: the server restarted or closed an idle socket
            raise Failed("connection closed by the server", retry=True)
        self.buffer += chunk

    def parse(self, reply):
        word, space, payload = reply.partition(b" ")
        if word == b"OK":
            value = address.table_value(payload)
            if value is None:
                raise TableError(f"{self.spec}: socketmap server sent a value that is not UTF-8")
            if not value:
                raise TableError(f"{self.spec}: socketmap server sent OK with an empty value")
            return value
        if word == b"NOTFOUND":
            return None
        reason = one_line(payload.decode("utf-8", "replace").strip(), 200)
        text = (f"{self.spec}: socketmap server "
                + {b"TEMP": "temporary", b"TIMEOUT": "timeout", b"PERM": "permanent"}.get(
                    word, "unknown") + " error" + (f": {reason}" if reason else ""))
        if word == b"PERM":
            raise ConfigError(text)
        raise TableError(text)

    def close(self):
        if self.sock is not None:
            sock, self.sock, self.buffer = self.sock, None, b""
            sock.close()


def parse_endpoint(endpoint, spec):
    """`unix:/path` or `inet:host:port` -> (family, connect() argument)."""
    kind, _, rest = endpoint.partition(":")
    if kind in ("unix", "local"):
        if not rest.startswith("/"):
            raise ConfigError(f"{spec}: the socket path must be absolute (unix:/path:name)")
        return _socket.AF_UNIX, rest
    if kind == "inet":
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if host and port.isascii() and port.isdigit():
            return (_socket.AF_INET6 if ":" in host else _socket.AF_INET), (host, int(port))
    raise ConfigError(f"{spec}: expected socketmap:unix:/path:name or"
                      " socketmap:inet:host:port:name")


def open_table(name, spec):
    endpoint, colon, map_name = name.rpartition(":")
    if not colon or not endpoint or not map_name or " " in map_name:
        raise ConfigError(f"{spec}: requires server:socketmap argument"
                          " (socketmap:unix:/path:name or socketmap:inet:host:port:name)")
    family, where = parse_endpoint(endpoint, spec)
    return SocketmapTable(spec, endpoint, family, where, map_name)
