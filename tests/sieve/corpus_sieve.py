"""The differential corpus: (script, message, envelope, folders, extensions) cases.

Every case is data (oracle.Case); CASES is the whole list, in areas. Most
scripts end in one of two probes, so that a test's truth is visible in the
outcome: yes_no() files into "Yes" or "No" (both folders exist), and probe()
rejects with a reason that spells out strings (match values, variables), the
reason being compared exactly.

Pigeonhole's sieve-test cannot be given a null envelope sender ("-f <>" is
refused, and without -f it falls back to the From header), so no case has one.

DELIBERATE_DIFFERENCES lists the cases where vdeliver differs from Pigeonhole on
purpose, with the reason (test_differential.py marks them xfail strict, and the
list can be copied into the README as it is).
"""
import itertools

from oracle import Case

YES_NO = ("Yes", "No")


def enc(s):
    return s.encode("utf-8") if isinstance(s, str) else s


def msg(headers, body="Hello,\nthe report is attached.\n", crlf=False):
    """A message from a list of "Name: value" header lines and a body."""
    text = "\n".join(headers) + "\n\n" + body
    if crlf:
        text = text.replace("\n", "\r\n")
    return enc(text)


BASE_HEADERS = [
    "Return-Path: <sender@example.org>",
    "Received: from mx.example.org (mx.example.org [192.0.2.1])\n\tby mail.example.com; Tue, 03 Nov 2026 10:20:35 +0100",
    "Received: from laptop (unknown [198.51.100.7])\n\tby mx.example.org; Tue, 03 Nov 2026 10:20:31 +0100",
    "From: Alice Sender <sender@example.org>",
    "To: User <user@example.com>, \"Bob, B.\" <bob+lists@Example.NET>",
    "Cc: carol@sub.example.com",
    "Subject: Weekly report",
    "Date: Tue, 03 Nov 2026 10:20:30 +0100",
    "Message-ID: <report-1@example.org>",
    "X-Priority: 3",
    "X-Count: 010",
]
M_BASE = msg(BASE_HEADERS)


def with_headers(*extra, drop=(), body=None):
    """M_BASE with some headers dropped (by name) and others added at the end."""
    keep = [h for h in BASE_HEADERS if h.split(":", 1)[0].lower() not in {d.lower() for d in drop}]
    return msg(keep + list(extra), body if body is not None else "Hello,\nthe report is attached.\n")


def subject(value):
    return with_headers(f"Subject: {value}", drop=("Subject",))


M_LIST = msg([
    "Return-Path: <dev-bounces@lists.example.org>",
    "From: Dave <dave@example.net>",
    "To: dev@lists.example.org",
    "Subject: [dev] Re: build broken",
    "List-Id: Developers <dev.lists.example.org>",
    "List-Post: <mailto:dev@lists.example.org>",
    "Precedence: list",
    "Sender: dev-bounces@lists.example.org",
    "Date: Wed, 04 Nov 2026 23:59:59 -0800",
    "Message-ID: <b1@example.net>",
], "it builds again.\n")

M_ENCODED = msg([
    "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.de>",
    "To: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>",
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= =?UTF-8?B?ISE=?=",
    "X-Plain: caf\u00e9 cr\u00e8me",
    "Date: Thu, 05 Nov 2026 08:00:00 +0000",
    "Message-ID: <enc@example.de>",
], "Hallo!\n")

M_MIME = msg([
    "From: Alice Sender <sender@example.org>",
    "To: user@example.com",
    "Subject: invoice",
    "Date: Tue, 03 Nov 2026 10:20:30 +0100",
    "Message-ID: <mime@example.org>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="outer"',
], "\n".join([
    "preamble",
    "--outer",
    'Content-Type: multipart/alternative; boundary="inner"',
    "",
    "--inner",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Please find the invoice attached. Total: 42 EUR. Caf=C3=A9",
    "--inner",
    "Content-Type: text/html; charset=utf-8",
    "",
    "<html><body><p>Please find the <b>invoice</b> attached.</p></body></html>",
    "--inner--",
    "--outer",
    'Content-Type: application/pdf; name="invoice-2026.pdf"',
    'Content-Disposition: attachment; filename="invoice-2026.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK",
    "--outer",
    "Content-Type: message/rfc822",
    "",
    "From: inner@example.net",
    "Subject: forwarded inner",
    "",
    "inner body text",
    "--outer--",
    "epilogue",
    ""]))

M_SPAM = with_headers("X-Spam-Score: 7.3", "X-Virus-Status: infected")
M_HAM = with_headers("X-Spam-Score: 0.4", "X-Virus-Status: clean")
M_BIG = msg(BASE_HEADERS, ("0123456789" * 7 + "\n") * 300)

CASES = []


def add(id, script, area, **kw):
    if any(c.id == id for c in CASES):
        raise ValueError(f"duplicate case id {id}")
    kw.setdefault("message", M_BASE)
    CASES.append(Case(id=id, script=enc(script), area=area, **kw))


def req(*exts):
    return "require [" + ", ".join(f'"{e}"' for e in exts) + "];\n" if exts else ""


def yes_no(id, test, area, exts=(), **kw):
    """if TEST -> "Yes", else "No"."""
    script = req("fileinto", *exts) + f'if {test} {{\n  fileinto "Yes";\n}} else {{\n  fileinto "No";\n}}\n'
    kw.setdefault("folders", YES_NO)
    add(id, script, area, **kw)


def probe(id, body, area, exts=(), reason="", **kw):
    """Run BODY, then reject with REASON (which shows the variables)."""
    script = req("reject", *exts) + body + f'\nreject "{reason}";\n'
    add(id, script, area, **kw)


# -- RFC 5228 core: control and actions -------------------------------------------

A = "core"
add("core-empty-script", "", A)
add("core-comment-only", "# nothing to do\n/* really\n nothing */\n", A)
add("core-keep", "keep;\n", A)
add("core-discard", "discard;\n", A)
add("core-stop-implicit-keep", "stop;\ndiscard;\n", A)
add("core-fileinto", req("fileinto") + 'fileinto "Work";\n', A, folders=("Work",))
add("core-fileinto-missing", req("fileinto") + 'fileinto "Missing";\n', A)
add("core-fileinto-inbox", req("fileinto") + 'fileinto "INBOX";\n', A)
add("core-fileinto-inbox-lowercase", req("fileinto") + 'fileinto "inbox";\nkeep;\n', A)
add("core-fileinto-case-sensitive", req("fileinto") + 'fileinto "work";\n', A, folders=("Work",))
add("core-fileinto-twice", req("fileinto") + 'fileinto "Work";\nfileinto "Work";\n', A, folders=("Work",))
add("core-fileinto-keep", req("fileinto") + 'fileinto "Work";\nkeep;\n', A, folders=("Work",))
add("core-fileinto-subfolder", req("fileinto") + 'fileinto "Lists.dev";\n', A, folders=("Lists", "Lists.dev"))
add("core-fileinto-utf8", req("fileinto") + 'fileinto "Gesch\u00e4ftlich";\n', A, folders=("Gesch\u00e4ftlich",))
add("core-fileinto-then-missing", req("fileinto") + 'fileinto "Work";\nredirect "boss@example.net";\nfileinto "Missing";\n',
    A, folders=("Work",))
add("core-redirect", 'redirect "boss@example.net";\n', A)
add("core-redirect-display", 'redirect "Boss <boss@example.net>";\n', A)
add("core-redirect-twice", 'redirect "boss@example.net";\nredirect "boss@example.net";\n', A)
add("core-redirect-case", 'redirect "boss@example.net";\nredirect "Boss@example.net";\n', A)
add("core-redirect-keep", 'redirect "boss@example.net";\nkeep;\n', A)
add("core-redirect-invalid", 'redirect "not an address";\n', A)
add("core-redirect-four", "".join(f'redirect "r{i}@example.net";\n' for i in range(4)), A)
add("core-redirect-loop", 'redirect "boss@example.net";\n', A,
    message=with_headers("X-Sieve-Redirected-From: user@example.com"))
add("core-redirect-to-self", 'redirect "user@example.com";\n', A)
add("core-redirect-to-sender", 'redirect "sender@example.org";\n', A)
add("core-discard-keep", "discard;\nkeep;\n", A)
add("core-keep-discard", "keep;\ndiscard;\n", A)
add("core-discard-fileinto", req("fileinto") + 'discard;\nfileinto "Work";\n', A, folders=("Work",))
add("core-discard-redirect", 'discard;\nredirect "boss@example.net";\n', A)
add("core-if-true", "if true { discard; }\n", A)
add("core-if-false", "if false { discard; }\n", A)
add("core-if-elsif-else-1", req("fileinto") + 'if header :is "x-priority" "1" { fileinto "A"; }\n'
    'elsif header :is "x-priority" "3" { fileinto "B"; }\nelse { fileinto "C"; }\n', A, folders=("A", "B", "C"))
add("core-if-elsif-else-2", req("fileinto") + 'if false { fileinto "A"; }\nelsif false { fileinto "B"; }\n'
    'elsif false { fileinto "B"; }\nelse { fileinto "C"; }\n', A, folders=("A", "B", "C"))
add("core-nested-if", req("fileinto") + 'if true {\n  if false { fileinto "A"; }\n  else {\n    if true { fileinto "B"; stop; }\n  }\n}\nfileinto "C";\n',
    A, folders=("A", "B", "C"))
add("core-stop-in-block", req("fileinto") + 'if true { fileinto "A"; stop; }\nfileinto "B";\n', A, folders=("A", "B"))
add("core-require-twice", req("fileinto") + req("fileinto") + 'fileinto "A";\n', A, folders=("A",))
add("core-require-string", 'require "fileinto";\nfileinto "A";\n', A, folders=("A",))
add("core-crlf-script", 'require "fileinto";\r\nif true {\r\n  fileinto "A";\r\n}\r\n', A, folders=("A",))
add("core-multiline-string", req("reject") + 'reject text:\nline one\n..dot-stuffed\nline three\n.\n;\n', A)
add("core-multiline-hash", req("reject") + 'reject text: # comment here\nbody\n.\n;\n', A)
add("core-escapes", req("reject") + 'reject "quote \\" backslash \\\\ other \\q";\n', A)
add("core-crlf-message", 'if header :is "subject" "Weekly report" { discard; }\n', A, message=msg(BASE_HEADERS, crlf=True))
add("core-number-suffix", 'if size :under 1M { discard; }\n', A)
add("core-number-k", 'if size :over 1K { discard; }\n', A)

# -- tests: header / address / envelope / exists / size / allof / anyof / not --------

A = "tests"
for i, (test, m) in enumerate([
    ('header :is "Subject" "Weekly report"', M_BASE),
    ('header :is "subject" "weekly REPORT"', M_BASE),
    ('header :contains ["to", "cc"] "carol"', M_BASE),
    ('header :contains "to" "carol"', M_BASE),
    ('header :is "X-Missing" ""', M_BASE),
    ('header :contains "X-Missing" ""', M_BASE),
    ('header :contains "subject" ""', M_BASE),
    ('header :is "received" "x"', M_BASE),
    ('header :contains "received" "laptop"', M_BASE),
    ('header :matches "received" "*unknown*"', M_BASE),
    ('header :is ["from", "subject"] ["x", "Weekly report"]', M_BASE),
    ('header :contains "Subject" "Köln"', M_ENCODED),
    ('header :is "Subject" "Grüße aus Köln!!"', M_ENCODED),
    ('header :contains "X-Plain" "café"', M_ENCODED),
    ('header :contains "from" "Jürgen"', M_ENCODED),
    ('header :contains "to" "André"', M_ENCODED),
    ('header :contains "list-id" "dev.lists.example.org"', M_LIST),
    ('exists "list-id"', M_LIST),
    ('exists "list-id"', M_BASE),
    ('exists ["from", "to", "date"]', M_BASE),
    ('exists ["from", "x-nope"]', M_BASE),
    ('not exists "x-nope"', M_BASE),
    ('size :over 100', M_BASE),
    ('size :under 100', M_BASE),
    ('size :over 20K', M_BIG),
    ('size :under 20K', M_BIG),
    ('size :over 1M', M_BIG),
    ('allof (true, true, true)', M_BASE),
    ('allof (true, false)', M_BASE),
    ('anyof (false, false)', M_BASE),
    ('anyof (false, true)', M_BASE),
    ('not true', M_BASE),
    ('not not true', M_BASE),
    ('allof (anyof (false, header :contains "subject" "report"), not exists "x-nope")', M_BASE),
    ('anyof (header :is "x" "y", allof (exists "from", not header :contains "from" "alice"))', M_BASE),
    ('header :contains "Subject" "build"', M_LIST),
    ('header :matches "Date" "*-0800"', M_LIST),
]):
    yes_no(f"tests-{i:02d}", test, A, message=m)

# size: the exact boundaries, for a message with LF and with CRLF line ends
# (is the size the file's, or that of the message with CRLF line ends? In
# sieve-test it is the file's)
for label, m in (("lf", M_BASE), ("crlf", msg(BASE_HEADERS, crlf=True))):
    sizes = {"bytes": len(m), "crlf-bytes": len(m.replace(b"\r\n", b"\n")) + m.count(b"\n")}
    for what, size in sizes.items():
        if label == "crlf" and what == "crlf-bytes":
            continue
        for tag, delta in ((":over", -1), (":over", 0), (":under", 0), (":under", 1)):
            yes_no(f"size-{label}-{what}{tag}{delta:+d}", f"size {tag} {size + delta}", "tests", message=m)
yes_no("tests-unicode-casemap", 'header :is :comparator "i;unicode-casemap" "subject" "weekly report"', "tests")
yes_no("tests-bad-header-name", 'header :is "a b" "x"', "tests")
yes_no("tests-empty-from", 'address :all :is "from" ""', "tests", message=with_headers("From:", drop=("From",)))
yes_no("tests-header-trailing-ws", 'header :is "subject" "Weekly report"', "tests", message=subject("Weekly report \t "))
yes_no("tests-header-leading-ws", 'header :is "subject" "Weekly report"', "tests",
       message=with_headers("Subject:    Weekly report", drop=("Subject",)))
yes_no("tests-header-no-space", 'header :is "subject" "Weekly report"', "tests",
       message=with_headers("Subject:Weekly report", drop=("Subject",)))
yes_no("tests-header-8bit", 'header :contains "subject" "\u00e9t\u00e9"', "tests",
       message=with_headers("Subject: un \u00e9t\u00e9 8bit", drop=("Subject",)))
yes_no("tests-header-latin1-8bit", 'header :contains "subject" "t"', "tests",
       message=with_headers(drop=("Subject",)).replace(b"\n\n", b"\nSubject: \xe9t\xe9\n\n", 1))

