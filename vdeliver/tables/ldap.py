"""ldap: Postfix ldap_table(5) tables, through ldap3 (the `ldap` extra).

Settings read from the config file (dbcommon.py): server_host (host names,
host:port or ldap://, ldaps://, ldapi:// URLs, of which only scheme, host and
port count, as libldap reads them: "ldap://host:389/" and a DN after the /
are fine; default localhost; tried in order), server_port (389, for names
without a URL), search_base (with %-codes, escaped as DN values
per RFC 4514), query_filter (default `(mailacceptinggeneralid=%s)`, the
codes escaped per RFC 4515), result_attribute (maildrop; several allowed),
result_format, domain, scope (sub, one, base), bind (yes: simple bind with
bind_dn / bind_pw, anonymous when empty; no: no bind), timeout (10 s, used
for connecting and for the search), expansion_limit, size_limit, dereference
(0-3), start_tls, tls_ca_cert_file, tls_ca_cert_dir, tls_cert, tls_key,
tls_require_cert. Every value of every result attribute (or a subtype of it:
maildrop;lang-de for maildrop) of every entry counts, in the order the server
returns them, as Postfix; the rest is db_common's rules (dbcommon.py). A
search base with %-codes that does not exist means "not found", as Postfix;
a search that ends with any other result but success (size_limit or the time
limit reached, a referral) defers, never a partial answer. A connection the
server dropped while idle (a restart; the LMTP daemon keeps its tables open)
is replaced once within the lookup, as Postfix's; a search that timed out is
never repeated.

Differences from Postfix: LDAP version 3 is always used (ldap3 has no v2;
Postfix's default is `version = 2`); special_result_attribute,
terminal_result_attribute, leaf_result_attribute (recursion into DNs and
URLs), SASL binds and chase_referrals are refused with a ConfigError rather
than ignored. A server that accepts the connection and then does not answer
within `timeout` is given up for the next in server_host (libldap fails over
only on a failed connect, so postmap defers there).

Threads (the LMTP daemon): one connection per table, kept open until close()
(a reload retires the table) or a failure; ldap3's synchronous connection holds
one operation's state, so the table's own lock lets one lookup at a time use
it. A connection given up is closed at once (discard()), never left to the
garbage collector.

Never: put an unescaped key into a filter or a DN; a server that is down,
slow, or answers with an error is a TableError (defer); a missing ldap3 is a
ConfigError naming the extra (pip install vdeliver[ldap]).
"""
import _thread

from vdeliver.errors import ConfigError, TableError
from vdeliver.tables import dbcommon

UNSUPPORTED = ("special_result_attribute", "terminal_result_attribute", "leaf_result_attribute",
               "sasl_mechs", "sasl_realm", "sasl_authz_id")


def load_driver(spec):
    try:
        import ldap3
    except ImportError:
        raise ConfigError(f"{spec}: the ldap3 module is not installed"
                          " (pip install vdeliver[ldap])") from None
    return ldap3


