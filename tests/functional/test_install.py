"""scripts/install as an upgrade: a new release beside the running one, then one atomic switch.

Installs twice into a scratch PREFIX (not the suite's /opt/vdeliver): PREFIX must
be a symbolic link that moves from the first release to the second, the first
release must stay whole and runnable (a pipe(8) process that started it before
the switch finishes with it), and only the three newest releases are kept.
"""
import os
import subprocess

from support import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def install(prefix):
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install"), prefix],
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return os.path.realpath(prefix)


def test_reinstall_switches_a_link_and_keeps_the_running_release(mail):
    require(os.geteuid() == 0, "scripts/install runs as root here (it creates vmail and /etc/vdeliver)")
    prefix = os.path.join(mail.top, "vdeliver")  # where the delivery user can reach it
    first = install(prefix)
    assert os.path.islink(prefix) and first.startswith(prefix + ".releases/")
    with open(os.path.join(first, "bin", "vdeliver"), "rb") as fh:
        assert fh.readline() == f"#!{first}/bin/python3 -IS\n".encode()
    second = install(prefix)
    assert second != first and os.path.realpath(prefix) == second
    # the first release, as a process started before the switch sees it: whole and working
    old = subprocess.run([os.path.join(first, "bin", "vdeliver"), "-c", mail.config_path, "-f", "s@x",
                          "--", "bob@example.com"], input=b"Subject: old\n\nbody\n", capture_output=True,
                         cwd="/", env={"PATH": "/usr/bin:/bin"}, user=mail.user.pw_uid,
                         group=mail.user.pw_gid, extra_groups=[], timeout=60)
    assert (old.returncode, old.stdout) == (0, b""), old
    assert len(mail.new_files("example.com/bob")) == 1
    install(prefix)
    fourth = install(prefix)
    releases = sorted(os.listdir(prefix + ".releases"))
    assert len(releases) == 3 and os.path.basename(fourth) == releases[-1]
    assert os.path.basename(first) not in releases
