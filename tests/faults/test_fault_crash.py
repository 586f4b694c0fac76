"""kill -9 at random moments of a Maildir delivery, 300 times.

A message of 16 MB makes one delivery take some 20-50 ms here, most of it
writing and fsyncing; each run is killed after a delay drawn uniformly from
[0, 1.2 x the measured duration], so kills land before the tmp file exists,
mid-write, during the fsyncs, around the link into new/, and after exit.
Whatever the moment: a run that exited 0 left exactly one complete message
in new/; a killed run left none or one, complete (killed after the link);
no file in new/ ever differs from the input with its headers. Files a killed
run left in tmp/ are allowed (maildir(5): readers ignore tmp/, cleaners
remove it after 36 hours); the test requires some, as the proof that kills
landed mid-write.

An mbox cannot give this guarantee (a kill mid-append leaves the part
written; Postfix's own mbox delivery has the same limit): see
tests/functional/test_store.py::test_kill_9_mid_append_keeps_earlier_messages.
"""
import os
import random
import signal
import statistics
import time

from outcomes import delivered, message

RUNS = 300
SIZE = 16 << 20
BOX = "example.com/bob"


def test_kill_9_at_random_moments_never_leaves_a_partial_message(mail):
    text = message(SIZE, b"crash")
    source = os.path.join(mail.top, "message")
    with open(source, "wb") as fh:
        fh.write(text)
    expected = delivered("s@x", "bob@example.com", text)
    new_directory = mail.path(f"{BOX}/new")
    tmp_directory = mail.path(f"{BOX}/tmp")

    def start():
        with open(source, "rb") as stdin:
            return mail.popen("-f", "s@x", "--", "bob@example.com", stdin=stdin)

    def check_and_clear_new():
        names = os.listdir(new_directory)
        for name in names:
            path = os.path.join(new_directory, name)
            with open(path, "rb") as fh:
                assert fh.read() == expected, f"partial or altered message in new/: {name}"
            os.unlink(path)
        return len(names)

    def count_and_clear_tmp():
        """Partial files a kill left in tmp/: counted, checked, removed (disk space)."""
        names = os.listdir(tmp_directory)
        for name in names:
            path = os.path.join(tmp_directory, name)
            assert os.path.getsize(path) <= len(expected)
            os.unlink(path)
        return len(names)

    durations = []
    for _ in range(5):
        started = time.monotonic()
        proc = start()
        assert proc.wait(timeout=30) == 0
        durations.append(time.monotonic() - started)
        proc.stdout.close()
        proc.stderr.close()
    assert check_and_clear_new() == 5
    duration = statistics.median(durations)

    chooser = random.Random(20261125)
    outcomes = {"exited 0": 0, "killed, no message": 0, "killed, message delivered": 0}
    leftovers = 0
    started_all = time.monotonic()
    for run in range(RUNS):
        if run % 10 == 9:
            # A run left alone: the kills' window follows the delivery time as it drifts
            # (the page cache and writeback of the earlier runs move it by 2x here).
            started = time.monotonic()
            proc = start()
            code = proc.wait(timeout=30)
            durations = durations[1:] + [time.monotonic() - started]
            duration = statistics.median(durations)
        else:
            proc = start()
            time.sleep(chooser.uniform(0, 1.2 * duration))
            proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        count = check_and_clear_new()
        leftovers += count_and_clear_tmp()
        if code == 0:
            assert count == 1, f"run {run} exited 0 but left {count} messages in new/"
            outcomes["exited 0"] += 1
        else:
            assert code == -signal.SIGKILL, f"run {run}: exit {code}"
            assert count in (0, 1), f"killed run {run} left {count} messages in new/"
            outcomes["killed, message delivered" if count else "killed, no message"] += 1
    elapsed = time.monotonic() - started_all
    print(f"{RUNS} runs, {RUNS - RUNS // 10} of them killed, median delivery {duration * 1000:.0f} ms, {elapsed:.1f} s: {outcomes};"
          f" {leftovers} partial files left in tmp/")
    assert outcomes["killed, no message"] >= RUNS // 5
    assert leftovers >= RUNS // 10, "kills did not land mid-write: make the message larger"
