"""The LMTP daemon process: `vdeliver --lmtp [-c config] [-o name=value]... [--foreground]`.

Order of start-up: raise the soft RLIMIT_NOFILE to the hard one (a session
holds two descriptors, its socket and its DATA spool: 1000 sessions need more
than the usual soft 1024); read the config; take the pid file (an flock on
lmtp_pid_file, so a second instance is refused and a stale file left by a
crash does not matter); bind every lmtp_listen socket as the starting user
(`unix:/path`, mode lmtp_socket_mode, owner lmtp_socket_owner, so Postfix's
lmtp client can connect; `inet:host:port`); unless --foreground, detach with
python-daemon (fork, setsid, umask 077, chdir /, inherited files closed but
the sockets and the pid file); drop root to lmtp_user (default: the owner
of virtual_mailbox_base) with no supplementary groups; open the tables and
write the first log line (so a maillog_file the daemon creates belongs to
the delivery user: nothing is logged as root), and a warning when the limit
is still too low for lmtp_max_connections; serve. Detached, the starting
command waits until the daemon serves and exits 0, or 1 with the reason
(Readiness): a failure after the detach is not a silent exit 0.

Memory: a session buffers at most about three CHUNK_SIZE (64 KiB) reads of
its input (READ_LIMIT, lmtp.Server.handle), its decoder one line (at most
spool.MAX_DATA_LINE), and never a message: DATA goes to its spool file
(spool.py). So the daemon's memory grows with its sessions, never with the
size of their messages (bench/scale_bench.py: about 0.5 MB a session).

With socketmap_listen set, the daemon also serves its tables over Postfix's
socketmap protocol (socketmapd.py: its sockets bound here as the LMTP ones,
its exports opened with the tables and reloaded with them); lmtp_listen may
then be empty.

As root, in directories others may write to (a unix socket usually lives in
Postfix's private/, owned by postfix): the pid file is opened with
O_NOFOLLOW and refused in a directory writable by anyone but root (or
ourselves), or when it is not a plain file with one link; a socket gets its
mode from the umask at bind() and its owner by a chown through a descriptor
opened with O_PATH|O_NOFOLLOW, after checking that what is there is a socket
we own (cf. Postfix's set_eugid() around its socket calls): a path swapped for
a symlink is refused, never followed.

Signals: SIGTERM/SIGINT stop accepting, end idle sessions with 421, drop
sessions still receiving DATA (nothing of theirs is delivered, no reply is
sent), and let deliveries in progress finish and answer while the event loop
keeps writing replies. Past lmtp_shutdown_timeout a delivery that has not
reached its commit point is abandoned (lmtp.Ticket: tmp file removed, no
reply, Postfix retries); one that has is waited for and answered; then exit
0 (a second SIGTERM changes nothing). SIGHUP re-reads the config and reopens the tables on a lookup thread,
off the event loop; in-flight transactions (and socketmap requests) keep the
settings they started with, and the old tables are closed (on a lookup
thread: an LDAP unbind may wait) when the last of them ends -- their lookups with it, and a database table's pool closes a
connection still in use only when its lookup gives it back; a broken new
config is logged and the old one kept.

Threads: lmtp_delivery_threads delivery threads and as many lookup threads
(RCPT and socketmap lookups of tables not in memory, reloads), read at
start; every table is safe to share between them (tables/__init__.py), and
a database table keeps up to lmtp_delivery_threads connections
(tables.POOL_SIZE, set before any table is opened).

Metrics (metrics.py): with lmtp_metrics_listen set, its socket is bound with
the others (before the drop, as they are) and served on the same event loop;
prometheus_client is imported only then.

Never: serve as root; serve a second instance on the same pid file; follow
a symlink as root; exit with deliveries in progress before
lmtp_shutdown_timeout; block the event loop on a file, a table or a thread;
close a connection whose delivery committed before its reply is written.
"""
import asyncio
import concurrent.futures
import grp
import os
import pwd
import signal
import socket
import stat
import sys

from vdeliver import address, config as config_module, deliver, log, metrics, resolve, socketmapd
from vdeliver import tables as table_types
from vdeliver.errors import ConfigError, DeliveryError, internal_error
from vdeliver.lmtp import Server, Settings
from vdeliver.spool import CHUNK_SIZE

