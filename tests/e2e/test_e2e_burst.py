"""A burst through the real Postfix: 500 messages over 4 parallel SMTP sessions, pipe and LMTP.

All must be delivered, none twice, none left in the queue. The messages/second seen
(first SMTP connect to the last delivery logged by Postfix) is printed, not asserted
(bench/e2e_bench.py measures). In LMTP mode the daemon's metrics endpoint is scraped
while the burst runs (every scrape answers, no counter goes down) and after it: the
sent counter grew by the burst, nothing deferred or bounced, the latency histogram
counted each delivery, the bytes counter by the bytes the daemon was given.
Never: wait without a bound.
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
    scrapes: list[dict[str, float]] = []
    before = mail.scrape() if mode == "lmtp" else {}
    scraping = threading.Event()
    scraper = threading.Thread(target=scrape_until, args=(mail, scraping, scrapes, errors), daemon=True)
    if mode == "lmtp":
        scraper.start()
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
    scraping.set()
    if mode == "lmtp":
        scraper.join(30)
        assert not errors, errors
        check_metrics(before, scrapes, mail.scrape(), batch)

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


SENT = 'vdeliver_lmtp_deliveries_total{outcome="sent",status="2.0.0"}'


def scrape_until(mail, done: threading.Event, scrapes: list, errors: list) -> None:
    """Scrape every 0.2 s while the burst runs."""
    while not done.wait(0.2):
        try:
            scrapes.append(mail.scrape())
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors.append(f"scrape: {err!r}")
            return


def check_metrics(before: dict, during: list, after: dict, batch: list) -> None:
    def grew(name):
        return after.get(name, 0) - before.get(name, 0)
    assert len(during) >= 2, "the endpoint should have been scraped during the burst"
    for earlier, later in zip([before] + during, during + [after]):
        assert later.get(SENT, 0) >= earlier.get(SENT, 0), "a counter went down"
    assert any(before.get(SENT, 0) < s.get(SENT, 0) < before.get(SENT, 0) + COUNT for s in during), \
        "no scrape saw the burst in progress"
    assert grew(SENT) == COUNT
    failed = {name: grew(name) for name in after if name.startswith("vdeliver_lmtp_deliveries_total{")
              and 'outcome="sent"' not in name}
    assert not any(failed.values()), failed
    assert grew("vdeliver_lmtp_delivery_seconds_count") == grew(SENT) == COUNT
    # The daemon is given what Postfix's lmtp client sends: the message with Postfix's
    # Received: header in front, of some length per message; so, bounds.
    sizes = sum(len(data) for data, _, _ in batch)
    assert sizes < grew("vdeliver_lmtp_delivered_bytes_total") < sizes + COUNT * 1000
    assert after["vdeliver_lmtp_deliveries_in_flight"] == 0


def sent_lines(mail, log: str) -> int:
    return sum(1 for line in log.splitlines()
               if f"relay={mail.relay}," in line and f"postfix/{mail.agent}[" in line
               and "status=sent" in line and "to=<burst" in line)
