"""200 deliveries at once into one mailbox: unique names, complete files, exact counts.

All processes are started first; each creates its tmp file and blocks
reading stdin; then every message is fed, so the links into new/, the
maildirsize lock and the mbox locks are contended for real.
(tests/functional has 40 at once without quota and 50 with one.)
"""
import mailbox
import os

import pytest

from outcomes import STATUS_LINE, delivered, read

CONCURRENT = 200


def message_number(number, size):
    head = b"Subject: %d\n\n" % number
    return head + b"x" * (size - len(head) - 1) + b"\n"


def deliver_all(mail, recipient, messages, *options):
    procs = [mail.popen(*options, "-f", "s@x", "--", recipient) for _ in messages]
    for proc, text in zip(procs, messages):
        proc.stdin.write(text)
        proc.stdin.close()
    results = []
    for proc in procs:
        code = proc.wait(timeout=120)
        results.append((code, proc.stdout.read()))
        proc.stdout.close()
        proc.stderr.close()
    return results


def quota_config(mail, limit):
    quotas = os.path.join(mail.top, "quotas")
    with open(quotas, "w") as fh:
        fh.write(f"bob@example.com {limit}\n")
    os.chmod(quotas, 0o644)
    mail.write_config(f"virtual_mailbox_quota_maps = texthash:{quotas}\n")


def maildirsize_totals(mail):
    lines = read(mail.path("example.com/bob/maildirsize")).decode().splitlines()
    return (sum(int(line.split()[0]) for line in lines[1:]),
            sum(int(line.split()[1]) for line in lines[1:]))


def check_delivered(mail, messages, delivered_numbers):
    """Every file in new/ is one whole message, each delivered number exactly once."""
    files = mail.new_files("example.com/bob")
    assert len({os.path.basename(path) for path in files}) == len(files)
    seen = []
    for path in files:
        data = read(path)
        number = int(data.split(b"Subject: ", 1)[1].split(b"\n", 1)[0])
        assert data == delivered("s@x", "bob@example.com", messages[number])
        assert path.endswith(f",S={len(data)}")
        seen.append(number)
    assert sorted(seen) == sorted(delivered_numbers)
    assert mail.tmp_files("example.com/bob") == []
    return sum(os.path.getsize(path) for path in files), len(files)


@pytest.mark.parametrize("quota", [None, "100M"], ids=["no quota", "quota that holds them all"])
def test_concurrent_deliveries_all_arrive_whole(mail, quota):
    if quota:
        quota_config(mail, quota)
    messages = [message_number(number, 1000 + 97 * number) for number in range(CONCURRENT)]
    results = deliver_all(mail, "bob@example.com", messages)
    assert results == [(0, b"")] * CONCURRENT
    used, count = check_delivered(mail, messages, range(CONCURRENT))
    assert count == CONCURRENT
    if quota:
        assert maildirsize_totals(mail) == (used, count)


def test_concurrent_deliveries_against_a_quota_are_counted_exactly(mail):
    size = 2000
    per_message = size + len(b"Return-Path: <s@x>\nDelivered-To: bob@example.com\n")
    fits = 77
    quota_config(mail, f"{per_message * fits + per_message // 2}S")
    messages = [message_number(number, size) for number in range(CONCURRENT)]
    results = deliver_all(mail, "bob@example.com", messages)
    ok = [number for number, (code, _) in enumerate(results) if code == 0]
    assert len(ok) == fits
    for code, out in results:
        assert code == 0 and out == b"" or (code == 75 and out.startswith(b"4.2.2 mailbox full")
                                           and STATUS_LINE.fullmatch(out))
    used, count = check_delivered(mail, messages, ok)
    assert maildirsize_totals(mail) == (used, count) == (per_message * fits, fits)


def test_concurrent_mbox_appends_are_whole_and_exactly_once(mail):
    messages = [message_number(number, 500 + 31 * number) for number in range(100)]
    results = deliver_all(mail, "mbox@example.com", messages, "-o", "mbox_lock_timeout=60s")
    assert results == [(0, b"")] * 100
    box = mailbox.mbox(mail.path("example.com/mbox"), create=False)
    seen = sorted(int(box.get_message(key)["Subject"]) for key in box.keys())
    assert seen == list(range(100))
    for key in box.keys():
        data = box.get_bytes(key)
        number = int(box.get_message(key)["Subject"])
        assert data == delivered("s@x", "mbox@example.com", messages[number])
    assert os.listdir(mail.path("example.com")) == ["mbox"]
