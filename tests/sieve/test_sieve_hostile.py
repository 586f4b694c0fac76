"""Hostile scripts and messages: each ends in a compile error or a run-time error
within the limits (or a correct result), quickly, with no exception escaping."""
import time

import pytest
from hypothesis import given, settings, strategies as st

from vdeliver import sieve

ENVELOPE = sieve.Envelope(sender="a@example.org", recipient="u@example.com")
MESSAGE = b"From: a@example.org\r\nTo: u@example.com\r\nSubject: " + b"a" * 3000 + b"!\r\n\r\nbody\r\n"


def run(src, message=MESSAGE, limits=None, loader=None, extensions=None):
    script = sieve.compile(src, limits=limits, loader=loader, extensions=extensions, name="t")
    return sieve.run(script, sieve.Message.from_bytes(message) if isinstance(message, bytes) else message,
                     ENVELOPE, limits=limits)


def timed(fn, *args, **kw):
    t0 = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - t0


@pytest.mark.parametrize("src", [
    pytest.param(b'require ["regex", "fileinto"];\nif header :regex "subject" "^(a+)+$" { fileinto "x"; }',
                 id="nested quantifier"),
    pytest.param(b'require ["regex", "fileinto"];\nif header :regex "subject" "^(a|a)*$" { fileinto "x"; }',
                 id="alternation blowup"),
    pytest.param(b'require ["regex", "fileinto"];\nif header :regex "subject" "(.*a){20}$" { fileinto "x"; }',
                 id="repeated dot-star group"),
    pytest.param(b'require "fileinto";\nif header :matches "subject" "' + b"*a" * 200 + b'*b" { fileinto "x"; }',
                 id="matches with 200 stars"),
    pytest.param(b'require "fileinto";\nif header :matches "subject" "' + b"?*" * 300 + b'!" { fileinto "x"; }',
                 id="matches with ? and * alternating"),
])
def test_patterns_run_in_bounded_time(src):
    result, cpu = timed(run, src)
    assert result.errors == [] and cpu < 1.0, cpu


def test_matches_on_a_megabyte_body_is_bounded():
    data = b"From: a@b.c\r\n\r\n" + b"a" * (1 << 20)
    src = b'require ["body", "fileinto"];\nif body :raw :matches "*' + b"a?" * 1000 + b'b*" { fileinto "x"; }\n' \
          b'if body :raw :matches "*' + b"a?" * 1000 + b'a*" { fileinto "y"; }'
    result, cpu = timed(run, src, message=data)
    assert [a.mailbox for a in result.actions] == ["y"] and cpu < 3.0


def test_many_address_tests_parse_a_big_header_once():
    data = b"To: " + b", ".join(b"user%d@example.com" % i for i in range(20000)) + b"\r\n\r\nx\r\n"
    src = b"".join(b'if address :is "to" "nobody%d@example.com" { keep; }\n' % i for i in range(50))
    result, cpu = timed(run, src, message=data)
    assert result.implicit_keep and not result.errors and cpu < 3.0


def test_regex_match_values_are_capped():
    src = b'require ["regex", "variables", "reject"];\nif header :regex "subject" "' + b"(a)" * 100 + \
          b'" { reject "${32}|${33}|${99}"; }'
    result = run(src)
    assert result.actions[0].reason == "||"


@pytest.mark.parametrize("src, text", [
    pytest.param(b"if true {" * 1000 + b"}" * 1000, "nest", id="1000 nested blocks"),
    pytest.param(b"if " + b"not " * 5000 + b"true {}", "nest", id="5000 nested nots"),
    pytest.param(b"if " + b"anyof(" * 2000 + b"true" + b")" * 2000 + b" {}", "nest", id="2000 nested test lists"),
    pytest.param(b"#" * ((1 << 20) + 1), "too large", id="script over 1M"),
    pytest.param(b"keep;" + b" " * (1 << 20), "too large", id="whitespace over 1M"),
    pytest.param(b'require "fileinto";\nfileinto "' + b"x" * 20 + b"\n" * 10 + b"", "end of file",
                 id="unterminated string with lines"),
    pytest.param(b"if size :over 99999999999999999999 { keep; }", "integer limit", id="huge number"),
])
def test_compile_limits(src, text):
    (err, cpu) = timed(lambda: pytest.raises(sieve.CompileError, sieve.compile, src))
    assert text in "\n".join(err.value.errors)
    assert cpu < 2.0


