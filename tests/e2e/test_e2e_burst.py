"""A burst through the real Postfix: 500 messages over 4 parallel SMTP sessions, pipe and LMTP.

All must be delivered, none twice, none left in the queue. The messages/second seen
(first SMTP connect to the last delivery logged by Postfix) is printed, not asserted
(bench/e2e_bench.py measures). Never: wait without a bound.
"""
from __future__ import annotations

import smtplib
import threading
import time

from harness import BURST_USERS, header_values, make_message, submit

COUNT = 500
SESSIONS = 4
TIMEOUT = 150


def inject(port: int, messages: list[tuple[bytes, str]], errors: list[str]) -> None:
    """One SMTP session sending `messages` (bytes, rcpt) one transaction after another."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="burst.e2e.test", timeout=60) as smtp:
            for data, rcpt in messages:
                submit(smtp, data, [rcpt], "sender@bounces.example", ())
    except Exception as err:  # noqa: BLE001 - reported by the test
        errors.append(repr(err))


def test_burst_all_delivered_once(settled, mode, capsys):
    mail = settled
    log_offset = len(mail.log_text())
    batch = []
    for n in range(COUNT):
        rcpt = BURST_USERS[n % len(BURST_USERS)]
        data, msgid = make_message(f"burst {n}", f"message {n} of the burst\n".encode(), to=rcpt)
        batch.append((data, rcpt, msgid))
    wanted = {msgid.encode() for _, _, msgid in batch}

    errors: list[str] = []
    started = time.monotonic()
    threads = [threading.Thread(target=inject, daemon=True,
                                args=(mail.smtp_port, [(d, r) for d, r, _ in batch[k::SESSIONS]], errors))
               for k in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors, errors

    def all_sent():
        return sent_lines(mail, mail.log_text()[log_offset:]) >= COUNT
    deadline = started + TIMEOUT
    while not all_sent() and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    mail.wait_queue_empty(30)

    delivered = []
    for rcpt in BURST_USERS:
        for data in mail.messages(mail.maildir(rcpt)).values():
            delivered.extend(header_values(data, "Message-ID"))
    burst = [m for m in delivered if m in wanted]
    assert len(burst) == len(set(burst)), f"{len(burst) - len(set(burst))} message(s) delivered twice"
    assert set(burst) == wanted, f"{len(wanted - set(burst))} of {COUNT} message(s) missing"
    assert not mail.queue(), "messages left in the queue"
    log = mail.log_text()[log_offset:].splitlines()
    not_sent = [line for line in log
                if "to=<burst" in line and f"postfix/{mail.agent}[" in line and "status=sent" not in line]
    assert not not_sent, not_sent[:5]
    assert sent_lines(mail, mail.log_text()[log_offset:]) == COUNT, "one delivery per message"
    with capsys.disabled():
        print(f"\n[burst] {COUNT} messages over {SESSIONS} SMTP sessions delivered by vdeliver ({mode}) in "
              f"{elapsed:.1f}s: {COUNT / elapsed:.1f} messages/second")


def sent_lines(mail, log: str) -> int:
    return sum(1 for line in log.splitlines()
               if f"relay={mail.relay}," in line and f"postfix/{mail.agent}[" in line
               and "status=sent" in line and "to=<burst" in line)
