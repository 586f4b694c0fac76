"""vdeliver.sieve run results: every command, test and extension as a named case,
asserting on the concrete action list, the implicit keep and the errors."""
import datetime

import pytest

from vdeliver import sieve

MESSAGE = (b"Return-Path: <sender@example.org>\r\n"
           b"Received: from mx.example.org by mail.example.com; Tue, 03 Nov 2026 10:20:35 +0100\r\n"
           b"Received: from laptop by mx.example.org; Tue, 03 Nov 2026 10:20:31 +0100\r\n"
           b"From: Alice Sender <sender@example.org>\r\n"
           b"To: User <user+work@example.com>, \"Bob, B.\" <bob@Example.NET>\r\n"
           b"Cc: carol@sub.example.com\r\n"
           b"Subject: =?utf-8?q?Caf=C3=A9?= [list] weekly\r\n"
           b"  report\r\n"
           b"Date: Tue, 03 Nov 2026 10:20:30 +0100\r\n"
           b"Message-ID: <report-1@example.org>\r\n"
           b"X-Spam-Score: 7.3\r\n"
           b"X-Virus-Status: clean\r\n"
           b"\r\n"
           b"Hello,\r\nthe report is attached.\r\n")

MIME = (b"From: a@example.org\r\nTo: user@example.com\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Total: 42 EUR. Caf=C3=A9\r\n"
        b"--b\r\nContent-Type: application/pdf; name=\"inv.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"JVBERi0xLjQK\r\n--b--\r\n")

ENVELOPE = sieve.Envelope(sender="sender@example.org", recipient="user+work@example.com",
                          original_recipient="user+work@example.com")
EVERYTHING = sieve.parse_extensions_setting("+editheader +vacation-seconds +spamtest +spamtestplus "
                                            "+virustest +ereject")
SETTINGS = {"recipient_delimiter": "+",
            "sieve_spamtest_status_type": "score", "sieve_spamtest_status_header": "X-Spam-Score",
            "sieve_spamtest_max_value": "10",
            "sieve_virustest_status_type": "text", "sieve_virustest_status_header": "X-Virus-Status",
            "sieve_virustest_text_value1": "clean", "sieve_virustest_text_value5": "infected",
            "mailbox_exists": lambda name: name in ("INBOX", "Work"),
            "current_time": datetime.datetime(2026, 11, 3, 9, 0, 0, tzinfo=datetime.timezone.utc),
            "timezone": "+0100"}


def run(script, message=MESSAGE, envelope=ENVELOPE, settings=None, environment=None, loader=None, **kw):
    compiled = sieve.compile(script.encode() if isinstance(script, str) else script,
                             extensions=EVERYTHING, loader=loader, name="t")
    return sieve.run(compiled, sieve.Message.from_bytes(message), envelope,
                     settings={**SETTINGS, **(settings or {})}, environment=environment, **kw)


def brief(result):
    """Actions as short tuples: what a reviewer would write down."""
    out = []
    for a in result.actions:
        if a.kind in ("keep", "fileinto"):
            t = (a.kind, a.mailbox) + ((a.flags,) if a.flags else ())
            t += ("create",) if a.create else ()
            t += ("copy",) if a.copy else ()
        elif a.kind == "redirect":
            t = ("redirect", a.address) + (("copy",) if a.copy else ())
        elif a.kind in ("reject", "ereject"):
            t = (a.kind, a.reason)
        elif a.kind == "notify":
            t = ("notify", a.params["method"])
        elif a.kind in ("addheader", "deleteheader"):
            t = (a.kind, a.params["name"])
        else:
            t = (a.kind,)
        out.append(t)
    if result.implicit_keep:
        out.append(("implicit keep",) + ((result.keep_flags,) if result.keep_flags else ()))
    return out


def reason(script, **kw):
    """The reject reason a script ends with: a compact probe for values."""
    r = run('require ["reject", "variables"];\n' + script, **kw)
    assert not r.errors, r.errors
    return r.actions[-1].reason


KEEP = [("implicit keep",)]
YES = [("fileinto", "Yes")]


def cond(test, req=()):
    reqs = ", ".join(f'"{r}"' for r in ("fileinto",) + tuple(req))
    return f'require [{reqs}];\nif {test} {{ fileinto "Yes"; }}'


@pytest.mark.parametrize("script, want", [
    # RFC 5228 core
    pytest.param("", KEEP, id="empty script keeps"),
    pytest.param("keep;", [("keep", "INBOX")], id="keep"),
    pytest.param("discard;", [("discard",)], id="discard cancels implicit keep"),
    pytest.param('redirect "boss@example.net";', [("redirect", "boss@example.net")], id="redirect"),
    pytest.param('redirect "Boss <boss@example.net>";', [("redirect", "boss@example.net")],
                 id="redirect to a name-addr"),
    pytest.param('redirect "a@EXAMPLE.net"; redirect "a@example.net";', [("redirect", "a@example.net")],
                 id="duplicate redirect, domain case-insensitive"),
    pytest.param('redirect "A@example.net"; redirect "a@example.net";',
                 [("redirect", "A@example.net"), ("redirect", "a@example.net")], id="local part is case-sensitive"),
    pytest.param("stop; keep;", KEEP, id="stop"),
    pytest.param("if true { keep; } elsif true { discard; } else { stop; }", [("keep", "INBOX")], id="if"),
    pytest.param("if false { keep; } elsif true { discard; } else { stop; }", [("discard",)], id="elsif"),
    pytest.param("if false { keep; } elsif false { discard; } else { keep; }", [("keep", "INBOX")], id="else"),
    pytest.param(cond('header :contains "subject" "café"'), YES, id="header decodes RFC 2047"),
    pytest.param(cond('header :is "subject" "Café [list] weekly  report"'), YES, id="header unfolded"),
    pytest.param(cond('header :matches "subject" "*[*]*"'), YES, id="header matches"),
    pytest.param(cond('header :is "subject" "café [list] weekly  report"'), YES, id="ascii-casemap folds ASCII"),
    pytest.param(cond('header :is :comparator "i;octet" "subject" "café [list] weekly  report"'), KEEP,
                 id="i;octet is exact"),
    pytest.param(cond('header :contains ["x-none", "from"] "alice"'), YES, id="header list"),
    pytest.param(cond('address :is "from" "sender@example.org"'), YES, id="address all"),
    pytest.param(cond('address :localpart :is "to" "bob"'), YES, id="address localpart, second address"),
    pytest.param(cond('address :domain :is "to" "example.net"'), YES, id="address domain folds case"),
    pytest.param(cond('address :all :is "cc" "carol@sub.example.com"'), YES, id="address cc"),
    pytest.param(cond('exists ["from", "date"]'), YES, id="exists all"),
    pytest.param(cond('exists ["from", "x-nope"]'), KEEP, id="exists needs all"),
    pytest.param(cond("size :over 100"), YES, id="size over"),
    pytest.param(cond("size :under 100"), KEEP, id="size under"),
    pytest.param(cond("allof (true, not false)"), YES, id="allof not"),
    pytest.param(cond("anyof (false, false)"), KEEP, id="anyof"),
    # fileinto, copy, mailbox, reject, envelope, subaddress
    pytest.param('require "fileinto"; fileinto "Work";', [("fileinto", "Work")], id="fileinto"),
    pytest.param('require "fileinto"; fileinto "../../x";', [("fileinto", "../../x")],
                 id="fileinto name returned unchanged"),
    pytest.param('require "fileinto"; fileinto "A"; fileinto "A";', [("fileinto", "A")], id="duplicate fileinto"),
    pytest.param('require "fileinto"; keep; fileinto "inbox";', [("keep", "INBOX")], id="keep and fileinto INBOX"),
    pytest.param('require ["fileinto", "copy"]; fileinto :copy "A";', [("fileinto", "A", "copy"), ("implicit keep",)],
                 id="fileinto copy"),
    pytest.param('require "copy"; redirect :copy "a@b.c";', [("redirect", "a@b.c", "copy"), ("implicit keep",)],
                 id="redirect copy"),
    pytest.param('require "copy"; redirect :copy "a@b.c"; redirect "a@b.c";',
                 [("redirect", "a@b.c", "copy"), ("implicit keep",)], id="duplicate of a copy keeps"),
    pytest.param('require ["fileinto", "mailbox"]; fileinto :create "New";', [("fileinto", "New", "create")],
                 id="fileinto create"),
    pytest.param('require ["fileinto", "mailbox"]; if mailboxexists "Work" { fileinto "Work"; }',
                 [("fileinto", "Work")], id="mailboxexists"),
    pytest.param('require ["fileinto", "mailbox"]; if mailboxexists ["Work", "Nope"] { fileinto "Work"; }', KEEP,
                 id="mailboxexists all"),
    pytest.param('require "reject"; reject "go away";', [("reject", "go away")], id="reject"),
    pytest.param('require "ereject"; ereject "no";', [("ereject", "no")], id="ereject"),
    pytest.param('require "reject"; reject text:\r\nline\r\n..\r\n.\r\n;', [("reject", "line\r\n.\r\n")],
                 id="reject multi-line"),
    pytest.param(cond('envelope :is "from" "sender@example.org"', ["envelope"]), YES, id="envelope from"),
    pytest.param(cond('envelope :domain :is "to" "example.com"', ["envelope"]), YES, id="envelope to domain"),
    pytest.param(cond('envelope :user :is "to" "user"', ["envelope", "subaddress"]), YES, id="envelope user"),
    pytest.param(cond('envelope :detail :is "to" "work"', ["envelope", "subaddress"]), YES, id="envelope detail"),
    pytest.param(cond('address :detail :is "to" "work"', ["subaddress"]), YES, id="address detail"),
    pytest.param(cond('address :detail :matches "from" "*"', ["subaddress"]), KEEP, id="no detail, no value"),
    # relational, numeric
    pytest.param(cond('address :count "eq" :comparator "i;ascii-numeric" "to" "2"',
                      ["relational", "comparator-i;ascii-numeric"]), YES, id="count addresses"),
    pytest.param(cond('header :count "ge" :comparator "i;ascii-numeric" "received" "2"',
                      ["relational", "comparator-i;ascii-numeric"]), YES, id="count headers"),
    pytest.param(cond('header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "5"',
                      ["relational", "comparator-i;ascii-numeric"]), YES, id="value numeric"),
    pytest.param(cond('header :value "lt" "subject" "D"', ["relational"]), YES, id="value casemap ordering"),
    pytest.param(cond('header :is :comparator "i;ascii-numeric" "x-spam-score" "7"',
                      ["comparator-i;ascii-numeric"]), YES, id="numeric equality uses leading digits"),
    # regex
    pytest.param(cond('header :regex "subject" "^caf. \\\\[[[:alpha:]]+\\\\]"', ["regex"]), YES,
                 id="regex with POSIX class, case-insensitive"),
    pytest.param(cond('header :regex :comparator "i;octet" "subject" "^caf"', ["regex"]), KEEP,
                 id="regex octet is case-sensitive"),
    # imap4flags
    pytest.param('require "imap4flags"; setflag "\\\\Seen"; addflag ["$Work", "\\\\Flagged"];',
                 [("implicit keep", ("\\Seen", "$Work", "\\Flagged"))], id="flags on implicit keep"),
    pytest.param('require "imap4flags"; addflag "a b"; removeflag "A"; keep;',
                 [("keep", "INBOX", ("b",)), ], id="removeflag is case-insensitive"),
    pytest.param('require ["imap4flags", "fileinto"]; fileinto :flags "\\\\Seen \\\\Bogus x" "A";',
                 [("fileinto", "A", ("\\Seen", "x"))], id="flags tag, invalid flag dropped"),
    pytest.param('require ["imap4flags", "fileinto"]; addflag "x"; if hasflag :is "X" { fileinto "Yes"; }',
                 [("fileinto", "Yes", ("x",))], id="hasflag"),
    pytest.param('require ["imap4flags", "variables", "fileinto"]; setflag "v" "a"; addflag "v" "b";'
                 'if hasflag :is "v" "b" { fileinto "Yes"; }', YES, id="flags in a variable"),
    # body
    pytest.param(cond('body :contains "report is"', ["body"]), YES, id="body text"),
    pytest.param(cond('body :raw :contains "attached."', ["body"]), YES, id="body raw"),
    # date
    pytest.param(cond('date :is "date" "date" "2026-11-03"', ["date"]), YES, id="date in local zone"),
    pytest.param(cond('date :zone "-0500" :is "date" "hour" "04"', ["date"]), YES, id="date zone"),
    pytest.param(cond('date :originalzone :is "date" "zone" "+0100"', ["date"]), YES, id="date originalzone"),
    pytest.param(cond('date :originalzone :is "received" "second" "35"', ["date"]), YES, id="received date"),
    pytest.param(cond('currentdate :zone "+0000" :is "iso8601" "2026-11-03T09:00:00Z"', ["date"]), YES,
                 id="currentdate iso8601"),
    pytest.param(cond('currentdate :is "weekday" "2"', ["date"]), YES, id="weekday"),
    pytest.param(cond('currentdate :is "julian" "61347"', ["date"]), YES, id="julian"),
    # index
    pytest.param(cond('header :index 2 :contains "received" "laptop"', ["index"]), YES, id="index"),
    pytest.param(cond('header :index 1 :last :contains "received" "laptop"', ["index"]), YES, id="index last"),
    # environment
    pytest.param(cond('environment :is "location" "MDA"', ["environment"]), YES, id="environment default"),
    pytest.param(cond('environment :matches "remote-ip" "*"', ["environment"]), KEEP, id="environment unset"),
    # spamtest, virustest
    pytest.param(cond('spamtest :value "eq" :comparator "i;ascii-numeric" "7"', ["spamtest", "relational", "comparator-i;ascii-numeric"]), YES,
                 id="spamtest truncates 7.57"),
    pytest.param(cond('spamtest :percent :value "eq" :comparator "i;ascii-numeric" "73"',
                      ["spamtestplus", "relational", "comparator-i;ascii-numeric"]), YES, id="spamtestplus percent"),
    pytest.param(cond('virustest :is "1"', ["virustest"]), YES, id="virustest text value"),
    # vacation, notify, duplicate
    pytest.param('require "vacation"; vacation "away";', [("vacation",), ("implicit keep",)], id="vacation"),
    pytest.param('require "enotify"; notify "mailto:a@example.net"; notify "mailto:a@example.net";',
                 [("notify", "mailto:a@example.net"), ("implicit keep",)], id="notify once"),
    pytest.param(cond('valid_notify_method "mailto:a@b.c"', ["enotify"]), YES, id="valid_notify_method"),
    pytest.param(cond('notify_method_capability "mailto:a@b.c" "online" "maybe"', ["enotify"]), YES,
                 id="notify_method_capability"),
    pytest.param(cond("duplicate", ["duplicate"]), KEEP, id="duplicate default never"),
    # editheader
    pytest.param('require ["editheader", "fileinto"]; addheader "X-Tag" "yes";'
                 'if header :is "x-tag" "yes" { fileinto "Yes"; }', [("addheader", "X-Tag"), ("fileinto", "Yes")],
                 id="addheader seen by later tests"),
    pytest.param('require ["editheader", "fileinto"]; deleteheader "subject";'
                 'if not exists "subject" { fileinto "Yes"; }', [("deleteheader", "subject"), ("fileinto", "Yes")],
                 id="deleteheader"),
    pytest.param('require ["editheader"]; deleteheader "received";', KEEP, id="received is protected"),
    pytest.param('require ["editheader", "fileinto", "relational", "comparator-i;ascii-numeric"];'
                 'deleteheader :index 1 "received";'
                 'if header :count "eq" :comparator "i;ascii-numeric" "received" "1" { fileinto "Yes"; }',
                 KEEP, id="received protected with index"),
    pytest.param('require ["editheader", "fileinto", "index"]; addheader :last "X-A" "1"; addheader "X-A" "0";'
                 'if header :index 1 :is "x-a" "0" { fileinto "Yes"; }',
                 [("addheader", "X-A"), ("addheader", "X-A"), ("fileinto", "Yes")], id="addheader first and :last"),
    pytest.param('require ["editheader", "fileinto"]; deleteheader :index 1 :last "received";', KEEP,
                 id="deleteheader of a protected header is ignored"),
    pytest.param('require ["editheader", "fileinto"]; addheader "X-B" "keep"; addheader "X-B" "drop me";'
                 'deleteheader :contains "x-b" "drop"; if header :is "x-b" "keep" { fileinto "Yes"; }',
                 [("addheader", "X-B"), ("addheader", "X-B"), ("deleteheader", "x-b"), ("fileinto", "Yes")],
                 id="deleteheader by value pattern"),
    # imap4flags counts
    pytest.param(cond('hasflag :count "eq" :comparator "i;ascii-numeric" "2"',
                      ["imap4flags", "relational", "comparator-i;ascii-numeric"]).replace(
                          "if hasflag", 'setflag "a b"; if hasflag'), [("fileinto", "Yes", ("a", "b"))],
                 id="hasflag count"),
    # ihave
    pytest.param(cond('ihave "fileinto"', ["ihave"]), YES, id="ihave known"),
    pytest.param(cond('ihave "x-nosuch"', ["ihave"]), KEEP, id="ihave unknown"),
    pytest.param('require ["ihave", "fileinto"]; if not ihave "x-nosuch" { fileinto "Yes"; } else { xnosuch; }',
                 YES, id="not ihave unknown, dead else"),
    pytest.param('require ["duplicate", "fileinto"]; if duplicate { fileinto "A"; } if duplicate { fileinto "B"; }',
                 KEEP, id="second duplicate test in a run gives the same answer"),
])
def test_actions(script, want):
    result = run(script)
    assert not result.errors, result.errors
    assert brief(result) == want


@pytest.mark.parametrize("script, want", [
    pytest.param('if header :matches "subject" "* [*] *" { reject "${1}|${2}|${3}|${0}"; }',
                 "Café|list|weekly  report|Café [list] weekly  report", id="matches values, stars non-greedy"),
    pytest.param('if header :matches "subject" "C???? *" { reject "${1}${2}|${5}"; }', "af|[list] weekly  report",
                 id="question mark is one octet (é is two)"),
    pytest.param('if header :matches "subject" "C?f?? *" { reject "${1}${3}|${4}"; }', "a\ufffd|[list] weekly  report",
                 id="octet halves"),
    pytest.param('if header :matches "subject" "*" { set "s" "${1}"; }\nif true { reject "${s}"; }',
                 "Café [list] weekly  report", id="value kept after a failed match elsewhere"),
    pytest.param('set "a" "x"; set "A" "${a}y"; reject "${A}";', "xy", id="names fold case"),
    pytest.param('set :upper "a" "abc"; set :lowerfirst "b" "ABC"; set :length "c" "日本"; '
                 'set :upperfirst "d" "élan"; reject "${a}${b}${c}${d}";', "ABCaBC2élan",
                 id="modifiers, ASCII-only case"),
    pytest.param('set :quotewildcard "a" "*?\\\\"; reject "${a}";', "\\*\\?\\\\", id="quotewildcard"),
    pytest.param('reject "${unset}|${}|$x|${1}";', "|${}|$x|", id="unset and invalid references"),
    pytest.param('if string :is "${x}" "" { reject "empty"; }', "empty", id="string test"),
    pytest.param('require "relational"; if string :count "eq" ["a", "", "b"] "2" { reject "two"; }', "two",
                 id="string count skips empty"),
    pytest.param('require "regex"; if header :regex "subject" "^(caf.) \\\\[(.*)\\\\]" { reject "${1}|${2}"; }',
                 "Café|list", id="regex match values"),
    pytest.param('require ["regex"]; set :quoteregex "q" "a.b"; reject "${q}";', "a\\.b", id="quoteregex"),
    pytest.param('require "encoded-character"; reject "${hex:41 42}${unicode:263a}${hex:}";', "AB☺${hex:}",
                 id="encoded characters"),
    pytest.param('require "enotify"; set :encodeurl "u" "a b&c"; reject "${u}";', "a%20b%26c", id="encodeurl"),
    pytest.param('require "environment"; if environment :matches "name" "*" { reject "${1}"; }', "vdeliver",
                 id="environment name"),
    pytest.param('require "date"; if currentdate :matches "std11" "*" { reject "${1}"; }',
                 "Tue, 03 Nov 2026 10:00:00 +0100", id="std11 in local zone"),
    pytest.param('require ["mime", "foreverypart", "extracttext"]; set "n" "";'
                 'foreverypart { set "n" "${n}x"; if header :mime :subtype "content-type" "plain"'
                 '{ extracttext :first 6 "t"; } } reject "${n}|${t}";', "xxx|Total:", id="foreverypart, extracttext"),
    pytest.param('require ["mime", "foreverypart"]; foreverypart :name "l" { set "n" "${n}x"; break :name "l"; }'
                 'reject "${n}";', "x", id="break"),
    pytest.param('require ["mime"]; if header :mime :anychild :param "name" :matches "content-type" "*" { reject "${1}"; }',
                 "inv.pdf", id="mime anychild param"),
    pytest.param('require "body"; if body :content "text/plain" :contains "Café" { reject "ok"; }', "ok",
                 id="body content decoded"),
    pytest.param('require "body"; if body :matches "*" { reject "[${1}]"; }', "[]",
                 id="body sets no match variables"),
    pytest.param('require ["mime", "foreverypart", "extracttext"]; foreverypart { extracttext :first 7 "t"; }'
                 'reject "${t}";', "", id="extracttext of a non-text part is empty"),
    pytest.param('require ["mime", "foreverypart", "extracttext"]; foreverypart { if header :mime :subtype '
                 '"content-type" "plain" { extracttext :first 14 "t"; } } reject "${t}";', "Total: 42 EUR.",
                 id="extracttext first counts octets"),
    pytest.param('require ["mime"]; if header :mime :anychild :subtype "content-type" "mixed" { reject "self"; }',
                 "self", id="anychild includes the part itself"),
])

def test_values(script, want):
    kw = {"message": MIME} if "mime" in script or "body :content" in script else {}
    assert reason(script, **kw) == want


@pytest.mark.parametrize("html, text", [
    pytest.param("<html><body><p>Please find the <b>invoice</b> attached.</p></body></html>",
                 "Please find the invoice  attached. ", id="tags end in one space"),
    pytest.param("a<!-- hidden -->b", "ab", id="comment"),
    pytest.param("x<script type='a>b'>alert(1)</script>y", "x y", id="script dropped"),
    pytest.param("<style>p {}</style>t", "t", id="style at start, no leading space"),
    pytest.param("&lt;b&gt; &amp; &#65;&#x42; &nosuch; & x", "<b> & AB   x", id="entities"),
    pytest.param("<![CDATA[raw <i>]]>", "raw <i>", id="cdata"),
])
def test_html_to_text(html, text):
    from vdeliver.sieve.extensions.body import html_to_text
    assert html_to_text(html) == text


@pytest.mark.parametrize("date, part, want", [
    pytest.param("Tue, 03 Nov 2026 10:20:30 A", "zone", "+0100", id="military zone A"),
    pytest.param("Tue, 03 Nov 2026 10:20:30 +2400", "zone", "+2400", id="zone +2400 kept"),
    pytest.param("Tue, 03 Nov 2026 10:20:30 -0330", "iso8601", "2026-11-03T10:20:30-03:30", id="iso8601 offset"),
    pytest.param("3 Nov 2026 10:20 +0000", "std11", "Tue, 03 Nov 2026 10:20:00 +0000", id="no weekday, no seconds"),
    pytest.param("garbage", "date", None, id="unparsable date has no value"),
])
def test_date_parts(date, part, want):
    from vdeliver.sieve.extensions import date as d
    when = d.parse_date(date)
    assert (None if when is None else d.date_part(when, part)) == want


@pytest.mark.parametrize("field, want", [
    pytest.param(b"=?utf-8?q?Doe=2C_John?= <j@x.org>", "j@x.org", id="encoded comma in the display name"),
    pytest.param(b"=?utf-8?q?a=40b.c?= <j@x.org>", "j@x.org", id="encoded @ in the display name"),
    pytest.param(b"=?utf-8?q?j=40x.org?=", "=?utf-8?q?j=40x.org?=", id="an encoded word is not an address"),
])
def test_address_parses_before_decoding(field, want):
    msg = b"From: " + field + b"\r\nTo: u@example.com\r\n\r\nx\r\n"
    assert reason('if address :all :matches "from" "*" { reject "${1}"; }', message=msg) == want


def test_include_and_globals():
    scripts = {("personal", "lib"): b'require ["variables", "include", "fileinto"];\nglobal "where";\n'
                                     b'set "local" "lib";\nfileinto "${where}";\nreturn;\nfileinto "never";',
               ("global", "g"): b'require "fileinto";\nfileinto "G";'}
    r = run('require ["include", "variables", "reject"];\nglobal "where";\nset "where" "Lists";\n'
            'set "local" "main";\ninclude "lib";\ninclude :global "g";\ninclude :once "lib";\n'
            'include :optional "nope";\nreject "${local}";',
            loader=lambda loc, name: scripts.get((loc, name)))
    assert r.errors == ["t: line 9: error: reject action conflicts with other action: the fileinto action "
                        "(line 4) tries to deliver the message."]


def test_global_namespace_and_caller_environment():
    scripts = {("global", "g"): b'require ["variables", "include"];\nset "global.seen" "${global.seen}g";'}
    r = run('require ["include", "variables", "reject", "environment"];\ninclude :global "g";\n'
            'include :global "g";\nif environment :is "remote-ip" "192.0.2.9" { reject "${global.seen}"; }',
            loader=lambda loc, name: scripts.get((loc, name)), environment={"remote-ip": "192.0.2.9"})
    assert brief(r) == [("reject", "gg")]


def test_include_once_and_return():
    scripts = {("personal", "lib"): b'require "fileinto";\nfileinto "L";'}
    r = run('require ["include", "fileinto"];\ninclude :once "lib";\ninclude :once "lib";\nfileinto "M";',
            loader=lambda loc, name: scripts.get((loc, name)))
    assert brief(r) == [("fileinto", "L"), ("fileinto", "M")]


def test_runtime_error_in_included_script_names_it():
    scripts = {("personal", "lib"): b'require "reject";\n\nreject "x";'}
    r = run('require ["include", "fileinto"];\nfileinto "M";\ninclude "lib";',
            loader=lambda loc, name: scripts.get((loc, name)))
    assert r.errors[0].startswith("lib: line 3: error: reject action conflicts")
    assert r.implicit_keep


@pytest.mark.parametrize("script, line, text", [
    pytest.param('require ["reject", "fileinto"];\nfileinto "A";\nreject "no";', 3, "conflicts",
                 id="reject after fileinto"),
    pytest.param('require ["reject"];\nreject "no";\nkeep;', 2, "the keep action (line 3)", id="keep after reject"),
    pytest.param('require ["reject", "vacation"];\nvacation "v";\nreject "no";', 3, "also sends a response",
                 id="reject and vacation"),
    pytest.param('require "reject";\nreject "a";\nreject "b";', 3, "duplicate reject", id="two rejects"),
    pytest.param('require "vacation";\nvacation "a";\nvacation "b";', 3, "duplicate vacation", id="two vacations"),
    pytest.param("".join(f'redirect "r{i}@example.net";\n' for i in range(5)), 5, "redirect actions exceeds",
                 id="five redirects"),
    pytest.param('require "fileinto";\n' + "".join(f'fileinto "f{i}";\n' for i in range(33)), 34,
                 "total number of actions exceeds", id="33 actions"),
    pytest.param('require "ihave";\nerror "boom";', 2, "boom", id="error command"),
    pytest.param('require "variables";\nset "a" "x@";\nredirect "${a}";', 3, "redirect address", id="bad redirect"),
    pytest.param('require ["enotify", "variables"];\nset "m" "sms:1";\nnotify "${m}";', 3, "invalid method",
                 id="bad notify method at run time"),
    pytest.param('require ["regex", "variables"];\nset "p" "(";\nif header :regex "subject" "${p}" {}', 3,
                 "invalid regular expression", id="bad regex at run time"),
])
def test_runtime_errors(script, line, text):
    r = run(script)
    assert len(r.errors) == 1 and r.errors[0].startswith(f"t: line {line}: error: "), r.errors
    assert text in r.errors[0]
    assert r.implicit_keep


def test_vacation_params():
    r = run('require ["vacation", "vacation-seconds"];\nvacation :seconds 10 :subject "Out" :from "me@example.com"'
            ' :addresses ["a@example.com"] :mime :handle "h" "text";')
    a = r.actions[0]
    assert a.kind == "vacation" and a.reason == "text" and a.line == 2
    assert a.params == {"days": None, "seconds": 86400, "subject": "Out", "from": "me@example.com",
                        "addresses": ("a@example.com",), "mime": True, "handle": "h"}
    r = run('require "vacation";\nvacation :days 1000 "x";')
    assert r.actions[0].params["seconds"] == 1000 * 86400 and r.actions[0].params["days"] == 1000
    r = run('require "vacation";\nvacation :days 1000 "x";', settings={"sieve_vacation_max_period": 60 * 86400})
    assert r.actions[0].params["seconds"] == 60 * 86400


def test_notify_params():
    r = run('require "enotify";\nnotify :from "me@example.com" :importance "1" :options ["o=1"] :message "m" '
            '"mailto:a@example.net?subject=x";')
    assert r.actions[0].params == {"method": "mailto:a@example.net?subject=x", "message": "m", "importance": "1",
                                   "options": ("o=1",), "from": "me@example.com"}


def test_duplicate_callback():
    calls = []

    def check(handle, key, seconds, last):
        calls.append((handle, key, seconds, last))
        return True
    r = run('require ["duplicate", "fileinto"];\nif duplicate :handle "h" :seconds 999999 :last { fileinto "Dup"; }',
            settings={"duplicate_check": check})
    assert brief(r) == [("fileinto", "Dup")]
    assert calls == [("h", "<report-1@example.org>", 2 * 86400, True)]


def test_message_from_file_reads_body_lazily(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(MESSAGE)
    script = sieve.compile(b'require ["body", "fileinto"];\nif body :contains "attached" { fileinto "B"; }')
    msg = sieve.Message.from_file(str(path))
    assert msg.size == len(MESSAGE) and msg._body is None
    assert brief(sieve.run(script, msg, ENVELOPE)) == [("fileinto", "B")]
    with open(path, "rb") as f:
        assert brief(sieve.run(script, sieve.Message.from_file(f), ENVELOPE)) == [("fileinto", "B")]


def test_action_fields():
    a = run('require ["fileinto", "imap4flags"];\n\nfileinto :flags "\\\\Seen" "X";').actions[0]
    assert (a.kind, a.mailbox, a.flags, a.create, a.copy, a.line) == ("fileinto", "X", ("\\Seen",), False, False, 3)
    with pytest.raises(Exception):
        a.kind = "keep"


def _wildcard_reference(value, pattern):
    """Does the :matches pattern match? By Python's fnmatch-free regex, for checking."""
    import re
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), value, re.DOTALL) is not None


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=1500, deadline=None)
@given(st.text("ab", max_size=12), st.text("ab*?", max_size=8))
def test_wildcard_agrees_with_a_regex(value, pattern):
    from vdeliver.sieve import comparators, match
    caps = match.wildcard(value, pattern, comparators.COMPARATORS["i;octet"])
    assert (caps is not None) == _wildcard_reference(value, pattern)
    if caps is not None:                 # the expansions rebuild the value
        rebuilt, k = [], 0
        for c in pattern:
            if c in "*?":
                rebuilt.append(caps[k])
                k += 1
            else:
                rebuilt.append(c)
        assert "".join(rebuilt) == value


