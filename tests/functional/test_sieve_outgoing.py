"""Sieve's outgoing mail through the installed pipe command: vacation, redirect,
duplicate and notify, handed to sendmail_path (a recording program here:
functional/outbox.py; Postfix's own in tests/e2e/test_e2e_outgoing.py).

What is asserted: the sendmail command line (envelope), the bytes sent (the key
headers, parsed by the stdlib email package as an independent reader), the
original on disk, exit 0 and the log line.
"""
import os

import pytest

from functional.outbox import Outbox, envelope, parse
from functional.sievelayout import BOX, activate, stored, tmp_empty, write

VACATION = 'require ["vacation"];\nvacation :days 3 "I am away.";\n'
SENDER = "sender@example.net"


def original(subject="hello", headers="", to="bob@example.com", msgid="<m1@example.net>"):
    return (f"From: Sender Person <{SENDER}>\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: {msgid}\n{headers}\nbody line\n").encode()


def deliver(mail, data, sender=SENDER, recipient="bob@example.com"):
    return mail.run("-i", "4OUT1", "-f", sender, "--", recipient, stdin=data)


def line_of(result):
    assert (result.code, result.stdout) == (0, b""), result
    (line,) = result.log.decode("utf-8", "replace").splitlines()
    assert "status=sent" in line, line
    return line


@pytest.fixture
def outbox(mail):
    box = Outbox(mail)
    mail.write_config(box.config())
    return box


# --------------------------------------------------------------------------- vacation

def test_vacation_replies_once_within_the_period(mail, outbox):
    activate(mail, VACATION)
    line = line_of(deliver(mail, original()))
    assert f"sieve: sent vacation response to <{SENDER}>" in line, line
    ((args, data),) = outbox.sent()
    assert envelope(args) == ("<>", [SENDER])
    reply = parse(data)
    assert reply["To"] == f"Sender Person <{SENDER}>"
    assert reply["From"] == "<bob@example.com>" or reply["From"] == "bob@example.com"
    assert reply["Subject"] == "Auto: hello"
    assert reply["In-Reply-To"] == "<m1@example.net>"
    assert reply["References"] == "<m1@example.net>"
    assert reply["Auto-Submitted"] == "auto-replied (vacation)"
    assert reply["Precedence"] == "bulk"
    assert reply["Date"] and reply["Message-ID"].startswith("<")
    assert reply.get_content_type() == "text/plain" and reply.get_content() == "I am away.\n"
    # The second message from the same sender: delivered, not answered.
    line = line_of(deliver(mail, original("again", msgid="<m2@example.net>")))
    assert "answered within the period already" in line, line
    assert len(outbox.sent()) == 1
    assert len(stored(mail)) == 2 and tmp_empty(mail)


@pytest.mark.parametrize("data, sender, why", [
    pytest.param(original(), "", "to <>", id="null sender"),
    pytest.param(original(), "MAILER-DAEMON@example.net", "system address", id="mailer-daemon"),
    pytest.param(original(), "owner-list@example.net", "system address", id="owner-"),
    pytest.param(original(), "list-request@example.net", "system address", id="-request"),
    pytest.param(original(), "LISTSERV@example.net", "system address", id="listserv"),
    pytest.param(original(), "bob@example.com", "own address", id="own address"),
    pytest.param(original(headers="List-Id: <dev.example.net>\n"), SENDER, "mailing list",
                 id="List-Id"),
    pytest.param(original(headers="List-Unsubscribe: <mailto:x@example.net>\n"), SENDER,
                 "mailing list", id="List-Unsubscribe"),
    pytest.param(original(headers="Auto-Submitted: auto-replied\n"), SENDER, "auto-submitted",
                 id="Auto-Submitted"),
    pytest.param(original(headers="Precedence: bulk\n"), SENDER, "Precedence", id="Precedence bulk"),
    pytest.param(original(headers="Precedence: junk\n"), SENDER, "Precedence", id="Precedence junk"),
    pytest.param(original(headers="X-Auto-Response-Suppress: DR, OOF\n"), SENDER,
                 "X-Auto-Response-Suppress", id="X-Auto-Response-Suppress OOF"),
    pytest.param(original(to="someone@example.org"), SENDER, "implicitly delivered",
                 id="not addressed to the user"),
])
def test_vacation_does_not_reply(mail, outbox, data, sender, why):
    activate(mail, VACATION)
    line = line_of(deliver(mail, data, sender))
    assert why in line, line
    assert outbox.sent() == []
    assert len(stored(mail)) == 1