def test_big_script_under_the_limit_compiles():
    rule = b'if header :contains "subject" "spam%d" { fileinto "Junk"; stop; }\n'
    body = b"".join(rule.replace(b"%d", str(i).encode()) for i in range(12000))
    src = b'require "fileinto";\n' + body
    assert len(src) < (1 << 20)
    script, cpu = timed(sieve.compile, src)
    assert cpu < 5.0
    assert sieve.run(script, sieve.Message.from_bytes(MESSAGE), ENVELOPE).implicit_keep


def test_huge_variables_are_capped():
    src = b'require ["variables", "reject"];\nset "a" "' + b"x" * 3000 + b'";\n' + \
          b'set "a" "${a}${a}";\n' * 40 + b'set :length "n" "${a}";\nreject "${n}";'
    result, cpu = timed(run, src)
    assert result.actions[0].reason == "4096" and cpu < 1.0


def test_expansion_of_many_references_is_bounded():
    src = b'require ["variables", "reject"];\nset "a" "' + b"x" * 4096 + b'";\n' + \
          b'reject "' + b"${a}" * 200000 + b'";'
    result, cpu = timed(run, src)
    assert not result.errors and len(result.actions[0].reason) == sieve.DEFAULT_LIMITS.max_expanded_size
    assert cpu < 2.0


def test_utf8_variable_truncated_at_character_boundary():
    src = 'require ["variables", "reject"];\nset "a" "' + "é" * 3000 + '";\nreject "${a}";'
    reason = run(src.encode()).actions[0].reason
    assert reason == "é" * 2048


def test_too_many_variables():
    src = b'require "variables";\n' + b"".join(b'set "v%d" "x";\n' % i for i in range(300))
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(src)
    assert e.value.errors[0].startswith("script: line 257: error: (implicit) declaration of new variable")


@pytest.mark.parametrize("scripts, text", [
    pytest.param({"a": b'require "include";\ninclude "a";'}, "circular include", id="self include"),
    pytest.param({"a": b'require "include";\ninclude "b";', "b": b'require "include";\ninclude "a";'},
                 "circular include", id="two-script loop"),
    pytest.param({f"s{i}": b'require "include";\ninclude "s%d";' % (i + 1) for i in range(12)} | {"s12": b"keep;"},
                 "deeper than 10", id="include chain of 12"),
    pytest.param({"a": b'require "include";\ninclude "../../etc/passwd";'}, "invalid script name",
                 id="path in include name"),
])
def test_include_abuse_is_a_compile_error(scripts, text):
    loader = lambda loc, name: scripts.get(name)  # noqa: E731
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(scripts["a"] if "a" in scripts else scripts["s0"], name="a" if "a" in scripts else "s0",
                      loader=loader)
    assert text in "\n".join(e.value.errors)


def test_include_fan_out_hits_the_cpu_limit():
    scripts = {f"s{i}": b'require "include";\n' + b'include "s%d";\n' % (i + 1) * 8 for i in range(9)}
    scripts["s9"] = b'require "variables";\nset "x" "y";'
    loader = lambda loc, name: scripts.get(name)  # noqa: E731
    limits = sieve.Limits(max_cpu_time=0.3)
    result, cpu = timed(run, scripts["s0"], loader=loader, limits=limits)
    assert result.errors and "CPU time limit" in result.errors[0] and result.implicit_keep
    assert cpu < 2.0


def test_ten_thousand_actions():
    src = b'require "fileinto";\n' + b"".join(b'fileinto "f%d";\n' % i for i in range(10000))
    result, cpu = timed(run, src)
    assert result.errors == ["t: line 34: error: total number of actions exceeds policy limit (33 > 32)."]
    assert result.implicit_keep and cpu < 2.0


def test_ten_thousand_flag_commands_are_fine():
    src = b'require "imap4flags";\n' + b"".join(b'addflag "k%d";\nremoveflag "k%d";\n' % (i, i)
                                                for i in range(10000))
    result, cpu = timed(run, src)
    assert result.errors == [] and result.keep_flags == () and cpu < 3.0


def test_fileinto_path_is_returned_unchanged():
    result = run(b'require "fileinto";\nfileinto "../../x";\nfileinto "/etc/passwd";')
    assert [a.mailbox for a in result.actions] == ["../../x", "/etc/passwd"]


