"""ldap: against a real private slapd (servers.SlapdServer), compared with Postfix's own
postfix-ldap through postmap -q on the same config file, answer for answer.

The directory is tests/tables/ldap_entries.py. Every config says `version = 3`: Postfix's
default is 2, vdeliver always speaks 3 (vdeliver/tables/ldap.py), and the comparison is
of lookups, not of protocol versions. Also: the server list (a refused first server, both
refused, a server that accepts and never answers), wrong bind credentials, and a table
kept open across a slapd restart. A lookup that cannot be made is a TableError (defer,
4.3.0), never "not found".
"""
import contextlib
import gc
import os
import time

import pytest

import corpus
import ldap_entries
from servers import ROOT_DN, ROOT_PW, SlapdServer, free_port
from tables_support import require_type
from vdeliver.errors import TableError
from vdeliver.tables import open_table

BASE = "dc=example,dc=com"
PEOPLE = ldap_entries.PEOPLE

LDAP_KEYS = [
    "bob@example.com", "BOB@Example.COM", "mixed@example.com", "MIXED@EXAMPLE.COM",
    "alice@example.com", "alice+list@example.com", "alice+other@example.com",
    "multi@example.com", "shared@example.com", "big@example.com", "@example.org",
    "nobody@example.org", "star*@example.com", "starx@example.com", "*", "*@example.com",
    "s*@example.com", "paren(x)@example.com", "paren@example.com", "(uid=*)",
    "bob@example.com)(uid=*", "*)(|(uid=*", "back\\slash@example.com", "back\\5cslash@example.com",
    "\\00@example.com", "\\2a@example.com", "\\", "jösé@exämple.com", "JÖSÉ@EXÄMPLE.COM",
    "nodrop@example.com", "forward@example.com", "tagged@example.com", "order@example.com",
    "deep@example.com", "postmaster@example.com", "postmaster@example.net",
    "postmaster@a,b.example", "postmaster@a+b.example", "postmaster@a\\,b.example",
    "postmaster@nowhere.example", "postmaster@x,ou=domains,dc=example,dc=com",
    "postmaster@#a", "postmaster@ a", "postmaster@a;b", "postmaster@a=b", "postmaster@<a>",
    'postmaster@"a"', "bob", "bob@", "@", "reader@example.com", "uid=bob",
]


def keys():
    ldap_keys = [key.encode() for key in LDAP_KEYS]
    return ldap_keys + [key for key in corpus.keys(generated=14) if key not in ldap_keys]


CONFIGS = {
    "defaults": f"search_base = {BASE}\n",
    "two attributes, server's order": f"search_base = {BASE}\nresult_attribute = maildrop, mail\n",
    "attribute subtype asked": f"search_base = {BASE}\nresult_attribute = mail maildrop;lang-de\n",
    "result_format, key codes": f"search_base = {BASE}\nresult_format = %S|%U|%D|%2.%1|%s\n",
    "result_format, value codes": (f"search_base = {BASE}\nresult_format = %d/%u/%%/%s\n"
                                   "result_attribute = maildrop mail\n"),
    "domain list": f"search_base = {BASE}\ndomain = example.com, exämple.com\n",
    "catch-all in the filter": (
        f"search_base = {BASE}\n"
        "query_filter = (|(mailacceptinggeneralid=%s)(mailacceptinggeneralid=@%d))\n"),
    "labels in the filter": f"search_base = {BASE}\nquery_filter = (mailacceptinggeneralid=%u@%2.%1)\n",
    "uid from the local part": (f"search_base = {PEOPLE}\nquery_filter = (uid=%u)\n"
                                "result_attribute = maildrop\n"),
    "search_base from the domain": (f"search_base = ou=%d,ou=domains,{BASE}\n"
                                    "query_filter = (uid=%u)\nscope = one\n"),
    "scope base": (f"search_base = uid=%u,{PEOPLE}\nscope = base\n"
                   "query_filter = (mailacceptinggeneralid=%s)\n"),
    "scope one": f"search_base = {PEOPLE}\nscope = one\n",
    "scope sub, explicit": f"search_base = {PEOPLE}\nscope = sub\n",
    "bind as a reader": (f"search_base = {BASE}\nbind = yes\nbind_dn = {ldap_entries.BIND_DN}\n"
                         f"bind_pw = {ldap_entries.BIND_PW}\n"),
    "bind = no": f"search_base = {BASE}\nbind = no\n",
    "expansion_limit = 2": f"search_base = {BASE}\nexpansion_limit = 2\n",
    "size_limit = 2": f"search_base = {BASE}\nsize_limit = 2\n",
    # dict_ldap.c warns about an unknown value and uses 0: so must vdeliver (a table note)
    "dereference out of range": f"search_base = {BASE}\ndereference = 7\n",
}