USAGE = "usage: vdeliver --lmtp [-c config] [-o name=value]... [--foreground]"
# A session's StreamReader stops reading its socket once it holds more than twice this
# (asyncio), plus one read of up to 256 KiB. Sessions read it CHUNK_SIZE at a time and
# never by line, so a larger limit only lets each session hold more: with 1 MiB, 300
# sessions sending 12 MB messages held 850 MB (bench/scale_bench.py).
READ_LIMIT = CHUNK_SIZE


class PidFile:
    """An flock()ed pid file: held for the daemon's life, released by the kernel at exit."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self):
        import fcntl
        check_pid_directory(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:  # ELOOP: a symlink planted there
            raise ConfigError(f"lmtp_pid_file {self.path}: {err.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            os.close(fd)
            raise ConfigError(f"lmtp_pid_file {self.path}: not a plain file of uid {os.geteuid()}"
                              " with one link: refusing it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            running = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(f"already running (pid {running or '?'}, {self.path})") from None
        self.fd = fd

    def write(self):
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)


def check_pid_directory(path):
    """Refuse a pid file whose directory someone else could plant a file or link in."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(directory)
    except OSError as err:
        raise ConfigError(f"lmtp_pid_file {path}: {directory}: {err.strerror}") from None
    if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
        raise ConfigError(f"lmtp_pid_file {path}: directory {directory} is writable by others"
                          f" (uid {st.st_uid}, mode {st.st_mode & 0o7777:04o}): refusing it")


def raise_descriptor_limit():
    """The soft RLIMIT_NOFILE raised to the hard one, as far as the kernel lets it.

    Each session holds two descriptors (its socket, its DATA spool), each delivery a few
    more, each table connection one: lmtp_max_connections = 1000 needs over 2000, and a
    service usually starts with a soft limit of 1024 (the hard one far higher). At the
    soft limit accept() fails, a spool cannot be opened (451 4.2.0) and not even the log
    line saying so can be written (bench/scale_bench.py: 128 of 1000 sessions)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):  # an unlimited hard limit over nr_open: keep the soft one
            pass


def check_descriptors(config):
    """A warning when the descriptor limit cannot hold lmtp_max_connections sessions."""
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    sessions = config.get_int("lmtp_max_connections") + config.get_int("socketmap_max_connections")
    needed = 2 * sessions + 4 * config.get_int("lmtp_delivery_threads") + 64
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.log(config, f"RLIMIT_NOFILE is {soft}: lmtp_max_connections and"
                        f" socketmap_max_connections need about {needed} descriptors; raise the"
                        " hard limit (ulimit -Hn, systemd LimitNOFILE=)", "warning")


def parse_args(argv):
    options = {"config": config_module.DEFAULT_CONFIG, "overrides": [], "foreground": False}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--lmtp":
            continue
        if arg in ("--foreground", "-F"):
            options["foreground"] = True
        elif arg in ("-c", "-o") and args:
            value = args.pop(0)
            if arg == "-c":
                options["config"] = value
            else:
                options["overrides"].append(value)
        else:
            raise ConfigError(f"unknown argument {arg}; {USAGE}")
    return options


def parse_listen(spec):
    """`unix:/path`, `inet:host:port`, `inet:port` -> (family, address)."""
    kind, _, rest = spec.partition(":")
    if kind == "unix" and rest.startswith("/"):
        return socket.AF_UNIX, rest
    if kind == "inet" and rest:
        host, _, port = rest.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if port.isascii() and port.isdigit():
            return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))
    raise ConfigError(f"lmtp_listen: {spec!r} is not unix:/path or inet:host:port")


def bind_sockets(config):
    sockets = []
    owner = config.get("lmtp_socket_owner").strip()
    mode = socket_mode(config, "lmtp_socket_mode")
    for spec in config.get_list("lmtp_listen"):
        family, where = parse_listen(spec)
        sockets.append(listen_socket("lmtp_listen", spec, family, where, mode,
                                     lambda: owner_ids(owner) if owner else None))
    if not sockets and not config.get_list("socketmap_listen"):  # a lookup service only: fine
        raise ConfigError("lmtp_listen is empty")
    return sockets


def bind_unix(sock, path, mode):
    """bind() with the umask that gives the socket its mode: no chmod by name afterwards."""
    old = os.umask(~mode & 0o777)
    try:
        sock.bind(path)
    finally:
        os.umask(old)


def chown_socket(path, uid, gid):
    """chown the socket just bound at path, through a descriptor that did not follow a link:
    whoever can write in its directory may have swapped it for a symlink since bind()."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
            raise ConfigError(f"{path} is no longer the socket just bound (replaced since bind):"
                              " refusing it")
        os.chown(f"/proc/self/fd/{fd}", uid, gid)  # the inode fd names, never a link
    finally:
        os.close(fd)


