"""Constants and the skip-or-fail policy shared by every test directory."""
import os
import re

import pytest

VDELIVER = os.environ.get("VDELIVER_BIN", "/opt/vdeliver/bin/vdeliver")
IN_CI = os.environ.get("CI") == "true"
DELIVERY_USER = os.environ.get("VDELIVER_TEST_USER", "vmail")


def require(condition, why):
    """Skip outside CI, fail in CI: nothing is silently skipped there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {why}")
    pytest.skip(why)


ABSOLUTE_PATH = re.compile(rb"(^|[\s(:=<])/[\w.-]")
ERRNO_TEXT = re.compile(rb"Errno|No such file|Permission denied|No space left|Read-only file system"
                        rb"|Input/output error|Disk quota|File too large|Bad file descriptor"
                        rb"|Connection refused|Traceback|\.py:\d")


def assert_public(status_line):
    """A status line (pipe's stdout, an LMTP reply) carries no private detail: no
    absolute path, no errno text, no exception class or source line (those go to
    the log line, which the queue id joins to the delivery)."""
    if isinstance(status_line, str):
        status_line = status_line.encode("utf-8", "surrogateescape")
    assert not ABSOLUTE_PATH.search(status_line), status_line
    assert not ERRNO_TEXT.search(status_line), status_line


def side_by_side(function, arguments):
    """function(argument) for each argument, each on a thread of its own, all at once;
    the results in order. An exception in any of them fails the caller's test."""
    import threading
    results, errors = [None] * len(arguments), []

    def one(index):
        try:
            results[index] = function(arguments[index])
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(arguments))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors
    return results


def wait_until(condition, seconds=10):
    """True as soon as condition() is; else condition() once more after `seconds`."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
