"""socketmap: against the real LMTP daemon's socketmap service with a PostgreSQL table
behind it, with Postfix's own socketmap client (postmap -q) as the second client.

  - an exported table (`mailbox=pgsql:...`) answers every key as `postmap -q KEY
    pgsql:...` does, through postmap's socketmap client and through vdeliver's;
  - the exported virtual_mailbox_maps answers the full address as virtual(8)'s
    search over the list would (extension, @domain, quoting), to both clients;
  - keys Postfix never sends, unknown names, oversized and malformed requests,
    and a slow client beside a fast one;
  - vdeliver's client reads every kind of reply as Postfix's client does (a
    scripted server, for replies the real daemon never sends, and postmap -q
    against the same server).
"""
import os
import shutil
import socket
import tempfile
import threading
import time

import pytest

import corpus
from servers import DATABASE, PASSWORD, USER
from socketmap_daemon import LookupDaemon, netstring, parse_replies, request
from tables_support import require_type
from vdeliver import address, resolve, socketmapd
from vdeliver.errors import ConfigError, TableError
from vdeliver.tables import open_table, socketmap

ROWS = [
    ("bob@example.com", "example.com/bob/"),
    ("alice@example.com", "example.com/alice/"),
    ("@catch.example", "catch/"),
    ('"john doe"@example.com', "example.com/john/"),
    ("o'brien@example.com", "example.com/obrien/"),
    ("two@example.com", "example.com/two-a/"),
    ("two@example.com", "example.com/two-b/"),
    ("fits@example.com", "f" * (socketmap.MAX_REPLY - 3)),     # "OK " + value: 100000 bytes
    ("too-long@example.com", "t" * (socketmap.MAX_REPLY - 2)),  # one byte over
    ("ütf@example.com", "example.com/utf/"),
]
KEYS = [b"bob@example.com", b"BOB@Example.COM", b"bob+ext@example.com", b"alice@example.com",
        b"nobody@example.com", b"x@catch.example", b"@catch.example", b"catch.example",
        b'"john doe"@example.com', b"john doe@example.com", b"o'brien@example.com",
        b"two@example.com", b"fits@example.com", b"too-long@example.com", b"%", b"x' OR '1'='1",
        b"'; drop table sockmap; --", b"bob", b"a" * 9990 + b"@example.com"]
NON_ASCII_KEYS = [b"\xc3\xbctf@example.com", b"\xc3\x9cTF@example.com", b"\xff@example.com"]


@pytest.fixture(scope="module")
def pg(pg_server):
    values = ", ".join(f"('{k.replace(chr(39), chr(39) * 2)}', '{v}')" for k, v in ROWS)
    pg_server.sql("DROP TABLE IF EXISTS sockmap; CREATE TABLE sockmap (email TEXT, maildir TEXT);"
                  f" INSERT INTO sockmap VALUES {values};", user=USER)
    return pg_server


@pytest.fixture(scope="module")
def lookupd(pg, delivery_user, installed_vdeliver):
    top = tempfile.mkdtemp(prefix="vdeliver-test-socketmap-", dir="/var/tmp")
    os.chmod(top, 0o755)
    cf = os.path.join(top, "pgsql.cf")
    with open(cf, "w") as fh:
        fh.write(f"hosts = {pg.hosts()}\nuser = {USER}\npassword = {PASSWORD}\ndbname = {DATABASE}\n"
                 "query = SELECT maildir FROM sockmap WHERE email='%s' ORDER BY maildir\n")
    slow = os.path.join(top, "slow.cf")  # a lookup that takes 7 s, as a hung database would
    with open(slow, "w") as fh:
        fh.write(f"hosts = {pg.hosts()}\nuser = {USER}\npassword = {PASSWORD}\ndbname = {DATABASE}\n"
                 "query = SELECT maildir FROM sockmap, pg_sleep(7) WHERE email='%s'\n")
    for path in (cf, slow):
        os.chmod(path, 0o644)
        corpus.cool(path)
    from servers import free_port
    port = free_port()
    daemon = LookupDaemon(top, delivery_user, f"pgsql:{cf}",
                          f"socketmap_listen = unix:{top}/socketmap, inet:127.0.0.1:{port}\n"
                          f"socketmap_maps = virtual_mailbox_maps, mailbox=pgsql:{cf},"
                          f" slow=pgsql:{slow}, fast=inline:{{{{ bob@example.com=inline-bob }}}}\n"
                          "socketmap_max_connections = 20\nsocketmap_idle_timeout = 3s\n")
    daemon.pgsql = f"pgsql:{cf}"
    daemon.inet = f"socketmap:inet:127.0.0.1:{port}"
    daemon.start()
    yield daemon
    daemon.stop()
    shutil.rmtree(top, ignore_errors=True)