def remove_stale_socket(path):
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def socket_mode(config, name):
    mode = config.get(name).strip()
    if not mode or any(ch not in "01234567" for ch in mode):
        raise ConfigError(f"{name} = {mode}: expected an octal mode like 0660")
    return int(mode, 8)


def listen_socket(name, spec, family, where, mode, ids):
    """A listening socket for `spec` of parameter `name`: a unix socket gets `mode` at
    bind() and, as root, the owner ids() returns (None: keep it) through a descriptor
    that did not follow a link; ConfigError names the parameter and the socket."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            remove_stale_socket(where)
            bind_unix(sock, where, mode)
            owner = ids() if os.geteuid() == 0 else None
            if owner is not None:
                chown_socket(where, *owner)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(where)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ConfigError(f"{name} {spec}: {err.strerror}") from None
    except (ConfigError, KeyError) as error:
        sock.close()
        text = error.detail if isinstance(error, ConfigError) else f"unknown owner {error}"
        raise ConfigError(f"{name} {spec}: {text}") from None
    return sock


def owner_ids(owner):
    user, _, group = owner.partition(":")
    entry = pwd.getpwnam(user)
    return entry.pw_uid, grp.getgrnam(group).gr_gid if group else entry.pw_gid


def run_user(config):
    """(uid, gid) to serve as: lmtp_user, else the owner of virtual_mailbox_base."""
    name = config.get("lmtp_user").strip()
    if name:
        entry = pwd.getpwnam(name)
        uid, gid = entry.pw_uid, entry.pw_gid
    else:
        st = os.stat(deliver.mailbox_base(config))
        uid, gid = st.st_uid, st.st_gid
    if uid == 0 or gid == 0:
        raise ConfigError("the LMTP daemon would run as root: set lmtp_user, or give"
                          " virtual_mailbox_base to the delivery user")
    return uid, gid


def check_lmtp_config(config):
    deliver.mailbox_base(config)
    if config.get_list("lmtp_listen") and not config.get_bool("write_delivery_headers"):
        raise ConfigError("write_delivery_headers = no is for pipe(8) with flags=DR; Postfix's lmtp"
                          " client writes no Delivered-To, so the LMTP daemon must")


def enable_metrics(config):
    try:
        metrics.enable(lambda text: log.log(config, text, "warning"))
    except ImportError:
        raise ConfigError("lmtp_metrics_listen is set, but prometheus_client is not installed"
                          " (the vdeliver[metrics] extra)") from None


def make_settings(options):
    config = config_module.load(options["config"], options["overrides"])
    check_lmtp_config(config)
    # Before the tables are opened (texthash parses by it) and for every fold after;
    # a reload that fails keeps the old tables, so it must not change this either.
    before = address.SMTPUTF8_ENABLE
    address.set_smtputf8(config.get_bool("smtputf8_enable"))
    try:
        tables = metrics.current.instrument(resolve.open_tables(config))
        try:
            tables.exports = socketmapd.open_exports(config, tables)
        except BaseException:
            resolve.close_tables(tables)
            raise
        settings = Settings(config, tables)
    except BaseException:
        address.set_smtputf8(before)
        raise
    settings.files = table_files(config)
    settings.identity = files_identity(settings.files)
    return settings


def table_files(config):
    """The files behind virtual_mailbox_maps and virtual_mailbox_quota_maps (with postmap's
    .db/.cdb/.lmdb suffixes)."""
    paths = []
    for spec in config.get_list("virtual_mailbox_maps") + config.get_list(
            "virtual_mailbox_quota_maps"):
        for piece in spec.replace("{", " ").replace("}", " ").replace(",", " ").split():
            name = piece[piece.find("/"):] if "/" in piece else ""
            for path in (name, name + ".db", name + ".cdb", name + ".lmdb") if name else ():
                if os.path.exists(path):
                    paths.append(path)
    return paths


def files_identity(paths):
    identity = []
    for path in paths:
        try:
            st = os.stat(path)
            identity.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            identity.append(None)
    return identity


class Readiness:
    """How a detached daemon tells the command that started it whether it serves.

    The tables are opened (and the config read again) only in the detached child, as the
    delivery user, after the chdir to /: a table that user cannot read, or that is only
    found from the starting directory, fails there. So the starting command does not exit
    when python-daemon detaches: it forks first and waits on a pipe for the child's word,
    then exits 0 once the daemon listens, or 1 with the reason on stderr (or when the
    child dies without a word), as a failure before the detach does."""

    def __init__(self):
        self.fd = None
        self.status = 0

    def wait_in_parent(self):
        """Fork; in the starting process wait for the word and return True (then see
        .status); in the child return False, keeping the pipe's write end (.fd)."""
        read_end, self.fd = os.pipe()
        child = os.fork()
        if child:
            os.close(self.fd)
            os.waitpid(child, 0)  # python-daemon's first fork exits at once
            with os.fdopen(read_end, "rb") as pipe:
                word = pipe.read(4096)
            text = word.decode("utf-8", "replace").strip()
            if word != b"ok\n":
                sys.stderr.write(f"vdeliver --lmtp: {text or 'the daemon exited while starting'}"
                                 " (see its log)\n")
                self.status = 1
            return True
        os.close(read_end)
        return False

    def tell(self, failure):
        """The child's word, once: "" = serving, else why it is not."""
        if self.fd is None:
            return
        try:
            os.write(self.fd, b"ok\n" if not failure else failure.encode("utf-8", "replace")[:4000])
            os.close(self.fd)
        except OSError:
            pass  # the starting command is gone: nobody to tell
        self.fd = None


