"""cluster.py - several delivery hosts on one machine, for tests/cluster and bench/cluster_bench.py.

Builds, as root, and tears down again (Cluster.stop(), on every exit path):
  * a bridge BRIDGE (10.213.0.1/24) in the root namespace and, per delivery
    host hN, a network namespace vdcl-hN joined to it by a veth pair, with
    10.213.0.1N on its eth0; nothing else of the machine's network changes
    (no route, no firewall rule, no address outside 10.213.0.0/24);
  * the shared mail store: an ext4 image on a loop device mounted at
    RUN/store (Storage; `directory` when losetup/mkfs.ext4 cannot run: the
    tier then says so); it holds `.vdeliver-mounted`;
  * per host, `vdeliver --lmtp --foreground` on inet:10.213.0.1N:24, inside
    `ip netns exec vdcl-hN unshare --uts --pid --fork --mount`: its own
    hostname (hN.cluster.test), its own PID namespace (every daemon is pid 1,
    so Maildir names differ only by hostname, counter and random part) and its
    own mount namespace, where RUN/store is bind-mounted on RUN/base, its
    virtual_mailbox_base (virtual_mailbox_base_mounted = yes). A host started
    with mounted=False skips the bind: its base is the empty directory an
    unmounted NFS mount point would be;
  * their tables in a private PostgreSQL (tests/tables/servers.py) listening on
    127.0.0.1 and the bridge, shared by all hosts and by Postfix.

Never: touch an interface, namespace or mount that it did not create (stale
ones of a crashed run are found by their vdcl- names and RUN_PREFIX only);
signal a process it did not start; wait without a time limit.
"""
from __future__ import annotations

import collections
import glob
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(TESTS, "tables"), os.path.join(TESTS, "e2e")]

from servers import DATABASE, PASSWORD, USER, PostgresServer  # noqa: E402

BRIDGE = "vdcl0"
NET = "10.213.0"
GATEWAY = f"{NET}.1"
RUN_PREFIX = "/tmp/vdeliver-cluster-"
LOCK_FILE = "/tmp/vdeliver-cluster.lock"  # one cluster per machine: they share the names
NETNS_PREFIX = "vdcl-h"
DOMAIN = "cluster.example"
VMAIL = "vmail"
IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"


README = os.path.join(os.path.dirname(TESTS), "README.md")


def readme_block(title):
    """{name: value} of the README's fenced block whose first line is `# title`."""
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    start = text.index(f"```\n# {title}\n") + len(f"```\n# {title}\n")
    settings = {}
    for line in text[start:text.index("```", start)].splitlines():
        name, _, value = line.partition("=")
        settings[name.strip()] = value.strip()
    return settings


def merged(title, overrides):
    """The README's block with the test's own values: each overridden name must be in it."""
    settings = readme_block(title)
    unknown = [name for name in overrides if name not in settings]
    assert not unknown, f"README block '{title}' lacks {unknown}"
    settings.update(overrides)
    return "".join(f"{name} = {value}\n" for name, value in settings.items())


def run(argv, check=True, timeout=60):
    return subprocess.run(argv, check=check, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def missing_prerequisites():
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces, mounts)")
    for tool in (IP, "/usr/bin/unshare", "/usr/bin/mount"):
        if not os.access(tool, os.X_OK):
            missing.append(f"{tool} (scripts/setup-cluster)")
    return missing


def address(index):
    return f"{NET}.{10 + index}"


def lmtp_greets(host, port=24, timeout=2):
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(512).startswith(b"220 ")
    except OSError:
        return False


# ------------------------------------------------------------------ network

