"""vdeliver.sieve.parser (and compile errors of the validator): AST shape, and each
malformed script ending in a CompileError naming the right line."""
import pytest

from vdeliver import sieve
from vdeliver.sieve import lexer, parser


def parse(src):
    return parser.parse(lexer.tokenize(src))


def test_ast_shape():
    cmds = parse(b'if anyof (header :contains "subject" ["a", "b"], true) { fileinto "x"; }\nstop;')
    assert [c.name for c in cmds] == ["if", "stop"]
    test = cmds[0].tests[0]
    assert test.name == "anyof" and test.test_list and [t.name for t in test.tests] == ["header", "true"]
    hdr = test.tests[0]
    assert isinstance(hdr.args[0], parser.Tag) and hdr.args[0].name == "contains"
    assert hdr.args[2].values == ["a", "b"]
    assert cmds[0].block[0].name == "fileinto" and cmds[1].line == 2


@pytest.mark.parametrize("src, line", [
    pytest.param(b"keep", 1, id="missing semicolon at end"),
    pytest.param(b"keep\n\n)", 3, id="missing semicolon"),
    pytest.param(b"if true { keep;", 1, id="unclosed block"),
    pytest.param(b'fileinto ["a" "b"];', 1, id="string list without comma"),
    pytest.param(b"if anyof(true\n;) { }", 2, id="test list without comma"),
    pytest.param(b"}\n", 1, id="stray close brace"),
    pytest.param(b"keep;\n\n[\"x\"];", 3, id="argument at top level"),
])
def test_parse_errors(src, line):
    with pytest.raises(parser.ParseError) as e:
        parse(src)
    assert e.value.line == line


@pytest.mark.parametrize("src, line, text", [
    pytest.param(b"keep;\nfrobnicate;", 2, "unknown command 'frobnicate'", id="unknown command"),
    pytest.param(b'fileinto "x";', 1, "unknown command 'fileinto'", id="extension not required"),
    pytest.param(b'require "nosuch";', 1, "unknown Sieve capability 'nosuch'", id="unknown capability"),
    pytest.param(b'keep;\nrequire "fileinto";', 2, "require command can only be placed", id="late require"),
    pytest.param(b"if true {}\nelse {}\nelse {}", 3, "must follow an if", id="else after else"),
    pytest.param(b"elsif true {}", 1, "must follow an if", id="elsif alone"),
    pytest.param(b'if header :over "a" "b" {}', 1, "unknown tagged argument ':over'", id="tag of another test"),
    pytest.param(b'if header :is :contains "a" "b" {}', 1, "multiple match type", id="two match types"),
    pytest.param(b'if header "a" {}', 1, "requires 2 positional", id="too few arguments"),
    pytest.param(b'redirect "a@b" "c@d";', 1, "accepts only 1", id="too many arguments"),
    pytest.param(b"redirect 5;", 1, "expects a string", id="number for string"),
    pytest.param(b'redirect "not an address";', 1, "redirect address", id="invalid redirect address"),
    pytest.param(b"if size 100 {}", 1, "requires either the :under or the :over", id="size without tag"),
    pytest.param(b'if header :comparator "i;nope" "a" "b" {}', 1, "unknown comparator", id="unknown comparator"),
    pytest.param(b'require "relational";\nif header :count "xx" "a" "b" {}', 2, "invalid relational",
                 id="bad relop"),
    pytest.param(b'require ["relational", "comparator-i;ascii-numeric"];\n'
                 b'if header :contains :comparator "i;ascii-numeric" "a" "1" {}', 2, "sub-string",
                 id="numeric comparator with contains"),
    pytest.param(b'require "regex";\n\nif header :regex "a" "(" {}', 3, "invalid regular expression",
                 id="bad regex"),
    pytest.param(b'require "variables";\nset "a b" "x";', 2, "invalid variable name", id="bad variable name"),
    pytest.param(b'require "variables";\nset :lower :upper "a" "x";', 2, "same precedence",
                 id="modifiers of equal precedence"),
    pytest.param(b'require "index";\nif header :last "a" "b" {}', 2, "requires the :index", id=":last alone"),
    pytest.param(b'require "foreverypart";\nbreak;', 2, "not placed inside a foreverypart", id="break outside"),
    pytest.param(b'require "enotify";\nnotify "xmpp:a@b";', 2, "not supported", id="notify method"),
    pytest.param(b'require "vacation";\nvacation :from "nope" "r";', 2, ":from address", id="vacation from"),
    pytest.param(b'require "encoded-character";\nreject "${unicode:D800}";', 2, "unknown command 'reject'",
                 id="unknown command before its arguments"),
    pytest.param(b'require ["encoded-character", "reject"];\nreject "${unicode:D800}";', 2, "invalid unicode",
                 id="surrogate in encoded character"),
    pytest.param(b"keep\nkeep;", 1, "accepts no test", id="command read as a test argument"),
    pytest.param(b'if address :is "subject" "x" {}', 1, "not allowed for the address test",
                 id="address on a non-address header"),
    pytest.param(b'require "include";\ninclude "nope";', 2, "does not exist", id="missing include"),
    pytest.param(b'require "enotify";\nnotify :importance "4" "mailto:a@b.c";', 2, ":importance",
                 id="notify importance"),
    pytest.param(b'require "enotify";\nnotify "mailto:a@b.c,d@e.f";', 2, "invalid mailto", id="comma in mailto"),
    pytest.param(b'require "variables";\nset "' + b"n" * 65 + b'" "x";', 2, "invalid variable name",
                 id="variable name over 64"),
    pytest.param(b'require "variables";\nset "env.x" "y";', 2, "unknown variable namespace", id="namespace"),
    pytest.param(b'require "imap4flags";\nsetflag "v" "x";', 2, "variables extension", id="flag variable"),
    pytest.param(b'require "mime";\nif header :anychild "a" "b" {}', 2, "requires the :mime", id="anychild alone"),
    pytest.param(b'require "vacation";\nvacation :seconds 5 "x";', 2, "unknown tagged argument ':seconds'",
                 id="seconds needs vacation-seconds"),
])
def test_compile_errors(src, line, text):
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(src, name="t")
    first = e.value.errors[0]
    assert first.startswith(f"t: line {line}: error: "), e.value.errors
    assert text in "\n".join(e.value.errors)


