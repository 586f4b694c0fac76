"""conftest.py - the cluster fixtures: three delivery hosts (cluster.py) and a private Postfix
(tests/e2e/harness.py, mode lmtp, no Dovecot) that delivers cluster.example to them.

Postfix reaches the hosts by `transport_maps = pgsql:...` (the same private PostgreSQL the
hosts read their mailboxes from): `lmtp:inet:vdpool:24` for the rotating run, where the
chrooted lmtp(8) finds the name vdpool with all three addresses in the chroot's own
/etc/hosts (RUN/postfix/spool/etc/hosts, `multi on` in its host.conf, with lmtp_randomize_addresses = yes, the default,
and no connection cache); per-user failover lists for the pinned run.

Missing prerequisites go through support.require (a skip with the reason; a failure in CI).
Everything is torn down by finalizers on every exit path: daemons, PostgreSQL, Postfix,
the mount, the namespaces and the bridge.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import cluster  # noqa: E402
from support import require  # noqa: E402

QUOTA_USERS = {f"shared@{cluster.DOMAIN}": "1G", f"tight@{cluster.DOMAIN}": "50C"}


def report_tail(path, lines=40):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="module")
def hosts(request):
    """The Cluster: network, shared storage (the test module's STORAGE: ext4 by default),
    PostgreSQL, h1..h3 running."""
    missing = cluster.missing_prerequisites()
    require(not missing, "the cluster tests need " + "; ".join(missing))
    vdeliver = os.environ.get("VDELIVER_BIN", "/opt/vdeliver/bin/vdeliver")
    require(os.access(vdeliver, os.X_OK), f"{vdeliver} is not installed (scripts/install)")
    storage = getattr(request.module, "STORAGE", "ext4")
    if storage == "moosefs":
        require(all(os.access(f"/usr/{d}", os.X_OK) for d in
                    ("sbin/mfsmaster", "sbin/mfschunkserver", "bin/mfsmount")),
                "MooseFS is not installed (scripts/setup-cluster)")
        require(os.path.exists("/dev/fuse"), "no /dev/fuse: MooseFS's client is a FUSE mount")
    if storage == "nfsmodel":
        require(os.path.exists("/dev/fuse"), "no /dev/fuse: the NFS model is a FUSE mount")
        require(subprocess.run(["/usr/bin/python3", "-c", "import fusepy"]).returncode == 0,
                "python3-fusepy is not installed (scripts/setup-cluster)")
    c = cluster.Cluster(3, storage=storage, vdeliver=vdeliver,
                        quota_users={**QUOTA_USERS, **getattr(request.module, "QUOTA_USERS", {})},
                        extra_users=[f"new{k}@{cluster.DOMAIN}" for k in range(20)],
                        model_faults=getattr(request.module, "MODEL_FAULTS", ""))
    request.addfinalizer(c.stop)
    c.start()
    return c


@pytest.fixture(scope="module")
def postfix(hosts, request):
    import harness
    missing = [m for m in harness.missing_prerequisites() if "ovecot" not in m and "dovenull" not in m]
    require(not missing, "; ".join(missing))
    h = cluster.postfix_in_front(hosts, list(QUOTA_USERS))
    request.addfinalizer(h.stop)
    h.start()
    cluster.write_chroot_hosts(h, hosts)
    return h


@pytest.fixture
def cluster_up(hosts):
    """Every host running again (a test may have killed, frozen or replaced one)."""
    hosts.ensure_running()
    yield hosts
    hosts.ensure_running()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "hosts" in item.fixturenames:
        c = item.funcargs.get("hosts")
        if c is not None:
            for host in c.hosts:
                report.sections.append((f"{host.name} log tail", report_tail(host.log)))
                report.sections.append((f"{host.name} output", report_tail(host.output)))
        h = item.funcargs.get("postfix")
        if h is not None:
            report.sections.append(("Postfix maillog tail", report_tail(h.maillog, 60)))