def remove_stale():
    """Namespaces, bridge and mounts left by a run that crashed (ours only, by name)."""
    for line in run([IP, "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NETNS_PREFIX):
            run([IP, "netns", "del", name], check=False)
    if os.path.exists(f"/sys/class/net/{BRIDGE}"):
        run([IP, "link", "del", BRIDGE], check=False)
    # A veth whose namespace was deleted while a process still ran in it outlives the name.
    for link in glob.glob("/sys/class/net/vdcl[0-9]*a"):
        run([IP, "link", "del", os.path.basename(link)], check=False)
    with open("/proc/self/mounts") as fh:
        stale = [line.split()[1] for line in fh if line.split()[1].startswith(RUN_PREFIX)]
    for target in reversed(stale):
        run(["/usr/bin/umount", "-l", target], check=False)
    for root in glob.glob(f"{RUN_PREFIX}*"):
        pid_text = os.path.basename(root)[len(RUN_PREFIX):]
        if pid_text.isdigit() and not os.path.exists(f"/proc/{pid_text}"):
            shutil.rmtree(root, ignore_errors=True)


class Network:
    def __init__(self, count):
        self.count = count
        self.made: list[str] = []

    def start(self):
        run([IP, "link", "add", BRIDGE, "type", "bridge"])
        self.made.append(BRIDGE)
        run([IP, "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
        run([IP, "link", "set", BRIDGE, "up"])
        for index in range(1, self.count + 1):
            self.add_host(index)

    def add_host(self, index):
        ns, outside = f"{NETNS_PREFIX}{index}", f"vdcl{index}a"
        run([IP, "netns", "add", ns])
        self.made.append(ns)
        run([IP, "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run([IP, "link", "set", outside, "master", BRIDGE, "up"])
        for argv in (["addr", "add", f"{address(index)}/24", "dev", "eth0"],
                     ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"]):
            run([IP, "-n", ns] + argv)

    def stop(self):
        for name in reversed(self.made):
            if name == BRIDGE:
                run([IP, "link", "del", BRIDGE], check=False)
            else:
                run([IP, "netns", "del", name], check=False)  # its veth goes with it
        self.made.clear()


# ------------------------------------------------------------------ storage

MFS_PORTS = {"MATOML": 19419, "MATOCS": 19420, "MATOCL": 19421, "CSSERV": 19422}


class Storage:
    """The shared store, mounted at RUN/store in the root namespace:
    `ext4`      an ext4 image on a loop device (each host bind-mounts it: one coherent
                filesystem, an upper bound);
    `directory` a plain directory (where losetup/mkfs.ext4 cannot run);
    `nfsmodel`  a plain directory that each host sees through its own nfsmodel.py FUSE
                mount (a MODEL of NFS's failure modes, not NFS; faults as model_faults);
    `moosefs`   MooseFS 3.0 from Debian: a master and a chunkserver in the root namespace
                on the bridge address, and one FUSE mount (mfsmount) per host, made inside
                the host's own network and mount namespaces: a real distributed filesystem,
                whose locks travel through the master."""

    def __init__(self, root, kind="ext4", size_mb=512, model_faults=""):
        self.root, self.kind, self.size_mb = root, kind, size_mb
        self.model_faults = model_faults
        self.path = f"{root}/store"
        self.image = f"{root}/store.img"
        self.mfs = f"{root}/mfs"
        self.daemons: list[subprocess.Popen] = []
        self.mounted = False

    def start(self):
        os.makedirs(self.path)
        if self.kind == "ext4":
            with open(self.image, "wb") as fh:
                fh.truncate(self.size_mb << 20)
            run(["/usr/sbin/mkfs.ext4", "-q", "-F", "-N", "200000", "-E", "nodiscard", self.image])
            run(["/usr/bin/mount", "-o", "loop", self.image, self.path])
            self.mounted = True
        elif self.kind == "moosefs":
            self.start_moosefs()
        vmail = pwd.getpwnam(VMAIL)
        os.chown(self.path, vmail.pw_uid, vmail.pw_gid)
        os.chmod(self.path, 0o750)
        with open(f"{self.path}/.vdeliver-mounted", "w"):
            pass

    def mount_command(self, target):
        """The shell command a host runs in its own mount namespace to see the store."""
        if self.kind == "nfsmodel":
            model = os.path.join(HERE, "nfsmodel.py")
            log = f"{self.root}/nfsmodel-$(/usr/bin/hostname).log"
            return (f"{{ /usr/bin/python3 {model} {self.path} {target}"
                    f" --faults '{self.model_faults}' >{log} 2>&1 & }} && "
                    f"for i in $(seq 100); do /usr/bin/mountpoint -q {target} && break;"
                    f" sleep 0.1; done && /usr/bin/mountpoint -q {target}")
        if self.kind == "moosefs":
            return (f"/usr/bin/mfsmount {target} -H {GATEWAY} -P {MFS_PORTS['MATOCL']}"
                    " >/dev/null 2>&1")
        return f"/usr/bin/mount --bind {self.path} {target}"

    def start_moosefs(self):
        m = self.mfs
        for sub in ("master", "cs", "hdd"):
            os.makedirs(f"{m}/{sub}")
        shutil.copy("/var/lib/mfs/metadata.mfs.empty", f"{m}/master/metadata.mfs")
        common = "WORKING_USER = root\nWORKING_GROUP = root\n"
        listen = "".join(f"{name}_LISTEN_HOST = {GATEWAY}\n{name}_LISTEN_PORT = {port}\n"
                         for name, port in MFS_PORTS.items() if name != "CSSERV")
        files = {
            "mfsmaster.cfg": f"{common}DATA_PATH = {m}/master\nEXPORTS_FILENAME = {m}/mfsexports.cfg\n"
                             f"TOPOLOGY_FILENAME = {m}/mfstopology.cfg\n{listen}",
            "mfsexports.cfg": f"{NET}.0/24 / rw,alldirs,maproot=0\n",
            "mfstopology.cfg": "",
            "mfschunkserver.cfg": f"{common}DATA_PATH = {m}/cs\nHDD_CONF_FILENAME = {m}/mfshdd.cfg\n"
                                  f"MASTER_HOST = {GATEWAY}\nMASTER_PORT = {MFS_PORTS['MATOCS']}\n"
                                  f"CSSERV_LISTEN_HOST = {GATEWAY}\n"
                                  f"CSSERV_LISTEN_PORT = {MFS_PORTS['CSSERV']}\n"
                                  "HDD_LEAVE_SPACE_DEFAULT = 16MiB\n",
            "mfshdd.cfg": f"{m}/hdd\n",
        }
        for name, text in files.items():
            with open(f"{m}/{name}", "w") as fh:
                fh.write(text)
        for daemon in ("mfsmaster", "mfschunkserver"):
            with open(f"{m}/{daemon}.out", "ab") as out:
                self.daemons.append(subprocess.Popen(
                    [f"/usr/sbin/{daemon}", "-f", "-c", f"{m}/{daemon}.cfg", "start"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))
            port = MFS_PORTS["MATOCL" if daemon == "mfsmaster" else "CSSERV"]
            process = self.daemons[-1]
            wait_until(lambda p=process, n=port: p.poll() is not None or port_open(GATEWAY, n),
                       20, daemon)
        run(["/usr/bin/mfsmount", self.path, "-H", GATEWAY, "-P", str(MFS_PORTS["MATOCL"])])
        self.mounted = True

        def writable():  # the chunkserver has registered with the master
            try:
                with open(f"{self.path}/.probe", "wb") as fh:
                    fh.write(b"x")
                    os.fsync(fh.fileno())
                os.unlink(f"{self.path}/.probe")
                return True
            except OSError:
                return False
        wait_until(writable, 30, "MooseFS to accept writes", 0.5)

    def stop(self):
        if self.mounted:
            run(["/usr/bin/umount", self.path], check=False)
            with open("/proc/self/mounts") as fh:
                if f" {self.path} " in fh.read():
                    run(["/usr/bin/umount", "-l", self.path], check=False)
            self.mounted = False
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)
        self.daemons.clear()


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------ hosts

class Host:
    """One delivery host: vdeliver --lmtp in its own net, UTS, PID and mount namespaces."""

    def __init__(self, cluster, index, mounted=True, extra=""):
        self.cluster, self.index = cluster, index
        self.name = f"h{index}"
        self.hostname = f"h{index}.cluster.test"
        self.address = address(index)
        self.netns = f"{NETNS_PREFIX}{index}"
        self.mounted, self.extra = mounted, extra
        root = cluster.root
        self.config = f"{root}/{self.name}.cf"
        self.log = f"{root}/{self.name}.log"
        self.output = f"{root}/{self.name}.out"
        self.process: subprocess.Popen | None = None

    def write_config(self):
        c = self.cluster
        # The README's "vdeliver.cf (each delivery host)" block, with this run's paths and
        # addresses; lock waits end well before Postfix's lmtp_data_done_timeout (8s in
        # conftest.py): a host frozen while it holds maildirsize.lock must make the others
        # defer (451 4.2.0), not deliver after Postfix gave up on them (a duplicate).
        settings = merged("vdeliver.cf (each delivery host)", {
            "virtual_mailbox_base": c.base,
            "virtual_mailbox_maps": f"pgsql:{c.root}/mailboxes.cf",
            "virtual_mailbox_quota_maps": f"pgsql:{c.root}/quotas.cf",
            "lmtp_listen": f"inet:{self.address}:24",
            "quota_lock_timeout": "3s", "mbox_lock_timeout": "3s"})
        with open(self.config, "w") as fh:
            fh.write(f"""# delivery host {self.name} of the vdeliver cluster tests ({c.root})
{settings}recipient_delimiter = +
maillog_file = {self.log}
lmtp_pid_file = {c.root}/{self.name}.pid
lmtp_delivery_threads = 4
lmtp_max_connections = 64
table_cache_directory = {c.root}/cache
{self.extra}""")
        vmail = pwd.getpwnam(VMAIL)
        for path in (self.log,):
            with open(path, "a"):
                pass
            os.chown(path, vmail.pw_uid, vmail.pw_gid)

    def start(self, timeout=30):
        self.write_config()
        c = self.cluster
        bind = f"{c.storage.mount_command(c.base)} && " if self.mounted else ""
        script = (f"/usr/bin/hostname {self.hostname} && {bind}"
                  f"exec {c.vdeliver} --lmtp --foreground -c {self.config}")
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [IP, "netns", "exec", self.netns, "/usr/bin/unshare", "--uts", "--pid", "--fork",
                 "--mount", "--propagation", "private", "--kill-child", "/bin/sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/",
                start_new_session=True, env={"PATH": "/usr/bin:/bin"})
        wait_until(lambda: self.process.poll() is not None or lmtp_greets(self.address), timeout,
                   f"{self.name}'s LMTP daemon on {self.address}:24")
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}: {self.text()[-2000:]}")

    def daemon_pid(self):
        """The daemon's pid in the root namespace (it is pid 1 in its own)."""
        if self.process is None or self.process.poll() is not None:
            return None
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as fh:
                children = fh.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def signal(self, number):
        pid = self.daemon_pid()
        if pid is not None:
            os.kill(pid, number)
        return pid

    def kill(self):
        """kill -9 the daemon: its sessions end with no reply, whatever they had done."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=20)

    def stop(self, timeout=30):
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.kill()
                self.process.wait(timeout=20)
        code, self.process = self.process.returncode, None
        return code

    def text(self):
        try:
            with open(self.output, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""


# ------------------------------------------------------------------ the whole

class Cluster:
    """Network, storage, PostgreSQL and `count` delivery hosts; start() and stop()."""

    def __init__(self, count=3, storage="ext4", vdeliver=None, users=50, quota_users=(),
                 extra_users=(), model_faults=""):
        self.root = f"{RUN_PREFIX}{os.getpid()}"
        self.base = f"{self.root}/base"
        self.count = count
        self.vdeliver = vdeliver or os.environ.get("VDELIVER_BIN", "/opt/vdeliver/bin/vdeliver")
        self.users = [f"u{k}@{DOMAIN}" for k in range(users)]
        self.quota_users = dict(quota_users)     # address -> limit, e.g. {"shared@...": "1G"}
        self.extra_users = list(extra_users)     # in the table, not in the burst
        self.network = Network(count)
        self.storage = Storage(self.root, storage, model_faults=model_faults)
        self.pg: PostgresServer | None = None
        self.hosts: list[Host] = []
        self.transports: dict[str, str] = {}
        self.lock_fd: int | None = None

    def start(self):
        missing = missing_prerequisites()
        if missing:
            raise RuntimeError("; ".join(missing))
        self.take_lock()
        remove_stale()
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        os.makedirs(self.base)
        os.makedirs(f"{self.root}/cache")
        vmail = pwd.getpwnam(VMAIL)
        os.chown(f"{self.root}/cache", vmail.pw_uid, vmail.pw_gid)
        self.network.start()
        self.storage.start()
        self.start_database()
        for index in range(1, self.count + 1):
            host = Host(self, index)
            self.hosts.append(host)
            host.start()

    def take_lock(self):
        """The bridge and namespace names are fixed: a second cluster (a bench run, another
        test session) would tear this one's down as stale. Refuse to start instead."""
        import fcntl
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another cluster (test or bench) holds {LOCK_FILE}") from None
        self.lock_fd = fd

    def replace(self, index, mounted=True, extra=""):
        """Stop host `index` and start it again, e.g. without its mount (mounted=False)."""
        old = self.hosts[index - 1]
        old.stop()
        host = Host(self, index, mounted, extra)
        self.hosts[index - 1] = host
        host.start()
        return host

    def ensure_running(self):
        """Each host running, mounted, with the standard configuration."""
        for host in list(self.hosts):
            if host.process is None or host.process.poll() is not None or not host.mounted \
                    or host.extra:
                self.replace(host.index)
            else:
                host.signal(signal.SIGCONT)

    def stop(self):
        for host in self.hosts:
            host.stop()
        self.hosts.clear()
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        self.storage.stop()
        self.network.stop()
        if not os.environ.get("VDELIVER_CLUSTER_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------- tables

    def start_database(self):
        self.pg = PostgresServer(listen=f"127.0.0.1,{GATEWAY}", allow=(f"{NET}.0/24",)).start()
        rows = [(user, f"{DOMAIN}/{user.split('@')[0]}/") for user in self.users]
        rows += [(user, f"{DOMAIN}/{user.split('@')[0]}/")
                 for user in list(self.quota_users) + self.extra_users]
        values = ", ".join(f"('{key}', '{value}')" for key, value in rows)
        quotas = ", ".join(f"('{key}', '{limit}')" for key, limit in self.quota_users.items())
        self.pg.sql("CREATE TABLE mailbox (email TEXT PRIMARY KEY, maildir TEXT);"
                    f" INSERT INTO mailbox VALUES {values};"
                    " CREATE TABLE quota (email TEXT PRIMARY KEY, quota TEXT);"
                    + (f" INSERT INTO quota VALUES {quotas};" if quotas else "")
                    + " CREATE TABLE transport (domain TEXT PRIMARY KEY, transport TEXT);",
                    user=USER)
        for name, query in (("mailboxes", "SELECT maildir FROM mailbox WHERE email='%s'"),
                            ("quotas", "SELECT quota FROM quota WHERE email='%s'"),
                            ("transport", "SELECT transport FROM transport WHERE domain='%s'")):
            self.write_pg_config(f"{self.root}/{name}.cf", query)

    def write_pg_config(self, path, query):
        with open(path, "w") as fh:
            # The bridge address: what each host reaches. connect_timeout and
            # query_timeout are vdeliver's (Postfix ignores them).
            fh.write(f"hosts = inet:{GATEWAY}:{self.pg.port}\nuser = {USER}\n"
                     f"password = {PASSWORD}\ndbname = {DATABASE}\nquery = {query}\n"
                     "connect_timeout = 2\nquery_timeout = 5\nretry_interval = 1\n")
        os.chmod(path, 0o644)

    def set_transports(self, transports):
        """The pgsql transport table (Postfix reads it): {key: transport}."""
        self.pg.sql("DELETE FROM transport;" + "".join(
            f" INSERT INTO transport VALUES ('{key}', '{value}');"
            for key, value in transports.items()), user=USER)

    # ---------------------------------------------------------- the store

    def maildir(self, user):
        return f"{self.storage.path}/{DOMAIN}/{user.split('@')[0]}"

    def files(self, user, sub="new"):
        try:
            return sorted(os.listdir(f"{self.maildir(user)}/{sub}"))
        except FileNotFoundError:
            return []


def lmtp_deliver(host_address, recipient, data, sender=f"sender@{DOMAIN}", timeout=30):
    """One message straight to a host's LMTP daemon: (code, text) of its one reply."""
    with smtplib.LMTP(host_address, 24, local_hostname="test.cluster", timeout=timeout) as lmtp:
        lmtp.ehlo()  # LHLO
        lmtp.mail(sender)
        code, text = lmtp.rcpt(recipient)
        if code != 250:
            return code, text.decode(errors="replace")
        try:
            # smtplib sends bytes as they are: CRLF line ends, as on the wire.
            code, text = lmtp.data(data.replace(b"\n", b"\r\n"))  # one reply (RFC 2033)
        except smtplib.SMTPDataError as err:
            return err.smtp_code, err.smtp_error.decode(errors="replace")
        return (250, "") if code == 250 else (code, text.decode(errors="replace"))


def message(seq, size=0, extra_headers=b""):
    """Message number seq: its X-Test-Seq header and a body derived from seq alone."""
    lines = [b"line %d of message %d %s" % (k, seq, b"x" * (seq % 37)) for k in range(3 + seq % 7)]
    body = b"\n".join(lines) + b"\n"
    if size > len(body):
        body += b"y" * (size - len(body) - 1) + b"\n"
    return (b"From: <sender@%s>\nTo: <user@%s>\nSubject: cluster %d\nX-Test-Seq: %d\n%s\n"
            % (DOMAIN.encode(), DOMAIN.encode(), seq, seq, extra_headers) + body)


def body_of(data):
    return data.split(b"\n\n", 1)[1] if b"\n\n" in data else b""


def sequence_of(data):
    head = data.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        if line.lower().startswith(b"x-test-seq:"):
            return int(line.split(b":", 1)[1])
    return None


def make_tempdir():
    return tempfile.mkdtemp(prefix="vdeliver-cluster-scratch-")


# ------------------------------------------------------------------ bursts through Postfix

def burst(postfix, recipients, faults=(), senders=4, sender=None, per_session=100):
    """Submit message seq to recipients[seq] over `senders` SMTP sessions at once, running
    each fault (seconds after the start, callable) on a thread of its own meanwhile.
    Returns ({seq: queue id} accepted by smtpd, {seq: error} refused, seconds taken)."""
    import threading

    import harness
    sender = sender or harness.SENDER
    accepted, refused, lock = {}, {}, threading.Lock()
    tempfailed = burst.tempfailed = {}  # seq -> how many 4xx replies smtpd gave it

    def connect():
        return smtplib.SMTP("127.0.0.1", postfix.smtp_port, timeout=60,
                            local_hostname="client.cluster.test")

    def send(part):
        smtp = None
        try:
            for n, seq in enumerate(part):
                if smtp is not None and n % per_session == 0:
                    smtp.quit()
                    smtp = None
                for _ in range(120):
                    try:
                        if smtp is None:
                            smtp = connect()
                        _, qid = harness.submit(smtp, message(seq), [recipients[seq]], sender, ())
                        with lock:
                            accepted[seq] = qid
                        break
                    except smtplib.SMTPServerDisconnected:
                        # smtpd's error limit ends a session with many 4xx: a new one.
                        smtp = None
                        time.sleep(0.5)
                    except smtplib.SMTPException as err:
                        # A 4xx (smtpd's transport lookup while PostgreSQL restarts): the
                        # client tries again, as a real one would. Anything else: refused.
                        if temporary(err):
                            with lock:
                                tempfailed[seq] = tempfailed.get(seq, 0) + 1
                            smtp.rset()
                            time.sleep(0.5)
                            continue
                        with lock:
                            refused[seq] = repr(err)
                        smtp.rset()
                        break
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except smtplib.SMTPException:
                    pass

    def run_faults(started):
        for at, action in sorted(faults, key=lambda fault: fault[0]):
            time.sleep(max(0.0, started + at - time.monotonic()))
            action()

    seqs = sorted(recipients)
    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(seqs[k::senders],)) for k in range(senders)]
    if faults:
        threads.append(threading.Thread(target=run_faults, args=(started,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    return accepted, refused, time.monotonic() - started


def temporary(err):
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in err.recipients.values())
    return 400 <= getattr(err, "smtp_code", 0) < 500


def drain(postfix, timeout=240):
    """Wait until Postfix's queue is empty (deferred mail is retried every second or so)."""
    deadline = time.monotonic() + timeout
    while postfix.queue():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Postfix's queue not empty after {timeout}s: "
                               f"{len(postfix.queue())} messages left")
        time.sleep(0.5)


class Delivered:
    """One file in a new/ of the store."""
    __slots__ = ("user", "name", "data", "seq", "queue_id", "host")

    def __init__(self, user, name, data):
        import re
        self.user, self.name, self.data = user, name, data
        self.seq = sequence_of(data)
        match = re.search(rb"\(Postfix\) with E?SMTP id ([0-9A-Za-z]+)", data)
        self.queue_id = match.group(1).decode() if match else None
        self.host = name.split(",")[0].rsplit(".", 3)[-3] if ".cluster.test" in name else None


def delivered(c, users):
    out = []
    for user in users:
        directory = f"{c.maildir(user)}/new"
        for name in c.files(user):
            with open(f"{directory}/{name}", "rb") as fh:
                out.append(Delivered(user, name, fh.read()))
    return out


def maildirsize_totals(c, user):
    """(bytes, messages) summed over maildirsize's usage lines."""
    with open(f"{c.maildir(user)}/maildirsize") as fh:
        lines = fh.read().splitlines()[1:]
    fields = [line.split() for line in lines if line.strip()]
    return sum(int(f[0]) for f in fields), sum(int(f[1]) for f in fields)


def store_totals(c, user):
    """(bytes, messages) of new/ and cur/ from the ,S= sizes in the names."""
    sizes = [int(name.split(",S=")[1].split(",")[0].split(":")[0])
             for sub in ("new", "cur") for name in c.files(user, sub)]
    return sum(sizes), len(sizes)


def postfix_deliveries(postfix, domain=DOMAIN):
    """Postfix's lmtp delivery lines for domain: [(queue id, relay, status, text)]."""
    import re
    pattern = re.compile(r"postfix/lmtp\[\d+\]: ([0-9A-Za-z]+): to=<[^>]*@" + re.escape(domain)
                         + r">.*?relay=([^,]*), .*?status=(\w+) \((.*)\)$")
    return [match.groups() for line in postfix.log_text().splitlines()
            if (match := pattern.search(line))]


def ambiguous_attempts(postfix):
    """{queue id: {address}}: the attempts Postfix logged as "may be sent more than once"
    (the connection broke or timed out after the message's end of data: the host may have
    committed it), as `QID: lost connection with NAME[ADDR] ...` or `conversation with
    NAME[ADDR] timed out ...`, or in a deferred status line."""
    import re
    pattern = re.compile(r": ([0-9A-Za-z]+): .*?(?:with|relay=)[^\[]*\[([0-9.]+)\].*more than once")
    out = collections.defaultdict(set)
    for line in postfix.log_text().splitlines():
        match = pattern.search(line)
        if match:
            out[match.group(1)].add(match.group(2))
    return out


# ------------------------------------------------------------------ Postfix in front

# The README's "main.cf (Postfix in front ...)" block, its timeouts lowered so that a dead
# or frozen host costs seconds, and deferred mail is retried within a second or two.
POSTFIX_OVERRIDES = {
    "lmtp_connect_timeout": "2s", "lmtp_lhlo_timeout": "4s", "lmtp_data_done_timeout": "8s",
    "lmtp_destination_concurrency_failed_cohort_limit": "1000",
}
POSTFIX_EXTRA = """\
lmtp_mail_timeout = 4s
lmtp_rcpt_timeout = 4s
lmtp_data_init_timeout = 4s
lmtp_data_xfer_timeout = 4s
lmtp_quit_timeout = 2s
lmtp_destination_concurrency_limit = 12
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
in_flow_delay = 0
"""
FRONT = "main.cf (Postfix in front of several vdeliver hosts)"


def postfix_in_front(c, more_users=()):
    """A private Postfix (tests/e2e/harness.py, mode lmtp, no Dovecot), not yet started,
    delivering DOMAIN through the pgsql transport table of cluster c."""
    import harness
    h = harness.Harness(mode="lmtp", dovecot=False)
    h.extra_domains.append(DOMAIN)
    for user in c.users + list(more_users):
        h.postfix_table[user] = "unused/"
    readme = readme_block(FRONT)
    assert readme["transport_maps"].startswith("pgsql:")
    # lmtp_host_lookup = native is in the harness's main.cf already (a second line would
    # make every Postfix command warn); transport_maps is the harness's, with the pgsql
    # table first.
    assert readme["lmtp_host_lookup"] == "native"
    main = merged(FRONT, POSTFIX_OVERRIDES)
    h.extra_main_cf = "".join(line + "\n" for line in main.splitlines()
                              if not line.startswith(("transport_maps", "lmtp_host_lookup")))
    h.extra_main_cf += POSTFIX_EXTRA
    h.extra_transport_maps = f"pgsql:{c.root}/transport.cf, "
    return h


def write_chroot_hosts(h, c):
    """The chrooted lmtp(8)'s own /etc/hosts: `vdpool` with every host's address (and
    vdpool1, vdpool2, vdpool3: the first 1, 2, 3 hosts, for bench/cluster_bench.py)."""
    chroot_etc = f"{h.spool}/etc"
    os.makedirs(chroot_etc, exist_ok=True)
    lines = ["127.0.0.1 localhost"]
    for host in c.hosts:
        pools = " ".join(f"vdpool{n}" for n in range(host.index, len(c.hosts) + 1))
        lines.append(f"{host.address} vdpool {pools} {host.name}")
    with open(f"{chroot_etc}/hosts", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(f"{chroot_etc}/nsswitch.conf", "w") as fh:
        fh.write("hosts: files\n")
    with open(f"{chroot_etc}/host.conf", "w") as fh:
        fh.write("multi on\n")  # else glibc returns only the first line's address
