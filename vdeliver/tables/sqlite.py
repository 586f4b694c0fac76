"""sqlite: Postfix sqlite_table(5) tables, through Python's sqlite3.

The config file (dbcommon.py) gives dbpath, query (or the old table /
select_field / where_field / additional_conditions), result_format,
domain and expansion_limit. As dict_sqlite.c: the database is opened
read-only; only the first column of each row counts; a number is turned into
text the way sqlite3_column_text() does; an empty result is "not found".
The key goes to SQLite as a bind parameter (dbcommon.SqlQuery). Connections
as pgsql: one in the pipe command, up to lmtp_delivery_threads in the LMTP
daemon, each used by one thread at a time (dbcommon.SqlTable, pool.py).

Never: open the database for writing or create it; a missing database, a
failing query or a busy database (after `busy_timeout`, vdeliver's own
setting, default 5 s) is a TableError (defer); an unusable config file is a
ConfigError.
"""
import sqlite3

from vdeliver.errors import TableError
from vdeliver.tables import dbcommon


class SqliteTable(dbcommon.SqlTable):

    def __init__(self, spec, settings):
        self.spec = spec
        self.dbpath = settings.get("dbpath", "")
        query = settings.get("query") or dbcommon.legacy_query(settings, spec)
        self.templates = dbcommon.Templates(query, settings.get("result_format") or "%s", spec,
                                            dbcommon.domain_list(settings, spec))
        self.query = dbcommon.SqlQuery(query, spec, "qmark")
        self.expansion_limit = dbcommon.get_int(settings, "expansion_limit", 0, spec)
        self.busy_timeout = dbcommon.get_int(settings, "busy_timeout", 5, spec)
        self.open_pool(self.busy_timeout + 1)

    def connect(self):
        path = self.dbpath.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        try:
            # check_same_thread=False: in the LMTP daemon a connection of the pool serves
            # whichever thread took it (one at a time).
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=self.busy_timeout,
                                   check_same_thread=False)
        except sqlite3.Error as err:
            raise TableError(f"{self.spec}: cannot open {self.dbpath}: {err}") from None

    def fetch(self, connection, sql, params):
        try:
            return [column_text(row[0]) if row else None
                    for row in connection.execute(sql, params)]
        except sqlite3.Error as err:
            raise TableError(f"{self.spec}: query failed: {err}") from None


def column_text(value):
    """sqlite3_column_text(): integers in decimal, reals as "%!.15g", blobs as bytes."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = "%.15g" % value
        if text.lstrip("-").isdigit():
            text += ".0"
        return text
    return bytes(value).partition(b"\0")[0].decode("utf-8", "surrogateescape")


def open_table(name, spec):
    return SqliteTable(spec, dbcommon.read_config(name, spec))