# address test: parts x headers
A = "address"
for i, (test, m) in enumerate([
    ('address :is "from" "sender@example.org"', M_BASE),
    ('address :is "from" "SENDER@EXAMPLE.ORG"', M_BASE),
    ('address :localpart :is "from" "sender"', M_BASE),
    ('address :domain :is "from" "example.org"', M_BASE),
    ('address :all :is "from" "sender@example.org"', M_BASE),
    ('address :is "from" "Alice Sender <sender@example.org>"', M_BASE),
    ('address :contains "to" "bob"', M_BASE),
    ('address :is "to" "bob+lists@example.net"', M_BASE),
    ('address :domain :is "to" "example.net"', M_BASE),
    ('address :localpart :is "to" "bob+lists"', M_BASE),
    ('address :domain :matches "cc" "*.example.com"', M_BASE),
    ('address :domain :matches "cc" "example.com"', M_BASE),
    ('address :is ["to", "cc"] "carol@sub.example.com"', M_BASE),
    ('address :is "to" "dev@lists.example.org"', M_LIST),
    ('address :is "sender" "dev-bounces@lists.example.org"', M_LIST),
    ('address :is "from" "juergen@example.de"', M_ENCODED),
    ('address :domain :is "to" "example.fr"', M_ENCODED),
    ('address :is "to" "a@b.c"', with_headers('To: undisclosed-recipients:;', drop=("To",))),
    ('address :is "to" "x@y.z"', with_headers('To: group: x@y.z, w@y.z;', drop=("To",))),
    ('address :localpart :is "to" "w"', with_headers('To: group: x@y.z, w@y.z;', drop=("To",))),
    ('address :is "from" "weird"', with_headers('From: weird', drop=("From",))),
    ('address :contains "from" "weird"', with_headers('From: weird', drop=("From",))),
    ('address :is "from" "a@b.c"', with_headers('From: "a (not) b" <a@b.c> (comment)', drop=("From",))),
    ('address :all :comparator "i;octet" :is "to" "bob+lists@Example.NET"', M_BASE),
    ('address :is "resent-from" "x@y.z"', with_headers('Resent-From: x@y.z')),
    ('address :is "subject" "x"', M_BASE),
]):
    yes_no(f"address-{i:02d}", test, A, message=m)

# every address part of many kinds of address header, one probe per header value
ADDRESS_VALUES = [
    "User <user@example.com>",
    '"Bob, B." <bob+lists@Example.NET>',
    "user@example.com (Comment)",
    "<@route.example:user@example.com>",
    "undisclosed-recipients:;",
    "Group: a@b.example, d@e.example;",
    '"quoted local"@example.com',
    "user@[192.0.2.1]",
    "no-at-sign",
    "a@b@c",
    "=?UTF-8?B?SsO8cmdlbg==?= <j@example.de>",
    "",
    "user@EXAMPLE.com, second@example.org",
    "Name <user+a+b@example.com>",
    "user+@example.com",
    '"a\\"b" <x@y.example>',
    "<a@b.example>, <d@e.example>, g@h.example",
    "user@example.com.",
    "@example.com",
    "user@",
    "J\u00fcrgen <j\u00fcrgen@b\u00fccher.example>",
    "a@b.example,,c@d.example",
]
PARTS = [":all", ":localpart", ":domain", ":user", ":detail"]
for i, value in enumerate(ADDRESS_VALUES):
    body = 'set "r" "";\n' + "".join(
        f'if address {p} :matches "to" "*" {{ set "r" "${{r}}[{p[1:]}=${{1}}]"; }}\n' for p in PARTS)
    body += "".join(f'if address :count "eq" :comparator "i;ascii-numeric" "to" "{n}" {{ set "r" "${{r}}[count={n}]"; }}\n'
                    for n in range(5))
    probe(f"address-parts-{i:02d}", body, "address",
          exts=("variables", "subaddress", "relational", "comparator-i;ascii-numeric"), reason="${r}",
          message=with_headers(f"To: {value}", drop=("To",)))

A = "envelope"
for i, (test, kw) in enumerate([
    ('envelope :is "from" "sender@example.org"', {}),
    ('envelope :is "to" "user@example.com"', {}),
    ('envelope :domain :is "to" "EXAMPLE.COM"', {}),
    ('envelope :localpart :is "from" "sender"', {}),
    ('envelope :all :contains "from" "example"', {}),
    ('envelope :is "to" "user+tag@example.com"', {"recipient": "user+tag@example.com"}),
    ('envelope :matches "from" "*@example.org"', {}),
    ('envelope :is "to" "alias@example.com"', {"original_recipient": "alias@example.com"}),
    ('envelope :is "to" "user@example.com"', {"original_recipient": "alias@example.com"}),
    ('envelope :is "from" "bounce@lists.example.org"', {"sender": "bounce@lists.example.org"}),
    ('envelope :is ["from", "to"] "user@example.com"', {}),
]):
    yes_no(f"envelope-{i:02d}", test, A, exts=("envelope",), **kw)
yes_no("envelope-no-require", 'envelope :is "from" "x"', "envelope")
yes_no("envelope-bad-part", 'envelope :is "subject" "x"', "envelope", exts=("envelope",))

# -- match types x comparators x values (systematic) ---------------------------------

A = "match"
# key -> the subject values it is tried against (some match, some do not)
KEYS = {
    ":is": [("Weekly report", ["Weekly report", "weekly REPORT", "Weekly report "]),
            ("", ["", "x"]),
            ("10", ["10", "010"]),
            ("a*b?c", ["a*b?c", "axbyc"]),
            ("Ünïcödé straße", ["Ünïcödé straße", "üNÏCÖDÉ STRASSE"]),
            ("x\\\\y", ["x\\y", "xy"])],
    ":contains": [("report", ["Weekly report", "REPORT", "repor"]),
                  ("", ["", "abc"]),
                  ("*", ["a*b", "ab"]),
                  ("straße", ["Ünïcödé straße", "STRAßE"]),
                  ("eek", ["Weekly", "EEK", "ek"]),
                  ("t r", ["abc", "Weekly report"])],
    ":matches": [("*", ["", "anything"]),
                 ("*report", ["Weekly report", "Weekly REPORT", "report x"]),
                 ("Week?y*", ["Weekly report", "weekly", "Weeky"]),
                 ("?", ["a", "ab", "é"]),
                 ("", ["", "x"]),
                 ("a\\\\*b\\\\?c", ["a*b?c", "axbyc"]),
                 ("*\\\\\\\\*", ["x\\y", "xy"]),
                 ("Ü*e", ["Ünïcödé", "ünïcödé"]),
                 ("??", ["é", "ab"]),
                 ("*0", ["10", "01"]),
                 ("*?*?*", ["abc", "a"])],
}
COMPARATORS = ["i;octet", "i;ascii-casemap"]
n = 0
for mt, comp in itertools.product(KEYS, COMPARATORS):
    for key, values in KEYS[mt]:
        for value in values:
            n += 1
            yes_no(f"match-{mt[1:]}-{comp.split(';')[1]}-{n:03d}",
                   f'header {mt} :comparator "{comp}" "subject" "{key}"', A, message=subject(value))
# the default comparator, and the numeric one
for i, (mt, key, value) in enumerate([
    (":is", "10", "010"), (":is", "10", "10"), (":is", "9", "10"), (":is", "", "abc"),
    (":is", "abc", "xyz"), (":is", "0", "abc"), (":is", "12", "12abc"), (":is", "12", " 12"),
]):
    yes_no(f"match-numeric-{i:02d}", f'header {mt} :comparator "i;ascii-numeric" "subject" "{key}"', A,
           exts=("comparator-i;ascii-numeric",), message=subject(value))
yes_no("match-numeric-contains", 'header :contains :comparator "i;ascii-numeric" "subject" "1"', A,
       exts=("comparator-i;ascii-numeric",), message=subject("10"))
yes_no("match-numeric-no-require", 'header :is :comparator "i;ascii-numeric" "subject" "10"', A, message=subject("10"))
yes_no("match-unknown-comparator", 'header :is :comparator "i;nonsense" "subject" "x"', A)
yes_no("match-two-match-types", 'header :is :contains "subject" "x"', A)
yes_no("match-default-casemap", 'header :is "subject" "WEEKLY REPORT"', A)
yes_no("match-list-of-keys", 'header :contains "subject" ["nothing", "eek"]', A)
# :matches with ${N}
for i, (key, value, reason) in enumerate([
    ("*report*", "Weekly report for Q3", "[${0}][${1}][${2}]"),
    ("W*k?y*", "Weekly report", "[${1}][${2}][${3}][${4}]"),
    ("*", "", "[${0}][${1}]"),
    ("*-*-*", "a-b-c-d", "[${1}][${2}][${3}]"),
    ("?*?", "xy", "[${1}][${2}][${3}]"),
    ("*\\\\**", "a*b*c", "[${1}][${2}]"),
    ("[*]*", "[dev] Re: build", "[${1}][${2}]"),
    ("*", "Ünï", "[${1}]"),
    ("*a*", "bab", "[${1}][${2}]"),
    ("*a*", "BAB", "[${1}][${2}]"),
]):
    probe(f"match-vars-{i:02d}", f'if header :matches "subject" "{key}" {{ set "hit" "y"; }}', A,
          exts=("variables",), reason=reason + "${hit}", message=subject(value))

# -- encoded-character and RFC 2047 ---------------------------------------------

A = "encoded-character"
probe("enc-hex", "", A, exts=("encoded-character",), reason="${hex:48 65 6C 6c 6F}")
probe("enc-unicode", "", A, exts=("encoded-character",), reason="${unicode:48 e9 1F600}")
probe("enc-bad-hex", "", A, exts=("encoded-character",), reason="${hex:4G}")
probe("enc-empty", "", A, exts=("encoded-character",), reason="${hex:}")
probe("enc-no-require", "", A, reason="${hex:41}")
probe("enc-unicode-surrogate", "", A, exts=("encoded-character",), reason="${unicode:D800}")
probe("enc-mixed", "", A, exts=("encoded-character",), reason="a${hex:20}b${unicode: 20 }c")
add("enc-multiline", req("reject", "encoded-character") + 'reject text:\ncaf${unicode:e9} ${hex:41}\n.\n;\n', A)
add("enc-in-header-name", req("fileinto", "encoded-character") + 'if exists "${hex:53}ubject" { fileinto "Yes"; }\n', A,
    folders=YES_NO)
add("enc-case-insensitive", req("reject", "encoded-character") + 'reject "${HEX:41}${Unicode:42}";\n', A)
add("enc-whitespace", req("reject", "encoded-character") + 'reject "${hex:\t41\n42 }";\n', A)
add("enc-with-variables", req("reject", "encoded-character", "variables") + 'set "x" "X";\nreject "${hex:24}{x}";\n', A)
add("var-multiline", req("reject", "variables") + 'set "x" "X";\nreject text:\n${x} here\n..and dot\n.\n;\n', "variables")
yes_no("enc-in-key", 'header :is "subject" "${hex:57}eekly report"', A, exts=("encoded-character",))
yes_no("rfc2047-b-q-mixed", 'header :is "subject" "Grüße aus Köln!!"', A, message=M_ENCODED)
yes_no("rfc2047-raw-not-decoded", 'header :contains "subject" "=?UTF-8?"', A, message=M_ENCODED)
yes_no("rfc2047-latin1", 'header :contains "to" "Andr\u00e9"', A, message=M_ENCODED)
yes_no("rfc2047-bad-charset", 'header :contains "subject" "zzz"', A,
       message=subject("=?X-UNKNOWN?Q?zzz?="))
yes_no("rfc2047-invalid-b64", 'header :contains "subject" "=?utf-8?B?@@@?="', A,
       message=subject("=?utf-8?B?@@@?="))
yes_no("rfc2047-adjacent-ws", 'header :is "subject" "ab"', A, message=subject("=?utf-8?q?a?=   =?utf-8?q?b?="))
yes_no("rfc2047-underscore", 'header :is "subject" "a b"', A, message=subject("=?utf-8?q?a_b?="))
yes_no("rfc2047-folded", 'header :is "subject" "Weekly report"', A, message=subject("Weekly\n report"))

# -- reject / ereject -----------------------------------------------------------

A = "reject"
add("reject-simple", req("reject") + 'reject "I do not want this";\n', A)
add("reject-multiline", req("reject") + 'reject text:\nNot wanted.\nReally.\n.\n;\n', A)
add("reject-keep-conflict", req("reject") + 'reject "no";\nkeep;\n', A)
add("reject-fileinto-conflict", req("reject", "fileinto") + 'fileinto "Work";\nreject "no";\n', A, folders=("Work",))
add("reject-twice", req("reject") + 'reject "a";\nreject "b";\n', A)
add("reject-discard", req("reject") + 'discard;\nreject "x";\n', A)
add("reject-redirect", req("reject") + 'redirect "a@example.net";\nreject "x";\n', A)
add("reject-vacation", req("reject", "vacation") + 'vacation "away";\nreject "x";\n', A)
add("ereject-default-off", req("ereject") + 'ereject "no";\n', A)
add("reject-disabled", req("reject") + 'reject "x";\n', A,
    extensions="+editheader +vacation-seconds +spamtest +spamtestplus +virustest -reject")

# -- copy -------------------------------------------------------------------------

A = "copy"
add("copy-fileinto", req("fileinto", "copy") + 'fileinto :copy "Work";\n', A, folders=("Work",))
add("copy-redirect", req("copy") + 'redirect :copy "a@example.net";\n', A)
add("copy-redirect-then-plain", req("copy") + 'redirect :copy "a@example.net";\nredirect "a@example.net";\n', A)
add("copy-no-require", req("fileinto") + 'fileinto :copy "Work";\n', A, folders=("Work",))
add("copy-discard", req("fileinto", "copy") + 'fileinto :copy "Work";\ndiscard;\n', A, folders=("Work",))
add("copy-missing-folder", req("fileinto", "copy") + 'fileinto :copy "Missing";\n', A)

# -- subaddress -------------------------------------------------------------------

A = "subaddress"
for i, (test, kw) in enumerate([
    ('envelope :user "to" "user"', {"recipient": "user+tag@example.com"}),
    ('envelope :detail "to" "tag"', {"recipient": "user+tag@example.com"}),
    ('envelope :detail "to" ""', {"recipient": "user+@example.com"}),
    ('envelope :detail "to" ""', {}),
    ('not envelope :detail :matches "to" "*"', {}),
    ('envelope :detail :is "to" "b+c"', {"recipient": "a+b+c@example.com"}),
    ('envelope :user "to" "a"', {"recipient": "a+b+c@example.com"}),
    ('address :detail "to" "lists"', {}),
    ('address :user "to" "bob"', {}),
    ('address :detail :contains "to" "is"', {}),
    ('envelope :detail "to" "TAG"', {"recipient": "user+tag@example.com"}),
    ('envelope :user "from" "sender"', {}),
]):
    yes_no(f"subaddress-{i:02d}", test, A, exts=("envelope", "subaddress"), **kw)
yes_no("subaddress-no-require", 'address :detail "to" "lists"', A)
probe("subaddress-detail-var", 'if envelope :detail :matches "to" "*" { set "d" "${1}"; }', A,
      exts=("envelope", "subaddress", "variables"), reason="[${d}]", recipient="user+Some.Tag@example.com")

# -- relational ---------------------------------------------------------------------

