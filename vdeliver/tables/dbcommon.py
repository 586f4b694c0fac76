"""What sqlite:, pgsql:, mysql: and ldap: share: their config file, the %-codes
of `query`/`result_format` (Postfix's db_common.c), `domain`, and the
parameterised SQL query built from a template.

Config file (cfg_parser.c): main.cf syntax, `name = value`, values taken
verbatim (no $name expansion). The table name must be a file name starting
with `/` or `.`; Postfix's other form, a main.cf parameter prefix, is refused.

Codes, as db_common_expand(): in `query` %s is the key, %u its localpart (the
whole key when it has no @), %d its domain, %1..%9 the domain's labels from
the right (%1 = top level), %S %U %D the same as %s %u %d; %% is %. In
`result_format` %s %u %d refer to the value, %S %U %D and %1..%9 to the key.
A key is not queried at all (not found) when the templates need what it
lacks: %d/%D/%1..%9 with no @ or nothing after it, %u/%U with nothing before
the @, fewer domain labels than the highest %n; nor when `domain` is set and
the key's domain is not in it (both folded as Postfix's
casefold() under smtputf8_enable: under no, ASCII only) or its localpart is
empty; nor an empty key.
Result values that are NULL or empty, or lack what result_format needs, are
dropped; the rest are joined with commas; more than `expansion_limit` (when
non-zero) is a TableError, as Postfix.

SQL: every quoted string literal of `query` that holds a code becomes one
bind parameter whose value is the literal's text with the codes replaced;
the driver passes it to the server apart from the SQL text, so no address
can change the statement. A code outside quotes, or in a literal the
template would need dialect rules to read (a backslash, an E'' or N''
prefix), is refused (ConfigError): Postfix pastes escaped text there, which
a key can still break out of when it is not quoted.

Hosts (pgsql, mysql: HostList): as dict_pgsql.c and dict_mysql.c, the
`hosts` are tried in random order (vdeliver's own `host_order = listed`
tries them as written: a primary and its standby), and a host that failed
to connect is skipped for `retry_interval` seconds (default 60, Postfix's
RETRY_CONN_INTV) while another is up; when every host has failed they are
all tried again, oldest failure first, so a restarted server is used at the
next lookup. A connection that broke while idle (the server restarted) is
replaced once, within the same lookup; a query that fails on a fresh
connection, or times out, defers.

Connections (pool.py): each table keeps up to tables.POOL_SIZE of them, the
LMTP daemon's lmtp_delivery_threads (its lookup threads and its delivery
threads share the tables), one in the pipe command; a lookup takes an idle
one or opens one, and gives it back after its query; one that failed is
closed, never given back. When a reused one broke, the other idle ones are
closed too before the one retry. HostList's state is a dict of failure
times, which threads may update side by side (each update one dict
operation).

Never: put key text into SQL text; treat a template it cannot read as
anything but a ConfigError; retry a query that timed out.
"""
import random
import time

from vdeliver.address import fold, is_utf8
from vdeliver.config import logical_lines, split_list
from vdeliver.errors import ConfigError, TableError
from vdeliver.tables.pool import Pool

KEY_DOMAIN, KEY_USER, VALUE_DOMAIN, VALUE_USER, KEY_PARTIAL = 1, 2, 4, 8, 16
CODES = "sudSUD123456789%"


def read_config(name, spec):
    """The table's config file -> {name: value}."""
    if not name.startswith(("/", ".")):
        raise ConfigError(f"{spec}: the table name must be a file name starting with / or ."
                          " (main.cf parameter prefixes are not supported)")
    try:
        with open(name, "rb") as fh:
            text = fh.read().decode("utf-8", "surrogateescape")
    except OSError as err:
        raise ConfigError(f"{spec}: cannot read {name}: {err.strerror}") from None
    settings = {}
    try:
        for number, line in logical_lines(text):
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"{name}, line {number}: expected 'name = value'")
            settings[key] = value.strip()
    except ConfigError as err:
        raise ConfigError(f"{spec}: {err.detail}") from None
    return settings


def get_int(settings, name, default, spec, minimum=0):
    value = settings.get(name, "")
    if not value:
        return default
    # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ConfigError(f"{spec}: {name} = {value}: expected a number >= {minimum}")
    return int(value)


def get_bool(settings, name, default, spec):
    value = settings.get(name, "").lower()
    if not value:
        return default
    if value in ("yes", "true", "1", "on"):
        return True
    if value in ("no", "false", "0", "off"):
        return False
    raise ConfigError(f"{spec}: {name} = {value}: expected yes or no")