def test_60_megabyte_message_is_not_loaded_whole(tmp_path):
    path = tmp_path / "big.eml"
    with open(path, "wb") as f:
        f.write(b"From: a@example.org\r\nSubject: big\r\n\r\nneedle at the start\r\n")
        f.truncate(60 << 20)
    msg = sieve.Message.from_file(str(path))
    assert msg.size == 60 << 20
    src = b'require ["body", "fileinto"];\nif body :raw :contains "needle" { fileinto "B"; }\n' \
          b'if body :raw :contains "not there" { fileinto "C"; }\nif size :over 50M { fileinto "Big"; }'
    result, cpu = timed(sieve.run, sieve.compile(src), msg, ENVELOPE)
    assert [a.mailbox for a in result.actions] == ["B", "Big"]
    assert len(msg._body) <= sieve.DEFAULT_LIMITS.max_body_size and cpu < 2.0


def test_huge_header_block_is_capped():
    data = b"Subject: first\r\n" + b"X-Junk: " + b"j" * 100 + b"\r\n" * 1 + \
           (b"X-Junk: " + b"j" * 100 + b"\r\n") * 50000 + b"Subject: late\r\n\r\nbody\r\n"
    msg = sieve.Message.from_bytes(data)
    assert sum(len(n) + len(v) for n, v in msg.headers) <= sieve.message.MAX_HEADER_SIZE
    assert msg.header("subject") == ["first"]


def test_deeply_nested_mime_is_a_runtime_error_or_bounded():
    parts = []
    for i in range(3000):
        parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
    data = b"From: a@b.c\r\nMIME-Version: 1.0\r\n" + b"".join(parts) + b"Content-Type: text/plain\r\n\r\nx\r\n"
    src = b'require ["foreverypart", "mime", "variables"];\nforeverypart { set "n" "${n}x"; }'
    result, cpu = timed(run, src, message=data)
    assert cpu < 5.0
    assert result.implicit_keep


def test_cpu_limit_in_a_loop():
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(900))
    data = b"From: a@b.c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" + \
        parts + b"--b--\r\n"
    src = b'require ["foreverypart", "mime", "variables", "body"];\nforeverypart { foreverypart {' \
          b' if body :text :contains "zzz" { set "n" "${n}x"; } } }'
    result, cpu = timed(run, src, message=data, limits=sieve.Limits(max_cpu_time=0.2))
    assert result.errors and "CPU time limit" in result.errors[0]
    assert cpu < 2.0


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="empty message"),
    pytest.param(b"\r\n\r\n", id="only a blank line"),
    pytest.param(b"no colon here\r\nSubject x\r\n", id="garbage header lines"),
    pytest.param(b"Subject: =?x-nosuch?B?!!!?= =?utf-8?B?####?= =?utf-8?Q?=ZZ?=\r\n\r\n", id="bad encoded words"),
    pytest.param(b"From: " + b"<" * 5000 + b"\r\nTo: ((((((((\r\n\r\n", id="garbage addresses"),
    pytest.param(b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n", id="bad boundary"),
    pytest.param(b"\xff\xfe: \xff\r\nSubject: \xc3\r\n\r\n\xff", id="8-bit junk"),
])
def test_garbage_messages_never_raise(data):
    src = (b'require ["body", "mime", "foreverypart", "variables", "date", "fileinto", "extracttext", '
           b'"relational", "regex"];\n'
           b'if address :all :matches ["from", "to"] "*" { set "a" "${1}"; }\n'
           b'if header :mime :anychild :type :regex "content-type" ".*" { set "t" "${0}"; }\n'
           b'if body :content "text" :contains "x" { set "b" "1"; }\n'
           b'if date :value "gt" "date" "year" "2000" { set "d" "1"; }\n'
           b'foreverypart { extracttext "e"; }\n'
           b'fileinto "${a}${t}${b}${d}";')
    result = run(src, message=data)
    assert all("internal error" not in e for e in result.errors), result.errors


