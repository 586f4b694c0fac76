"""mysql: Postfix mysql_table(5) tables (MySQL, MariaDB), through PyMySQL (the `mysql` extra).

The config file (dbcommon.py) gives hosts, user, password, dbname, query (or
the old table / select_field / where_field / additional_conditions),
result_format, domain, expansion_limit, option_file, option_group and the
tls_* settings, plus vdeliver's own connect_timeout (default 5 s) and
query_timeout (default 10 s), far below pipe(8)'s limits; Postfix ignores
names it does not know.

hosts, as dict_mysql.c: `unix:/path/to/socket`, `inet:host:port`,
`host[:port]`; `localhost` means the default socket
/run/mysqld/mysqld.sock (the MySQL convention). They are tried in random
order (as Postfix; `host_order = listed`: as written), a host that failed
skipped for retry_interval (dbcommon.HostList); one connection in the pipe
command (per message), up to lmtp_delivery_threads in the LMTP daemon, one
lookup at a time on each (dbcommon.SqlTable, pool.py); a connection that
broke while idle is replaced once. Every column of every row counts, as text; NULL and empty values
are dropped. The key travels as a parameter that PyMySQL escapes for the
connection (utf8mb4), with "..." read as a string literal, as MySQL does.

Never: retry forever; a server that is down or slow, a failing query or all
hosts refusing is a TableError (defer); a missing PyMySQL is a ConfigError
naming the extra (pip install vdeliver[mysql]).
"""
from vdeliver.errors import ConfigError, TableError, one_line
from vdeliver.tables import dbcommon

DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"
# CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ER_CONNECTION_KILLED (a restart, a kill).
LOST_CONNECTION_CODES = (2006, 2013, 1927)


def connection_lost(err):
    """The connection broke (the server went away), not the query, and not read_timeout."""
    code = err.args[0] if err.args and isinstance(err.args[0], int) else None
    return code in LOST_CONNECTION_CODES and "timed out" not in str(err)


def load_driver(spec):
    try:
        import pymysql
    except ImportError:
        raise ConfigError(f"{spec}: the PyMySQL module is not installed"
                          " (pip install vdeliver[mysql])") from None
    return pymysql


def host_arguments(host):
    if host.startswith("unix:"):
        return {"unix_socket": host[5:]}
    if host.startswith("inet:"):
        host = host[5:]
    name, colon, port = host.rpartition(":")
    if not colon:
        name, port = host, ""
    if name.lower() == "localhost":
        return {"unix_socket": DEFAULT_SOCKET}
    arguments = {"host": name}
    if port:
        if not (port.isascii() and port.isdigit()):
            raise ConfigError(f"host {host}: the port must be a number")
        arguments["port"] = int(port)
    return arguments


class MysqlTable(dbcommon.SqlTable):

    def __init__(self, spec, settings):
        self.spec = spec
        self.driver = load_driver(spec)
        query = settings.get("query") or dbcommon.legacy_query(settings, spec)
        self.templates = dbcommon.Templates(query, settings.get("result_format") or "%s", spec,
                                            dbcommon.domain_list(settings, spec))
        self.query = dbcommon.SqlQuery(query, spec, "format", backslash_escapes=True,
                                       double_quoted_strings=True)
        self.expansion_limit = dbcommon.get_int(settings, "expansion_limit", 0, spec)
        self.connect_timeout = dbcommon.get_int(settings, "connect_timeout", 5, spec, minimum=1)
        self.query_timeout = dbcommon.get_int(settings, "query_timeout", 10, spec, minimum=1)
        self.hosts = dbcommon.HostList(settings, spec)
        self.login = {"user": settings.get("user") or None,
                      "password": settings.get("password", ""),
                      "database": settings.get("dbname", "")}
        if not self.login["database"]:
            raise ConfigError(f"{spec}: dbname is not set")
        if settings.get("option_file"):
            self.login["read_default_file"] = settings["option_file"]
            self.login["read_default_group"] = settings.get("option_group") or "client"
        ssl = {name: settings[key] for key, name in (
            ("tls_key_file", "key"), ("tls_cert_file", "cert"), ("tls_CAfile", "ca"),
            ("tls_CApath", "capath"), ("tls_ciphers", "cipher")) if settings.get(key)}
        if ssl:
            ssl["check_hostname"] = dbcommon.get_bool(settings, "tls_verify_cert", False, spec)
            self.login["ssl"] = ssl
        # A lookup waits for a free connection at most as long as for a server.
        self.open_pool(self.connect_timeout + self.query_timeout)

    def connect(self):
        """A new connection to the first host that answers."""
        problems = []
        for host in self.hosts.candidates():
            try:
                arguments = host_arguments(host)
            except ConfigError as err:
                raise ConfigError(f"{self.spec}: {err.detail}") from None
            try:
                connection = self.driver.connect(
                    charset="utf8mb4", connect_timeout=self.connect_timeout,
                    read_timeout=self.query_timeout, write_timeout=self.query_timeout,
                    autocommit=True, conv={}, **arguments, **self.login)
                self.hosts.worked(host)
                return connection
            except (self.driver.Error, OSError) as err:
                self.hosts.failed(host)
                problems.append(f"{host}: {one_line(str(err))}")
        raise TableError(f"{self.spec}: no database server answered: {'; '.join(problems)}")

    def fetch(self, connection, sql, params):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
        except (self.driver.Error, OSError) as err:
            error = dbcommon.ConnectionLost if connection_lost(err) else TableError
            raise error(f"{self.spec}: query failed: {one_line(str(err))}") from None
        return [None if value is None else
                bytes(value).decode("utf-8", "surrogateescape") if isinstance(value, (bytes, bytearray))
                else str(value) for row in rows for value in row]


def open_table(name, spec):
    return MysqlTable(spec, dbcommon.read_config(name, spec))
