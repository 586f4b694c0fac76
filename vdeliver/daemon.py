"""The LMTP daemon process: `vdeliver --lmtp [-c config] [-o name=value]... [--foreground]`.

Order of start-up: read the config; take the pid file (an flock on
lmtp_pid_file, so a second instance is refused and a stale file left by a
crash does not matter); bind every lmtp_listen socket as the starting user
(`unix:/path`, mode lmtp_socket_mode, owner lmtp_socket_owner, so Postfix's
lmtp client can connect; `inet:host:port`); unless --foreground, detach with
python-daemon (fork, setsid, umask 077, chdir /, inherited files closed but
the sockets and the pid file); drop root to lmtp_user (default: the owner
of virtual_mailbox_base) with no supplementary groups; open the tables; serve.

Signals: SIGTERM/SIGINT stop accepting, end idle sessions with 421, drop
sessions still receiving DATA (nothing of theirs is delivered, no reply is
sent), let deliveries in progress finish and answer (lmtp_shutdown_timeout),
then exit 0. SIGHUP re-reads the config and reopens the tables; in-flight
transactions keep the settings they started with; a broken new config is
logged and the old one kept.

Never: serve as root; serve a second instance on the same pid file; exit
with deliveries in progress before lmtp_shutdown_timeout.
"""
import asyncio
import concurrent.futures
import grp
import os
import pwd
import signal
import socket
import sys

from vdeliver import address, config as config_module, deliver, log, privileges, resolve
from vdeliver.errors import ConfigError, DeliveryError
from vdeliver.lmtp import Server, Settings

USAGE = "usage: vdeliver --lmtp [-c config] [-o name=value]... [--foreground]"


class PidFile:
    """An flock()ed pid file: held for the daemon's life, released by the kernel at exit."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self):
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    mode = config.get("lmtp_socket_mode").strip()
    if not mode or any(ch not in "01234567" for ch in mode):
        raise ConfigError(f"lmtp_socket_mode = {mode}: expected an octal mode like 0660")
    for spec in config.get_list("lmtp_listen"):
        family, where = parse_listen(spec)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_UNIX:
                remove_stale_socket(where)
                sock.bind(where)
                os.chmod(where, int(mode, 8))
                if owner and os.geteuid() == 0:
                    os.chown(where, *owner_ids(owner))
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(where)
            sock.listen(128)
        except OSError as err:
            sock.close()
            raise ConfigError(f"lmtp_listen {spec}: {err.strerror}") from None
        sockets.append(sock)
    if not sockets:
        raise ConfigError("lmtp_listen is empty")
    return sockets


def remove_stale_socket(path):
    import stat
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


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
    if not config.get_bool("write_delivery_headers"):
        raise ConfigError("write_delivery_headers = no is for pipe(8) with flags=DR; Postfix's lmtp"
                          " client writes no Delivered-To, so the LMTP daemon must")


def make_settings(options):
    config = config_module.load(options["config"], options["overrides"])
    check_lmtp_config(config)
    # Before the tables are opened (texthash parses by it) and for every fold after;
    # a reload that fails keeps the old tables, so it must not change this either.
    before = address.SMTPUTF8_ENABLE
    address.set_smtputf8(config.get_bool("smtputf8_enable"))
    try:
        settings = Settings(config, resolve.open_tables(config))
    except BaseException:
        address.set_smtputf8(before)
        raise
    settings.files = table_files(config)
    settings.identity = files_identity(settings.files)
    return settings


def table_files(config):
    """The files behind virtual_mailbox_maps (with postmap's .db/.cdb/.lmdb suffixes)."""
    paths = []
    for spec in config.get_list("virtual_mailbox_maps"):
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


def main(argv):
    try:
        options = parse_args(argv)
        config = config_module.load(options["config"], options["overrides"])
        check_lmtp_config(config)
        pid_file = PidFile(config.get("lmtp_pid_file"))
        pid_file.acquire()
        if options["foreground"]:
            pid_file.write()
        sockets = bind_sockets(config)
        uid, gid = run_user(config) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    except (DeliveryError, OSError, KeyError) as error:
        text = error.text() if isinstance(error, DeliveryError) else str(error)
        sys.stderr.write(f"vdeliver --lmtp: {text}\n")
        return 1
    if not options["foreground"]:
        import daemon
        context = daemon.DaemonContext(
            umask=0o077, working_directory="/", detach_process=True,
            files_preserve=[pid_file.fd] + [sock.fileno() for sock in sockets],
            signal_map={})  # our own handlers, installed in serve()
        context.open()
        pid_file.write()  # the detached child's pid
    else:
        os.umask(0o077)
    if os.geteuid() == 0:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    try:
        settings = make_settings(options)
    except DeliveryError as error:
        log.log(config, f"LMTP daemon not started: {error.text()}", "error")
        return 1
    return asyncio.run(serve(options, settings, sockets))


async def serve(options, settings, sockets):
    config = settings.config
    threads = config.get_int("lmtp_delivery_threads")
    delivery_pool = concurrent.futures.ThreadPoolExecutor(max(1, threads), "deliver")
    lookup_pool = concurrent.futures.ThreadPoolExecutor(1, "lookup")
    server = Server(settings, delivery_pool, lookup_pool, os.uname().nodename,
                    config.get_int("lmtp_max_connections"))
    server.refresh = lambda: reload_if_changed(server, options)
    listeners = []
    for sock in sockets:
        if sock.family == socket.AF_UNIX:
            listeners.append(await asyncio.start_unix_server(server.handle, sock=sock, limit=1 << 20))
        else:
            listeners.append(await asyncio.start_server(server.handle, sock=sock, limit=1 << 20))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(server, options))
    names = ", ".join(config.get_list("lmtp_listen"))
    log.log(config, f"LMTP daemon started, pid {os.getpid()}, uid {os.getuid()}, listening on {names}")
    await stop.wait()
    for listener in listeners:
        listener.close()
    server.begin_shutdown()
    await server.wait_sessions(server.settings.config.get_time("lmtp_shutdown_timeout"))
    delivery_pool.shutdown(wait=True)
    lookup_pool.shutdown(wait=True)
    log.log(server.settings.config, "LMTP daemon stopped")
    return 0


def reload_if_changed(server, options):
    """Before a transaction: reload when a table file changed (Postfix's daemons
    restart for the same reason), so that a user added to the tables is not
    refused until someone sends SIGHUP. At most one check a second."""
    import time
    settings = server.settings
    now = time.monotonic()
    if now - getattr(settings, "checked", 0) < 1:
        return
    settings.checked = now
    if files_identity(settings.files) != settings.identity:
        reload(server, options)


def reload(server, options):
    try:
        server.settings = make_settings(options)
        log.log(server.settings.config, "LMTP daemon reloaded its configuration and tables")
    except DeliveryError as error:
        log.log(server.settings.config, f"reload failed, keeping the old configuration: {error.text()}",
                "error")