# Configurations every lookup of which fails: a few keys are enough (postmap then runs once
# per key).
FAILING = {
    "wrong bind password": (f"search_base = {BASE}\nbind = yes\nbind_dn = {ROOT_DN}\n"
                            f"bind_pw = not-{ROOT_PW}\n"),
    "unknown bind DN": (f"search_base = {BASE}\nbind = yes\nbind_dn = uid=nobody,{PEOPLE}\n"
                        "bind_pw = x\n"),
    "fixed search_base that does not exist": f"search_base = ou=nowhere,{BASE}\n",
}
FAILING_KEYS = [b"bob@example.com", b"nobody@example.com", b"*"]


@pytest.fixture(scope="module")
def directory(slapd_server):
    slapd_server.add(ldap_entries.ldif())
    return slapd_server


def write_config(path, server_host, body):
    path.write_text(f"server_host = {server_host}\nversion = 3\ntimeout = 5\n{body}")
    corpus.cool(path)
    return path


def compare(postfix, spec, keys):
    expected = corpus.postmap_answers(postfix, spec, keys)
    actual = corpus.vdeliver_answers(open_table(spec), keys)
    assert corpus.differences(expected, actual) == {}
    return expected


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ldap_agrees_with_postmap(tmp_path, directory, postfix_mode, compared, name):
    require_type(postfix_mode.supported, "ldap", "postfix-ldap")
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', directory.url(), CONFIGS[name])}"
    expected = compare(postfix_mode, spec, keys())
    hits = sum(1 for value in expected.values() if value not in (None, "error"))
    assert hits >= 3, f"{name}: the key set should hit the directory ({hits} hits)"
    label = f"ldap ({name}, smtputf8_enable={postfix_mode.smtputf8_enable})"
    compared[label] = len(expected)


@pytest.mark.parametrize("name", list(FAILING))
def test_ldap_errors_agree_with_postmap(tmp_path, directory, postfix, compared, name):
    require_type(postfix.supported, "ldap", "postfix-ldap")
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', directory.url(), FAILING[name])}"
    expected = compare(postfix, spec, FAILING_KEYS)
    assert set(expected.values()) == {"error"}
    assert_defers(open_table(spec))  # 75, 4.3.0: never "not found"
    compared[f"ldap ({name})"] = len(expected)


@pytest.mark.parametrize("server_host", [
    pytest.param("{url}", id="URL with a trailing slash"),
    pytest.param("ldap://127.0.0.1:{port}", id="URL without one"),
    pytest.param("127.0.0.1:{port}", id="host:port"),
    pytest.param("ldap://127.0.0.1:{port}/dc=ignored,dc=example??sub", id="URL with a DN"),
    pytest.param("{ldapi}", id="ldapi URL"),
])
def test_server_host_forms_agree_with_postmap(tmp_path, directory, postfix, server_host):
    require_type(postfix.supported, "ldap", "postfix-ldap")
    host = server_host.format(url=directory.url(), port=directory.port, ldapi=directory.ldapi())
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', host, CONFIGS['defaults'])}"
    expected = compare(postfix, spec, [b"bob@example.com", b"nobody@example.com"])
    assert expected[b"bob@example.com"] == b"example.com/bob/"


@pytest.fixture(scope="module")
def spare():
    """A second slapd with the same entries, for the tests that stop, pause or restart it."""
    server = SlapdServer().start(ldap_entries.ldif())
    yield server
    server.stop()


def dead_url():
    return f"ldap://127.0.0.1:{free_port()}/"


def assert_defers(table, key="bob@example.com", within=None):
    started = time.monotonic()
    with pytest.raises(TableError) as caught:
        table.lookup(key)
    elapsed = time.monotonic() - started
    assert (caught.value.exit_code, caught.value.status) == (75, "4.3.0")
    if within is not None:
        assert elapsed < within, f"took {elapsed:.1f}s"
    return caught.value


def postmap_one(postfix, spec, key, timeout=30):
    started = time.monotonic()
    done = postfix.run(postfix.postmap("-q", key, spec), capture_output=True, timeout=timeout)
    return done, time.monotonic() - started


def test_a_refused_first_server_fails_over_to_the_second(tmp_path, directory, postfix):
    require_type(postfix.supported, "ldap", "postfix-ldap")
    host = f"{dead_url()} {directory.url()}"
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', host, CONFIGS['defaults'])}"
    expected = compare(postfix, spec, [b"bob@example.com", b"multi@example.com", b"nobody@x.org"])
    assert expected[b"bob@example.com"] == b"example.com/bob/"


