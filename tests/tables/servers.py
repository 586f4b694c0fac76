"""Private PostgreSQL, MariaDB and OpenLDAP servers for the table tests, never the system's.

Each server gets its own data directory under /tmp (mkdtemp), listens on
127.0.0.1 at a free port and on a unix socket inside that directory, runs as
the packages' unprivileged user (postgres, mysql, openldap), is started in the
foreground by us (so we hold its pid) and stopped by stop(): a fast
shutdown, then SIGKILL after a few seconds, then the directory is removed.
start() cleans up after itself when start-up fails.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
MARIADB = "/usr/bin/mariadb"
USER, PASSWORD, DATABASE = "vtest", "vtest-Pa55", "vmail"
SLAPD = "/usr/sbin/slapd"
LDAPADD = "/usr/bin/ldapadd"
SLAPD_MODULES = "/usr/lib/ldap"
SCHEMA_DIRECTORY = "/etc/ldap/schema"  # package data of slapd, not configuration
SUFFIX = "dc=example,dc=com"
ROOT_DN, ROOT_PW = f"cn=admin,{SUFFIX}", "ldap-Pa55"
# Postfix's default query_filter and result_attribute (ldap_table(5)) name attributes no
# packaged schema defines: a tiny one here (the OID arc is OpenLDAP's experimental one).
POSTFIX_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'mailacceptinggeneralid'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024} )
attributetype ( 1.3.6.1.4.1.4203.666.11.99.2 NAME 'maildrop'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024} )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.3 NAME 'postfixRecipient' SUP top AUXILIARY
  MAY ( mailacceptinggeneralid $ maildrop ) )
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, process, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on port {port} within {seconds}s")


class Server:
    kind = ""

    def __init__(self):
        self.directory = None
        self.process = None
        self.port = None
        self.log = None

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGCONT)  # in case a test left it stopped
                self.process.send_signal(self.stop_signal)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def launch(self):
        """Start the server process of an initialised directory (start(), restart())."""
        self.log = open(os.path.join(self.directory, "server.log"), "ab")
        self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, **self.popen_options)
        wait_for_port(self.port, self.process)
        self.wait_ready()

    def wait_ready(self, seconds=30):
        """Listening is not answering: PostgreSQL refuses logins while it starts up."""

    def restart(self, during=None):
        """Stop the server as an admin would (its clients' connections break), call
        during() while it is down, start it again on the same port with the same data."""
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.log.close()
        if during is not None:
            during()
        self.launch()

    def pause(self):
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def logged(self):
        try:
            with open(os.path.join(self.directory, "server.log"), errors="replace") as fh:
                return fh.read()[-3000:]
        except OSError:
            return ""


class PostgresServer(Server):
    kind = "pgsql"
    stop_signal = signal.SIGINT  # "fast" shutdown

    def __init__(self, listen="127.0.0.1", allow=()):
        """listen: the addresses (comma-separated, 127.0.0.1 among them) besides the socket;
        allow: more client
        networks (CIDR) that may log in with a password (pg_hba.conf)."""
        super().__init__()
        self.listen, self.allow = listen, tuple(allow)

    def start(self):
        try:
            self.directory = tempfile.mkdtemp(prefix="vdeliver-test-pg-")
            shutil.chown(self.directory, "postgres", "postgres")
            data = os.path.join(self.directory, "data")
            self.port = free_port()
            self.run([f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
                      "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "-N"])
            if self.allow:
                with open(os.path.join(data, "pg_hba.conf"), "a") as fh:
                    fh.writelines(f"host all all {net} scram-sha-256\n" for net in self.allow)
            self.argv = [f"{PG_BIN}/postgres", "-D", data, "-p", str(self.port), "-h", self.listen,
                         "-k", self.directory, "-c", "fsync=off", "-c", "full_page_writes=off"]
            self.popen_options = {"user": "postgres", "group": "postgres"}
            self.launch()
            self.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'", database="postgres")
            self.sql(f"CREATE DATABASE {DATABASE} OWNER {USER}", database="postgres")
            return self
        except BaseException:
            log = self.logged()
            self.stop()
            raise RuntimeError(f"private PostgreSQL failed to start; log tail:\n{log}") from None

    def wait_ready(self, seconds=30):
        deadline = time.monotonic() + seconds
        while subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL on port {self.port} not ready within {seconds}s")
            time.sleep(0.1)

    def run(self, argv):
        subprocess.run(argv, user="postgres", group="postgres", check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.directory)

    def sql(self, statements, database=DATABASE, user="postgres"):
        subprocess.run([f"{PG_BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.directory,
                        "-p", str(self.port), "-U", user, "-d", database],
                       input=statements.encode(), user="postgres", group="postgres", check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.directory)

    def hosts(self):
        return f"inet:127.0.0.1:{self.port}"


class MariadbServer(Server):
    kind = "mysql"
    stop_signal = signal.SIGTERM

    def start(self):
        try:
            self.directory = tempfile.mkdtemp(prefix="vdeliver-test-mariadb-")
            shutil.chown(self.directory, "mysql", "mysql")
            os.chmod(self.directory, 0o755)
            data = os.path.join(self.directory, "data")
            self.port = free_port()
            subprocess.run([MARIADB_INSTALL_DB, "--no-defaults", f"--datadir={data}", "--user=mysql",
                            "--auth-root-authentication-method=socket", "--skip-test-db"],
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           cwd=self.directory)
            self.argv = [MARIADBD, "--no-defaults", f"--datadir={data}", "--user=mysql",
                         f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
                         f"--pid-file={self.directory}/mariadbd.pid", "--skip-log-bin",
                         "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
                         "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                         "--skip-name-resolve"]
            self.popen_options = {}
            self.launch()
            self.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;"
                     f" CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
                     f" CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';"
                     f" GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1';"
                     f" GRANT ALL ON {DATABASE}.* TO '{USER}'@'localhost';", database="")
            return self
        except BaseException:
            log = self.logged()
            self.stop()
            raise RuntimeError(f"private MariaDB failed to start; log tail:\n{log}") from None

    @property
    def socket(self):
        return os.path.join(self.directory, "mysqld.sock")

    def sql(self, statements, database=DATABASE):
        argv = [MARIADB, "--no-defaults", f"--socket={self.socket}", "-u", "root"]
        if database:
            argv.append(database)
        subprocess.run(argv, input=statements.encode(), check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def hosts(self):
        return f"inet:127.0.0.1:{self.port}"


class SlapdServer(Server):
    """OpenLDAP's slapd with one mdb database under SUFFIX, ROOT_DN/ROOT_PW its rootdn,
    configured by a slapd.conf of its own (slapd -f: the system's /etc/ldap/slapd.d is
    never read), listening on ldap://127.0.0.1:PORT/ and ldapi:// in the directory."""
    kind = "ldap"
    stop_signal = signal.SIGTERM

    def start(self, ldif="", tls=False):
        """tls: a CA and a server certificate for 127.0.0.1 made here (openssl), StartTLS on
        the ldap:// listener and an ldaps:// one (ldaps_url()); the CA is ca_file."""
        try:
            self.directory = tempfile.mkdtemp(prefix="vdeliver-test-slapd-")
            data = os.path.join(self.directory, "data")
            os.mkdir(data, 0o700)
            schema = os.path.join(self.directory, "postfix.schema")
            with open(schema, "w") as fh:
                fh.write(POSTFIX_SCHEMA)
            config = os.path.join(self.directory, "slapd.conf")
            with open(config, "w") as fh:
                fh.write("".join(f"include {SCHEMA_DIRECTORY}/{name}.schema\n"
                                 for name in ("core", "cosine", "inetorgperson")))
                fh.write(f"include {schema}\n"
                         f"modulepath {SLAPD_MODULES}\nmoduleload back_mdb\n"
                         f"pidfile {self.directory}/slapd.pid\n"
                         f"argsfile {self.directory}/slapd.args\n"
                         "database mdb\nmaxsize 16777216\n"
                         f'suffix "{SUFFIX}"\nrootdn "{ROOT_DN}"\nrootpw {ROOT_PW}\n'
                         f"directory {data}\nindex objectClass eq\n"
                         "index mailacceptinggeneralid eq\n")
                if tls:
                    self.ca_file = self.make_certificates()
                    fh.write(f"TLSCACertificateFile {self.ca_file}\n"
                             f"TLSCertificateFile {self.directory}/server.pem\n"
                             f"TLSCertificateKeyFile {self.directory}/server.key\n")
            for path in (self.directory, data):
                shutil.chown(path, "openldap", "openldap")
            os.chmod(self.directory, 0o755)
            self.port = free_port()
            self.ldaps_port = free_port() if tls else None
            listeners = f"{self.url()} {self.ldapi()}" + (f" {self.ldaps_url()}" if tls else "")
            self.argv = [SLAPD, "-d", "0", "-f", config, "-u", "openldap", "-g", "openldap",
                         "-h", listeners]
            self.popen_options = {}
            self.launch()
            self.add(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
                     "dc: example\no: example\n")
            if ldif:
                self.add(ldif)
            return self
        except BaseException:
            log = self.logged()
            self.stop()
            raise RuntimeError(f"private slapd failed to start; log tail:\n{log}") from None

    def add(self, ldif):
        """ldapadd of LDIF text, bound as the rootdn."""
        subprocess.run([LDAPADD, "-x", "-H", self.url(), "-D", ROOT_DN, "-w", ROOT_PW],
                       input=ldif.encode(), check=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "LDAPNOINIT": "1"})

    def make_certificates(self):
        """A CA and a server certificate (subjectAltName IP 127.0.0.1 and localhost) signed
        by it, in the directory; the key readable by slapd alone. Returns the CA's path."""
        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, cwd=self.directory,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj", "/CN=vdeliver test CA")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
                "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(self.directory, "san.cnf"), "w") as fh:
            fh.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")
        key = os.path.join(self.directory, "server.key")
        shutil.chown(key, "openldap", "openldap")
        os.chmod(key, 0o600)
        os.chmod(os.path.join(self.directory, "ca.pem"), 0o644)
        return os.path.join(self.directory, "ca.pem")

    def url(self):
        return f"ldap://127.0.0.1:{self.port}/"

    def ldaps_url(self):
        return f"ldaps://127.0.0.1:{self.ldaps_port}/"

    def ldapi(self):
        """ldapi://%2Ftmp%2F...%2Fldapi: the socket in the directory, / written %2F."""
        return "ldapi://" + os.path.join(self.directory, "ldapi").replace("/", "%2F")

    def hosts(self):
        return self.url()


class ActivityWatcher:
    """pg_stat_activity of the table user USER (a table's or the LMTP daemon's connections),
    sampled every 20 ms on a thread of its own: most_connections, most_active, backends()."""

    def __init__(self, server):
        import psycopg
        import threading
        self.connection = psycopg.connect(host=server.directory, port=server.port,
                                          user="postgres", dbname="postgres", autocommit=True)
        # Only connections made from now on: earlier tests of the session may have left
        # theirs to the table user open (a table not closed is closed by the collector).
        (self.since,) = self.connection.execute("SELECT clock_timestamp()").fetchone()
        self.most_connections = self.most_active = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def sample(self):
        return self.connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'active')"
            " FROM pg_stat_activity WHERE usename = %s AND backend_start >= %s",
            (USER, self.since)).fetchone()

    def run(self):
        while not self.stopping.wait(0.02):
            connections, active = self.sample()
            self.most_connections = max(self.most_connections, connections)
            self.most_active = max(self.most_active, active)

    def backends(self):
        return {pid for (pid,) in self.connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE usename = %s AND backend_start >= %s",
            (USER, self.since))}

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.connection.close()