def main(argv):
    log.SERVICE = "lmtp"  # its lines are vdeliver/lmtp[PID]: ..., the command's vdeliver/pipe[PID]
    # A mask inherited from whatever started it would hold SIGTERM and SIGHUP back (before
    # any thread exists: threads inherit the mask).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    raise_descriptor_limit()
    try:
        options = parse_args(argv)
        # Absolute before the detach's chdir to /: the child and every SIGHUP read it again.
        options["config"] = os.path.abspath(options["config"])
        config = config_module.load(options["config"], options["overrides"])
        check_lmtp_config(config)
        pid_file = PidFile(config.get("lmtp_pid_file"))
        pid_file.acquire()
        if options["foreground"]:
            pid_file.write()
        sockets = bind_sockets(config)
        metrics_socket = metrics.bind(config)  # lmtp_metrics_listen; None: off
        if metrics_socket is not None:
            enable_metrics(config)
            sockets.append(metrics_socket)
        uid, gid = run_user(config) if os.geteuid() == 0 else (os.getuid(), os.getgid())
        lookup_sockets = socketmapd.bind(config, uid, gid)
        threads = max(1, config.get_int("lmtp_delivery_threads"))
    except (DeliveryError, OSError, KeyError) as error:
        text = error.text() if isinstance(error, DeliveryError) else str(error)
        sys.stderr.write(f"vdeliver --lmtp: {text}\n")
        return 1
    ready = Readiness()
    if not options["foreground"]:
        if ready.wait_in_parent():
            return ready.status  # the starting command: the daemon's own word on its start
        import daemon
        context = daemon.DaemonContext(
            umask=0o077, working_directory="/", detach_process=True,
            files_preserve=[pid_file.fd, ready.fd] + [sock.fileno()
                                                       for sock in sockets + lookup_sockets],
            signal_map={})  # our own handlers, installed in serve()
        context.open()
        pid_file.write()  # the detached child's pid
    else:
        os.umask(0o077)
    if os.geteuid() == 0:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    table_types.POOL_SIZE = threads  # before any table is opened: their pools' size
    try:
        settings = make_settings(options)
    except DeliveryError as error:
        log.log(config, f"LMTP daemon not started: {error.text()}", "error")
        ready.tell(f"not started: {error.text()}")
        return 1
    delivery_pool = concurrent.futures.ThreadPoolExecutor(threads, "deliver")
    # As many lookup threads as delivery threads, each table connection pool as large
    # (tables.POOL_SIZE): under load every delivery thread's next recipients are looked
    # up side by side; one thread made each RCPT wait for all the lookups before it.
    lookup_pool = concurrent.futures.ThreadPoolExecutor(threads, "lookup")
    status = asyncio.run(serve(options, settings, sockets, delivery_pool, lookup_pool,
                               lookup_sockets, ready))
    # The event loop is gone: now waiting blocks nobody. A delivery abandoned at shutdown
    # ends at its commit point and removes its tmp file; the launcher exits with _exit().
    delivery_pool.shutdown(wait=True)
    lookup_pool.shutdown(wait=False)  # a lookup or a reload writes nothing: not waited for
    return status