# Random scripts made of Sieve's own words: compiling raises only CompileError, and
# a script that compiles runs without an internal error.
_WORDS = ['require', '"fileinto"', '"variables"', '"regex"', '"relational"', '"imap4flags"', '"body"',
          '"mime"', '"foreverypart"', '"extracttext"', '"date"', '"index"', '"include"', '"envelope"',
          '"subaddress"', '"copy"', '"vacation"', '"enotify"', '"editheader"', '"ihave"', '"duplicate"',
          'if', 'elsif', 'else', 'anyof', 'allof', 'not', 'true', 'false', 'header', 'address', 'exists', 'size',
          'envelope', 'body', 'string', 'date', 'currentdate', 'hasflag', 'fileinto', 'keep', 'discard', 'stop',
          'redirect', 'set', 'setflag', 'addflag', 'foreverypart', 'break', 'extracttext', 'vacation', 'notify',
          'addheader', 'deleteheader', 'include', 'return', 'global', 'error', 'ihave', 'duplicate',
          ':is', ':contains', ':matches', ':regex', ':count', ':value', ':comparator', ':all', ':localpart',
          ':domain', ':user', ':detail', ':over', ':under', ':flags', ':copy', ':create', ':index', ':last',
          ':mime', ':anychild', ':type', ':param', ':raw', ':text', ':content', ':days', ':seconds', ':lower',
          ':length', ':zone', ':originalzone', ':first', ':name', ':once', ':optional',
          '"subject"', '"from"', '"to"', '"*"', '"${1}"', '"${x}"', '"x"', '"gt"', '"eq"', '"i;octet"',
          '"i;ascii-numeric"', '"(a+)+"', '"[[:digit:]]"', '"date"', '"year"', '"+0100"', '"mailto:a@b.c"',
          '"a@b.c"', '"\\\\Seen"', '10', '1K', '0', '[', ']', '{', '}', '(', ')', ',', ';', ';', ';']


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=40))
def test_random_scripts_never_crash(words):
    src = " ".join(words).encode()
    everything = sieve.parse_extensions_setting("+editheader +vacation-seconds +spamtest +virustest")
    try:
        script = sieve.compile(src, extensions=everything, loader=lambda loc, name: b"keep;")
    except sieve.CompileError as e:
        assert e.errors and all(": error: " in x for x in e.errors)
        return
    result = sieve.run(script, sieve.Message.from_bytes(MESSAGE), ENVELOPE)
    assert all("internal error" not in e for e in result.errors), (src, result.errors)


_REQUIRE = ('require ["fileinto", "variables", "regex", "relational", "imap4flags", "body", "mime", '
            '"foreverypart", "extracttext", "date", "index", "include", "envelope", "subaddress", "copy", '
            '"vacation", "enotify", "editheader", "ihave", "duplicate", "reject", "mailbox", "environment", '
            '"spamtest", "virustest", "encoded-character", "comparator-i;ascii-numeric"];\n')
_MT = st.sampled_from(["", ":is", ":contains", ":matches", ":regex", ':count "ge"', ':value "lt"'])
_CMP = st.sampled_from(["", "", ':comparator "i;octet"', ':comparator "i;ascii-numeric"'])
_KEYS = st.sampled_from(['"x"', '["*", "?e*"]', '"${1}"', '"[[:alpha:]]+"', '"3"', '""', '"*${x}*"',
                         '"(a|b)*c"', '"\\\\*"'])
_STR = st.sampled_from(['"x"', '"${1}${x}"', '"${hex:41 42}"', '"Junk"', '"../x"', '""', '"a b"'])
_HDRS = st.sampled_from(['"subject"', '["from", "to"]', '"x-none"', '"received"', '"date"'])
_AP = st.sampled_from(["", ":all", ":localpart", ":domain", ":user", ":detail"])


def _fill(template):
    parts = {"mt": _MT, "cmp": _CMP, "keys": _KEYS, "str": _STR, "hdrs": _HDRS, "ap": _AP}
    names = [n for n in parts if "{" + n + "}" in template]
    return st.tuples(*[parts[n] for n in names]).map(lambda vals: template.format(**dict(zip(names, vals))))


_TEST_TEMPLATES = [
    "header {mt} {cmp} {hdrs} {keys}", "address {ap} {mt} {hdrs} {keys}", 'envelope {ap} {mt} "to" {keys}',
    "exists {hdrs}", "size :over 1K", "body :text {mt} {keys}", 'body :content "text" {mt} {keys}',
    "string {mt} {str} {keys}", 'date {mt} {cmp} "date" "year" {keys}', 'currentdate :zone "+0000" {mt} "hour" {keys}',
    "hasflag {mt} {keys}", 'header :mime :anychild :subtype {mt} "content-type" {keys}', "duplicate",
    "true", "false", 'ihave "fileinto"', 'environment {mt} "name" {keys}', "spamtest {mt} {keys}",
    'header :index 1 :last {mt} {hdrs} {keys}']