def legacy_query(settings, spec):
    """Postfix's "old style" query: SELECT select_field FROM table WHERE where_field='%s' ..."""
    missing = [name for name in ("table", "select_field", "where_field") if not settings.get(name)]
    if missing:
        raise ConfigError(f"{spec}: no query and no {missing[0]}")
    return (f"SELECT {settings['select_field']} FROM {settings['table']} WHERE "
            f"{settings['where_field']}='%s' {settings.get('additional_conditions', '')}")


class Templates:
    """The query and result_format templates of one table (db_common_parse)."""

    def __init__(self, query, result_format, spec, domain=None):
        self.spec = spec
        self.flags = 0
        self.nparts = 0
        self.query = query
        self.result_format = result_format
        self.parse(query, True)
        self.parse(result_format, False)
        self.domain = domain  # DomainList or None

    def parse(self, template, query):
        i, n = 0, len(template)
        while i < n:
            if template[i] != "%":
                i += 1
                continue
            code = template[i + 1] if i + 1 < n else ""
            if code == "u":
                self.flags |= (KEY_USER | KEY_PARTIAL) if query else VALUE_USER
            elif code == "d":
                self.flags |= (KEY_DOMAIN | KEY_PARTIAL) if query else VALUE_DOMAIN
            elif code == "U":
                self.flags |= KEY_PARTIAL | KEY_USER
            elif code in "123456789" and code:
                self.nparts = max(self.nparts, int(code))
                self.flags |= KEY_PARTIAL | KEY_DOMAIN
            elif code == "D":
                self.flags |= KEY_PARTIAL | KEY_DOMAIN
            elif code not in ("s", "S", "%") or not code:
                raise ConfigError(f"{self.spec}: invalid {'query' if query else 'result'}"
                                  f" template: {template}")
            i += 2

    def check_domain(self, key):
        """False when `domain` is set and the key is not an address in it."""
        if self.domain is None:
            return True
        local, at, domain = key.rpartition("@")
        if not at or not local:
            return False
        return self.domain.matches(domain)

    def query_values(self, key):
        """The code -> text map for the query, or None when the key is skipped."""
        return self.values(key, None)

    def result(self, value, key):
        """One result value through result_format, or None when it is dropped."""
        values = self.values(value, key)
        if values is None:
            return None
        return substitute(self.result_format, values)

    def values(self, value, key):
        if value is None or value == "":
            return None
        flags = self.flags
        vdomain = kdomain = None
        if key is not None:
            if flags & (VALUE_DOMAIN | VALUE_USER):
                vdomain = after_at(value)
            if (not vdomain and flags & VALUE_DOMAIN) or (
                    vdomain is not None and value.rfind("@") == 0 and flags & VALUE_USER):
                return None
            if flags & (KEY_DOMAIN | KEY_USER):
                kdomain = after_at(key)
            if (not kdomain and flags & KEY_DOMAIN) or (
                    kdomain is not None and key.rfind("@") == 0 and flags & KEY_USER):
                return None
        else:
            if flags & (KEY_DOMAIN | KEY_USER):
                vdomain = after_at(value)
            if (not vdomain and flags & KEY_DOMAIN) or (
                    vdomain is not None and value.rfind("@") == 0 and flags & KEY_USER):
                return None
        labels = None
        if self.nparts:
            # argv_split() (mystrtok) drops empty labels: "a..b." -> a, b
            labels = [label for label in (kdomain if key is not None else vdomain).split(".")
                      if label]
            if len(labels) < self.nparts:
                return None
        vuser = value[:value.rfind("@")] if vdomain is not None else value
        values = {"%": "%", "s": value, "u": vuser}
        if vdomain is not None:
            values["d"] = vdomain
        if key is not None:
            values["S"] = key
            values["U"] = key[:key.rfind("@")] if kdomain is not None else key
            if kdomain is not None:
                values["D"] = kdomain
        else:
            values["S"] = value
            values["U"] = vuser
            if vdomain is not None:
                values["D"] = vdomain
        if labels is not None:
            for number in range(1, self.nparts + 1):
                values[str(number)] = labels[-number]
        return values


def after_at(text):
    at = text.rfind("@")
    return None if at < 0 else text[at + 1:]