def test_all_servers_refused_defer_at_once(tmp_path, postfix):
    require_type(postfix.supported, "ldap", "postfix-ldap")
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', f'{dead_url()}, {dead_url()}', CONFIGS['defaults'])}"
    done, _ = postmap_one(postfix, spec, "bob@example.com")
    assert done.returncode != 0 and b"fatal:" in done.stderr  # postmap: a lookup error
    error = assert_defers(open_table(spec), within=2)
    assert "no LDAP server answered" in error.detail


@pytest.mark.parametrize("bind", ["yes", "no"])
def test_a_server_that_never_answers_defers_within_the_timeout(tmp_path, spare, postfix, bind):
    """slapd stopped with SIGSTOP: the kernel still accepts the connection, nothing answers.
    The bind (or, with bind = no, the search) waits `timeout` (2 s here), then defers."""
    require_type(postfix.supported, "ldap", "postfix-ldap")
    config = write_config(tmp_path / "ldap.cf", spare.url(), CONFIGS["defaults"])
    config.write_text(config.read_text().replace("timeout = 5", "timeout = 2") + f"bind = {bind}\n")
    corpus.cool(config)
    spec = f"ldap:{config}"
    kept = open_table(spec)
    assert kept.lookup("bob@example.com") == "example.com/bob/"  # a connection kept open
    spare.pause()
    try:
        done, took = postmap_one(postfix, spec, "bob@example.com")
        assert done.returncode != 0 and b"fatal:" in done.stderr and took < 8, (done, took)
        assert_defers(open_table(spec), within=5)   # a new connection
        assert_defers(kept, within=5)               # the open one: the search times out
    finally:
        spare.resume()
    assert open_table(spec).lookup("bob@example.com") == "example.com/bob/"


def test_a_hung_first_server_then_a_live_second(tmp_path, spare, directory, postfix):
    """Where vdeliver parts from Postfix on purpose: libldap fails over only when a server
    cannot be connected to, so postmap defers when the first server accepts and hangs;
    vdeliver moves on after `timeout` and answers from the next (the same answer a
    replica gives, later). Either way: no hang, and never "not found"."""
    require_type(postfix.supported, "ldap", "postfix-ldap")
    config = write_config(tmp_path / "ldap.cf", f"{spare.url()} {directory.url()}",
                          CONFIGS["defaults"])
    config.write_text(config.read_text().replace("timeout = 5", "timeout = 2"))
    corpus.cool(config)
    spec = f"ldap:{config}"
    spare.pause()
    try:
        done, took = postmap_one(postfix, spec, "bob@example.com")
        assert done.returncode != 0 and b"fatal:" in done.stderr and took < 8, (done, took)
        started = time.monotonic()
        assert open_table(spec).lookup("bob@example.com") == "example.com/bob/"
        assert time.monotonic() - started < 5
    finally:
        spare.resume()


