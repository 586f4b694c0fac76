"""Sieve through the LMTP daemon: one message, one outcome per recipient's script.

RFC 2033 §4.2: one reply per accepted recipient after DATA, so a Sieve reject
answers `550 5.7.1 <reason>` (RFC 5429 §2.1.1) for that recipient only, while the
others get 250. The daemon keeps compiled scripts between messages: a changed
script must still be what runs.
"""
import os
import time

import pytest

from functional.sievelayout import activate, folders_of, make_dirs, make_folder, read, stored, write
from functional.test_lmtp import daemon, transaction  # noqa: F401  (the fixture, shared)

BOB, ALICE, ANY = "example.com/bob", "example.com/alice", "catchall"
MESSAGE = b"From: sender@example.net\nSubject: report\n\nbody\n"


def rcpt_order(replies):
    return [code for code, _ in replies]


def test_two_recipients_two_scripts_two_outcomes(mail, daemon):
    activate(mail, 'require ["fileinto", "mailbox", "imap4flags"];\n'
                   'fileinto :create :flags "\\\\Seen" "Reports";\n', box=BOB)
    activate(mail, 'require "reject";\nreject "Alice does not take reports.";\n', box=ALICE)
    activate(mail, "discard;\n", box=ANY)
    lmtp = daemon().client()
    rcpt, data = transaction(lmtp, ["bob@example.com", "alice@example.com", "x@catchall.example",
                                    "carol@catchall.example"], MESSAGE)
    assert rcpt_order(rcpt) == [250, 250, 250, 250]
    assert data == [(250, b"2.0.0 <bob@example.com> delivered"),
                    (550, b"5.7.1 Alice does not take reports."),
                    (250, b"2.0.0 <x@catchall.example> delivered"),
                    (250, b"2.0.0 <carol@catchall.example> delivered")]
    ((path, _),) = stored(mail, BOB).items()
    assert path.startswith(".Reports/cur/") and path.endswith(":2,S"), path
    assert read(mail.path(f"{BOB}/{path}")).endswith(MESSAGE)
    assert stored(mail, ALICE) == {} and stored(mail, ANY) == {}
    assert lmtp.noop()[0] == 250  # the session goes on in step
    lines = [line for line in open(mail.maillog).read().splitlines() if "to=<" in line]
    assert any("to=<alice@example.com>" in line and "dsn=5.7.1, status=bounced" in line for line in lines)
    assert sum("status=sent" in line for line in lines) == 3, lines


def test_a_reject_reason_cannot_inject_an_lmtp_reply(mail, daemon):
    activate(mail, 'require "reject";\nreject "no\r\n250 2.0.0 <alice@example.com> delivered\r\n";\n',
             box=BOB)
    lmtp = daemon().client()
    _, data = transaction(lmtp, ["bob@example.com", "alice@example.com"], MESSAGE)
    assert data == [(550, b"5.7.1 no 250 2.0.0 <alice@example.com> delivered"),
                    (250, b"2.0.0 <alice@example.com> delivered")]
    assert lmtp.noop() == (250, b"2.0.0 Ok")
    assert stored(mail, BOB) == {} and len(stored(mail, ALICE)) == 1


def test_a_null_sender_message_is_discarded_not_rejected(mail, daemon):
    activate(mail, 'require "reject";\nreject "Alice does not take reports.";\n', box=ALICE)
    lmtp = daemon().client()
    _, data = transaction(lmtp, ["alice@example.com", "bob@example.com"], MESSAGE, sender="")
    assert data == [(250, b"2.0.0 <alice@example.com> delivered"),
                    (250, b"2.0.0 <bob@example.com> delivered")]
    assert stored(mail, ALICE) == {} and len(stored(mail, BOB)) == 1
    (line,) = [line for line in open(mail.maillog).read().splitlines() if "to=<alice@" in line]
    assert "status=sent" in line and "not sending reject message to <>" in line, line


