"""The corpus of Sieve's outgoing mail against Pigeonhole (test_pigeonhole_outgoing.py):
whether a vacation reply, a redirect, a notification is sent, to whom, from which
envelope sender, with which key header fields (oracle.canonical_sent()).

Each case is an oracle.Case; vdeliver's side runs it through the installed pipe
command with a recording sendmail_path, Pigeonhole's through sieve-test -e (which
prints what it sends). sieve-test cannot run a null envelope sender (see
corpus_sieve.py), nor remember a response between runs: "answered within the
period" and the duplicate test's second copy are the functional and e2e tests'.
"""
from corpus_sieve import M_BASE, M_LIST, msg, req, subject, with_headers
from oracle import Case

CASES = []


def add(id, script, **kw):
    kw.setdefault("message", M_BASE)
    CASES.append(Case(id=id, script=script.encode(), area="outgoing", **kw))


VA = req("vacation")
add("out-vacation-simple", VA + 'vacation "I am away.";\n')
add("out-vacation-full", VA + 'vacation :days 3 :subject "Away" :from "User <user@example.com>"'
    ' :handle "h1" "I am away.";\n')
add("out-vacation-subject-unicode", VA + 'vacation :subject "Abwesenheit \u00fcber Ostern" "x";\n')
add("out-vacation-original-subject-encoded", VA + 'vacation "x";\n',
    message=subject("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?="))
add("out-vacation-no-original-subject", VA + 'vacation "x";\n', message=with_headers(drop=("Subject",)))
add("out-vacation-references", VA + 'vacation "x";\n',
    message=with_headers("In-Reply-To: <a@example.org>", "References: <a@example.org>"))
add("out-vacation-mime", VA + 'vacation :mime text:\nContent-Type: text/plain; charset=utf-8\n\nAway.\n.\n;\n')
add("out-vacation-list", VA + 'vacation "x";\n', message=M_LIST, recipient="dev@lists.example.org")
add("out-vacation-list-unsubscribe", VA + 'vacation "x";\n',
    message=with_headers("List-Unsubscribe: <mailto:leave@example.org>"))
add("out-vacation-not-addressed", VA + 'vacation "x";\n', recipient="other@example.com")
add("out-vacation-addresses", VA + 'vacation :addresses ["User@Example.com"] "x";\n',
    recipient="other@example.com")
add("out-vacation-in-cc", VA + 'vacation "x";\n', recipient="carol@sub.example.com")
# vdeliver always counts the original recipient as the user's (Pigeonhole: only with this).
add("out-vacation-original-recipient", VA + 'vacation "x";\n', recipient="other@example.com",
    original_recipient="user@example.com",
    settings={"sieve_vacation_use_original_recipient": "yes"})
add("out-vacation-resent-to", VA + 'vacation "x";\n', recipient="other@example.com",
    message=with_headers("Resent-To: other@example.com"))
add("out-vacation-bcc", VA + 'vacation "x";\n', recipient="other@example.com",
    message=with_headers("Bcc: other@example.com"))
for value in ("auto-replied", "auto-generated", "no"):
    add(f"out-vacation-auto-submitted-{value}", VA + 'vacation "x";\n',
        message=with_headers(f"Auto-Submitted: {value}"))
for value in ("bulk", "junk", "list", "first-class"):
    add(f"out-vacation-precedence-{value}", VA + 'vacation "x";\n',
        message=with_headers(f"Precedence: {value}"))
for value in ("All", "OOF", "DR, RN"):
    add(f"out-vacation-suppress-{value.split(',')[0]}", VA + 'vacation "x";\n',
        message=with_headers(f"X-Auto-Response-Suppress: {value}"))
for sender in ("MAILER-DAEMON@example.org", "owner-dev@example.org", "dev-request@example.org",
               "LISTSERV@example.org", "majordomo@example.org", "user@example.com"):
    add(f"out-vacation-sender-{sender.split('@')[0]}", VA + 'vacation "x";\n', sender=sender)
add("out-vacation-reply-to-sender-field", VA + 'vacation "x";\n', sender="robot@example.org",
    message=with_headers("Sender: Robot <robot@example.org>"))

add("out-redirect", 'redirect "boss@example.net";\n')
add("out-redirect-copy", req("copy") + 'redirect :copy "boss@example.net";\n')
add("out-redirect-two", 'redirect "a@example.net";\nredirect "b@example.net";\n')
add("out-redirect-loop", 'redirect "boss@example.net";\n',
    message=msg(["X-Sieve-Redirected-From: user@example.com", "From: a@example.org",
                 "To: user@example.com", "Subject: loop", "Message-ID: <loop@example.org>"]))
add("out-redirect-and-vacation", req("vacation") + 'redirect "boss@example.net";\nvacation "x";\n')

NO = req("enotify")
add("out-notify", NO + 'notify "mailto:alert@example.net";\n')
add("out-notify-message", NO + 'notify :importance "1" :message "New mail" :from "user@example.com"'
    ' "mailto:alert@example.net";\n')
add("out-notify-uri-subject", NO + 'notify "mailto:alert@example.net?subject=Look%20here";\n')
add("out-notify-two-recipients", NO + 'notify "mailto:a@example.net?to=b@example.net";\n')

add("out-duplicate-first-copy", req("duplicate", "vacation") + 'if duplicate { discard; stop; }\n'
    'vacation "x";\n')

# Where vdeliver differs on purpose: xfail(strict), the reason says why.
DELIBERATE = {}
