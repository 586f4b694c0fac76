"""Constants and the skip-or-fail policy shared by every test directory."""
import os

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