A = "relational"
OPS = ["gt", "ge", "lt", "le", "eq", "ne"]
for op in OPS:
    for key in ["2", "3"]:
        yes_no(f"rel-count-to-{op}-{key}", f'address :count "{op}" :comparator "i;ascii-numeric" ["to"] "{key}"', A,
               exts=("relational", "comparator-i;ascii-numeric"))
    for key, value in [("3", "3"), ("10", "010"), ("9", "10"), ("abc", "5")]:
        yes_no(f"rel-value-{op}-{key}-{value}", f'header :value "{op}" :comparator "i;ascii-numeric" "subject" "{key}"', A,
               exts=("relational", "comparator-i;ascii-numeric"), message=subject(value))
    yes_no(f"rel-value-casemap-{op}", f'header :value "{op}" "subject" "weekly"', A, exts=("relational",))
    yes_no(f"rel-value-octet-{op}", f'header :value "{op}" :comparator "i;octet" "subject" "Weekly"', A, exts=("relational",))
yes_no("rel-count-received", 'header :count "eq" :comparator "i;ascii-numeric" "received" "2"', A,
       exts=("relational", "comparator-i;ascii-numeric"))
yes_no("rel-count-two-headers", 'header :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "2"', A,
       exts=("relational", "comparator-i;ascii-numeric"))
yes_no("rel-count-addresses", 'address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3"', A,
       exts=("relational", "comparator-i;ascii-numeric"))
yes_no("rel-count-missing", 'header :count "eq" :comparator "i;ascii-numeric" "x-nope" "0"', A,
       exts=("relational", "comparator-i;ascii-numeric"))
yes_no("rel-count-envelope", 'envelope :count "eq" :comparator "i;ascii-numeric" "to" "1"', A,
       exts=("relational", "comparator-i;ascii-numeric", "envelope"))
yes_no("rel-bad-op", 'header :value "gte" "subject" "x"', A, exts=("relational",))
yes_no("rel-no-require", 'header :value "gt" "subject" "x"', A)
yes_no("rel-value-list", 'header :value "lt" :comparator "i;ascii-numeric" "x-count" ["5", "11"]', A,
       exts=("relational", "comparator-i;ascii-numeric"))
yes_no("rel-count-default-comparator", 'header :count "eq" "received" "2"', A, exts=("relational",))

# -- regex ----------------------------------------------------------------------

A = "regex"
for i, (key, value) in enumerate([
    ("^Weekly", "Weekly report"), ("^weekly", "Weekly report"), ("report$", "Weekly report"),
    ("^[0-9]+$", "12345"), ("^[0-9]+$", "12a45"), ("a.c", "abc"), ("(foo|bar)baz", "xbarbazx"),
    ("^$", ""), ("x{2,3}", "axxb"), ("\\\\.", "a.b"), ("[[:digit:]]{3}", "ab123"),
]):
    yes_no(f"regex-{i:02d}", f'header :regex "subject" "{key}"', A, exts=("regex",), message=subject(value))
yes_no("regex-octet", 'header :regex :comparator "i;octet" "subject" "^weekly"', A, exts=("regex",))
probe("regex-groups", 'if header :regex "subject" "^(W[a-z]+) (r.*)$" { set "x" "${1}|${2}|${0}"; }', A,
      exts=("regex", "variables"), reason="[${x}]")
yes_no("regex-invalid", 'header :regex "subject" "(unclosed"', A, exts=("regex",))
yes_no("regex-no-require", 'header :regex "subject" "x"', A)
yes_no("regex-address", 'address :regex :domain "from" "^example\\\\.(org|net)$"', A, exts=("regex",))

# -- imap4flags ---------------------------------------------------------------------

A = "imap4flags"
F = ("fileinto", "imap4flags")
add("flags-addflag-keep", req(*F) + 'addflag "\\\\Seen";\n', A)
add("flags-setflag-list", req(*F) + 'setflag ["\\\\Seen", "\\\\Flagged"];\n', A)
add("flags-space-list", req(*F) + 'addflag "\\\\Seen \\\\Answered $Work";\n', A)
add("flags-removeflag", req(*F) + 'addflag "\\\\Seen \\\\Flagged";\nremoveflag "\\\\Seen";\n', A)
add("flags-case-dedupe", req(*F) + 'addflag ["Foo", "foo", "FOO", "\\\\SEEN"];\n', A)
add("flags-recent-dropped", req(*F) + 'addflag ["\\\\Recent", "\\\\Draft", "\\\\Deleted"];\n', A)
add("flags-invalid-keyword", req(*F) + 'addflag ["x(y", "ok"];\n', A)
add("flags-fileinto-internal", req(*F) + 'setflag "\\\\Seen";\nfileinto "Work";\nremoveflag "\\\\Seen";\nkeep;\n', A,
    folders=("Work",))
