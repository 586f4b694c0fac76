"""pgsql: Postfix pgsql_table(5) tables, through psycopg 3 (the `pgsql` extra).

The config file (dbcommon.py) gives hosts, user, password, dbname, query
(or select_function, or the old table / select_field / where_field /
additional_conditions), result_format, domain and expansion_limit, plus
vdeliver's own connect_timeout (default 5 s) and query_timeout (default 10
s), both far below pipe(8)'s limits; Postfix ignores names it does not know.

hosts, as dict_pgsql.c: `postgresql://...` URIs, `unix:/directory` or
`/directory` (the socket directory), `inet:host:port` or `host[:port]`;
default localhost. They are tried in random order (as Postfix;
`host_order = listed`: as written) until one answers, a host that failed
skipped for retry_interval (dbcommon.HostList); one connection in the pipe
command (per message), up to lmtp_delivery_threads in the LMTP daemon, one
lookup at a time on each (dbcommon.SqlTable, pool.py); a connection that
broke while idle is replaced once. Every column of every row counts; the server's text form of each
value is used (as PQgetvalue()); NULL and empty values are dropped. The key
travels as a bind parameter (dbcommon.SqlQuery), UTF-8 encoded (Postfix 3.7
sends it as LATIN1, so non-ASCII keys match differently there).

Never: retry a query forever; a database that is down or slow, a failing
query or all hosts refusing is a TableError (defer); a missing psycopg is a
ConfigError naming the extra (pip install vdeliver[pgsql]).
"""
from vdeliver.errors import ConfigError, TableError, one_line
from vdeliver.tables import dbcommon


def load_driver(spec):
    try:
        import psycopg
    except ImportError:
        raise ConfigError(f"{spec}: the psycopg module is not installed"
                          " (pip install vdeliver[pgsql])") from None
    return psycopg


def host_arguments(host):
    """One `hosts` entry -> psycopg.connect() keyword arguments."""
    if host.startswith("postgresql:"):
        return {"conninfo": host}
    if host.startswith(("unix:", "inet:")):
        host = host[5:]
    if host and host[0] != "/":
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit():
            return {"host": name, "port": port}
        return {"host": host}
    return {"host": host}


class PgsqlTable(dbcommon.SqlTable):

    def __init__(self, spec, settings):
        self.spec = spec
        self.driver = load_driver(spec)
        query = settings.get("query")
        if not query and settings.get("select_function"):
            query = f"SELECT {settings['select_function']}('%s')"
        query = query or dbcommon.legacy_query(settings, spec)
        self.templates = dbcommon.Templates(query, settings.get("result_format") or "%s", spec,
                                            dbcommon.domain_list(settings, spec))
        self.query = dbcommon.SqlQuery(query, spec, "format")
        self.expansion_limit = dbcommon.get_int(settings, "expansion_limit", 0, spec)
        self.connect_timeout = dbcommon.get_int(settings, "connect_timeout", 5, spec, minimum=1)
        self.query_timeout = dbcommon.get_int(settings, "query_timeout", 10, spec, minimum=1)
        self.hosts = dbcommon.HostList(settings, spec)
        self.login = {"dbname": settings.get("dbname", ""), "user": settings.get("user", ""),
                      "password": settings.get("password", "")}
        if not self.login["dbname"]:
            raise ConfigError(f"{spec}: dbname is not set")
        # A lookup waits for a free connection at most as long as for a server.
        self.open_pool(self.connect_timeout + self.query_timeout)

    def connect(self):
        """A new connection to the first host that answers."""
        problems = []
        for host in self.hosts.candidates():
            arguments = host_arguments(host)
            conninfo = arguments.pop("conninfo", "")
            if not conninfo:
                arguments.update((k, v) for k, v in self.login.items() if v)
            try:
                connection = self.driver.connect(
                    conninfo, autocommit=True, connect_timeout=max(self.connect_timeout, 2),
                    options=f"-c statement_timeout={self.query_timeout * 1000}",
                    client_encoding="UTF8", **arguments)
                self.hosts.worked(host)
                return connection
            except self.driver.Error as err:
                self.hosts.failed(host)
                problems.append(f"{host}: {one_line(str(err))}")
        raise TableError(f"{self.spec}: no database server answered: {'; '.join(problems)}")

    def fetch(self, connection, sql, params):
        values = []
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params, prepare=False)
                result = cursor.pgresult
                if result is not None:  # the server's text form of each value, as PQgetvalue()
                    for row in range(result.ntuples):
                        for column in range(result.nfields):
                            raw = result.get_value(row, column)
                            values.append(None if raw is None
                                          else raw.decode("utf-8", "surrogateescape"))
        except self.driver.Error as err:
            lost = connection.broken and not isinstance(err, self.driver.errors.QueryCanceled)
            error = dbcommon.ConnectionLost if lost else TableError
            raise error(f"{self.spec}: query failed: {one_line(str(err))}") from None
        return values


def open_table(name, spec):
    return PgsqlTable(spec, dbcommon.read_config(name, spec))