def substitute(template, values):
    out, i, n = [], 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "%" and i + 1 < n:
            out.append(values[template[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class DomainList:
    """The `domain` parameter: a Postfix match list of domain names, `!name`,
    `/file` (one or more names per line) and `type:table` (a hit matches)."""

    def __init__(self, text, spec):
        self.items = []
        for item in split_list(text):
            negate = False
            while item.startswith("!"):
                negate, item = not negate, item[1:]
            if item.startswith("/"):
                try:
                    with open(item, "rb") as fh:
                        lines = fh.read().decode("utf-8", "surrogateescape").split("\n")
                except OSError as err:
                    raise ConfigError(f"{spec}: domain list file {item}: {err.strerror}") from None
                for line in lines:
                    line = line.partition("#")[0]
                    self.items.extend((negate, "name", name) for name in split_list(line))
            elif ":" in item:
                from vdeliver.tables import open_table
                self.items.append((negate, "table", open_table(item)))
            elif item:
                self.items.append((negate, "name", item))

    def matches(self, domain):
        # string_list folds the domain and the names with casefold(), which follows
        # smtputf8_enable (address.fold): under no, only ASCII letters fold.
        domain = fold(domain)
        for negate, kind, item in self.items:
            if kind == "name":
                hit = fold(item) == domain
            else:
                hit = item.lookup(domain) is not None
            if hit:
                return not negate
        return False


def domain_list(settings, spec):
    text = settings.get("domain", "")
    return DomainList(text, spec) if text.strip() else None


class SqlQuery:
    """A query template compiled into SQL text plus bind-parameter recipes.

    paramstyle: "qmark" (sqlite3: ?) or "format" (psycopg, PyMySQL: %s, and a
    literal % in the SQL text written %%). backslash_escapes: the dialect
    reads \\ as an escape inside quotes (MySQL), which the literal scan must
    follow; double_quoted_strings: "..." is a string literal (MySQL).
    """

    def __init__(self, template, spec, paramstyle, backslash_escapes=False,
                 double_quoted_strings=False):
        self.spec = spec
        self.placeholder = "?" if paramstyle == "qmark" else "%s"
        self.percent = "%" if paramstyle == "qmark" else "%%"
        self.parts = []  # ("sql", text) or ("param", [text or ("code", c), ...])
        quotes = "'\"" if double_quoted_strings else "'"
        sql, i, n = [], 0, len(template)

        def refuse(why):
            raise ConfigError(f"{spec}: query {template!r}: {why}")

        while i < n:
            ch = template[i]
            if ch == "%":
                code = template[i + 1] if i + 1 < n else ""
                if code == "%":
                    sql.append(self.percent)
                    i += 2
                    continue
                refuse(f"%{code} outside quotes; write '%{code}' (a quoted SQL string)")
            if ch in "'\"" and ch not in quotes:
                end = template.find(ch, i + 1)
                body = template[i + 1:end] if end > 0 else template[i + 1:]
                if "%" in body.replace("%%", ""):
                    refuse(f"%-code inside {ch}...{ch}, which is not a string literal here")
                sql.append(template[i:(end + 1) if end > 0 else n].replace("%%", "%")
                           .replace("%", self.percent))
                i = end + 1 if end > 0 else n
                continue
            if ch in quotes:
                prefix = template[i - 1] if i else ""
                j, raw, backslash = i + 1, [], False
                while j < n:
                    c = template[j]
                    if c == "\\" and backslash_escapes and j + 1 < n:
                        raw.append(template[j:j + 2])
                        backslash = True
                        j += 2
                        continue
                    if c == "\\":
                        backslash = True
                    if c == ch:
                        if template[j + 1:j + 2] == ch:
                            raw.append(ch + ch)
                            j += 2
                            continue
                        break
                    raw.append(c)
                    j += 1
                if j >= n:
                    refuse("unterminated string literal")
                body = "".join(raw)
                if "%" not in body.replace("%%", ""):
                    sql.append(ch + body.replace("%%", "%").replace("%", self.percent) + ch)
                else:
                    if backslash:
                        refuse("a backslash in a string literal that holds a %-code")
                    if prefix.isalnum() or prefix == "_":
                        refuse(f"a prefixed string literal {prefix}{ch}...{ch} holding a %-code")
                    if sql:
                        self.parts.append(("sql", "".join(sql)))
                        sql = []
                    self.parts.append(("param", literal_recipe(body.replace(ch + ch, ch), refuse)))
                i = j + 1
                continue
            sql.append(ch)
            i += 1
        if sql:
            self.parts.append(("sql", "".join(sql)))

    def build(self, values):
        """(sql text, parameters) for one key's code values."""
        text, params = [], []
        for kind, part in self.parts:
            if kind == "sql":
                text.append(part)
            else:
                text.append(self.placeholder)
                params.append("".join(piece if isinstance(piece, str) else values[piece[1]]
                                      for piece in part))
        return "".join(text), params


def literal_recipe(body, refuse):
    pieces, i, n, literal = [], 0, len(body), []
    while i < n:
        ch = body[i]
        if ch == "%":
            code = body[i + 1] if i + 1 < n else ""
            if code == "%":
                literal.append("%")
            elif code and code in CODES:
                if literal:
                    pieces.append("".join(literal))
                    literal = []
                pieces.append(("code", code))
            else:
                refuse(f"invalid code %{code}")
            i += 2
            continue
        literal.append(ch)
        i += 1
    if literal:
        pieces.append("".join(literal))
    return pieces


class Results:
    """Collect result values as db_common does: format, drop, join, limit."""

    def __init__(self, templates, key, limit, spec):
        self.templates = templates
        self.key = key
        self.limit = limit
        self.spec = spec
        self.parts = []

    def add(self, value):
        from vdeliver.errors import TableError
        if value is None:
            return
        formatted = self.templates.result(value, self.key)
        if formatted is None:
            return
        self.parts.append(formatted)
        if self.limit and len(self.parts) > self.limit:
            raise TableError(f"{self.spec}: expansion limit exceeded for key {self.key!r}")

    def value(self):
        text = ",".join(self.parts)
        return text or None


def lookup_values(templates, key):
    """The %-code values for key, or None when this key is not queried at all
    (an invalid key, a domain outside `domain`, a code the key cannot fill)."""
    if not valid_key(key) or not templates.check_domain(key):
        return None
    return templates.query_values(key)


class SqlTable:
    """What sqlite:, pgsql: and mysql: share.

    A subclass sets spec, templates, query (SqlQuery) and expansion_limit,
    calls open_pool(timeout), and provides connect() (a new connection) and
    fetch(connection, sql, params): the text of every value the query
    returned (None for NULL), raising ConnectionLost when the connection
    broke and TableError when the query failed. The connections live in a
    pool.Pool of tables.POOL_SIZE (the pipe command: one); `connection` is
    the one the last lookup used (for tests and tools; it may be closed
    since).
    """
    fixed_keys = True
    note = None
    connection = None
    pool = None

    def open_pool(self, timeout):
        from vdeliver import tables
        self.pool = Pool(tables.POOL_SIZE, timeout, self.spec)

    def lookup(self, key):
        values = lookup_values(self.templates, key)
        if values is None:
            return None
        sql, params = self.query.build(values)
        results = Results(self.templates, key, self.expansion_limit, self.spec)
        try:
            fetched = self.attempt(sql, params)
        except ConnectionLost as lost:
            if not lost.reused:
                raise
            # An idle connection the server dropped (a restart, a failover): once more on a
            # new one, as dict_pgsql.c moves on to the next host. The other idle ones broke
            # with it.
            self.pool.drop_idle()
            fetched = self.attempt(sql, params)
        for value in fetched:
            results.add(value)
        return results.value()

    def attempt(self, sql, params):
        """One query on a connection of the pool; a connection that failed is dropped."""
        connection = self.pool.take()
        reused = connection is not None
        try:
            if connection is None:
                connection = self.connect()
            fetched = self.fetch(connection, sql, params)
        except ConnectionLost as lost:
            self.pool.drop(connection)
            lost.reused = reused
            raise
        except BaseException:  # a failed query, the time limit: the connection's state is unknown
            self.pool.drop(connection)
            raise
        self.connection = connection
        self.pool.give(connection)
        return fetched

    def close(self):
        """Close every connection: idle ones now, those in use when their lookup ends."""
        if self.pool is not None:
            self.pool.close()
        self.connection = None


class ConnectionLost(TableError):
    """fetch(): the connection itself broke (not the query, not a timeout); reused: it
    was an idle one of the pool (SqlTable.attempt)."""
    reused = False


class HostList:
    """The `hosts` of a pgsql/mysql table, in the order to try them now (see the top)."""

    def __init__(self, settings, spec, default="localhost"):
        self.hosts = split_list(settings.get("hosts", "")) or [default]
        order = settings.get("host_order", "random").strip().lower() or "random"
        if order not in ("random", "listed"):
            raise ConfigError(f"{spec}: host_order = {order}: expected random or listed")
        self.shuffle = order == "random"
        self.retry_interval = get_int(settings, "retry_interval", 60, spec)
        self.failed_at = {}  # host -> time.monotonic() of its last failure

    def candidates(self):
        now = time.monotonic()
        up = [host for host in self.hosts
              if now - self.failed_at.get(host, -1e18) >= self.retry_interval]
        if self.shuffle:
            random.shuffle(up)
        if up:
            return up
        return sorted(self.hosts, key=lambda host: self.failed_at[host])

    def failed(self, host):
        self.failed_at[host] = time.monotonic()

    def worked(self, host):
        self.failed_at.pop(host, None)


def valid_key(key):
    """Postfix skips keys that are not valid UTF-8, whatever smtputf8_enable says:
    dict_utf8.c under yes, dict_sqlite.c, dict_pgsql.c, dict_mysql.c and
    dict_ldap.c themselves under no."""
    return is_utf8(key)