def test_failures_of_one_script_do_not_touch_the_others(mail, daemon):
    activate(mail, "if true {\n", box=BOB)                                   # compile error
    activate(mail, 'require "fileinto";\nfileinto "Missing";\n', box=ALICE)  # missing folder
    lmtp = daemon().client()
    _, data = transaction(lmtp, ["bob@example.com", "alice@example.com"], MESSAGE)
    assert rcpt_order(data) == [250, 250]
    assert folders_of(mail, BOB) == {"": 1} and folders_of(mail, ALICE) == {"": 1}
    assert "error" in read(mail.path(f"{BOB}/.dovecot.sieve.log")).decode()
    assert "Missing" in read(mail.path(f"{ALICE}/.dovecot.sieve.log")).decode()


def replace(mail, relative, text):
    """Write a new version of a file as an editor or ManageSieve PUTSCRIPT does: a new
    file renamed over the old one (a new inode), mtime moved so it cannot look the same."""
    temporary = write(mail, relative + ".new", text)
    future = time.time() + 5
    os.utime(temporary, (future, future))
    os.rename(temporary, mail.path(relative))


@pytest.mark.parametrize("changed", [
    pytest.param("script", id="the script itself"),
    pytest.param("included", id="an included script"),
    pytest.param("broken", id="a broken script fixed"),
])
def test_the_daemon_runs_the_current_script_not_a_cached_one(mail, daemon, changed):
    make_folder(mail, ".First", BOB)
    make_folder(mail, ".Second", BOB)
    if changed == "included":
        activate(mail, 'require "include";\ninclude :personal "rules";\n', box=BOB)
        write(mail, f"{BOB}/sieve/rules.sieve", 'require "fileinto";\nfileinto "First";\n')
    elif changed == "broken":
        activate(mail, 'require "fileinto";\nfileinto "First"\n', box=BOB)
    else:
        activate(mail, 'require "fileinto";\nfileinto "First";\n', box=BOB)
    lmtp = daemon().client()
    for _ in range(2):  # the second one may come from the cache
        assert rcpt_order(transaction(lmtp, ["bob@example.com"], MESSAGE)[1]) == [250]
    wanted = {"": 2} if changed == "broken" else {".First": 2}
    assert folders_of(mail, BOB) == wanted
    relative = f"{BOB}/sieve/{'rules' if changed == 'included' else 'roundcube'}.sieve"
    replace(mail, relative, 'require "fileinto";\nfileinto "Second";\n')
    assert rcpt_order(transaction(lmtp, ["bob@example.com"], MESSAGE)[1]) == [250]
    assert folders_of(mail, BOB) == dict(wanted, **{".Second": 1})


def test_a_recipient_without_a_script_next_to_one_with(mail, daemon):
    activate(mail, 'require "fileinto";\nfileinto "Nowhere";\n', box=BOB)
    make_dirs(mail, ALICE)
    lmtp = daemon().client()
    _, data = transaction(lmtp, ["alice@example.com", "bob@example.com"], MESSAGE)
    assert rcpt_order(data) == [250, 250]
    assert folders_of(mail, ALICE) == {"": 1} and folders_of(mail, BOB) == {"": 1}
    assert not os.path.exists(mail.path(f"{ALICE}/.dovecot.sieve.log"))


def test_virtual_home_maps_in_the_daemon(mail, daemon):
    """The daemon opens virtual_home_maps once, with its other tables; homes apply per recipient."""
    homes = os.path.join(mail.top, "homes")
    mail.write_table("bob@example.com homes/bob/\n", homes)
    activate(mail, 'require ["fileinto", "mailbox"];\nfileinto :create "FromHome";\n', box="homes/bob")
    activate(mail, "discard;\n", box=BOB)        # not bob's home any more
    activate(mail, 'require ["fileinto", "mailbox"];\nfileinto :create "Alice";\n', box=ALICE)
    lmtp = daemon(f"virtual_home_maps = texthash:{homes}\n").client()
    _, data = transaction(lmtp, ["bob@example.com", "alice@example.com"], MESSAGE)
    assert rcpt_order(data) == [250, 250], data
    assert folders_of(mail, BOB) == {".FromHome": 1}
    assert folders_of(mail, ALICE) == {".Alice": 1}
