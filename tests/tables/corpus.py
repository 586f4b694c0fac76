"""The shared inputs of the differential tests: a postmap source file, pattern
tables and a key set, plus the two ways of asking (postmap, through
tests/postfix_config.py like every postmap of the tests; vdeliver).

The source holds what postmap(1) parses in surprising ways: continuation
lines (indentation kept), comments inside a logical line, CRLF, \\v and \\f,
quoted keys with spaces, quotes in the middle of a key, backslashes, a line
with unbalanced quotes, a line without a value, duplicates in different case,
UTF-8 keys that fold (Ä, ß), a line that is not UTF-8, a NUL byte, a
continuation without a first line, catch-alls and +extension keys.
"""
import os
import subprocess
import time

from vdeliver.address import fold
from vdeliver.errors import DeliveryError

# postmap's fatal errors that say it cannot look at all, whatever the key.
CANNOT_RUN = (b"main.cf", b"unsupported dictionary type")


def source_bytes(generated=1000):
    lines = [
        b"  orphan@example.com   orphan/",        # continuation without a first line: dropped
        b"# comment",
        b"bob@example.com        example.com/bob/",
        b"Mixed@Example.COM      example.com/mixed/",
        b"alice@example.com      example.com/alice/  ",
        b"alice+list@example.com example.com/alice-list/",
        b"@example.org           example.org/catchall/",
        b"@Catch.Example         catch/all/",
        b"long@example.com       part1",
        b"  part2",
        b"# a comment inside the logical line",
        b"\tpart3",
        b"",
        b"   ",
        b"crlf@example.com       example.com/crlf/\r",
        b"vt@example.com\x0bexample.com/vt/",
        b"ff@example.com \x0c example.com/ff/ \x0c",
        b'"john doe"@example.com example.com/john.doe/',
        b'a"b c"d@example.com    example.com/mid-quotes/',
        b'"unbalanced@example.com example.com/unbalanced/',
        b"back\\ slash@example.com example.com/backslash/",
        b"trailing\\",
        b"novalue@example.com",
        b"novalue2@example.com   ",
        b"dup@example.com        example.com/dup-first/",
        b"DUP@example.com        example.com/dup-second/",
        b"hash#not@example.com   # not a comment",
        "jösé@exämple.com       exämple.com/jose/".encode(),
        "ÄRGER@Example.com      example.com/aerger/".encode(),
        "straße@example.com     example.com/strasse/".encode(),
        b"latin1-\xe9@example.com example.com/latin1/",
        b"nul@example.com        example.com/nul/\x00garbage",
        b"tab\there@example.com  example.com/tab/",
        b"postmaster             admin/",
        b"key:                   colon/",
        b"-                      dash/",
        b"percent%@example.com   example.com/percent/",
        b"o'brien@example.com    example.com/obrien/",
        b"utf8value@example.com  " + "exämple.com/välue/".encode(),
    ]
    for number in range(generated):
        lines.append(f"user{number}@example{number % 7}.com example{number % 7}.com/user{number}/"
                     .encode())
    return b"\n".join(lines) + b"\n"


def unique_source_bytes(generated=1000):
    """The source without duplicate keys (a texthash with duplicates fails, as in virtual(8))."""
    return source_bytes(generated).replace(b"DUP@example.com        example.com/dup-second/\n", b"")


def keys(generated=1000):
    """Keys to ask: hits, case variants, +ext, catch-alls, misses, odd characters."""
    base = [
        "bob@example.com", "BOB@EXAMPLE.COM", "Bob@Example.Com", "bob", "bob@", "@example.com",
        "mixed@example.com", "MIXED@EXAMPLE.COM", "alice@example.com", "alice+list@example.com",
        "alice+other@example.com", "@example.org", "@EXAMPLE.ORG", "nobody@example.org",
        "@catch.example", "long@example.com", "crlf@example.com", "vt@example.com",
        "ff@example.com", '"john doe"@example.com', "john doe@example.com",
        '"JOHN DOE"@example.com', 'a"b c"d@example.com', '"unbalanced@example.com',
        "back\\ slash@example.com", "back slash@example.com", "trailing\\", "novalue@example.com",
        "novalue2@example.com", "dup@example.com", "hash#not@example.com", "jösé@exämple.com",
        "JÖSÉ@EXÄMPLE.COM", "ärger@example.com", "ÄRGER@EXAMPLE.COM", "strasse@example.com",
        "straße@example.com", "STRASSE@example.com", "nul@example.com",
        "postmaster", "POSTMASTER", "key:", "-", "percent%@example.com", "%", "\\", "'",
        "o'brien@example.com", "O'Brien@Example.com", "'; drop table mailbox; --",
        "x' OR '1'='1", "*", "(uid=*)", "orphan@example.com", "utf8value@example.com",
        "re@re.example", "abc@cond.example", "xyz@cond.example", "1234@digits.example",
        "Case@case.example", "case@case.example", "foo+bar@ext.example", "money@money.example",
        "postmaster@anything.example", "abc123@lazy.example", "x@anchored.example",
        "nl@dollar.example", "a.b.c@labels.example.net", "q@example.net", "ä@first.example",
    ]
    for number in range(0, generated, 7):
        base.append(f"user{number}@example{number % 7}.com")
        base.append(f"USER{number}@EXAMPLE{number % 7}.COM")
        base.append(f"user{number}+ext@example{number % 7}.com")
        base.append(f"user{number}@example{(number + 1) % 7}.com")  # miss: wrong domain
    encoded = [key.encode() for key in base]
    encoded.append(b"latin1-\xe9@example.com")  # not UTF-8: Postfix skips the lookup
    return encoded