def test_message_from_a_pipe_reads_the_body_after_the_headers():
    import os
    import threading
    r, w = os.pipe()
    data = MESSAGE + b"x" * 200000 + b"\r\nneedle\r\n"
    writer = threading.Thread(target=lambda: (os.write(w, data) and None, os.close(w)))
    writer.start()
    with os.fdopen(r, "rb") as f:
        msg = sieve.Message.from_file(f)
        script = sieve.compile(b'require ["body", "fileinto"];\nif body :raw :contains "needle" { fileinto "N"; }')
        result = sieve.run(script, msg, ENVELOPE)
    writer.join()
    assert brief(result) == [("fileinto", "N")]
    assert msg.header("message-id") == ["<report-1@example.org>"]


def test_message_size_from_a_pipe_is_counted():
    import os
    import threading
    r, w = os.pipe()
    data = MESSAGE + b"y" * (3 << 20)
    writer = threading.Thread(target=lambda: (os.write(w, data) and None, os.close(w)))
    writer.start()
    with os.fdopen(r, "rb") as f:
        msg = sieve.Message.from_file(f)
        result = sieve.run(sieve.compile(b'require "fileinto";\nif size :over 3M { fileinto "Big"; }'), msg, ENVELOPE)
        assert msg.size == len(data) and len(msg.body()) == sieve.DEFAULT_LIMITS.max_body_size
    writer.join()
    assert brief(result) == [("fileinto", "Big")]


@pytest.mark.parametrize("pattern, want", [
    pytest.param(r"^\w+ \s\b", r"^\w+ \s\b", id="GNU classes kept"),
    pytest.param(r"\d\n\x", "dnx", id="other escaped letters are the letter (glibc)"),
    pytest.param(r"\<a\>", r"\ba\b", id="word anchors become word boundaries"),
    pytest.param(r"\`a\'", r"\Aa\z", id="buffer anchors"),
    pytest.param("a{,2}", "a{0,2}", id="{,n}"),
    pytest.param(r"[\d]", r"[\\d]", id="backslash literal in brackets"),
    pytest.param("[]a][^]b][[:digit:]]", "[]a][^]b][[:digit:]]", id="brackets with ] and classes"),
    pytest.param(r"\.\*\[", r"\.\*\[", id="escaped punctuation stays"),
])
def test_posix_regex_translation(pattern, want):
    from vdeliver.sieve import regex
    assert regex.translate(pattern) == want


def test_back_references_are_refused_at_compile_time():
    with pytest.raises(sieve.CompileError) as e:
        sieve.compile(b'require "regex";\nif header :regex "subject" "(a)\\\\1" {}')
    assert "back-references are not supported" in e.value.errors[0]