add("flags-fileinto-flags", req(*F) + 'addflag "$Junk";\nfileinto :flags "\\\\Flagged" "Work";\n', A, folders=("Work",))
add("flags-keep-flags", req(*F) + 'keep :flags ["\\\\Flagged", "Foo"];\n', A)
add("flags-keep-twice", req(*F) + 'keep :flags "A";\nkeep :flags "B";\n', A)
add("flags-fileinto-twice", req(*F) + 'fileinto :flags "A" "Work";\nfileinto :flags "B" "Work";\n', A, folders=("Work",))
add("flags-empty-flags", req(*F) + 'fileinto :flags "" "Work";\n', A, folders=("Work",))
add("flags-variable", req(*F, "variables") + 'set "f" "\\\\Seen";\naddflag "${f}";\n', A)
add("flags-named-variable", req(*F, "variables") + 'addflag "mine" "\\\\Seen";\naddflag "\\\\Flagged";\nkeep :flags "${mine}";\n', A)
add("flags-hasflag", req(*F) + 'addflag "\\\\Seen";\nif hasflag :is "\\\\seen" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("flags-hasflag-contains", req(*F) + 'addflag "$Label1 Other";\nif hasflag :contains "abel" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("flags-hasflag-count", req(*F, "relational", "comparator-i;ascii-numeric")
    + 'addflag "a b c";\nif hasflag :count "eq" :comparator "i;ascii-numeric" "3" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("flags-no-require", 'addflag "\\\\Seen";\n', A)
add("flags-imapflags-old", 'require "imapflags";\naddflag "\\\\Seen";\n', A)
add("flags-removeflag-all", req(*F) + 'addflag "a b";\nremoveflag ["a", "b"];\n', A)

# -- body -----------------------------------------------------------------------

A = "body"
for i, (test, m) in enumerate([
    ('body :contains "report"', M_BASE),
    ('body :contains "REPORT"', M_BASE),
    ('body :contains "nothing"', M_BASE),
    ('body :text :contains "invoice"', M_MIME),
    ('body :text :contains "inner body"', M_MIME),
    ('body :text :contains "JVBERi0"', M_MIME),
    ('body :raw :contains "JVBERi0"', M_MIME),
    ('body :raw :contains "Caf=C3=A9"', M_MIME),
    ('body :content "text/plain" :contains "Café"', M_MIME),
    ('body :content "text/html" :contains "invoice"', M_MIME),
    ('body :content "text" :contains "<b>"', M_MIME),
    ('body :content "application/pdf" :contains "PDF"', M_MIME),
    ('body :content "" :contains "JVBERi0"', M_MIME),
    ('body :matches "*attached*"', M_BASE),
    ('body :is "Hello,\r\nthe report is attached.\r\n"', M_BASE),
    ('body :content "multipart" :contains "preamble"', M_MIME),
]):
    yes_no(f"body-{i:02d}", test, A, exts=("body",), message=m)
yes_no("body-no-require", 'body :contains "x"', A)

# -- variables -----------------------------------------------------------------------

A = "variables"
V = ("variables",)
probe("var-set", 'set "a" "one";', A, exts=V, reason="[${a}]")
probe("var-unset", '', A, exts=V, reason="[${nope}]")
probe("var-case-insensitive-name", 'set "Name" "v";', A, exts=V, reason="[${NAME}]")
probe("var-modifiers-case", 'set :lower "l" "MiXeD";\nset :upper "u" "MiXeD";\nset :lowerfirst "lf" "MiXeD";\n'
      'set :upperfirst "uf" "miXeD";', A, exts=V, reason="[${l}][${u}][${lf}][${uf}]")
probe("var-modifier-combo", 'set :upperfirst :lower "x" "hELLO";', A, exts=V, reason="[${x}]")
probe("var-quotewildcard", 'set :quotewildcard "q" "a*b?c\\\\d";', A, exts=V, reason="[${q}]")
probe("var-length", 'set :length "n" "Grüße";\nset :length "z" "";', A, exts=V, reason="[${n}][${z}]")
probe("var-length-upper", 'set :length :upper "n" "abc";', A, exts=V, reason="[${n}]")
probe("var-encodeurl", 'set :encodeurl "e" "a b&c=d/é~";', A, exts=("variables", "enotify"), reason="[${e}]")
probe("var-encodeurl-no-enotify", 'set :encodeurl "e" "a b";', A, exts=V, reason="[${e}]")
probe("var-nested-ref", 'set "a" "b";\nset "b" "c";\nset "x" "${${a}}";', A, exts=V, reason="[${x}]")
probe("var-not-recursive", 'set "a" "${b}";\nset "b" "B";', A, exts=V, reason="[${a}]")
probe("var-literal-dollar", 'set "a" "$";', A, exts=V, reason="[${a}][$][${][${}][$${a}]")
probe("var-match-after-fail", 'if header :matches "subject" "W*" { }\nif header :matches "subject" "x*" { }', A,
      exts=V, reason="[${1}]")
probe("var-match-index-big", 'if header :matches "subject" "*" { }', A, exts=V, reason="[${1}][${2}][${00001}]")
yes_no("var-string-test", 'string :is "${x}" ""', A, exts=V)
yes_no("var-string-list", 'string :contains ["abc", "def"] "e"', A, exts=V)
yes_no("var-string-count", 'string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2"', A,
       exts=("variables", "relational", "comparator-i;ascii-numeric"))
probe("var-in-fileinto", 'set "f" "Work";', A, exts=V, reason="${f}")
add("var-fileinto-name", req("fileinto", "variables") + 'set "box" "Work";\nfileinto "${box}";\n', A, folders=("Work",))
probe("var-bad-name", 'set "1a" "x";', A, exts=V, reason="x")
probe("var-namespace-unknown", 'set "foo.bar" "x";', A, exts=V, reason="[${foo.bar}]")
probe("var-long-value", 'set "a" "' + "x" * 5000 + '";\nset :length "n" "${a}";', A, exts=V, reason="[${n}]")
probe("var-no-require", 'set "a" "b";', A, reason="x")
probe("var-unicode-length", 'set :length "n" "日本語";\nset :upperfirst "u" "élan";', A, exts=V, reason="[${n}][${u}]")
probe("var-match-vars-in-set", 'if header :matches "from" "* <*@*>" { set "who" "${1}"; set "dom" "${3}"; }', A,
      exts=V, reason="[${who}][${dom}]")

# modifier precedence (RFC 5229 §4.1): case 40, first 30, quotewildcard 20, encodeurl 15, length 10
for i, mods in enumerate([":lower :upperfirst", ":upperfirst :lower", ":upper :lowerfirst", ":quotewildcard :upper",
                          ":length :quotewildcard", ":encodeurl :upper", ":length :encodeurl", ":lower :upper",
                          ":lowerfirst :upperfirst", ":length :length", ":quotewildcard :encodeurl"]):
    probe(f"var-modifiers-{i:02d}", f'set {mods} "v" "hELLo *wOrld?";', A, exts=("variables", "enotify"),
          reason="[${v}]")
probe("var-set-overwrite", 'set "a" "1";\nset "a" "2";', A, exts=V, reason="[${a}]")
probe("var-match-vars-reset", 'if header :matches "subject" "W*" { }\nif header :matches "to" "*" { }', A,
      exts=V, reason="[${1}]")
probe("var-match-vars-contains", 'if header :contains "subject" "report" { }', A, exts=V, reason="[${0}][${1}]")
probe("var-in-header-name", 'set "h" "subject";\nif header :is "${h}" "Weekly report" { set "r" "yes"; }', A,
      exts=V, reason="[${r}]")
probe("var-name-underscore", 'set "_a_1" "x";\nset "A_1" "y";', A, exts=V, reason="[${_a_1}][${a_1}]")
probe("var-digits-ref", 'set "a" "1";', A, exts=V, reason="[${01}][${1a}]")

# -- include ------------------------------------------------------------------------

A = "include"
P_FILE = b'require "fileinto";\nfileinto "Work";\n'
add("include-personal", req("include") + 'include :personal "p";\n', A, personal={"p": P_FILE}, folders=("Work",))
add("include-default-personal", req("include") + 'include "p";\n', A, personal={"p": P_FILE}, folders=("Work",))
add("include-global", req("include") + 'include :global "g";\n', A, global_={"g": b'redirect "g@example.net";\n'})
add("include-missing", req("include") + 'include :personal "nope";\n', A)
add("include-optional-missing", req("include") + 'include :optional "nope";\nredirect "x@example.net";\n', A)
add("include-global-not-personal", req("include") + 'include :global "p";\n', A, personal={"p": P_FILE})
add("include-once", req("include") + 'include :once "p";\ninclude :once "p";\n', A,
    personal={"p": b'redirect "once@example.net";\n'})
add("include-twice", req("include") + 'include "p";\ninclude "p";\n', A,
    personal={"p": b'require "fileinto";\nfileinto "Work";\n'}, folders=("Work",))
add("include-return", req("include") + 'include "p";\nredirect "after@example.net";\n', A,
    personal={"p": b'require "include";\nreturn;\nredirect "never@example.net";\n'})
add("include-stop", req("include") + 'include "p";\nredirect "after@example.net";\n', A,
    personal={"p": b'stop;\n'})
add("include-global-vars", req("include", "variables") + 'global "who";\nset "who" "alice";\ninclude "p";\n', A,
    personal={"p": b'require ["include", "variables", "reject"];\nglobal "who";\nreject "[${who}]";\n'})
add("include-local-vars", req("include", "variables") + 'set "who" "alice";\ninclude "p";\n', A,
    personal={"p": b'require ["variables", "reject"];\nreject "[${who}]";\n'})
add("include-nested", req("include") + 'include "a";\n', A,
    personal={"a": b'require "include";\ninclude "b";\n', "b": b'redirect "deep@example.net";\n'})
add("include-recursive", req("include") + 'include "a";\n', A,
    personal={"a": b'require "include";\ninclude "a";\n'})
add("include-broken", req("include") + 'include "a";\n', A, personal={"a": b'frobnicate;\n'})
add("include-missing-require", req("include") + 'include "a";\n', A, personal={"a": b'fileinto "Work";\n'},
    folders=("Work",))
add("include-bad-name", req("include") + 'include "../etc/passwd";\n', A)
add("include-no-require", 'include "p";\n', A, personal={"p": P_FILE}, folders=("Work",))
add("include-global-variable-undeclared", req("include", "variables") + 'include "p";\n', A,
    personal={"p": b'require ["include", "variables", "reject"];\nglobal "x";\nset "x" "1";\nreject "[${x}]";\n'})

# -- environment ---------------------------------------------------------------------

A = "environment"
for item in ["domain", "host", "location", "phase", "name", "version", "remote-host", "remote-ip", "nonexistent"]:
    probe(f"env-{item}", f'if environment :matches "{item}" "*" {{ set "v" "${{1}}"; set "hit" "y"; }}', A,
          exts=("environment", "variables"), reason="[${v}][${hit}]")
yes_no("env-no-require", 'environment :is "phase" "post"', A)

# -- mailbox --------------------------------------------------------------------

A = "mailbox"
add("mailbox-create", req("fileinto", "mailbox") + 'fileinto :create "New";\n', A)
add("mailbox-create-existing", req("fileinto", "mailbox") + 'fileinto :create "Work";\n', A, folders=("Work",))
add("mailbox-create-nested", req("fileinto", "mailbox") + 'fileinto :create "A.B.C";\n', A)
add("mailbox-create-inbox", req("fileinto", "mailbox") + 'fileinto :create "INBOX";\n', A)
yes_no("mailbox-exists-yes", 'mailboxexists "Yes"', A, exts=("mailbox",))
yes_no("mailbox-exists-no", 'mailboxexists "Nope"', A, exts=("mailbox",))
yes_no("mailbox-exists-list", 'mailboxexists ["Yes", "Nope"]', A, exts=("mailbox",))
yes_no("mailbox-exists-inbox", 'mailboxexists "INBOX"', A, exts=("mailbox",))
add("mailbox-exists-guard", req("fileinto", "mailbox") + 'if mailboxexists "Work" { fileinto "Work"; }\n'
    'if mailboxexists "Gone" { fileinto "Gone"; }\n', A, folders=("Work",))
add("mailbox-create-no-require", req("fileinto") + 'fileinto :create "New";\n', A)
add("mailbox-create-invalid", req("fileinto", "mailbox") + 'fileinto :create "a/b";\n', A)

# -- date / currentdate / index --------------------------------------------------------

A = "date"
D = ("date", "relational", "comparator-i;ascii-numeric")
for i, (test, m) in enumerate([
    ('date :is "date" "year" "2026"', M_BASE),
    ('date :originalzone :is "date" "hour" "10"', M_BASE),
    ('date :zone "+0000" :is "date" "hour" "09"', M_BASE),
    ('date :zone "-0500" :is "date" "date" "2026-11-03"', M_BASE),
    ('date :zone "+1400" :is "date" "date" "2026-11-03"', M_BASE),
    ('date :originalzone :is "date" "zone" "+0100"', M_BASE),
    ('date :zone "+0000" :is "date" "time" "09:20:30"', M_BASE),
    ('date :originalzone :is "date" "weekday" "2"', M_BASE),
    ('date :originalzone :is "date" "month" "11"', M_BASE),
    ('date :originalzone :is "date" "day" "03"', M_BASE),
    ('date :originalzone :is "date" "minute" "20"', M_BASE),
    ('date :originalzone :is "date" "second" "30"', M_BASE),
    ('date :originalzone :is "date" "julian" "61347"', M_BASE),
    ('date :originalzone :is "date" "iso8601" "2026-11-03T10:20:30+01:00"', M_BASE),
    ('date :originalzone :is "date" "std11" "Tue, 03 Nov 2026 10:20:30 +0100"', M_BASE),
    ('date :zone "+0000" :value "ge" :comparator "i;ascii-numeric" "date" "hour" "9"', M_BASE),
    ('date :originalzone :is "date" "date" "2026-11-04"', M_LIST),
    ('date :zone "+0000" :is "date" "date" "2026-11-05"', M_LIST),
    ('date :is "date" "year" "2026"', with_headers("Date: not a date", drop=("Date",))),
    ('date :is "x-nope" "year" "2026"', M_BASE),
    ('date :originalzone :is "received" "hour" "10"', M_BASE),
    ('date :is "date" "century" "20"', M_BASE),
    ('currentdate :value "ge" :comparator "i;ascii-numeric" "year" "2024"', M_BASE),
    ('currentdate :value "lt" :comparator "i;ascii-numeric" "year" "2200"', M_BASE),
    ('currentdate :zone "+0000" :matches "iso8601" "*T*Z"', M_BASE),
    ('currentdate :zone "+0000" :is "zone" "+0000"', M_BASE),
    ('date :zone "+0000" :is "date" "date" "2026-11-03"', with_headers("Date: 3 Nov 2026 23:30:00 -0100", drop=("Date",))),
    ('date :originalzone :is "date" "year" "2026"', with_headers("Date: Tue, 03 Nov 26 10:20:30 +0100", drop=("Date",))),
]):
    yes_no(f"date-{i:02d}", test, A, exts=D, message=m)
yes_no("date-no-require", 'date :is "date" "year" "2026"', A)
probe("date-probe-parts", 'if date :originalzone :matches "date" "date" "*" { set "d" "${1}"; }\n'
      'if date :zone "+0200" :matches "date" "time" "*" { set "t" "${1}"; }', A,
      exts=("date", "variables"), reason="[${d}][${t}]")
A = "index"
for i, test in enumerate([
    'header :index 1 :contains "received" "mx.example.org"',
    'header :index 2 :contains "received" "laptop"',
    'header :index 1 :last :contains "received" "laptop"',
    'header :index 3 :contains "received" ""',
    'date :index 1 :originalzone :is "received" "second" "35"',
    'date :index 1 :last :originalzone :is "received" "second" "31"',
    'address :index 2 :is "to" "bob+lists@example.net"',
    'header :index 0 :contains "received" "x"',
]):
    yes_no(f"index-{i:02d}", test, A, exts=("index", "date"))
yes_no("index-no-require", 'header :index 1 :contains "received" "x"', A)
yes_no("index-last-without-index", 'header :last :contains "received" "x"', A, exts=("index",))

# -- ihave ----------------------------------------------------------------------------

A = "ihave"
add("ihave-known", req("ihave") + 'if ihave "fileinto" { redirect "has@example.net"; }\n', A)
add("ihave-unknown", req("ihave") + 'if ihave "x-unknown" { redirect "has@example.net"; } else { discard; }\n', A)
add("ihave-use-inside", req("ihave") + 'if ihave "fileinto" { fileinto "Work"; }\n', A, folders=("Work",))
add("ihave-unknown-inside", req("ihave") + 'if ihave "x-unknown" { frobnicate "x"; }\nkeep;\n', A)
add("ihave-error", req("ihave") + 'error "this fails";\n', A)
add("ihave-no-require", 'if ihave "fileinto" { discard; }\n', A)
add("ihave-disabled", req("ihave") + 'if ihave "editheader" { discard; }\n', A, extensions="-editheader")

# -- mime / foreverypart / extracttext ----------------------------------------------

A = "mime"
MI = ("mime",)
for i, test in enumerate([
    'header :mime :type "content-type" "multipart"',
    'header :mime :subtype "content-type" "mixed"',
    'header :mime :contenttype "content-type" "multipart/mixed"',
    'header :mime :param "boundary" "content-type" "outer"',
    'header :mime :anychild :type "content-type" "application"',
    'header :mime :anychild :param "filename" "content-disposition" "invoice-2026.pdf"',
    'header :mime :anychild :contenttype "content-type" "text/html"',
    'exists :mime :anychild "content-transfer-encoding"',
    'header :mime :anychild :param "charset" "content-type" "UTF-8"',
    'address :mime :anychild :is "from" "inner@example.net"',
    'header :mime :type "content-type" "text"',
]):
    yes_no(f"mime-{i:02d}", test, A, exts=MI, message=M_MIME)
yes_no("mime-plain-message-type", 'header :mime :type "content-type" "text"', A, exts=MI)
yes_no("mime-no-require", 'header :mime :type "content-type" "text"', A)
FP = ("fileinto", "foreverypart", "mime", "variables", "extracttext")
add("foreverypart-attachment", req(*FP) + 'foreverypart {\n  if header :mime :param "filename" :matches "content-disposition" "*.pdf" {\n'
    '    fileinto "Attachments";\n    break;\n  }\n}\n', A, message=M_MIME, folders=("Attachments",))
add("foreverypart-count", req(*FP, "reject") + 'set "n" "";\nforeverypart {\n  set "n" "${n}x";\n}\nreject "[${n}]";\n', A,
    message=M_MIME)
add("foreverypart-named-break", req(*FP, "reject") + 'set "n" "";\nforeverypart :name "outer" {\n  foreverypart {\n'
    '    set "n" "${n}i";\n    break :name "outer";\n  }\n}\nreject "[${n}]";\n', A, message=M_MIME)
add("foreverypart-plain", req(*FP, "reject") + 'set "n" "";\nforeverypart { set "n" "${n}x"; }\nreject "[${n}]";\n', A)
add("extracttext-first", req(*FP, "reject") + 'foreverypart {\n  if header :mime :subtype "content-type" "plain" {\n'
    '    extracttext :first 20 "t";\n  }\n}\nreject "[${t}]";\n', A, message=M_MIME)
add("extracttext-modifiers", req(*FP, "reject") + 'foreverypart {\n  if header :mime :subtype "content-type" "html" {\n'
    '    extracttext :upper "t";\n  }\n}\nreject "[${t}]";\n', A, message=M_MIME)
add("extracttext-outside", req(*FP, "reject") + 'extracttext "t";\nreject "[${t}]";\n', A, message=M_MIME)
add("foreverypart-break-outside", req(*FP) + 'break;\n', A)
add("foreverypart-no-require", 'foreverypart { discard; }\n', A, message=M_MIME)

# -- editheader ---------------------------------------------------------------------

A = "editheader"
E = ("editheader",)
add("edit-add-then-test", req("fileinto", *E) + 'addheader "X-Tag" "tagged";\nif header :is "x-tag" "tagged" { fileinto "Yes"; }\n',
    A, folders=YES_NO)
add("edit-add-last", req("fileinto", *E, "index") + 'addheader :last "X-Tag" "last";\naddheader "X-Tag" "first";\n'
    'if header :index 1 :is "x-tag" "first" { if header :index 2 :is "x-tag" "last" { fileinto "Yes"; } }\n', A, folders=YES_NO)
add("edit-delete", req("fileinto", *E) + 'deleteheader "subject";\nif not exists "subject" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("edit-delete-value", req("fileinto", *E) + 'deleteheader :contains "to" "bob";\nif exists "to" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("edit-delete-index", req("fileinto", *E, "index", "relational", "comparator-i;ascii-numeric")
    + 'deleteheader :index 1 "x-priority";\nif header :count "eq" :comparator "i;ascii-numeric" "x-priority" "0" { fileinto "Yes"; }\n',
    A, folders=YES_NO)
add("edit-delete-received", req("fileinto", *E) + 'deleteheader "received";\nif exists "received" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("edit-add-received", req("fileinto", *E) + 'addheader "Received" "fake";\nif header :is "received" "fake" { fileinto "Yes"; }\n',
    A, folders=YES_NO)
add("edit-delete-autosubmitted", req("fileinto", *E) + 'deleteheader "auto-submitted";\nif exists "auto-submitted" { fileinto "Yes"; }\n',
    A, folders=YES_NO, message=with_headers("Auto-Submitted: auto-generated"))
add("edit-bad-name", req(*E) + 'addheader "Bad Name" "x";\n', A)
add("edit-not-enabled", req(*E) + 'addheader "X-A" "x";\n', A, extensions="+vacation-seconds")
add("edit-add-encoded", req("fileinto", *E) + 'addheader "X-U" "Grüße";\nif header :is "x-u" "Grüße" { fileinto "Yes"; }\n',
    A, folders=YES_NO)
add("edit-delete-matches", req("fileinto", *E) + 'deleteheader :matches "x-*" "*";\nif exists "x-count" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("edit-delete-missing", req("fileinto", *E) + 'deleteheader "x-nope";\nfileinto "Yes";\n', A, folders=YES_NO)
add("edit-add-keep", req(*E) + 'addheader "X-A" "b";\nkeep;\n', A)

# what is stored: the header of each copy as it was when its action ran
EF = ("fileinto", "editheader")
add("edit-store-before-after", req(*EF) + 'fileinto "Work";\naddheader "X-A" "1";\nkeep;\n', A, folders=("Work",))
add("edit-implicit-keep", req(*E) + 'addheader "X-A" "1";\naddheader :last "X-B" "2";\n', A)
add("edit-unicode-folded", req(*E) + 'addheader "X-Long" "a value \u00e9 with unicode and\nnewline";\n', A)
add("edit-delete-last-index", req(*E, "index") + 'deleteheader :index 1 :last "to";\n', A,
    message=with_headers("To: second@example.com"))
add("edit-delete-patterns", req(*E) + 'deleteheader :matches "x-*" ["3", "0*"];\n', A)
add("edit-delete-all-of-name", req(*E) + 'deleteheader "to";\n', A,
    message=with_headers("To: second@example.com", "TO: third@example.com"))
add("edit-then-runtime-error", req(*E) + 'addheader "X-A" "1";\n'
    + "".join(f'redirect "r{i}@example.net";\n' for i in range(5)), A)
add("edit-then-missing-folder", req(*EF) + 'addheader "X-A" "1";\nfileinto "Missing";\n', A)
add("edit-add-delete-same", req(*E) + 'addheader "X-A" "1";\ndeleteheader "x-a";\n', A)
add("edit-delete-then-add", req(*E) + 'deleteheader "subject";\naddheader "Subject" "replaced";\n', A)
add("edit-variables", req(*E, "variables") + 'if header :matches "subject" "*" { set "s" "${1}"; }\n'
    'deleteheader "subject";\naddheader "Subject" "[tagged] ${s}";\n', A)
add("edit-two-folders", req(*EF) + 'addheader "X-A" "1";\nfileinto "Work";\ndeleteheader "x-a";\naddheader "X-B" "2";\n'
    'fileinto "Other";\n', A, folders=("Work", "Other"))
add("edit-same-folder-twice", req(*EF) + 'fileinto "Work";\naddheader "X-A" "1";\nfileinto "Work";\n', A, folders=("Work",))
add("edit-copy-redirect", req(*E, "copy") + 'addheader "X-A" "1";\nredirect :copy "a@example.net";\n', A)
add("edit-crlf-message", req(*E) + 'addheader "X-A" "1";\ndeleteheader "cc";\n', A,
    message=msg(BASE_HEADERS, crlf=True))
# what is stored: names, values, protected fields, limits (vdeliver/headeredit.py)
add("edit-store-name-spelling", req(*E) + 'addheader "x-LOWER-case" "v";\naddheader :last "list-ID" "w";\n', A)
add("edit-store-value-newlines", req(*E) + 'addheader "X-A" "a\r\nBcc: evil@example.net\n\n  more  \n";\n', A)
add("edit-store-value-injection-variable", req(*E, "variables")
    + 'set "v" "x\nTo: victim@example.net";\naddheader "X-A" "${v}";\n', A)
add("edit-store-value-long", req(*E) + 'addheader "X-Long" "' + " ".join(["word"] * 60) + '";\n', A)
add("edit-store-value-long-unicode", req(*E) + 'addheader "X-U" "' + "Grüße aus Köln " * 12 + '";\n', A)
add("edit-store-value-all-unicode", req(*E) + 'addheader "X-U" "' + "é" * 300 + '";\n', A)
add("edit-store-value-encoded-word", req(*E) + 'addheader "X-W" "=?utf-8?q?not_decoded?= x";\n', A)
add("edit-store-value-empty", req(*E) + 'addheader "X-E" "";\naddheader :last "X-T" "  lead\ttab  ";\n', A)
add("edit-store-max-size", req(*EF) + 'addheader "X-A" "' + "é" * 1024 + '";\nfileinto "Yes";\n', A,
    folders=YES_NO)
add("edit-store-over-max-size", req(*EF, "variables") + 'set "a" "' + "a" * 2049 + '";\naddheader "X-A" "${a}";\n'
    'fileinto "Yes";\n', A, folders=YES_NO)
add("edit-store-literal-over-max-size", req(*E) + 'addheader "X-A" "' + "a" * 2049 + '";\n', A)
add("edit-store-max-size-setting", req(*EF, "variables") + 'set "a" "' + "a" * 3000 + '";\naddheader "X-A" "${a}";\n'
    'fileinto "Yes";\n', A, folders=YES_NO, settings={"sieve_editheader_max_header_size": "4k"})
add("edit-store-max-size-setting-below-minimum", req(*EF, "variables") + 'set "a" "' + "a" * 1500 + '";\n'
    'addheader "X-A" "${a}";\nfileinto "Yes";\n', A, folders=YES_NO,
    settings={"sieve_editheader_max_header_size": "512"})
add("edit-store-redirected-from", req(*E) + 'addheader "X-Sieve-Redirected-From" "a@example.net";\n'
    'deleteheader "x-sieve-redirected-from";\naddheader "Subject" "second";\n', A,
    message=with_headers("X-Sieve-Redirected-From: other@example.net"))
add("edit-store-protected-setting", req(*E) + 'addheader "X-Spam-Flag" "NO";\ndeleteheader "x-spam-score";\n'
    'deleteheader "x-priority";\naddheader "X-Count" "1";\n', A,
    message=with_headers("X-Spam-Flag: YES", "X-Spam-Score: 9"),
    settings={"sieve_editheader_protected": "X-Spam-Flag x-spam-score",
              "sieve_editheader_forbid_add": "X-Count", "sieve_editheader_forbid_delete": "X-Priority"})
add("edit-store-content-length-delete", req(*E) + 'deleteheader "date";\n', A,
    message=with_headers("Content-Length: 12"))
add("edit-store-content-length-add", req(*E) + 'addheader "X-A" "1";\n', A,
    message=with_headers("Content-Length: 12"))
add("edit-store-content-length-test", req(*EF) + 'deleteheader "x-nope";\nif exists "content-length" { fileinto "Yes"; }\n',
    A, folders=YES_NO, message=with_headers("Content-Length: 12"))
add("edit-store-fileinto-inbox", req(*EF) + 'addheader "X-A" "1";\nfileinto "INBOX";\naddheader "X-B" "2";\n'
    'fileinto "Work";\n', A, folders=("Work",))
add("edit-store-keep-then-edit", req(*E) + 'keep;\naddheader "X-A" "1";\n', A)
add("edit-store-keep-twice", req(*E) + 'keep;\naddheader "X-A" "1";\nkeep;\naddheader "X-B" "2";\n', A)
add("edit-store-copy-fileinto", req(*EF, "copy") + 'fileinto :copy "Work";\naddheader "X-A" "1";\n', A,
    folders=("Work",))
add("edit-store-discard", req(*E) + 'addheader "X-A" "1";\ndiscard;\n', A)
add("edit-store-delete-index-added", req(*E, "index") + 'addheader "X-Priority" "1";\n'
    'deleteheader :index 2 "x-priority";\n', A)
add("edit-store-delete-last-added", req(*E, "index") + 'addheader :last "X-Priority" "9";\n'
    'deleteheader :index 1 :last "x-priority";\n', A)
add("edit-store-folded-field-deleted", req(*E, "index") + 'deleteheader :index 1 "received";\n'
    'deleteheader :index 1 "to";\n', A)

# -- spamtest / spamtestplus / virustest ----------------------------------------------

A = "spamtest"
S = ("spamtest", "relational", "comparator-i;ascii-numeric")
SP = ("spamtestplus", "relational", "comparator-i;ascii-numeric")
for i, (test, exts, m) in enumerate([
    ('spamtest :value "ge" :comparator "i;ascii-numeric" "5"', S, M_SPAM),
    ('spamtest :value "ge" :comparator "i;ascii-numeric" "5"', S, M_HAM),
    ('spamtest :value "eq" :comparator "i;ascii-numeric" "1"', S, M_HAM),
    ('spamtest :value "eq" :comparator "i;ascii-numeric" "0"', S, M_BASE),
    ('spamtest :value "eq" :comparator "i;ascii-numeric" "8"', S, M_SPAM),
    ('spamtest :is "8"', S, M_SPAM),
    ('spamtest :percent :value "eq" :comparator "i;ascii-numeric" "73"', SP, M_SPAM),
    ('spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50"', SP, M_HAM),
    ('spamtest :value "eq" :comparator "i;ascii-numeric" "10"', S, with_headers("X-Spam-Score: 99")),
    ('spamtest :value "eq" :comparator "i;ascii-numeric" "1"', S, with_headers("X-Spam-Score: -3")),
    ('spamtest :value "eq" :comparator "i;ascii-numeric" "0"', S, with_headers("X-Spam-Score: garbage")),
    ('virustest :value "eq" :comparator "i;ascii-numeric" "5"', ("virustest", "relational", "comparator-i;ascii-numeric"), M_SPAM),
    ('virustest :value "eq" :comparator "i;ascii-numeric" "1"', ("virustest", "relational", "comparator-i;ascii-numeric"), M_HAM),
    ('virustest :value "eq" :comparator "i;ascii-numeric" "0"', ("virustest", "relational", "comparator-i;ascii-numeric"), M_BASE),
    ('spamtest "5"', (), M_SPAM),
]):
    yes_no(f"spamtest-{i:02d}", test, A, exts=exts, message=m)
yes_no("spamtest-not-enabled", 'spamtest :value "ge" :comparator "i;ascii-numeric" "5"', A, exts=S, message=M_SPAM,
       extensions="+editheader")

# -- vacation / notify / duplicate --------------------------------------------------------

A = "vacation"
VA = ("vacation",)
add("vacation-simple", req(*VA) + 'vacation "I am away.";\n', A)
add("vacation-full", req(*VA) + 'vacation :days 3 :subject "Away" :from "user@example.com" :addresses ["alias@example.com"]'
    ' :handle "h1" "I am away.";\n', A)
add("vacation-mime", req(*VA) + 'vacation :mime text:\nContent-Type: text/plain; charset=utf-8\n\nAway.\n.\n;\n', A)
add("vacation-list-message", req(*VA) + 'vacation "I am away.";\n', A, message=M_LIST)
add("vacation-not-addressed", req(*VA) + 'vacation "I am away.";\n', A, recipient="other@example.com")
add("vacation-addresses", req(*VA) + 'vacation :addresses ["bob+lists@example.net"] "I am away.";\n', A,
    recipient="other@example.com")
add("vacation-twice", req(*VA) + 'vacation "a";\nvacation "b";\n', A)
add("vacation-bad-from", req(*VA) + 'vacation :from "not an address" "x";\n', A)
add("vacation-days-zero", req(*VA) + 'vacation :days 0 "x";\n', A)
add("vacation-seconds", req("vacation-seconds") + 'vacation :seconds 60 "x";\n', A)
add("vacation-seconds-disabled", req("vacation-seconds") + 'vacation :seconds 60 "x";\n', A, extensions="+editheader")
for days in (1, 30, 60, 61, 100, 365):
    add(f"vacation-days-{days}", req(*VA) + f'vacation :days {days} "x";\n', A)
for secs in (0, 1, 86399, 86400, 604800, 5184001):
    add(f"vacation-seconds-{secs}", req("vacation-seconds") + f'vacation :seconds {secs} "x";\n', A)
add("vacation-variables", req(*VA, "variables") + 'if header :matches "subject" "*" { set "s" "${1}"; }\n'
    'vacation :subject "Re: ${s}" :from "user@example.com" "away";\n', A)
add("vacation-subject-unicode", req(*VA) + 'vacation :subject "Abwesenheit \u00fcber Ostern" "x";\n', A)
add("vacation-discard", req(*VA) + 'vacation "x";\ndiscard;\n', A)
add("vacation-with-fileinto", req(*VA, "fileinto") + 'vacation "x";\nfileinto "Work";\n', A, folders=("Work",))
add("vacation-auto-submitted", req(*VA) + 'vacation "x";\n', A, message=with_headers("Auto-Submitted: auto-replied"))
add("vacation-no-require", 'vacation "x";\n', A)
A = "notify"
NO = ("enotify",)
add("notify-mailto", req(*NO) + 'notify "mailto:alert@example.net";\n', A)
add("notify-options", req(*NO) + 'notify :importance "1" :message "New mail" :from "user@example.com" "mailto:alert@example.net";\n', A)
add("notify-encoded", req(*NO) + 'notify "mailto:a%40b.example";\n', A)
add("notify-to-param", req(*NO) + 'notify "mailto:?to=alert@example.net";\n', A)
add("notify-bad-uri", req(*NO) + 'notify "mailto:a@b.c,c@d.e";\n', A)
add("notify-unknown-method", req(*NO) + 'notify "xmpp:alert@example.net";\n', A)
add("notify-twice", req(*NO) + 'notify "mailto:alert@example.net";\nnotify "mailto:alert@example.net";\n', A)
add("notify-valid-method", req(*NO, "fileinto") + 'if valid_notify_method "mailto:x@example.net" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("notify-valid-method-no", req(*NO, "fileinto") + 'if valid_notify_method "xmpp:x@example.net" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("notify-capability", req(*NO, "fileinto") + 'if notify_method_capability "mailto:x@example.net" "online" "maybe" { fileinto "Yes"; }\n',
    A, folders=YES_NO)
add("notify-no-require", 'notify "mailto:alert@example.net";\n', A)
add("notify-old-syntax", 'require "notify";\nnotify :method "mailto" :options "a@b.c";\n', A)
A = "duplicate"
add("duplicate-first-time", req("duplicate", "fileinto") + 'if duplicate { fileinto "Yes"; } else { fileinto "No"; }\n', A, folders=YES_NO)
add("duplicate-uniqueid", req("duplicate", "fileinto") + 'if duplicate :uniqueid "x" :seconds 60 { fileinto "Yes"; }\n', A, folders=YES_NO)
add("duplicate-header", req("duplicate", "fileinto") + 'if duplicate :header "subject" :handle "h" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("duplicate-both", req("duplicate") + 'if duplicate :header "subject" :uniqueid "x" { discard; }\n', A)
add("duplicate-no-require", 'if duplicate { discard; }\n', A)

# -- malformed scripts (compile errors) ------------------------------------------------

A = "malformed"
for i, script in enumerate([
    'fileinto "Work";\n',                                     # missing require
    'require "fileinto";\n\nfrobnicate;\n',                    # unknown command
    'if frobnicate "x" { keep; }\n',                           # unknown test
    'require "fileinto";\nfileinto 42;\n',                     # bad argument type
    'require "fileinto";\nfileinto;\n',                        # missing argument
    'require "fileinto";\nfileinto "a" "b";\n',                # too many arguments
    'keep "x";\n',                                             # keep takes no argument
    'require "reject";\nreject "unterminated;\n\nkeep;\n',     # unterminated string
    'require "reject";\nreject text:\nno end\n',               # unterminated multi-line
    'if true {\n  keep;\n',                                    # missing }
    'keep;\n}\n',                                              # extra }
    'if true keep;\n',                                         # missing block
    'elsif true { keep; }\n',                                  # elsif without if
    'else { keep; }\n',                                        # else without if
    'keep\n',                                                  # missing semicolon at EOF
    'keep\ndiscard;\n',                                        # missing semicolon
    'keep;\nrequire "fileinto";\n',                            # require after a command
    'require "x-nonexistent";\n',                              # unknown capability
    'require ["fileinto", 42];\n',                             # bad require list
    'stop "now";\n',                                           # stop with argument
    'if header :foo "subject" "x" { keep; }\n',                 # unknown tag
    'if header :is "subject" { keep; }\n',                     # missing key list
    'if header "subject" { keep; }\n',
    'if header :is :is "subject" "x" { keep; }\n',             # duplicate tag
    'if size 100 { keep; }\n',                                 # size needs :over/:under
    'if size :over "100" { keep; }\n',                         # size takes a number
    'if size :over 10Q { keep; }\n',                           # bad number suffix
    '/* unterminated comment\nkeep;\n',
    'if true { keep; } else { discard; } else { keep; }\n',
    'if anyof () { keep; }\n',                                 # empty test list
    'if not { keep; }\n',
    'if allof (true, ) { keep; }\n',
    'if header :is [] "x" { keep; }\n',                        # empty string list
    'if true, false { keep; }\n',
    'keep;;\n',
    'require "fileinto";\nfileinto ["a", "b"];\n',            # list where string expected
    'if header :is "subject" "x" keep;\n',
    'redirect;\n',
    'if address :localpart :domain "from" "x" { keep; }\n',    # two address parts
    'if header :localpart "from" "x" { keep; }\n',             # address part on header
    'if exists { keep; }\n',
    'if true { if true { if true { keep; }}\n',
    '"string";\n',
    'if true { keep; } elsif { discard; }\n',
    'require "envelope";\nif envelope :is "from" { keep; }\n',
    'require ["variables"];\nset "a";\n',
    'require ["variables"];\nset :bogus "a" "b";\n',
    'require "relational";\nif header :count "subject" "1" { keep; }\n',
    'require "fileinto";\n\n\n\nfileinto :flags "x" "Work";\n',
    'keep;\n\n\n\n\n\n\n\n\n\nfrobnicate;\n',
    "if true {\n" * 40 + "keep;\n" + "}\n" * 40,               # nesting too deep
    'require "include";\ninclude :personal :global "x";\n',
    'require "date";\nif date :is "date" "nonsense" "x" { keep; }\n',
    'require "date";\nif date :zone "bogus" :is "date" "year" "2026" { keep; }\n',
    'require "mime";\nif header :mime :param "subject" "x" { keep; }\n',
    'require "editheader";\ndeleteheader :index 0 "x";\n',
    'require "index";\nif header :index 0 :is "x" "y" { keep; }\n',
    'require "fileinto";\nfileinto "";\n',
    'require "copy";\nkeep :copy;\n',
    'keep; # comment without newline at EOF',
    'require "fileinto"; fileinto "a\x00b";\n',
    b'require "reject";\nreject "\xff\xfe invalid utf-8";\n',
]):
    add(f"malformed-{i:02d}", script, A, folders=("Work", "a"))

# -- runtime errors ------------------------------------------------------------------

A = "runtime"
add("runtime-33-actions", req("fileinto", "mailbox") + "".join(f'fileinto :create "F{i}";\n' for i in range(33)), A)
add("runtime-32-actions", req("fileinto", "mailbox") + "".join(f'fileinto :create "F{i}";\n' for i in range(31)), A)
add("runtime-5-redirects", "".join(f'redirect "r{i}@example.net";\n' for i in range(5)), A)
add("runtime-5-redirects-copy", req("copy") + "".join(f'redirect :copy "r{i}@example.net";\n' for i in range(5)), A)
add("runtime-dup-redirects-count", "".join('redirect "same@example.net";\n' for _ in range(6)), A)
add("runtime-variable-fileinto-missing", req("fileinto", "variables") + 'set "f" "Nope";\nfileinto "${f}";\n', A)
add("runtime-ihave-error-after-actions", req("ihave", "fileinto") + 'fileinto "Work";\nerror "boom";\n', A, folders=("Work",))
add("runtime-include-missing-at-run", req("include") + 'if false { include "nope"; }\nkeep;\n', A)
add("runtime-flags-after-error", req("imap4flags", "fileinto") + 'addflag "\\\\Seen";\nfileinto "Nope";\n', A)

# limits: include depth and count, variables, match values, test nesting, notifications
A = "limits"
chain = {f"s{i}": (b'require "include";\ninclude "s%d";\n' % (i + 1)) for i in range(12)}
chain["s12"] = b'redirect "deep@example.net";\n'
for depth in (9, 10, 11, 12):
    scripts = dict(chain)
    scripts[f"s{depth}"] = b'redirect "deep@example.net";\n'
    add(f"limit-include-depth-{depth}", req("include") + 'include "s1";\n', A, personal=scripts)
add("limit-variables-255", req("variables", "reject") + "".join(f'set "v{i}" "{i}";\n' for i in range(255))
    + 'reject "${v254}";\n', A)
add("limit-variables-256", req("variables", "reject") + "".join(f'set "v{i}" "{i}";\n' for i in range(256))
    + 'reject "${v255}";\n', A)
add("limit-variable-name-64", req("variables", "reject") + f'set "{"n" * 64}" "x";\nreject "[${{{"n" * 64}}}]";\n', A)
add("limit-variable-name-65", req("variables", "reject") + f'set "{"n" * 65}" "x";\nreject "[${{{"n" * 65}}}]";\n', A)
probe("limit-match-values", 'if header :matches "subject" "' + "?" * 13 + '" { }', A, exts=("variables",),
      reason="[${9}][${10}][${13}][${14}][${32}][${33}]", message=subject("abcdefghijklm"))
add("limit-test-nesting-31", "if " + "not " * 31 + "false { discard; }\n", A)
add("limit-test-nesting-33", "if " + "not " * 33 + "false { discard; }\n", A)
add("limit-test-nesting-allof", "if " + "allof(" * 33 + "true" + ")" * 33 + " { discard; }\n", A)
add("limit-notify-10", req("enotify") + "".join(f'notify "mailto:n{i}@example.net";\n' for i in range(10)), A)
add("limit-notify-11", req("enotify") + "".join(f'notify "mailto:n{i}@example.net";\n' for i in range(11)), A)
add("limit-string-list-long", req("fileinto") + 'if header :contains "subject" [' + ", ".join(f'"k{i}"' for i in range(2000))
    + ', "report"] { fileinto "Yes"; }\n', A, folders=YES_NO)
add("limit-redirect-4-with-dupes", "".join(f'redirect "r{i % 4}@example.net";\n' for i in range(12)), A)
add("limit-actions-32-with-keep", req("fileinto", "mailbox") + "".join(f'fileinto :create "F{i}";\n' for i in range(31))
    + "keep;\n", A)
add("limit-actions-32-plus-keep", req("fileinto", "mailbox") + "".join(f'fileinto :create "F{i}";\n' for i in range(32))
    + "keep;\n", A)

# -- realistic Roundcube / ManageSieve scripts ---------------------------------------------

A = "roundcube"
RC1 = '''require ["fileinto"];
# rule:[Work]
if header :contains "subject" "report"
{
	fileinto "Work";
	stop;
}
# rule:[Lists]
if header :contains "list-id" "dev.lists.example.org"
{
	fileinto "Lists.dev";
	stop;
}
'''
add("rc-work", RC1, A, folders=("Work", "Lists", "Lists.dev"))
add("rc-lists", RC1, A, message=M_LIST, folders=("Work", "Lists", "Lists.dev"))
add("rc-none", RC1, A, message=M_ENCODED, folders=("Work", "Lists", "Lists.dev"))
add("rc-folder-missing", RC1, A, message=M_LIST, folders=("Work",))
RC2 = '''require ["fileinto","imap4flags","copy","reject","vacation","mailbox","body","envelope","relational","comparator-i;ascii-numeric"];
# rule:[Spam]
if anyof (header :contains "x-spam-flag" "YES", header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5")
{
	fileinto :create "Junk";
	stop;
}
# rule:[Boss]
if allof (address :is "from" "sender@example.org", header :contains "subject" "report")
{
	addflag "\\\\Flagged";
	fileinto :copy "Work";
}
# rule:[Forward]
if envelope :domain :is "to" "example.com"
{
	redirect :copy "archive@example.net";
}
# rule:[Vacation]
if true
{
	vacation :days 7 :subject "Out of office" :addresses ["user@example.com"] "I am out of the office until Monday.";
}
'''
add("rc-spam", RC2, A, message=M_SPAM, folders=("Work",))
add("rc-boss", RC2, A, folders=("Work",))
add("rc-other", RC2, A, message=M_LIST, folders=("Work",))
RC3 = '''require ["fileinto","reject"];
# rule:[block]
if anyof (header :contains "from" "spammer@", header :contains "subject" "viagra")
{
	discard;
	stop;
}
# rule:[bounce]
if header :matches "subject" "*unsubscribe*"
{
	reject "Please remove me.";
	stop;
}
# rule:[archive]
if not header :contains "from" "example.org"
{
	fileinto "Archive";
}
'''
add("rc-block", RC3, A, message=with_headers("From: spammer@bad.example", drop=("From",)), folders=("Archive",))
add("rc-bounce", RC3, A, message=subject("please unsubscribe me"), folders=("Archive",))
add("rc-archive", RC3, A, message=M_LIST, folders=("Archive",))
add("rc-fallthrough", RC3, A, folders=("Archive",))
RC4 = '''require ["fileinto","variables","date","relational","mailbox"];
# rule:[by year]
if date :value "ge" :originalzone "date" "year" "2000" {
  if date :originalzone :matches "date" "year" "*" { set "year" "${1}"; }
  fileinto :create "Archive.${year}";
}
'''
add("rc-by-year", RC4, A)
add("rc-by-year-list", RC4, A, message=M_LIST)
RC5 = '''require ["fileinto","envelope","subaddress","mailbox","variables"];
if envelope :detail :matches "to" "*" {
  set :lower :upperfirst "name" "${1}";
  if string :is "${name}" "" { keep; stop; }
  fileinto :create "Plus.${name}";
}
'''
add("rc-plus-detail", RC5, A, recipient="user+SHOPPING@example.com")
add("rc-plus-none", RC5, A)
add("rc-plus-empty", RC5, A, recipient="user+@example.com")

RC6 = """require ["vacation"];
# rule:[Out of office]
if true
{
	vacation :days 7 :addresses ["user@example.com","alias@example.com"] :subject "Out of office" :from "User <user@example.com>" "I'm out until Monday.\r\nRegards";
}
"""
add("rc-vacation", RC6, A)
add("rc-vacation-list", RC6, A, message=M_LIST)
RC7 = """require ["fileinto","copy","imap4flags"];
# rule:[disabled rule]
if false # header :contains "subject" "report"
{
	fileinto "Work";
}
# rule:[big]
if size :over 20K
{
	fileinto "Big";
	stop;
}
# rule:[forward copy]
if anyof (address :is "from" "sender@example.org", header :contains "to" "bob")
{
	redirect :copy "bob@example.net";
	setflag "\\\\Seen";
}
"""
add("rc-disabled-and-forward", RC7, A, folders=("Work", "Big"))
add("rc-big", RC7, A, message=M_BIG, folders=("Work", "Big"))
add("rc-big-missing-folder", RC7, A, message=M_BIG, folders=("Work",))
RC8 = """require ["fileinto","regex","variables","mailbox"];
# rule:[lists by id]
if header :regex "list-id" "<([a-z]+)\\\\.lists\\\\.example\\\\.org>"
{
	set :lower "list" "${1}";
	fileinto :create "Lists.${list}";
	stop;
}
"""
add("rc-regex-list", RC8, A, message=M_LIST)
add("rc-regex-nolist", RC8, A)
RC9 = """require ["fileinto","reject","envelope","subaddress","body","relational","comparator-i;ascii-numeric"];
# rule:[spam body]
if anyof (body :contains ["viagra", "lottery"], header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "5")
{
	fileinto "Junk";
}
# rule:[to alias]
elsif envelope :detail "to" "shop"
{
	fileinto "Shopping";
}
else
{
	keep;
}
"""
add("rc-spam-body", RC9, A, message=with_headers(body="You won the lottery!\n"), folders=("Junk", "Shopping"))
add("rc-spam-score", RC9, A, message=M_SPAM, folders=("Junk", "Shopping"))
add("rc-detail-shop", RC9, A, recipient="user+shop@example.com", folders=("Junk", "Shopping"))
add("rc-else-keep", RC9, A, folders=("Junk", "Shopping"))

RAINLOOP = """require ["include","fileinto","imap4flags"];
/*
BEGIN:FILTER:2b4c7e
BEGIN:HEADER
eyJJRCI6IjJiNGM3ZSIsIkVuYWJsZWQiOnRydWV9
END:HEADER
*/
if header :contains ["Subject"] "report"
{
\tfileinto "Work";
\taddflag "\\\\Seen";
\tstop;
}
"""
add("rainloop-filter", RAINLOOP, A, folders=("Work",))
add("rainloop-filter-miss", RAINLOOP, A, message=M_LIST, folders=("Work",))
SOGO = """require ["vacation","fileinto","envelope"];
if allof (not header :contains "precedence" "list", not header :contains "precedence" "bulk")
{
  vacation :days 7 :addresses ["user@example.com"] :subject "Away" "I am away.";
}
if anyof (header :contains "subject" "report") { fileinto "INBOX/Work"; }
"""
add("sogo-slash-folder", SOGO, A, folders=("Work",))
add("sogo-list", SOGO, A, message=M_LIST, folders=("Work",))
SPAM_GLOBAL = b'require "fileinto";\nif header :contains "X-Spam-Flag" "YES" { fileinto "Junk"; stop; }\n'
MAILCOW = """require ["include", "fileinto"];
include :global "spam";
if address :domain :is "from" "example.org" { fileinto "Customers"; }
"""
add("mailcow-global-spam", MAILCOW, A, message=with_headers("X-Spam-Flag: YES"), global_={"spam": SPAM_GLOBAL},
    folders=("Junk", "Customers"))
add("mailcow-global-ham", MAILCOW, A, global_={"spam": SPAM_GLOBAL}, folders=("Junk", "Customers"))
add("mailcow-global-missing-junk", MAILCOW, A, message=with_headers("X-Spam-Flag: YES"), global_={"spam": SPAM_GLOBAL},
    folders=("Customers",))
INGO = """require ["fileinto", "reject", "vacation", "imap4flags"];
# Blacklist
if address :all :comparator "i;ascii-casemap" :is "From" ["spammer@bad.example", "other@bad.example"]  {
   discard;
   stop;
}
# Whitelist
if address :all :comparator "i;ascii-casemap" :is "From" "sender@example.org"  {
   keep;
   stop;
}
# Flag
if header :comparator "i;ascii-casemap" :contains "Subject" "urgent"  {
   addflag "\\\\Flagged";
}
"""
add("ingo-whitelist", INGO, A)
add("ingo-blacklist", INGO, A, message=with_headers("From: Other@Bad.Example", drop=("From",)))
add("ingo-flag", INGO, A, message=with_headers("From: x@y.example", "Subject: URGENT: call me", drop=("From", "Subject")))

# -- extension settings ----------------------------------------------------------------

A = "extensions"
add("ext-only-fileinto", req("fileinto") + 'fileinto "Work";\n', A, folders=("Work",), extensions="fileinto")
add("ext-only-fileinto-no-envelope", req("envelope") + 'keep;\n', A, extensions="fileinto")
add("ext-minus-fileinto", req("fileinto") + 'fileinto "Work";\n', A, folders=("Work",), extensions="-fileinto")
add("ext-minus-variables", req("variables") + 'set "a" "b";\n', A, extensions="-variables")
add("ext-imapflags-old", 'require "imapflags";\nsetflag "\\\\Seen";\n', A, extensions="+imapflags")
add("ext-empty-setting", req("fileinto") + 'keep;\n', A, extensions="")
add("ext-plus-unknown", 'keep;\n', A, extensions="+x-unknown")


# -- message parsing: charsets, transfer encodings, MIME parameters, dates ----------------

A = "message"
for i, (raw, key) in enumerate([
    ("=?windows-1252?Q?caf=E9_=80?=", "café €"),
    ("=?iso-8859-15?Q?=A4uro?=", "€uro"),
    ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
    ("=?gb2312?B?xOO6ww==?=", "你好"),
    ("=?shift_jis?B?grGC8YLJgr+CzQ==?=", "こんにちは"),
    ("=?iso-2022-jp?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "こんにちは"),
    ("=?UTF-8?Q?a?= b =?UTF-8?Q?c?=", "a b c"),
    ("=?UTF-8?Q?a?=\n =?UTF-8?Q?b?=", "ab"),
    ("=?utf-8?q?x=3Fy?=", "x?y"),
    ("=?UTF-8*de?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
    ("=?utf-8?b?w6k?=", "é"),
    ("prefix=?utf-8?q?x?=suffix", "prefix=?utf-8?q?x?=suffix"),
    ('"=?utf-8?q?quoted?="', '"quoted"'),
    ("=?utf-8?q?=E9?=", "\ufffd"),
]):
    yes_no(f"charset-{i:02d}", f'header :is "subject" "{key}"', A, message=subject(raw))
    probe(f"charset-value-{i:02d}", 'if header :matches "subject" "*" { set "v" "${1}"; }', A,
          exts=("variables",), reason="[${v}]", message=subject(raw))

def mime_msg(ctype, body, cte=None, extra=()):
    hs = ["From: a@example.org", "To: user@example.com", "Subject: t", "MIME-Version: 1.0", f"Content-Type: {ctype}"]
    if cte:
        hs.append(f"Content-Transfer-Encoding: {cte}")
    return msg(hs + list(extra), body)

for i, (m, test) in enumerate([
    (mime_msg("text/plain; charset=utf-8", "SGVsbG8gd29ybGQsIGNhZsOp\n", "base64"), 'body :text :contains "café"'),
    (mime_msg("text/plain; charset=utf-8", "SGVsbG8gd29ybGQsIGNhZsOp\n", "base64"), 'body :raw :contains "SGVsbG8"'),
    (mime_msg("text/plain; charset=utf-8", "soft=\nbreak caf=C3=A9\n", "quoted-printable"), 'body :text :contains "softbreak café"'),
    (mime_msg("text/plain; charset=iso-8859-1", "caf\xe9\n", "8bit").replace("\u00e9".encode(), b"\xe9"),
     'body :text :contains "café"'),
    (mime_msg("text/plain; charset=windows-1252", "=80 sign\n", "quoted-printable"), 'body :text :contains "€ sign"'),
    (mime_msg("text/html; charset=utf-8", "<p>Hello <b>there</b></p>\n"), 'body :text :contains "Hello there"'),
    (mime_msg("text/html; charset=utf-8", "<p>Hello <b>there</b></p>\n"), 'body :text :contains "<b>"'),
    (mime_msg("text/html; charset=utf-8", "<p>Hello <b>there</b></p>\n"), 'body :content "text/html" :contains "<b>"'),
    (mime_msg("application/octet-stream", "binary\n"), 'body :text :contains "binary"'),
    (mime_msg("application/octet-stream", "binary\n"), 'body :content "application" :contains "binary"'),
    (mime_msg("text/plain", "plain body\n"), 'body :content "text/plain" :is "plain body\r\n"'),
    (mime_msg("TEXT/PLAIN; CHARSET=US-ASCII", "upper body\n"), 'body :content "text/plain" :contains "upper"'),
    (mime_msg('multipart/mixed; boundary="b"', "--b\nContent-Type: text/plain\n\nfirst\n--b\nContent-Type: text/plain\n\nsecond\n--b--\n"),
     'body :text :contains "second"'),
    (mime_msg('multipart/mixed; boundary="b"', "--b\nContent-Type: text/plain\n\nfirst\n--b\nContent-Type: text/plain\n\nsecond\n--b--\n"),
     'body :content "text" :is "second"'),
    (mime_msg('multipart/mixed; boundary="b"', "--b\nContent-Type: text/plain\n\nno end boundary\n"),
     'body :text :contains "no end"'),
    (mime_msg('multipart/mixed', "--b\nContent-Type: text/plain\n\nmissing boundary param\n--b--\n"),
     'body :text :contains "missing boundary"'),
    (mime_msg('text/plain; charset="utf-8"; format=flowed', "flowed \nline\n"), 'body :text :contains "flowed line"'),
    (mime_msg('text/plain; charset=bogus-charset', "text\n"), 'body :text :contains "text"'),
    (M_MIME, 'header :mime :anychild :param "name" "content-type" "invoice-2026.pdf"'),
    (mime_msg('application/pdf; name*=UTF-8\'\'R%C3%A9sum%C3%A9.pdf', "x\n"),
     'header :mime :param "name" "content-type" "Résumé.pdf"'),
    (mime_msg('application/pdf; name*0="long"; name*1="name.pdf"', "x\n"),
     'header :mime :param "name" "content-type" "longname.pdf"'),
    (mime_msg('application/pdf; name="=?utf-8?q?R=C3=A9sum=C3=A9.pdf?="', "x\n"),
     'header :mime :param "name" "content-type" "Résumé.pdf"'),
    (mime_msg('text/plain; charset=utf-8', "x\n"), 'header :mime :param "charset" "content-type" "utf-8"'),
    (mime_msg('text/plain; charset=utf-8', "x\n"), 'header :mime :param ["format", "charset"] "content-type" "*"'),
    (mime_msg('text/plain; charset=utf-8', "x\n"), 'header :mime :contenttype "content-type" "text/plain"'),
    (mime_msg('text/plain;charset=utf-8', "x\n"), 'header :mime :type :matches "content-type" "t*"'),
    (mime_msg('garbage', "x\n"), 'header :mime :type "content-type" "garbage"'),
    (mime_msg('text/', "x\n"), 'header :mime :subtype "content-type" ""'),
    (M_MIME, 'exists :mime :anychild "content-disposition"'),
    (M_MIME, 'header :mime :anychild :contenttype "content-type" "message/rfc822"'),
]):
    yes_no(f"mime-parse-{i:02d}", test, A, exts=("body", "mime"), message=m)

FPV = ("foreverypart", "mime", "variables", "reject")
NESTED = mime_msg('multipart/mixed; boundary="a"', "\n".join([
    "--a", 'Content-Type: multipart/alternative; boundary="b"', "",
    "--b", "Content-Type: text/plain", "", "one", "--b", "Content-Type: text/html", "", "<i>two</i>", "--b--",
    "--a", "Content-Type: message/rfc822", "",
    "Subject: inner", 'Content-Type: multipart/mixed; boundary="c"', "",
    "--c", "Content-Type: text/plain", "", "three", "--c", "Content-Type: image/png", "", "four", "--c--",
    "--a--", ""]))
add("foreverypart-types", req(*FPV) + 'set "t" "";\nforeverypart {\n  if header :mime :contenttype :matches "content-type" "*" {\n'
    '    set "t" "${t}[${1}]";\n  }\n}\nreject "${t}";\n', A, message=NESTED)
add("foreverypart-types-plain", req(*FPV) + 'set "t" "";\nforeverypart {\n  if header :mime :contenttype :matches "content-type" "*" {\n'
    '    set "t" "${t}[${1}]";\n  }\n}\nreject "${t}";\n', A)
add("foreverypart-nested-break", req(*FPV) + 'set "t" "";\nforeverypart :name "o" {\n  set "t" "${t}o";\n'
    '  foreverypart :name "i" {\n    set "t" "${t}i";\n    if header :mime :type "content-type" "text" { break :name "i"; }\n  }\n}\n'
    'reject "${t}";\n', A, message=NESTED)
add("foreverypart-anychild-inside", req(*FPV) + 'set "t" "";\nforeverypart {\n'
    '  if header :mime :anychild :subtype "content-type" "png" { set "t" "${t}y"; } else { set "t" "${t}n"; }\n}\n'
    'reject "${t}";\n', A, message=NESTED)
add("extracttext-each", req(*FPV, "extracttext") + 'set "t" "";\nforeverypart {\n'
    '  if header :mime :type "content-type" "text" { extracttext "x"; set "t" "${t}[${x}]"; }\n}\nreject "${t}";\n', A,
    message=NESTED)
add("extracttext-first-unicode", req(*FPV, "extracttext") + 'foreverypart { extracttext :first 3 "x"; }\nreject "[${x}]";\n', A,
    message=mime_msg('multipart/mixed; boundary="b"', "--b\nContent-Type: text/plain; charset=utf-8\n\nÜñï text\n--b--\n"))
add("extracttext-base64", req(*FPV, "extracttext") + 'foreverypart { extracttext "x"; }\nreject "[${x}]";\n', A,
    message=mime_msg('multipart/mixed; boundary="b"',
                     "--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nY2Fmw6k=\n--b--\n"))

for i, date in enumerate([
    "3 Nov 2026 10:20:30 +0100",
    "Tue, 3 Nov 2026 10:20 +0100",
    "Tue, 03 Nov 26 10:20:30 +0100",
    "Tue, 03 Nov 2026 10:20:30 GMT",
    "Tue, 03 Nov 2026 10:20:30 UT",
    "Tue, 03 Nov 2026 10:20:30 EST",
    "Tue, 03 Nov 2026 10:20:30 PDT",
    "Tue, 03 Nov 2026 10:20:30 Z",
    "Tue, 03 Nov 2026 10:20:30 A",
    "Tue, 03 Nov 2026 10:20:30 -0000",
    "Tue, 03 Nov 2026 10:20:30 +0100 (CET)",
    "Tue,  03  Nov  2026  10:20:30  +0100",
    "tue, 03 nov 2026 10:20:30 +0100",
    "Tue, 03 Nov 2026 25:20:30 +0100",
    "Tue, 31 Feb 2026 10:20:30 +0100",
    "Tue, 03 Nov 2026 10:20:60 +0100",
    "2026-11-03T10:20:30+01:00",
    "Tue, 03 Nov 2026 10:20:30",
    "Tue, 03 Nov 1969 10:20:30 +0100",
    "Tue, 03 Nov 2026 10:20:30 +2400",
]):
    probe(f"date-format-{i:02d}", "".join(
        f'if date :originalzone :matches "date" "{part}" "*" {{ set "{part}" "${{1}}"; }}\n'
        for part in ("date", "time", "zone", "weekday"))
        + 'if date :zone "+0000" :matches "date" "iso8601" "*" { set "utc" "${1}"; }',
        A, exts=("date", "variables"), reason="[${date}][${time}][${zone}][${weekday}][${utc}]",
        message=with_headers(f"Date: {date}", drop=("Date",)))
probe("currentdate-zone", 'if currentdate :zone "+0130" :matches "zone" "*" { set "z" "${1}"; }', A,
      exts=("date", "variables"), reason="[${z}]")
probe("currentdate-weekday-range", 'if currentdate :value "ge" :comparator "i;ascii-numeric" "weekday" "0" {\n'
      '  if currentdate :value "le" :comparator "i;ascii-numeric" "weekday" "6" { set "ok" "y"; } }', A,
      exts=("date", "variables", "relational", "comparator-i;ascii-numeric"), reason="[${ok}]")

# i;ascii-numeric: strings that do not start with a digit are positive infinity (RFC 4790 §9.1)
for i, (value, op, key) in enumerate([
    ("abc", "gt", "99999999999999999999"), ("abc", "eq", "xyz"), ("", "eq", "abc"), ("12abc", "eq", "12"),
    ("007", "eq", "7"), (" 7", "eq", "7"), ("99999999999999999999999", "gt", "99999999999999999999998"),
    ("-5", "lt", "0"), ("5", "lt", "abc"), ("0", "eq", "00000"),
]):
    yes_no(f"numeric-{i:02d}", f'header :value "{op}" :comparator "i;ascii-numeric" "subject" "{key}"', A,
           exts=("relational", "comparator-i;ascii-numeric"), message=subject(value))

# headers themselves
for i, (extra, test) in enumerate([
    (("X-Dup: one", "X-Dup: two"), 'header :is "x-dup" "two"'),
    (("X-Empty:",), 'header :is "x-empty" ""'),
    (("X-Empty:",), 'exists "x-empty"'),
    (("X-Long: " + "word " * 300,), 'header :contains "x-long" "word word"'),
    (("X-Folded: a\n\tb\n c",), 'header :is "x-folded" "a\tb c"'),
    (("X-Folded: a\n\tb\n c",), 'header :is "x-folded" "a b c"'),
    (("x-lower: v",), 'header :is "X-LOWER" "v"'),
    (("X-Tab:\tv",), 'header :is "x-tab" "v"'),
    (("X-Colon: a: b",), 'header :is "x-colon" "a: b"'),
    (("X-Sp : v",), 'header :is "x-sp" "v"'),
    (("X-Ctrl: a\x01b",), 'header :contains "x-ctrl" "b"'),
]):
    yes_no(f"header-{i:02d}", test, A, message=with_headers(*extra))
for i, (extra, test) in enumerate([
    (("Reply-To: r@example.net",), 'address :is "reply-to" "r@example.net"'),
    (("Bcc: b@example.net",), 'address :is "bcc" "b@example.net"'),
    (("Resent-To: x@example.net, y@example.net",), 'address :is "resent-to" "y@example.net"'),
    (("Sender: s@example.net",), 'address :domain :is "sender" "example.net"'),
    (("X-Addr: a@example.net",), 'address :is "x-addr" "a@example.net"'),
    (("From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>",), 'address :all :is "from" "j@example.de"'),
    (("From: j@b\u00fccher.example",), 'address :domain :is "from" "bücher.example"'),
    (("From: J@EXAMPLE.DE",), 'address :localpart :comparator "i;octet" :is "from" "J"'),
]):
    yes_no(f"address-header-{i:02d}", test, A, message=with_headers(*extra, drop=("From",) if "From:" in extra[0] else ()))

# odd messages: every script below probes a header, the size and the body
ODD = req("fileinto", "body", "variables", "reject") + (
    'set "r" "";\n'
    'if exists "subject" { set "r" "${r}[subject]"; }\n'
    'if header :matches "from" "*" { set "r" "${r}[from=${1}]"; }\n'
    'if size :over 0 { set "r" "${r}[size>0]"; }\n'
    'if body :raw :contains "x" { set "r" "${r}[body x]"; }\n'
    'reject "${r}";\n')
for i, m in enumerate([
    b"",
    b"\n",
    b"\n\nx body only\n",
    b"From: a@example.org\nSubject: no body",
    b"From: a@example.org\nSubject: no blank line\nx body?\n",
    b"not a header line\nFrom: a@example.org\n\nx\n",
    b"From: a@example.org\nSubject: bare CR\rline\n\nx\n",
    b"From: a@example.org\nSubject: nul \x00 byte\n\nx\n",
    b"From: a@example.org\n Subject: starts folded\n\nx\n",
    b"From: a@example.org\nSubject: " + b"y" * 5000 + b"\n\nx\n",
    b"From: a@example.org\r\nSubject: mixed\n\r\nx\r\n",
    b"\xff\xfe\x00garbage\n\nx\n",
    b"From: a@example.org\nSubject: latin1 \xe9\n\nx\n",
]):
    add(f"odd-message-{i:02d}", ODD, "message", message=m)

# more of the small extensions
A = "copy"
add("copy-fileinto-keep", req("fileinto", "copy") + 'fileinto :copy "Work";\nkeep;\n', A, folders=("Work",))
add("copy-fileinto-inbox", req("fileinto", "copy") + 'fileinto :copy "INBOX";\n', A)
add("copy-redirect-discard", req("copy") + 'redirect :copy "a@example.net";\ndiscard;\n', A)
add("copy-with-flags", req("fileinto", "copy", "imap4flags") + 'fileinto :copy :flags "\\\\Seen" "Work";\n', A,
    folders=("Work",))
add("copy-create", req("fileinto", "copy", "mailbox") + 'fileinto :copy :create "New";\n', A)
add("copy-twice", req("copy") + 'redirect :copy "a@example.net";\nredirect :copy "a@example.net";\n', A)
A = "duplicate"
add("duplicate-twice-in-run", req("duplicate", "fileinto") + 'if duplicate { fileinto "Yes"; }\nif duplicate { fileinto "No"; }\n',
    A, folders=YES_NO)
add("duplicate-last", req("duplicate", "fileinto") + 'if duplicate :last :seconds 3600 { fileinto "Yes"; }\n', A, folders=YES_NO)
add("duplicate-no-message-id", req("duplicate", "fileinto") + 'if duplicate { fileinto "Yes"; } else { fileinto "No"; }\n', A,
    folders=YES_NO, message=with_headers(drop=("Message-ID",)))
add("duplicate-missing-header", req("duplicate", "fileinto") + 'if duplicate :header "x-nope" { fileinto "Yes"; }\n', A,
    folders=YES_NO)
A = "ihave"
add("ihave-list", req("ihave") + 'if ihave ["fileinto", "envelope"] { redirect "has@example.net"; }\n', A)
add("ihave-list-one-missing", req("ihave") + 'if ihave ["fileinto", "x-nope"] { redirect "has@example.net"; }\n', A)
add("ihave-not-enabled-ext", req("ihave") + 'if ihave "imapflags" { discard; }\n', A)
add("ihave-then-require-inside", req("ihave") + 'if ihave "fileinto" { require "fileinto"; fileinto "Work"; }\n', A,
    folders=("Work",))
A = "reject"
add("reject-variables", req("reject", "variables") + 'if header :matches "subject" "*" { set "s" "${1}"; }\n'
    'reject "No thanks: ${s}";\n', A)
add("reject-encoded", req("reject", "encoded-character") + 'reject "caf${unicode:e9}";\n', A)
add("reject-empty", req("reject") + 'reject "";\n', A)
add("reject-after-stop", req("reject") + 'stop;\nreject "never";\n', A)
add("reject-copy-redirect", req("reject", "copy") + 'redirect :copy "a@example.net";\nreject "x";\n', A)
A = "mailbox"
add("mailbox-exists-variable", req("fileinto", "mailbox", "variables") + 'set "f" "Work";\n'
    'if mailboxexists "${f}" { fileinto "${f}"; }\n', A, folders=("Work",))
add("mailbox-create-flags", req("fileinto", "mailbox", "imap4flags") + 'fileinto :create :flags "$Label1" "New";\n', A)
add("mailbox-exists-case", req("fileinto", "mailbox") + 'if mailboxexists "work" { fileinto "Work"; }\n', A,
    folders=("Work",))
add("mailbox-exists-subfolder", req("fileinto", "mailbox") + 'if mailboxexists "Lists.dev" { fileinto "Lists.dev"; }\n', A,
    folders=("Lists", "Lists.dev"))
A = "extensions"
add("ext-octet-always", 'require "comparator-i;octet";\nkeep;\n', A)
add("ext-casemap-always", 'require "comparator-i;ascii-casemap";\nkeep;\n', A)
add("ext-list-only", 'require ["fileinto", "envelope"];\nif envelope :is "to" "user@example.com" { fileinto "Work"; }\n', A,
    folders=("Work",), extensions="fileinto envelope")
add("ext-minus-plus", req("fileinto") + 'fileinto "Work";\n', A, folders=("Work",), extensions="-fileinto +fileinto")
add("ext-require-unknown-with-ihave", req("ihave", "x-nope") + 'keep;\n', A)

# redirect addresses and folder names as the store sees them
A = "core"
for i, addr in enumerate(["User@EXAMPLE.NET", "<a@example.net>", " a@example.net ", "a@example.net (comment)",
                          '"quoted local"@example.net', "a@[192.0.2.1]", "j\u00fcrgen@b\u00fccher.example",
                          "a@example.net, b@example.net", "a@localhost", "a.@example.net", "@example.net"]):
    add(f"redirect-address-{i:02d}", f'redirect "{addr}";\n', A)
add("redirect-runtime-invalid", req("variables") + 'set "a" "not valid";\nredirect "${a}";\n', A)
add("redirect-runtime-valid", req("variables") + 'set "u" "boss";\nredirect "${u}@example.net";\n', A)
for i, name in enumerate(["INBOX.Work", "Work.", ".Work", "Work..x", "W" * 200, "a~b", "a%b", "a*b", "a&b", "a\tb",
                          "Inbox", "inbox.sub", "Ärger.Über", "a b", "-dash", "日本語"]):
    add(f"folder-name-{i:02d}", req("fileinto", "mailbox") + f'fileinto :create "{name}";\n', A)
add("folder-variable-name", req("fileinto", "mailbox", "variables") +
    'if header :matches "subject" "*" { set "s" "${1}"; }\nfileinto :create "Subj.${s}";\n', A)
A = "imap4flags"
add("flags-26-keywords", req("imap4flags") + 'addflag "' + " ".join(f"k{i:02d}" for i in range(26)) + '";\n', A)
add("flags-unicode-keyword", req("imap4flags") + 'addflag ["caf\u00e9", "ok"];\n', A)
add("flags-dollar-keywords", req("imap4flags") + 'addflag ["$Junk", "$NotJunk", "$Forwarded", "$MDNSent"];\n', A)
add("flags-system-unknown", req("imap4flags") + 'addflag ["\\\\Nonsense", "ok"];\n', A)
add("flags-space-runs", req("imap4flags") + 'addflag "  a   b  ";\n', A)

# numbers and odd arguments
A = "tests"
for i, num in enumerate(["0", "1G", "4294967295", "4294967296", "18446744073709551615", "99999999999999999999",
                         "007", "3k", "1T"]):
    yes_no(f"number-{i:02d}", f"size :under {num}", A)
yes_no("tests-exists-empty-name", 'exists ""', A)
yes_no("tests-header-empty-name", 'header :is "" ""', A)
yes_no("tests-string-empty-list", 'string :is "" ""', A, exts=("variables",))
yes_no("tests-string-matches-multi", 'string :matches ["abc", "xyz"] ["*y*", "q"]', A, exts=("variables",))
yes_no("body-message-rfc822", 'body :content "message/rfc822" :contains "forwarded inner"', "body", exts=("body",),
       message=M_MIME)
yes_no("body-content-multipart-text", 'body :content "text" :contains "inner body"', "body", exts=("body",),
       message=M_MIME)
yes_no("body-raw-headers", 'body :raw :contains "Content-Type: application/pdf"', "body", exts=("body",),
       message=M_MIME)
yes_no("body-text-empty", 'body :text :is ""', "body", exts=("body",), message=msg(["Subject: x"], ""))

# include flow, flags in variables, vacation and notify arguments
A = "include"
add("include-return-main", req("include") + 'redirect "a@example.net";\nreturn;\nredirect "b@example.net";\n', A)
add("include-stop-inside", req("include") + 'include "p";\nredirect "after@example.net";\n', A,
    personal={"p": b'redirect "in@example.net";\nstop;\n'})
add("include-in-if", req("include") + 'if header :contains "subject" "report" { include "p"; }\n', A,
    personal={"p": b'redirect "in@example.net";\n'})
add("include-once-nested", req("include") + 'include :once "a";\ninclude "b";\n', A,
    personal={"a": b'redirect "a@example.net";\n', "b": b'require "include";\ninclude :once "a";\nredirect "b@example.net";\n'})
add("include-global-var-chain", req("include", "variables") + 'global "x";\nset "x" "1";\ninclude "a";\n', A,
    personal={"a": b'require ["include", "variables"];\nglobal "x";\nset "x" "${x}2";\ninclude "b";\n',
              "b": b'require ["include", "variables", "reject"];\nglobal "x";\nreject "[${x}]";\n'})
add("include-variable-name", req("include", "variables") + 'set "n" "p";\ninclude "${n}";\n', A,
    personal={"p": b'redirect "in@example.net";\n'})
add("include-global-and-personal-same-name", req("include") + 'include :global "p";\ninclude :personal "p";\n', A,
    personal={"p": b'redirect "personal@example.net";\n'}, global_={"p": b'redirect "global@example.net";\n'})
add("include-duplicate-actions", req("include") + 'include "p";\nredirect "in@example.net";\n', A,
    personal={"p": b'redirect "in@example.net";\n'})
A = "imap4flags"
add("flags-var-hasflag", req("imap4flags", "fileinto", "variables") + 'setflag "f" "a b";\n'
    'if hasflag :is "f" "b" { fileinto "Yes"; }\n', A, folders=YES_NO)
add("flags-var-removeflag", req("imap4flags", "variables") + 'setflag "f" "a b c";\nremoveflag "f" "b";\n'
    'keep :flags "${f}";\n', A)
add("flags-var-internal-untouched", req("imap4flags", "variables") + 'setflag "f" "a";\naddflag "\\\\Seen";\n', A)
add("flags-require-in-variables", 'require "${x}";\n', A)
A = "vacation"
add("vacation-from-display", req(*VA) + 'vacation :from "User <user@example.com>" "x";\n', A)
add("vacation-handle", req(*VA) + 'vacation :handle "h" :subject "s" "x";\n', A)
add("vacation-addresses-invalid", req(*VA) + 'vacation :addresses ["not valid"] "x";\n', A)
add("vacation-days-and-seconds", req("vacation-seconds") + 'vacation :days 1 :seconds 60 "x";\n', A)
add("vacation-subject-empty", req(*VA) + 'vacation :subject "" "x";\n', A)
A = "notify"
add("notify-importance-bad", req(*NO) + 'notify :importance "4" "mailto:a@example.net";\n', A)
add("notify-options-tag", req(*NO) + 'notify :options ["x", "y"] "mailto:a@example.net";\n', A)
add("notify-empty-mailto", req(*NO) + 'notify "mailto:";\n', A)
add("notify-variable-uri", req(*NO, "variables") + 'set "u" "mailto:a@example.net";\nnotify "${u}";\n', A)
add("notify-variable-bad-uri", req(*NO, "variables") + 'set "u" "xmpp:a@example.net";\nnotify "${u}";\n', A)
add("notify-from-invalid", req(*NO) + 'notify :from "not valid" "mailto:a@example.net";\n', A)

# other settings (the same on both sides): limits and spamtest/virustest configurations
A = "settings"
add("settings-max-redirects-1", 'redirect "a@example.net";\nredirect "b@example.net";\n', A,
    settings={"sieve_max_redirects": "1"})
add("settings-max-redirects-1-ok", 'redirect "a@example.net";\n', A, settings={"sieve_max_redirects": "1"})
add("settings-max-actions-3", req("fileinto", "mailbox") + "".join(f'fileinto :create "F{i}";\n' for i in range(4)), A,
    settings={"sieve_max_actions": "3"})
add("settings-max-actions-3-ok", req("fileinto", "mailbox") + "".join(f'fileinto :create "F{i}";\n' for i in range(3)), A,
    settings={"sieve_max_actions": "3"})
add("settings-max-redirects-0", 'redirect "a@example.net";\n', A, settings={"sieve_max_redirects": "0"})
add("settings-script-size", req("reject") + 'reject "' + "x" * 2000 + '";\n', A, settings={"sieve_max_script_size": "1k"})
add("settings-include-depth-2", req("include") + 'include "a";\n', A, settings={"sieve_include_max_nesting_depth": "2"},
    personal={"a": b'require "include";\ninclude "b";\n', "b": b'require "include";\ninclude "c";\n',
              "c": b'redirect "c@example.net";\n'})
add("settings-variable-size-10", req("variables", "reject") + 'set "a" "0123456789abcdef";\nreject "[${a}]";\n', A,
    settings={"sieve_variables_max_variable_size": "10"})
add("settings-variable-size-5000", req("variables", "reject") + 'set "a" "' + "x" * 6000 + '";\n'
    'set :length "n" "${a}";\nreject "[${n}]";\n', A, settings={"sieve_variables_max_variable_size": "5000"})
STRLEN = {"sieve_spamtest_status_type": "strlen", "sieve_spamtest_status_header": "X-Spam-Level",
          "sieve_spamtest_max_value": "5"}
TEXT = {"sieve_spamtest_status_type": "text", "sieve_spamtest_status_header": "X-Spam-Flag",
        "sieve_spamtest_text_value1": "NO", "sieve_spamtest_text_value10": "YES"}
REGEX = {"sieve_spamtest_max_value": None, "sieve_spamtest_status_header": "X-Spam-Status: [Yy]es, score=(-?[[:digit:]]+\\.[[:digit:]]+)",
         "sieve_spamtest_max_header": "X-Spam-Status: [[:alpha:]]+, score=-?[[:digit:]]+\\.[[:digit:]]+ required=([[:digit:]]+\\.[[:digit:]]+)"}
for i, (settings, extra, _expected) in enumerate([
    (STRLEN, "X-Spam-Level: ***", "7"), (STRLEN, "X-Spam-Level: ***", "6"), (STRLEN, "X-Spam-Level: *****", "10"),
    (STRLEN, "X-Spam-Level: ", "1"), (STRLEN, "X-Spam-Level: ********", "10"),
    (TEXT, "X-Spam-Flag: YES", "10"), (TEXT, "X-Spam-Flag: NO", "1"), (TEXT, "X-Spam-Flag: MAYBE", "0"),
    (REGEX, "X-Spam-Status: Yes, score=7.5 required=5.0 tests=X", "10"),
    (REGEX, "X-Spam-Status: Yes, score=2.5 required=5.0 tests=X", "5"),
    (REGEX, "X-Spam-Status: No, score=1.0 required=5.0 tests=X", "0"),
]):
    for test in ('spamtest :value "eq" :comparator "i;ascii-numeric"', 'spamtest :percent :value "eq" :comparator "i;ascii-numeric"'):
        probe(f"settings-spamtest-{i:02d}{'-percent' if 'percent' in test else ''}",
              "".join(f'if {test} "{n}" {{ set "v" "{n}"; }}\n' for n in (list(range(11)) if "percent" not in test else
                                                                       [0, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100, 150])),
              A, exts=("spamtestplus", "variables", "relational", "comparator-i;ascii-numeric"), reason="[${v}]",
              settings=settings, message=with_headers(extra))

# i;ascii-casemap folds ASCII only; ordering is by octets (UTF-8)
A = "match"
for i, (test, value) in enumerate([
    ('header :is "subject" "über"', "Über"),
    ('header :is "subject" "ÜBER"', "Über"),
    ('header :is "subject" "ÜBER"', "ÜbER"),
    ('header :contains "subject" "BER"', "über"),
    ('header :contains "subject" "ü"', "Über"),
    ('header :matches "subject" "?ber"', "Über"),
    ('header :value "lt" "subject" "z"', "é"),
    ('header :value "gt" :comparator "i;octet" "subject" "Z"', "a"),
    ('header :value "lt" "subject" "B"', "a"),
    ('header :value "eq" "subject" "ABC"', "abc"),
    ('header :value "lt" :comparator "i;ascii-casemap" "subject" "["', "a"),
    ('header :value "lt" :comparator "i;octet" "subject" "["', "a"),
]):
    yes_no(f"casemap-{i:02d}", test, A, exts=("relational",), message=subject(value))

# -- the deliberate differences ------------------------------------------------------------

# case id -> why vdeliver differs from Pigeonhole 0.5.19 on purpose;
# test_differential.py xfails these strictly (a case that starts to agree fails,
# so the list stays true). Ready to be copied into the README as a table.
DELIBERATE_DIFFERENCES = {
    "env-location": 'vdeliver runs the script as the delivery agent: environment "location" is "MDA" '
                    '(RFC 5183 §4.1); Pigeonhole\'s sieve-test says "MS"',
    "env-phase": 'the script runs while the message is being delivered: "phase" is "during" (RFC 5183 §4.1); '
                 'Pigeonhole says "post"',
    "env-name": 'environment "name" is the implementation\'s own name, "vdeliver", not "Pigeonhole Sieve"',
    "env-version": 'environment "version" is whatever the delivery core passes (vdeliver\'s version); the '
                   'interpreter alone knows none, so it does not match; Pigeonhole says "0.5.19"',
    "index-05": 'Pigeonhole 0.5.19 ignores :last in "date :index N :last" (it counts from the first '
                'Received field); vdeliver counts from the last, as RFC 5260 §6 says',
    "duplicate-twice-in-run": 'a second duplicate test for the same message in one run makes Pigeonhole '
                              '0.5.19 fail the whole run without an error message (kept in INBOX); '
                              'vdeliver answers "not a duplicate" both times and the run succeeds',
    "foreverypart-anychild-inside": 'inside foreverypart, header :mime :anychild on a part that is the last '
                                    'child of its parent also sees every part after it in Pigeonhole 0.5.19 '
                                    '(sieve_message_part_iter_subtree ends a subtree at root->next, which a '
                                    'last child has none of, or at root->parent, which is before it: a bug); '
                                    'vdeliver looks at the part and its descendants only, as RFC 5703 §4.2 says',
}

# Disagreements not yet fixed (the interpreter is to change, not the corpus): xfail strict
# too, so a fix shows up; kept apart from the deliberate differences above.
NOT_YET_AGREED = {
}

# Not in the corpus, because sieve-test cannot show them:
# - a null envelope sender: sieve-test refuses "-f <>" and without -f takes the
#   From header's address;
# - "if hasflag { keep; }" (hasflag without its key list) crashes sieve-test
#   0.5.19 (SIGSEGV) instead of reporting a compile error.

unknown = (set(DELIBERATE_DIFFERENCES) | set(NOT_YET_AGREED)) - {c.id for c in CASES}
if unknown:
    raise ValueError(f"DELIBERATE_DIFFERENCES names unknown cases: {sorted(unknown)}")