REGEXP_SOURCE = rb"""# regexp_table(5) rules
/^(.*)@re\.example$/            re/$1/
/^postmaster@/                  admin/
if /@cond\.example$/
/^a/                            cond-a/
!/^a/                           cond-other/
endif
/^[[:digit:]]+@digits\.example$/ digits/
/^CASE@case\.example$/i         sensitive/
/^(.+)@example([0-9])\.com$/    example$2.com/$1/
/^money@/                       $$cost/
/^latin1-/                      latin1/
"""

PCRE_SOURCE = rb"""# pcre_table(5) rules
/^(.*)@re\.example$/            re/$1/
/^postmaster@/                  admin/
if /@cond\.example$/
/^a/                            cond-a/
!/^a/                           cond-other/
endif
/^[[:digit:]]+@digits\.example$/ digits/
/^CASE@case\.example$/i         sensitive/
/^(?<user>[a-z]+)\+(\w+)@ext\.example$/  ext/$1/$2/
/^(\S+?)(\d*)@lazy\.example$/U  lazy/$1/$2/
/x@anchored/A                   anchored/
/^nl@dollar\.example$/E         dollar/
/^(\w+)\.(\w+)\.(\w+)@labels\.example\.net$/x  labels/$3/$2/$1/
/^(.+)@example(\d)\.com$/       example$2.com/${1}/
/^money@/                       $$cost/
/\Qjohn doe\E@example\.com\z/   quoted/
/^latin1-/                      latin1/
"""
PCRE_SOURCE += "/^[\\w.+-]+@exämple\\.com$/       exämple/\n".encode()


def cool(*paths):
    """Date files a minute back: Postfix re-reads a file changed within the last
    second until it "cools down" (dict_thash.c, dict_load_file()), which would
    cost seconds per postmap run."""
    past = time.time() - 60
    for path in paths:
        os.utime(path, (past, past))


def postmap_answers(postfix, spec, keys):
    """{key bytes: value bytes or "error"} from `postmap -c DIR -q - spec` (postfix:
    a postfix_config.PostfixConfig), one process for all keys; when postmap dies on a
    key (a table error), per-key queries. A postmap that cannot look at all (no
    main.cf, a missing plugin) fails the test at once: every answer would be "error"."""
    done = postfix.run(postfix.postmap("-q", "-", spec), input=b"\n".join(keys) + b"\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    fatal = [line for line in done.stderr.split(b"\n") if b"fatal:" in line]
    assert not any(words in line for line in fatal for words in CANNOT_RUN), (
        f"postmap cannot look up anything in {spec}: {fatal[0].decode(errors='replace')}")
    if not fatal:
        answers = dict.fromkeys(keys)
        for line in done.stdout.split(b"\n"):
            if line:
                key, _, value = line.partition(b"\t")
                answers[key] = value
        return answers
    answers = {}
    for key in keys:
        one = postfix.run(postfix.postmap("-q", key, spec), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
        if one.returncode == 0:
            answers[key] = one.stdout[:-1] if one.stdout.endswith(b"\n") else one.stdout
        elif b"fatal:" in one.stderr:
            answers[key] = "error"
        else:
            answers[key] = None
    return answers


def vdeliver_answers(table, keys):
    """{key bytes: value bytes or None or "error"}, asked as the query tool asks."""
    answers = {}
    for key in keys:
        text = key.decode("utf-8", "surrogateescape")
        try:
            value = table.lookup(fold(text) if table.fixed_keys else text)
        except DeliveryError:
            answers[key] = "error"
            continue
        answers[key] = None if value is None else value.encode("utf-8", "surrogateescape")
    return answers


def differences(expected, actual):
    return {key: (expected[key], actual.get(key)) for key in expected
            if expected[key] != actual.get(key)}