def test_a_table_kept_open_across_a_restart(tmp_path, spare):
    """The LMTP daemon keeps its tables open. While slapd is down a lookup defers; the
    first lookup after the restart answers on a new connection, as dict_ldap_lookup()
    reconnects once on LDAP_SERVER_DOWN."""
    config = write_config(tmp_path / "ldap.cf", spare.url(), CONFIGS["defaults"])
    table = open_table(f"ldap:{config}")
    assert table.lookup("bob@example.com") == "example.com/bob/"
    errors = []
    spare.restart(during=lambda: errors.append(assert_defers(table, within=3)))
    assert len(errors) == 1
    assert table.lookup("bob@example.com") == "example.com/bob/"
    spare.restart()
    assert table.lookup("bob@example.com") == "example.com/bob/"  # the idle connection broke


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def no_garbage_collection():
    """What a test of leaked descriptors needs: ldap3's objects refer to each other, so only
    the garbage collector would close a socket left behind (the LMTP daemon's may run rarely)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_refused_servers_leave_no_descriptor_behind(tmp_path):
    """A refused connect used to leave ldap3's socket open until the garbage collector
    found it: one descriptor per lookup while the directory is down, in the LMTP daemon."""
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', f'{dead_url()}, {dead_url()}', CONFIGS['defaults'])}"
    table = open_table(spec)
    with no_garbage_collection():
        before = open_descriptors()
        for _ in range(20):
            assert_defers(table)
        assert open_descriptors() == before


def test_a_failed_bind_and_close_leave_no_descriptor_behind(tmp_path, directory):
    wrong = write_config(tmp_path / "wrong.cf", directory.url(), FAILING["wrong bind password"])
    right = write_config(tmp_path / "right.cf", directory.url(), CONFIGS["defaults"])
    failing, table = open_table(f"ldap:{wrong}"), open_table(f"ldap:{right}")
    with no_garbage_collection():
        before = open_descriptors()
        for _ in range(10):
            assert_defers(failing)
        assert open_descriptors() == before
        assert table.lookup("bob@example.com") == "example.com/bob/"
        assert open_descriptors() == before + 1        # the connection it keeps
        table.close()                                  # a reload retires the table
        assert open_descriptors() == before


def test_a_restart_leaves_no_descriptor_behind(tmp_path, spare):
    """The connection the restarted server dropped is closed when the lookup replaces it."""
    table = open_table(f"ldap:{write_config(tmp_path / 'ldap.cf', spare.url(), CONFIGS['defaults'])}")
    assert table.lookup("bob@example.com") == "example.com/bob/"
    with no_garbage_collection():
        before = open_descriptors()
        for _ in range(3):
            spare.restart()
            assert table.lookup("bob@example.com") == "example.com/bob/"
        assert open_descriptors() == before


@pytest.mark.parametrize("key", ["*", "*@example.com", "s*@example.com", "(uid=*)",
                                 "bob@example.com)(uid=*", "*)(|(uid=*", "\\2a@example.com",
                                 "star\\2a@example.com", "bob@example.com\0", "b\0ob@example.com"])
def test_filter_metacharacters_never_widen_the_search(tmp_path, directory, key):
    """RFC 4515 escaping: a key is one assertion value, whatever it holds; NUL too (no
    Postfix key has one: postmap cannot be asked, vdeliver escapes it as \\00)."""
    table = open_table(f"ldap:{write_config(tmp_path / 'ldap.cf', directory.url(), CONFIGS['defaults'])}")
    assert table.lookup(key) is None
    assert table.lookup("star*@example.com") == "example.com/star/"  # the literal * entry
    assert table.lookup("\\00@example.com") == "example.com/nulish/"  # backslash-zero-zero


def test_an_unknown_dereference_value_is_a_warning_and_0(tmp_path, directory):
    body = f"search_base = {BASE}\ndereference = 7\n"
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', directory.url(), body)}"
    table = open_table(spec)
    assert table.note == "unrecognized value 7 specified for dereference; using 0"
    assert table.lookup("bob@example.com") is not None


@pytest.fixture(scope="module")
def tls_directory():
    """A slapd with its own CA: StartTLS on ldap://, and ldaps://."""
    server = SlapdServer().start(ldap_entries.ldif(), tls=True)
    yield server
    server.stop()


def other_ca(tmp_path):
    """A CA that signed nothing the server shows."""
    import subprocess
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "other.key"), "-out", str(tmp_path / "other.pem"), "-days", "2",
                    "-subj", "/CN=another CA"], check=True, capture_output=True)
    (tmp_path / "other.pem").chmod(0o644)
    return tmp_path / "other.pem"


@pytest.mark.parametrize("kind", ["start_tls", "ldaps"])
def test_tls_with_the_servers_ca_agrees_with_postmap(tmp_path, tls_directory, postfix, kind):
    require_type(postfix.supported, "ldap", "postfix-ldap")
    host = tls_directory.url() if kind == "start_tls" else tls_directory.ldaps_url()
    body = (CONFIGS["defaults"] + f"tls_ca_cert_file = {tls_directory.ca_file}\n"
            "tls_require_cert = yes\n" + ("start_tls = yes\n" if kind == "start_tls" else ""))
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', host, body)}"
    expected = compare(postfix, spec, [b"bob@example.com", b"nobody@example.com", b"*"])
    assert expected[b"bob@example.com"] == b"example.com/bob/"


@pytest.mark.parametrize("kind", ["start_tls", "ldaps"])
def test_a_certificate_no_trusted_ca_signed_defers_as_postmap_errs(tmp_path, tls_directory,
                                                                   postfix, kind):
    """tls_require_cert = yes and a CA that did not sign the server's certificate: no answer
    from that server at all (postmap errs; vdeliver defers 4.3.0), never "not found"."""
    require_type(postfix.supported, "ldap", "postfix-ldap")
    host = tls_directory.url() if kind == "start_tls" else tls_directory.ldaps_url()
    body = (CONFIGS["defaults"] + f"tls_ca_cert_file = {other_ca(tmp_path)}\n"
            "tls_require_cert = yes\n" + ("start_tls = yes\n" if kind == "start_tls" else ""))
    spec = f"ldap:{write_config(tmp_path / 'ldap.cf', host, body)}"
    expected = compare(postfix, spec, [b"bob@example.com"])
    assert set(expected.values()) == {"error"}
    assert_defers(open_table(spec))