def client_answers(spec, keys):
    """{key: value bytes | None | "error"} through vdeliver's socketmap client, keys as given."""
    table = open_table(spec)
    assert table.fixed_keys is False  # a pattern table, as dict_sockmap.c makes it
    try:
        return corpus.vdeliver_answers(table, keys)
    finally:
        table.close()


def test_an_exported_table_answers_as_postmap_on_the_table_itself(lookupd, postfix, compared):
    require_type(postfix.supported, "pgsql", "postfix-pgsql")
    direct = corpus.postmap_answers(postfix, lookupd.pgsql, KEYS)
    through_postmap = corpus.postmap_answers(postfix, lookupd.spec("mailbox"), KEYS)
    through_vdeliver = client_answers(lookupd.spec("mailbox"), KEYS)
    too_long = b"too-long@example.com"
    # The one deliberate difference: a value too long for a socketmap reply is an error.
    assert direct[too_long] == b"t" * (socketmap.MAX_REPLY - 2)
    assert through_postmap[too_long] == through_vdeliver[too_long] == "error"
    direct[too_long] = "error"
    assert corpus.differences(direct, through_postmap) == {}
    assert corpus.differences(direct, through_vdeliver) == {}
    assert direct[b"BOB@Example.COM"] == b"example.com/bob/"
    assert direct[b"two@example.com"] == b"example.com/two-a/,example.com/two-b/"
    assert direct[b"fits@example.com"] == b"f" * (socketmap.MAX_REPLY - 3)
    assert direct[b"bob+ext@example.com"] is None  # a literal table: nothing derived
    compared["socketmap (exported pgsql table)"] = 2 * len(KEYS)


def test_the_inet_listener_answers_as_the_unix_one(lookupd, postfix):
    keys = [b"bob@example.com", b"bob+x@example.com", b"nobody@example.com", b"x@catch.example"]
    unix = client_answers(lookupd.spec("virtual_mailbox_maps"), keys)
    assert corpus.postmap_answers(postfix, f"{lookupd.inet}:virtual_mailbox_maps", keys) == unix
    assert client_answers(f"{lookupd.inet}:virtual_mailbox_maps", keys) == unix
    assert unix[b"bob+x@example.com"] == b"example.com/bob/"


def test_non_ascii_keys_agree_between_the_two_clients(lookupd, postfix):
    # Postfix 3.7 speaks LATIN1 to PostgreSQL (dict_pgsql.c), so pgsql: itself is not the
    # reference here; both socketmap clients must still agree.
    through_postmap = corpus.postmap_answers(postfix, lookupd.spec("mailbox"), NON_ASCII_KEYS)
    through_vdeliver = client_answers(lookupd.spec("mailbox"), NON_ASCII_KEYS)
    assert corpus.differences(through_postmap, through_vdeliver) == {}
    assert through_vdeliver[b"\xc3\x9cTF@example.com"] == b"example.com/utf/"
    assert through_vdeliver[b"\xff@example.com"] is None  # not UTF-8: never asked


def test_virtual_mailbox_maps_export_answers_as_virtual8s_search_over_the_list(lookupd, postfix):
    keys = [k for k in KEYS if k != b"too-long@example.com"]
    direct = open_table(lookupd.pgsql)
    wanted = {}
    for key in keys:
        folded = address.fold(address.unquote_local_part(key.decode()))
        found = resolve.search([direct], folded, "+")
        wanted[key] = None if found is None else found[2].encode()
    direct.close()
    through_postmap = corpus.postmap_answers(postfix, lookupd.spec("virtual_mailbox_maps"), keys)
    through_vdeliver = client_answers(lookupd.spec("virtual_mailbox_maps"), keys)
    assert corpus.differences(wanted, through_postmap) == {}
    assert corpus.differences(wanted, through_vdeliver) == {}
    assert wanted[b"bob+ext@example.com"] == b"example.com/bob/"
    assert wanted[b"x@catch.example"] == b"catch/"
    assert wanted[b"john doe@example.com"] == b"example.com/john/"


@pytest.mark.parametrize("payload, wanted", [
    pytest.param(b"nosuch bob@example.com", b"PERM unknown socketmap name nosuch", id="unknown name"),
    pytest.param(b"mailbox", b"PERM request without a key", id="no key"),
    pytest.param(b"mailbox ", b"NOTFOUND ", id="empty key"),
    pytest.param(b"mailbox bob@example.com\0x", b"NOTFOUND ", id="NUL in the key"),
    pytest.param(b"mailbox \xff\xfe@example.com", b"NOTFOUND ", id="key not UTF-8"),
    pytest.param(b"mailbox " + b"b" * 10001, b"NOTFOUND ", id="key over 10000 bytes"),
    pytest.param(b"mailbox bob@example.com", b"OK example.com/bob/", id="found"),
    pytest.param(b"fast BOB@Example.com", b"OK inline-bob", id="in-memory table, on the event loop"),
    pytest.param(b"fast alice@example.com", b"NOTFOUND ", id="in-memory table, not found"),
    pytest.param(b"mailbox bob@example.com extra words", b"NOTFOUND ", id="spaces are the key's"),
])
def test_requests_postfix_would_never_send(lookupd, payload, wanted):
    assert parse_replies(request(lookupd.socket_path, payload)) == [wanted]