async def serve(options, settings, sockets, delivery_pool, lookup_pool, lookup_sockets=(),
                ready=None):
    config = settings.config
    server = Server(settings, delivery_pool, lookup_pool, os.uname().nodename,
                    config.get_int("lmtp_max_connections"))
    reloading = asyncio.Lock()
    background = set()
    server.refresh = lambda: reload_if_changed(server, options, reloading)

    def reload_in_background():
        task = asyncio.ensure_future(reload(server, options, reloading))
        background.add(task)
        task.add_done_callback(background.discard)

    listeners = []
    for sock in sockets:
        if metrics.current.enabled and sock is sockets[-1]:
            listeners.append(await metrics.serve(sock))  # main() put it last
        elif sock.family == socket.AF_UNIX:
            listeners.append(await asyncio.start_unix_server(server.handle, sock=sock,
                                                             limit=READ_LIMIT))
        else:
            listeners.append(await asyncio.start_server(server.handle, sock=sock, limit=READ_LIMIT))
    listeners += await socketmapd.start(server, lookup_sockets, lookup_pool)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Plain signal handlers, not the loop's: the loop's would be set back to SIG_DFL when
    # removed, and a second SIGTERM in that moment would kill the daemon mid-shutdown.
    # (They run on this thread, which the signal wakes from the selector's wait.)
    signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(stop.set))
    signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(stop.set))
    signal.signal(signal.SIGHUP, lambda *_: loop.call_soon_threadsafe(reload_in_background))
    names = ", ".join(config.get_list("lmtp_listen") + [
        f"socketmap {spec}" for spec in config.get_list("socketmap_listen") if lookup_sockets])
    log.log(config, f"LMTP daemon started, pid {os.getpid()}, uid {os.getuid()}, listening on {names}")
    check_descriptors(config)
    if ready is not None:
        ready.tell("")
    await stop.wait()
    for listener in listeners:
        listener.close()
    server.begin_shutdown()
    # The loop keeps running (and writing replies) while deliveries finish: never block it.
    if not await server.wait_sessions(server.settings.config.get_time("lmtp_shutdown_timeout")):
        server.abandon()
        await server.wait_sessions(None)  # committed deliveries: their replies are sent
    delivery_pool.shutdown(wait=False, cancel_futures=True)  # main() waits, off the loop
    lookup_pool.shutdown(wait=False, cancel_futures=True)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # stopping: ignore more
        signal.signal(number, signal.SIG_IGN)
    log.log(server.settings.config, "LMTP daemon stopped")
    return 0


async def reload_if_changed(server, options, lock):
    """Before a transaction: reload when a table file changed (Postfix's daemons
    restart for the same reason), so that a user added to the tables is not
    refused until someone sends SIGHUP. At most one check a second."""
    import time
    settings = server.settings
    if lock.locked():  # a reload is under way (maybe slow): this transaction uses the tables it has
        return
    now = time.monotonic()
    if now - getattr(settings, "checked", 0) < 1:
        return
    settings.checked = now
    if files_identity(settings.files) != settings.identity:
        await reload(server, options, lock)


async def reload(server, options, lock):
    """Open the new config and tables on a lookup thread (a table may be slow to open);
    the old tables are closed once no transaction uses them."""
    async with lock:
        loop = asyncio.get_running_loop()
        try:
            settings = await loop.run_in_executor(server.lookup_pool, make_settings, options)
        except DeliveryError as error:
            log.log(server.settings.config,
                    f"reload failed, keeping the old configuration: {error.text()}", "error")
            metrics.current.reloaded(False)
            return
        except Exception as error:  # noqa: BLE001 - a bug in a reload keeps the running tables
            log.log(server.settings.config, "reload failed, keeping the old configuration: "
                    f"{internal_error(error).text()}", "error")
            metrics.current.reloaded(False)
            return
        server.replace_settings(settings)
        metrics.current.reloaded(True)
        log.log(settings.config, "LMTP daemon reloaded its configuration and tables")