_CMD_TEMPLATES = [
    "fileinto {str};", 'fileinto :copy :create :flags {str} "F";', 'keep :flags "\\\\Seen";', "discard;",
    "stop;", 'redirect :copy "a@b.c";', 'set :lower :length "x" {str};', 'set "x" {str};', "setflag {str};",
    'addflag "v" {str};', "removeflag {str};", "vacation :days 3 :subject {str} {str};",
    'notify :message {str} "mailto:a@b.c";', 'addheader "X-T" {str};', 'deleteheader {mt} "x-t" {keys};',
    "reject {str};", 'include :optional "x";', 'extracttext :first 5 "x";', "break;", "return;"]
_TEST = st.recursive(
    st.one_of(*[_fill(t) for t in _TEST_TEMPLATES]),
    lambda inner: st.one_of(
        inner.map(lambda t: "not " + t),
        st.tuples(st.sampled_from(["anyof", "allof"]), st.lists(inner, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]} ({', '.join(t[1])})")),
    max_leaves=6)
_COMMAND = st.recursive(
    st.one_of(*[_fill(t) for t in _CMD_TEMPLATES]),
    lambda inner: st.one_of(
        st.tuples(_TEST, st.lists(inner, max_size=3), st.lists(inner, max_size=2)).map(
            lambda t: f"if {t[0]} {{ {' '.join(t[1])} }} else {{ {' '.join(t[2])} }}"),
        st.lists(inner, max_size=3).map(lambda b: "foreverypart { " + " ".join(b) + " }")),
    max_leaves=10)


@settings(max_examples=400, deadline=None)
@given(st.lists(_COMMAND, max_size=6))
def test_random_structured_scripts_never_crash(commands):
    src = (_REQUIRE + "\n".join(commands)).encode()
    everything = sieve.parse_extensions_setting("+editheader +vacation-seconds +spamtest +virustest")
    settings_ = {"sieve_spamtest_status_header": "X-Spam: ([0-9]+)", "sieve_spamtest_max_value": "5"}
    try:
        script = sieve.compile(src, extensions=everything, loader=lambda loc, name: b"keep;")
    except sieve.CompileError as e:
        assert e.errors and all(": error: " in x for x in e.errors)
        return
    message = MESSAGE.replace(b"\r\n\r\n", b"\r\nX-Spam: 3\r\nContent-Type: multipart/mixed; boundary=b"
                                           b"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--b--\r\n")
    result = sieve.run(script, sieve.Message.from_bytes(message), ENVELOPE, settings=settings_)
    assert all("internal error" not in e for e in result.errors), (src, result.errors)


def test_a_failing_loader_is_not_a_compile_error():
    def loader(location, name):
        raise OSError(5, "Input/output error")
    with pytest.raises(OSError):
        sieve.compile(b'require "include";\ninclude "x";', loader=loader)


def test_a_failing_callback_ends_the_run_in_an_error():
    def exists(name):
        raise RuntimeError("no database")
    script = sieve.compile(b'require ["mailbox", "fileinto"];\nif mailboxexists "A" { fileinto "A"; }')
    result = sieve.run(script, sieve.Message.from_bytes(MESSAGE), ENVELOPE, settings={"mailbox_exists": exists})
    assert result.implicit_keep and result.errors and "no database" in result.errors[0]


def test_addheader_in_a_loop_is_bounded():
    """foreverypart runs the same addheader once per part: what a run may add is capped
    (the interpreter's view and every stored copy stay bounded)."""
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(900))
    message = (b"Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               + parts + b"--b--\r\n")
    src = (b'require ["editheader", "foreverypart"];\nforeverypart {\n'
           + b'addheader "X-A" "' + b"a" * 2000 + b'";\n' * 1 + b'}\n')
    result, cpu = timed(run, src, message=message, extensions=sieve.parse_extensions_setting("+editheader"))
    assert any("exceed 1048576 bytes" in str(e) for e in result.errors), result.errors
    assert cpu < 5.0, cpu