@pytest.mark.parametrize("raw", [
    pytest.param(b"99999999:x", id="length over the limit"),
    pytest.param(b"%d:%s," % (socketmapd.MAX_REQUEST + 1, b"m" * (socketmapd.MAX_REQUEST + 1)),
                 id="request one byte over MAX_REQUEST"),
    pytest.param(b"x:abc,", id="no digits"),
    pytest.param(b"3:abc;", id="no comma"),
    pytest.param(b"1" * 200, id="digits without end"),
])
def test_malformed_or_oversized_requests_close_the_connection_unanswered(lookupd, raw):
    started = time.monotonic()
    assert request(lookupd.socket_path, raw=raw, timeout=10) == b""
    assert time.monotonic() - started < 5  # closed at once, or at the 3 s idle timeout


def test_several_requests_on_one_connection_are_answered_in_order(lookupd):
    payloads = [b"mailbox alice@example.com", b"mailbox nobody@example.com",
                b"virtual_mailbox_maps bob+x@example.com", b"mailbox bob@example.com"]
    assert parse_replies(request(lookupd.socket_path, *payloads)) == [
        b"OK example.com/alice/", b"NOTFOUND ", b"OK example.com/bob/", b"OK example.com/bob/"]


def test_a_slow_client_blocks_no_other_and_connections_are_capped(lookupd):
    stalled = []
    try:
        for _ in range(5):  # half a request each, then nothing
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(lookupd.socket_path)
            sock.sendall(b"30:mailbox bob@")
            stalled.append(sock)
        started = time.monotonic()
        assert parse_replies(request(lookupd.socket_path, b"mailbox bob@example.com")) == [
            b"OK example.com/bob/"]
        assert time.monotonic() - started < 1
        extra = []
        for _ in range(20):  # socketmap_max_connections = 20: the rest are closed at once
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(lookupd.socket_path)
            extra.append(sock)
        stalled += extra
        assert closed_within(extra, 1.5) == 5  # within the stalled ones' 3 s idle timeout
        over_cap = time.monotonic()
        assert request(lookupd.socket_path, b"mailbox bob@example.com", timeout=5) == b""
        assert time.monotonic() - over_cap < 2  # closed, not the 5 s timeout
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.3)
    assert parse_replies(request(lookupd.socket_path, b"mailbox bob@example.com")) == [
        b"OK example.com/bob/"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def test_a_client_that_never_reads_its_replies_holds_no_more_than_a_reply(lookupd):
    """300 requests whose replies are 100000 bytes each (30 MB), sent at once and not read:
    the daemon stops reading from that client instead of buffering the replies; then all
    300 arrive, in order."""
    count = 300
    before = rss_kb(lookupd.proc.pid)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(lookupd.socket_path)
        sock.sendall(netstring(b"mailbox fits@example.com") * count)
        time.sleep(2)  # under the 3 s idle timeout, which would close it (it reads nothing)
        grown = rss_kb(lookupd.proc.pid) - before
        sock.settimeout(30)
        wanted = netstring(b"OK " + b"f" * (socketmap.MAX_REPLY - 3)) * count
        chunks, size = [], 0
        while size < len(wanted):
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {size} bytes"
            chunks.append(chunk)
            size += len(chunk)
    assert b"".join(chunks) == wanted
    assert grown < 8 * 1024, f"the daemon grew by {grown} kB"
    assert parse_replies(request(lookupd.socket_path, b"mailbox bob@example.com")) == [
        b"OK example.com/bob/"]


def closed_within(sockets, seconds):
    """How many of sockets the server has closed (EOF) after seconds."""
    closed, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        for index, sock in enumerate(sockets):
            sock.settimeout(0.01)
            try:
                if index not in closed and sock.recv(10) == b"":
                    closed.add(index)
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed.add(index)
        time.sleep(0.05)
    return len(closed)


def test_the_stalled_clients_are_closed_after_the_idle_timeout(lookupd):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(lookupd.socket_path)
        sock.sendall(b"30:mailbox bob@")
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 2 < time.monotonic() - started < 6  # socketmap_idle_timeout = 3s


def test_a_lookup_slower_than_socketmap_lookup_timeout_is_a_timeout_reply(lookupd):
    started = time.monotonic()
    assert parse_replies(request(lookupd.socket_path, b"slow bob@example.com", timeout=15)) == [
        b"TIMEOUT lookup not done within 5s"]
    assert 4.5 < time.monotonic() - started < 6.5
    # The lookup thread finishes the slow query, then answers the next request.
    assert parse_replies(request(lookupd.socket_path, b"mailbox bob@example.com", timeout=15)) == [
        b"OK example.com/bob/"]
    assert time.monotonic() - started < 9


# --- the client's reading of replies, against a scripted server, beside Postfix's client ---

class ScriptedServer:
    """A unix socket that answers each connection's request with the next scripted bytes
    (None: close without answering)."""

    def __init__(self, directory, replies):
        self.path = os.path.join(directory, "scripted.sock")
        self.replies = list(replies)
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(conn.recv(65536))
                except OSError:
                    continue
                reply = self.replies.pop(0)
                if reply is not None:
                    conn.sendall(reply)

    def close(self):
        self.sock.close()


REPLIES = [
    pytest.param(netstring(b"OK value here"), "value here", id="OK"),
    pytest.param(netstring(b"NOTFOUND "), None, id="NOTFOUND"),
    pytest.param(netstring(b"NOTFOUND"), None, id="NOTFOUND without space"),
    pytest.param(netstring(b"TEMP database down"), "error", id="TEMP"),
    pytest.param(netstring(b"TIMEOUT slow"), "error", id="TIMEOUT"),
    pytest.param(netstring(b"PERM no such map"), "error", id="PERM"),
    pytest.param(netstring(b"MAYBE x"), "error", id="unknown word"),
    pytest.param(netstring(b"OK " + b"v" * (socketmap.MAX_REPLY - 3)),
                 "v" * (socketmap.MAX_REPLY - 3), id="reply of exactly 100000 bytes"),
    pytest.param(netstring(b"OK " + b"v" * (socketmap.MAX_REPLY - 2)), "error",
                 id="reply of 100001 bytes"),
    pytest.param(b"5:OK ab;", "error", id="netstring without comma"),
    pytest.param(b"x:OK a,", "error", id="netstring without length"),
    pytest.param(b"4:OK a", "error", id="reply cut short"),
]


@pytest.mark.parametrize("reply, wanted", REPLIES)
def test_replies_are_read_as_postfixs_client_reads_them(tmp_path, postfix, reply, wanted):
    os.chmod(tmp_path, 0o755)
    # a closed connection is retried once (dict_sockmap.c): each client gets the reply twice
    server = ScriptedServer(str(tmp_path), [reply, reply, reply, reply])
    spec = f"socketmap:unix:{server.path}:themap"
    old = socketmap.TIMEOUT
    socketmap.TIMEOUT = 2
    try:
        done = postfix.run(postfix.postmap("-q", "key@example.com", spec), capture_output=True,
                           timeout=300)
        table = open_table(spec)
        try:
            got = table.lookup("key@example.com")
        except (TableError, ConfigError) as error:
            got = "error"
            assert error.exit_code == 75 and error.status.startswith("4.")
            if reply.startswith(b"16:PERM"):
                assert error.status == "4.3.5"  # DICT_ERR_CONFIG
        finally:
            table.close()
    finally:
        socketmap.TIMEOUT = old
        server.close()
    postmap = ("error" if b"fatal:" in done.stderr else
               done.stdout.rstrip(b"\n").decode() if done.returncode == 0 else None)
    assert (postmap, got) == (wanted, wanted), done.stderr
    assert server.requests[0] == netstring(b"themap key@example.com")


def test_a_connection_closed_by_the_server_is_retried_once(tmp_path):
    os.chmod(tmp_path, 0o755)
    server = ScriptedServer(str(tmp_path), [None, netstring(b"OK second"), None, None])
    table = open_table(f"socketmap:unix:{server.path}:m")
    try:
        assert table.lookup("a@b") == "second"
        table.close()
        with pytest.raises(TableError):  # closed twice: no third try
            table.lookup("a@b")
    finally:
        table.close()
        server.close()
    assert len(server.requests) == 4


def test_endpoint_syntax():
    for bad in ("socketmap:unix:relative/path:m", "socketmap:unix:/path", "socketmap:inet:host:m",
                "socketmap:tcp:/x:m", "socketmap:unix:/x:"):
        with pytest.raises(ConfigError):
            open_table(bad)
    assert open_table("socketmap:inet:[::1]:9000:m").where == ("::1", 9000)
    assert open_table("socketmap:local:/run/x:m").where == "/run/x"