@pytest.mark.parametrize("headers", [
    pytest.param("Auto-Submitted: no\n", id="Auto-Submitted no"),
    pytest.param("Precedence: first-class\n", id="other Precedence"),
    pytest.param("Cc: Bob <BOB@Example.COM>\n", id="in Cc, other case"),
])
def test_vacation_replies(mail, outbox, headers):
    activate(mail, VACATION)
    data = original(headers=headers, to="x@example.org" if "Cc" in headers else "bob@example.com")
    line = line_of(deliver(mail, data))
    assert "sent vacation response" in line, line
    assert len(outbox.sent()) == 1


def test_vacation_addresses_and_original_recipient(mail, outbox):
    """:addresses names an alias the user is known by; so does the original recipient."""
    activate(mail, 'require ["vacation"];\nvacation :addresses "bob.alias@example.com" "away";\n')
    line_of(deliver(mail, original(to="bob.alias@example.com")))
    assert len(outbox.sent()) == 1
    result = mail.run("-i", "4OUT2", "-f", "other@example.net", "-a", "info@example.com", "--",
                      "bob@example.com", stdin=original(to="info@example.com").replace(
                          SENDER.encode(), b"other@example.net"))
    assert "sent vacation response" in line_of(result)
    assert len(outbox.sent()) == 2


@pytest.mark.parametrize("script, subject", [
    pytest.param('vacation :subject "Away\r\nBcc: evil@example.org" "reason";', "hello",
                 id="CRLF in :subject"),
    pytest.param('set "f" "Bob\r\nX-Evil: 1 <bob@example.com>";\nvacation :from "${f}" "reason";',
                 "hello", id="CRLF in :from (a variable)"),
    pytest.param('vacation "reason";', "=?utf-8?q?hi=0D=0ABcc:_evil2@example.org?=",
                 id="CRLF encoded in the original subject"),
    pytest.param('vacation :handle "x\nBcc: y@example.org" "reason";',
                 "hi\r\nBcc: evil@example.org", id="bare CR in the original subject"),
])
def test_vacation_headers_cannot_be_injected(mail, outbox, script, subject):
    """The script's strings and the original's header text end up in header values only."""
    activate(mail, 'require ["vacation", "variables"];\n' + script + "\n")
    data = original(subject=subject)
    line = line_of(deliver(mail, data))
    assert "sent vacation response" in line, line
    ((args, sent),) = outbox.sent()
    head = sent.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        assert not line.lower().startswith((b"bcc", b"x-evil")), head
    assert b"\r" not in sent
    assert envelope(args)[1] == [SENDER]