@pytest.mark.parametrize("src", [
    pytest.param(b"if false { frobnicate; }", id="dead if block"),
    pytest.param(b"if true { keep; } else { frobnicate; }", id="dead else"),
    pytest.param(b'require "ihave";\nif ihave "x-nosuch" { frobnicate; }', id="ihave of unknown capability"),
    pytest.param(b'if header :is "a b" "x" {}', id="bad header name only warns"),
    pytest.param(b'require "date";\nif date :is "date" "century" "20" {}', id="unknown date part only warns"),
])
def test_compiles_as_pigeonhole_does(src):
    sieve.compile(src)


def test_editheader_compile_errors():
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(b'require "editheader";\naddheader "bad name" "x";',
                      extensions=sieve.parse_extensions_setting("+editheader"), name="t")
    assert e.value.errors[0].startswith("t: line 2: error: addheader command: specified field name")


def test_nesting_limit_is_a_compile_error():
    # Pigeonhole: 31 nested blocks (tests) compile, the 32nd level is an error
    sieve.compile(b"if true {" * 31 + b"keep;" + b"}" * 31)
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(b"if true {" * 32 + b"keep;" + b"}" * 32)
    assert "cannot nest command blocks deeper than 32 levels" in e.value.errors[0]
    sieve.compile(b"if " + b"not " * 30 + b"true { keep; }")
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(b"if " + b"not " * 31 + b"true { keep; }")
    assert "cannot nest tests deeper than 32 levels" in e.value.errors[0]


def test_extensions_setting():
    default = sieve.parse_extensions_setting("+editheader -vacation")
    assert "editheader" in default and "vacation" not in default and "fileinto" in default
    assert sieve.parse_extensions_setting("fileinto envelope") == {"fileinto", "envelope"}
    assert sieve.parse_extensions_setting("") == set()
    with pytest.raises(sieve.CompileError):
        sieve.compile(b'require "editheader";')
    sieve.compile(b'require "editheader";', extensions=default)
    with pytest.raises(sieve.CompileError):
        sieve.compile(b'require "vacation";', extensions=default)


def test_capabilities_as_pigeonhole_announces():
    assert " ".join(sieve.CAPABILITIES) == (
        "fileinto reject envelope encoded-character vacation subaddress comparator-i;ascii-numeric "
        "relational regex imap4flags copy include body variables enotify environment mailbox date "
        "index ihave duplicate mime foreverypart extracttext")


# Extension modules load when a script first requires them: whatever the order, an
# extension's tags on another extension's commands must be there.
LAZY_CASES = [
    b'require ["index", "date"]; if date :index 1 :is "date" "year" "2026" { keep; }',
    b'require ["copy", "fileinto"]; fileinto :copy "x";',
    b'require ["mailbox", "imap4flags", "fileinto"]; fileinto :create :flags "\\\\Seen" "x";',
    b'require ["regex", "variables"]; set :quoteregex "a" "b"; if header :regex "a" "b" {}',
    b'require ["enotify", "variables"]; set :encodeurl "a" "b";',
    b'require ["extracttext", "foreverypart", "variables"]; foreverypart { extracttext :lower "t"; }',
    b'require ["mime"]; if exists :mime :anychild "content-type" {}',
    b'require ["encoded-character", "variables", "reject"]; set "x" "1"; reject "${${hex:78}}";',
]


@pytest.mark.parametrize("order", [pytest.param(1, id="in order"), pytest.param(-1, id="reversed")])
def test_lazy_extension_loading_in_a_fresh_process(order):
    import subprocess
    import sys
    code = ("import sys\nfrom vdeliver import sieve\n"
            "assert 'vdeliver.sieve.extensions.mime' not in sys.modules\n"
            f"for src in {LAZY_CASES[::order]!r}:\n"
            "    s = sieve.compile(src)\n"
            "    r = sieve.run(s, sieve.Message.from_bytes(b'Subject: x\\r\\n\\r\\n'), sieve.Envelope())\n"
            "    assert not r.errors, (src, r.errors)\n"
            "    if b'hex' in src: assert r.actions[0].reason == '1', r.actions\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_limits_from_pigeonhole_settings():
    limits = sieve.limits_from_settings({"sieve_max_actions": "5", "sieve_max_script_size": "2K",
                                         "sieve_max_cpu_time": "2min", "sieve_max_redirects": "0",
                                         "recipient_delimiter": "+"})
    assert (limits.max_actions, limits.max_script_size, limits.max_cpu_time, limits.max_redirects) == \
        (5, 2048, 120, 0)
    assert limits.max_include_depth == sieve.DEFAULT_LIMITS.max_include_depth
    with pytest.raises(ValueError):
        sieve.limits_from_settings({"sieve_max_actions": "many"})
    with pytest.raises(sieve.CompileError):
        sieve.compile(b"keep;" * 500, limits=limits)


def test_every_declared_capability_loads():
    from vdeliver.sieve import registry
    sieve.load_extensions()
    for name, cap in registry.CAPABILITIES.items():
        if cap.module:
            src = f'require "{name}";'.encode()
            sieve.compile(src, extensions=set(registry.CAPABILITIES))