def filter_escape(value):
    """RFC 4515 section 3: * ( ) \\ and NUL as \\XX (the bytes of UTF-8 text)."""
    out = []
    for ch in value:
        if ch in "*()\\\0":
            out.append(f"\\{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def dn_escape(value):
    """RFC 4514 value escaping, as Postfix's rfc2253_quote(): every space, tab,
    \" # + , ; < > \\ as \\XX (more than required, never less)."""
    out = []
    for ch in value:
        if ch in " \t\"#+,;<>\\=\0":
            out.append(f"\\{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


class LdapTable:
    fixed_keys = True
    note = None

    def __init__(self, spec, settings):
        self.spec = spec
        self.driver = load_driver(spec)
        for name in UNSUPPORTED:
            if settings.get(name):
                raise ConfigError(f"{spec}: {name} is not supported by vdeliver")
        if dbcommon.get_bool(settings, "chase_referrals", False, spec):
            raise ConfigError(f"{spec}: chase_referrals is not supported by vdeliver")
        bind = settings.get("bind", "yes").lower()
        if bind in ("sasl",):
            raise ConfigError(f"{spec}: bind = sasl is not supported by vdeliver")
        self.bind = dbcommon.get_bool({"bind": bind}, "bind", True, spec)
        self.bind_dn = settings.get("bind_dn", "")
        self.bind_pw = settings.get("bind_pw", "")
        self.search_base = settings.get("search_base", "")
        self.query_filter = settings.get("query_filter") or "(mailacceptinggeneralid=%s)"
        result_format = settings.get("result_format") or settings.get("result_filter") or "%s"
        self.templates = dbcommon.Templates(self.search_base + self.query_filter, result_format,
                                            spec, dbcommon.domain_list(settings, spec))
        self.dynamic_base = any(code in self.search_base.replace("%%", "")
                                for code in ("%s", "%u", "%d", "%S", "%U", "%D", "%1", "%2",
                                             "%3", "%4", "%5", "%6", "%7", "%8", "%9"))
        self.attributes = dbcommon.split_list(settings.get("result_attribute", "maildrop"))
        scope = settings.get("scope", "sub").lower()
        scopes = {"sub": "SUBTREE", "one": "LEVEL", "base": "BASE"}
        self.scope = getattr(self.driver, scopes.get(scope, "SUBTREE"))
        self.timeout = dbcommon.get_int(settings, "timeout", 10, spec, minimum=1)
        self.expansion_limit = dbcommon.get_int(settings, "expansion_limit", 0, spec)
        self.size_limit = dbcommon.get_int(settings, "size_limit", self.expansion_limit, spec)
        dereference = dbcommon.get_int(settings, "dereference", 0, spec)
        self.dereference = {0: "NEVER", 1: "SEARCH", 2: "FINDING_BASE", 3: "ALWAYS"}.get(dereference)
        if self.dereference is None:  # as dict_ldap.c: a warning, and 0
            self.note = f"unrecognized value {dereference} specified for dereference; using 0"
            self.dereference = "NEVER"
        self.start_tls = dbcommon.get_bool(settings, "start_tls", False, spec)
        self.tls = None
        if self.start_tls or any(settings.get(name) for name in (
                "tls_ca_cert_file", "tls_ca_cert_dir", "tls_cert", "tls_key")):
            import ssl
            self.tls = self.driver.Tls(
                local_private_key_file=settings.get("tls_key") or None,
                local_certificate_file=settings.get("tls_cert") or None,
                ca_certs_file=settings.get("tls_ca_cert_file") or None,
                ca_certs_path=settings.get("tls_ca_cert_dir") or None,
                validate=ssl.CERT_REQUIRED if dbcommon.get_bool(
                    settings, "tls_require_cert", False, spec) else ssl.CERT_NONE)
        port = dbcommon.get_int(settings, "server_port", 389, spec, minimum=1)
        try:
            self.hosts = dbcommon.split_list(settings.get("server_host", "localhost"))
            self.port = port
            self.servers = [self.server(host, port) for host in self.hosts]
        except self.driver.core.exceptions.LDAPException as err:
            # ldap3 itself refuses a bad server_host URL: a config error, not a bug (tests/fuzz).
            raise ConfigError(f"{spec}: server_host: {type(err).__name__} {err}") from None
        self.connection = None
        self.lock = _thread.allocate_lock()  # one search at a time on the connection

    def server(self, host, port):
        ldap3 = self.driver
        scheme, sep, rest = host.partition("://")
        if sep:
            return self.url_server(host, scheme.lower(), rest)
        name, colon, number = host.rpartition(":")
        # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
        if colon and number.isascii() and number.isdigit():
            host, port = name, int(number)
        return ldap3.Server(host, port=port, connect_timeout=self.timeout, tls=self.tls,
                            get_info=ldap3.NONE)

    def url_server(self, url, scheme, rest):
        """An RFC 4516 URL as libldap's ldap_initialize() reads it: scheme, host and port;
        the DN, attributes and filter after the first / are not used (ldap3 would take
        "127.0.0.1:389/" for a port). A URL without a port means 389 (636 for ldaps),
        whatever server_port says, as Postfix."""
        from urllib.parse import unquote
        ldap3 = self.driver
        hostport = rest.split("/", 1)[0].split("?", 1)[0]
        if scheme == "ldapi":
            path = unquote(hostport)
            if not path.startswith("/"):
                raise ConfigError(f"{self.spec}: server_host {url}: expected ldapi://%2F..."
                                  " (the socket's absolute path, / written %2F)")
            return ldap3.Server("ldapi://" + hostport, connect_timeout=self.timeout,
                                get_info=ldap3.NONE)
        if scheme not in ("ldap", "ldaps"):
            raise ConfigError(f"{self.spec}: server_host {url}: expected ldap://, ldaps://"
                              " or ldapi://")
        port = 636 if scheme == "ldaps" else 389
        if hostport.startswith("["):
            name, bracket, tail = hostport[1:].partition("]")
            if not bracket or (tail and not tail.startswith(":")):
                raise ConfigError(f"{self.spec}: server_host {url}: bad IPv6 address")
            number = tail[1:]
        else:
            name, _, number = hostport.partition(":")
        if number:
            if not (number.isascii() and number.isdigit()) or not 0 < int(number) < 65536:
                raise ConfigError(f"{self.spec}: server_host {url}: bad port {number!r}")
            port = int(number)
        return ldap3.Server(unquote(name) or "localhost", port=port, use_ssl=scheme == "ldaps",
                            connect_timeout=self.timeout, tls=self.tls, get_info=ldap3.NONE)

    def connect(self):
        if self.connection is not None:
            return self.connection
        ldap3 = self.driver
        problems = []
        # New ldap3.Server objects for each connect: one that failed once marks its
        # addresses unavailable and then refuses them ("invalid server address") after
        # the server is back (a restart while the LMTP daemon keeps the table).
        for server in [self.server(host, self.port) for host in self.hosts]:
            connection = None
            try:
                connection = ldap3.Connection(
                    server, user=self.bind_dn or None, password=self.bind_pw or None,
                    authentication=ldap3.SIMPLE if self.bind_dn else ldap3.ANONYMOUS,
                    receive_timeout=self.timeout, read_only=True, raise_exceptions=True,
                    auto_referrals=False)
                connection.open()
                if self.start_tls:
                    connection.start_tls()
                if self.bind:
                    connection.bind()
                self.connection = connection
                return connection
            except ldap3.core.exceptions.LDAPException as err:
                problems.append(f"{server.host}: {err}")
                if connection is not None:
                    self.discard(connection)
        raise TableError(f"{self.spec}: no LDAP server answered: {'; '.join(problems)}")

    def discard(self, connection):
        """Close a connection given up (failed to open, StartTLS or bind; dropped by the
        server; the table closed): ldap3 keeps the socket of a refused connect, and
        unbind() closes nothing on a connection it never marked open, so each would hold a
        descriptor until the garbage collector found it: one per lookup while a server is
        down, in the LMTP daemon."""
        sock = getattr(connection, "socket", None)
        try:
            connection.unbind()
        except (self.driver.core.exceptions.LDAPException, OSError):
            pass
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def close(self):
        """Unbind and close the kept connection (the LMTP daemon's reload retires the table)."""
        with self.lock:
            connection, self.connection = self.connection, None
            if connection is not None:
                self.discard(connection)

    def search(self, connection, base, search_filter):
        ldap3 = self.driver
        connection.search(base, search_filter, search_scope=self.scope,
                          dereference_aliases=getattr(ldap3, "DEREF_" + self.dereference),
                          attributes=self.attributes, size_limit=self.size_limit,
                          time_limit=self.timeout)

    def lookup(self, key):
        with self.lock:
            return self.lookup_locked(key)

    def lookup_locked(self, key):
        values = dbcommon.lookup_values(self.templates, key)
        if values is None:
            return None
        base = dbcommon.substitute(self.search_base, escaped(values, dn_escape))
        search_filter = dbcommon.substitute(self.query_filter, escaped(values, filter_escape))
        ldap3 = self.driver
        exceptions = ldap3.core.exceptions
        reused = self.connection is not None
        connection = self.connect()
        results = dbcommon.Results(self.templates, key, self.expansion_limit, self.spec)
        try:
            try:
                self.search(connection, base, search_filter)
            except exceptions.LDAPCommunicationError as err:
                if not reused or isinstance(err, TimeoutError):
                    raise
                # An idle connection the server dropped (a restart): once more on a new
                # one, as dict_ldap_lookup() reconnects on LDAP_SERVER_DOWN. Never after
                # a timeout: that server is hung, and the lookup has waited already.
                self.connection = None
                self.discard(connection)
                connection = self.connect()
                self.search(connection, base, search_filter)
        except exceptions.LDAPNoSuchObjectResult:
            if self.dynamic_base:
                return None
            raise TableError(f"{self.spec}: search base {base!r} does not exist") from None
        except exceptions.LDAPSizeLimitExceededResult:
            raise TableError(f"{self.spec}: size limit exceeded for key {key!r}") from None
        except exceptions.LDAPException as err:
            self.connection = None
            self.discard(connection)
            raise TableError(f"{self.spec}: search failed: {err}") from None
        # ldap3 raises for neither sizeLimitExceeded nor timeLimitExceeded nor a referral:
        # the entries before them are a partial answer. Postfix's search_st() returns
        # every result code but success, and the lookup defers.
        code = (connection.result or {}).get("result", 0)
        if code != 0:
            description = (connection.result or {}).get("description", "")
            raise TableError(f"{self.spec}: search for key {key!r} ended with result {code}"
                             f" ({description})")
        for entry in connection.response or ():
            if entry.get("type") != "searchResEntry":
                continue
            # The entry's attributes in the server's order, each counting when it is a
            # result_attribute or a subtype of one (maildrop;lang-de for maildrop), as
            # dict_ldap_get_values() walks them (ldap_first_attribute, attrdesc_subtype).
            for name, items in (entry.get("raw_attributes") or {}).items():
                if any(is_subtype(name, attribute) for attribute in self.attributes):
                    for item in items:
                        results.add(bytes(item).decode("utf-8", "surrogateescape"))
        return results.value()


def is_subtype(name, attribute):
    """True when the attribute description `name` is `attribute` or one of its subtypes
    (RFC 4512 section 2.5: options after ';'); names are case-insensitive."""
    name, attribute = name.lower(), attribute.lower()
    return name == attribute or name.startswith(attribute + ";")


def escaped(values, escape):
    return {code: (text if code == "%" else escape(text)) for code, text in values.items()}


def open_table(name, spec):
    return LdapTable(spec, dbcommon.read_config(name, spec))