def test_vacation_subject_and_body_in_utf8(mail, outbox):
    activate(mail, 'require ["vacation"];\nvacation "Ich bin im Urlaub. Grüße, Jörg";\n')
    line_of(deliver(mail, original(subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=")))
    ((_, sent),) = outbox.sent()
    assert sent.isascii()
    assert b"Subject: =?utf-8?" in sent
    reply = parse(sent)
    assert reply["Subject"] == "Auto: Grüße"
    assert reply.get_content_charset() == "utf-8"
    assert reply.get_content() == "Ich bin im Urlaub. Grüße, Jörg\n"


def test_vacation_mime_reason(mail, outbox):
    activate(mail, 'require ["vacation"];\nvacation :mime text:\n'
                   'Content-Type: text/html; charset=utf-8\nX-Not-Copied: 1\n\n<p>away</p>\n.\n;\n')
    line_of(deliver(mail, original()))
    ((_, sent),) = outbox.sent()
    reply = parse(sent)
    assert reply.get_content_type() == "text/html"
    assert reply["X-Not-Copied"] is None
    assert reply.get_content() == "<p>away</p>\n"


def test_vacation_send_from_recipient(mail, outbox):
    mail.write_config(outbox.config("sieve_vacation_send_from_recipient = yes\n"))
    activate(mail, VACATION)
    line_of(deliver(mail, original()))
    ((args, _),) = outbox.sent()
    assert envelope(args) == ("bob@example.com", [SENDER])


# --------------------------------------------------------------------------- redirect

REDIRECT = 'redirect "target@example.org";\n'


def test_redirect_only_destination_is_sent_and_not_stored(mail, outbox):
    activate(mail, REDIRECT)
    data = original()
    line = line_of(deliver(mail, data))
    assert "sieve: redirected to <target@example.org> (from <sender@example.net>)" in line, line
    assert "delivered to maildir nowhere" in line, line
    ((args, sent),) = outbox.sent()
    assert envelope(args) == (SENDER, ["target@example.org"])
    head, body = sent.split(b"\n\n", 1)
    assert head.startswith(b"X-Sieve-Redirected-From: bob@example.com\n"), head
    assert b"\nReturn-Path:" not in b"\n" + head
    assert b"Delivered-To: bob@example.com" in head  # Postfix's and vdeliver's own loop check
    assert sent.endswith(data)
    assert stored(mail) == {} and tmp_empty(mail)


@pytest.mark.parametrize("setting, sender, wanted", [
    pytest.param("", SENDER, SENDER, id="sender (default)"),
    pytest.param("sieve_redirect_envelope_from = recipient\n", SENDER, "bob@example.com",
                 id="recipient"),
    pytest.param("sieve_redirect_envelope_from = orig_recipient\n", SENDER, "info@example.com",
                 id="orig_recipient"),
    pytest.param("sieve_redirect_envelope_from = <fwd@example.com>\n", SENDER, "fwd@example.com",
                 id="an address"),
    pytest.param("sieve_redirect_envelope_from = recipient\n", "", "<>", id="<> stays <>"),
])
def test_redirect_envelope_sender(mail, outbox, setting, sender, wanted):
    mail.write_config(outbox.config(setting))
    activate(mail, REDIRECT)
    result = mail.run("-i", "4OUT3", "-f", sender, "-a", "info@example.com", "--",
                      "bob@example.com", stdin=original())
    line_of(result)
    ((args, _),) = outbox.sent()
    assert envelope(args) == (wanted, ["target@example.org"])


@pytest.mark.parametrize("environment", [{"MAIL_CONFIG": "/etc/postfix-out"}, {}],
                         ids=["MAIL_CONFIG exported", "none"])
def test_sendmail_gets_pipes_mail_config_and_nothing_else(mail, outbox, environment):
    """Behind a postmulti instance pipe(8) exports that instance's MAIL_CONFIG: the mail
    Sieve sends goes back through it, not the default instance's /etc/postfix."""
    activate(mail, 'redirect "carol@example.org";\n')
    result = mail.run("-f", SENDER, "--", "bob@example.com", stdin=original(),
                      env={**environment, "TZ": "Europe/Berlin", "HOME": "/root", "LANG": "C.UTF-8"})
    assert result.code == 0, result
    (env,) = outbox.environments()
    assert env.get("MAIL_CONFIG") == environment.get("MAIL_CONFIG"), env
    assert env["PATH"] == "/usr/bin:/bin"
    assert not {"TZ", "HOME", "LANG"} & env.keys(), env


def test_redirect_copy_stores_and_sends(mail, outbox):
    activate(mail, 'require "copy";\nredirect :copy "target@example.org";\n')
    line = line_of(deliver(mail, original()))
    assert "redirected to <target@example.org>" in line, line
    assert len(outbox.sent()) == 1 and len(stored(mail)) == 1


@pytest.mark.parametrize("code", [75, 1])
def test_redirect_not_sent_keeps_in_inbox(mail, outbox, code):
    outbox.fail_with(code)
    activate(mail, REDIRECT)
    line = line_of(deliver(mail, original()))
    assert "redirect to <target@example.org> failed" in line and "kept in INBOX" in line, line
    assert [path.split("/")[0] for path in stored(mail)] == ["new"]


def test_redirect_loop_is_not_redirected_again(mail, outbox):
    activate(mail, REDIRECT)
    data = b"X-Sieve-Redirected-From: bob@example.com\n" + original()
    line = line_of(deliver(mail, data))
    assert "(a loop)" in line and "kept in INBOX" in line, line
    assert outbox.sent() == [] and len(stored(mail)) == 1


def test_redirect_same_message_sent_once(mail, outbox):
    activate(mail, REDIRECT)
    line_of(deliver(mail, original()))
    line = line_of(deliver(mail, original()))
    assert "not sent again" in line, line
    assert len(outbox.sent()) == 1
    line_of(deliver(mail, original(msgid="<other@example.net>")))
    assert len(outbox.sent()) == 2
    assert stored(mail) == {}


# --------------------------------------------------------------------------- duplicate

def test_duplicate_test_sees_the_second_copy(mail, outbox):
    activate(mail, 'require ["duplicate", "fileinto", "mailbox"];\n'
                   'if duplicate { fileinto :create "Dupes"; }\n')
    line_of(deliver(mail, original()))
    line_of(deliver(mail, original()))
    line_of(deliver(mail, original(msgid="<new@example.net>")))
    folders = sorted(path.split("/")[0] for path in stored(mail))
    assert folders == [".Dupes", "new", "new"], folders


def test_duplicate_is_recorded_only_when_delivered(mail, outbox):
    """A delivery that fails (here: the mailbox's new/ is not writable) records nothing."""
    activate(mail, 'require "duplicate";\nif duplicate { discard; }\n')
    write(mail, f"{BOX}/new/.keep", b"")
    os.chmod(mail.path(f"{BOX}/new"), 0o500)
    try:
        result = deliver(mail, original())
        assert result.code == 75, result
    finally:
        os.chmod(mail.path(f"{BOX}/new"), 0o700)
    line_of(deliver(mail, original()))
    assert len([p for p in stored(mail) if not p.endswith(".keep")]) == 1


def test_duplicate_suppression_without_sieve(mail, outbox):
    mail.write_config(outbox.config("duplicate_suppression = yes\n"))
    line_of(deliver(mail, original()))
    line = line_of(deliver(mail, original()))
    assert "duplicate of a message delivered before: discarded" in line, line
    line_of(deliver(mail, original(msgid="<m9@example.net>")))
    line_of(deliver(mail, original(msgid="")))  # no Message-ID: never a duplicate
    line_of(deliver(mail, original(msgid="")))
    assert len(stored(mail)) == 4


# --------------------------------------------------------------------------- notify

def test_notify_mailto(mail, outbox):
    activate(mail, 'require "enotify";\n'
                   'notify :importance "1" :message "New mail from ${from}" :from "bob@example.com"'
                   ' "mailto:alice@example.org?subject=You%20have%20mail";\n'.replace("${from}", "x"))
    line = line_of(deliver(mail, original()))
    assert "sent notification to <alice@example.org>" in line, line
    ((args, sent),) = outbox.sent()
    assert envelope(args) == ("<>", ["alice@example.org"])
    note = parse(sent)
    assert note["Subject"] == "You have mail"
    assert note["Auto-Submitted"] == "auto-notified"
    assert note["X-Priority"].startswith("1")
    assert note.get_content() == "New mail from x\n"
    assert len(stored(mail)) == 1


def test_notify_not_for_auto_submitted(mail, outbox):
    activate(mail, 'require "enotify";\nnotify "mailto:alice@example.org";\n')
    line = line_of(deliver(mail, original(headers="Auto-Submitted: auto-generated\n")))
    assert "not sent for an auto-submitted message" in line, line
    assert outbox.sent() == []


def test_vacation_to_an_smtputf8_sender_with_odd_ids(mail, outbox):
    """A UTF-8 envelope sender (RFC 6531) gets its reply; a Message-ID that is not ASCII and
    an overlong References token are left out, never a reason to send nothing."""
    activate(mail, VACATION)
    data = ("From: Jörg <jörg@example.net>\nTo: bob@example.com\nSubject: Grüße\n"
            "Message-ID: <ä@example.net>\nReferences: <" + "r" * 400 + "@x> <ok@example.net>\n"
            "\nbody\n").encode()
    line = line_of(deliver(mail, data, sender="jörg@example.net"))
    assert "sent vacation response to <jörg@example.net>" in line, line
    ((args, sent),) = outbox.sent()
    assert envelope(args) == ("<>", ["jörg@example.net"])
    reply = parse(sent)
    assert reply["To"] == "Jörg <jörg@example.net>" and reply["In-Reply-To"] is None
    assert reply["References"] is None
    assert max(len(line) for line in sent.split(b"\n")) <= 998


def test_notify_headers_cannot_be_injected(mail, outbox):
    """The URI's header fields: only to, subject and body are used, each cleaned."""
    activate(mail, 'require "enotify";\n'
                   'notify :message "m\r\nBcc: evil@example.org"'
                   ' "mailto:alice@example.org?subject=a%0D%0ABcc:%20evil2@example.org'
                   '&bcc=evil3@example.org&X-Evil=1";\n')
    line_of(deliver(mail, original()))
    ((args, sent),) = outbox.sent()
    assert envelope(args)[1] == ["alice@example.org"]
    head = sent.split(b"\n\n", 1)[0]
    assert not any(line.lower().startswith((b"bcc", b"x-evil")) for line in head.split(b"\n")), head
    assert parse(sent)["Subject"] == "a Bcc: evil2@example.org"


def test_a_redirect_sends_the_edits_made_before_it_and_not_those_after(mail, outbox):
    mail.write_config(outbox.config("sieve_extensions = +editheader\n"))
    activate(mail, 'require ["editheader", "copy"];\naddheader "X-Before" "yes";\n'
                   'redirect :copy "target@example.org";\naddheader "X-After" "yes";\n')
    line_of(deliver(mail, original()))
    ((_, sent),) = outbox.sent()
    head = sent.split(b"\n\n", 1)[0] + b"\n"
    assert b"\nX-Before: yes\n" in head and b"X-After" not in head, head
    (kept,) = stored(mail)
    with open(os.path.join(mail.path(BOX), kept), "rb") as fh:
        data = fh.read()
    assert b"X-Before: yes\n" in data and b"X-After: yes\n" in data, data
