"""Shared fixtures: the installed vdeliver and the unprivileged delivery user.

Outside CI a missing prerequisite (root, the installed command) skips with
the reason; in CI (CI=true) it fails (support.require).
"""
import os
import pwd
import subprocess

import pytest

from support import DELIVERY_USER, VDELIVER, require


@pytest.fixture(scope="session")
def delivery_user():
    """The unprivileged user vdeliver runs as; created when we are root."""
    require(os.geteuid() == 0, "needs root to create and switch to the delivery user")
    try:
        return pwd.getpwnam(DELIVERY_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        DELIVERY_USER], check=True)
        return pwd.getpwnam(DELIVERY_USER)


@pytest.fixture(scope="session")
def installed_vdeliver():
    require(os.access(VDELIVER, os.X_OK), f"{VDELIVER} is not installed (run scripts/install)")
    return VDELIVER
