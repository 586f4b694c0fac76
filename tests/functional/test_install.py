"""scripts/install as an upgrade, and a plain pip install, which must give the same command.

Installs twice into a scratch PREFIX (not the suite's /opt/vdeliver): PREFIX must
be a symbolic link that moves from the first release to the second, the first
release must stay whole and runnable (a pipe(8) process that started it before
the switch finishes with it), and only the three newest releases are kept.
"""
import os
import subprocess
import sys

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
    with open(os.path.join(first, "bin", "vdeliver"), "rb") as fh, \
            open(os.path.join(ROOT, "bin", "vdeliver"), "rb") as shipped:
        assert fh.read() == shipped.read()  # pip's installation is the final form
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


def test_a_plain_pip_install_gives_the_same_command(mail):
    """`pip install SOURCE` into a venv, nothing after it: the launcher as shipped (its
    "#!/usr/bin/python3 -ISXutf8" line kept, so no site, no shell, UTF-8 mode), the pipe modules run from
    pip's .pyc files, and the launcher's deferral when the package cannot be imported."""
    require(os.geteuid() == 0, "runs the command as the delivery user")
    venv, source = os.path.join(mail.top, "venv"), os.path.join(mail.top, "source")
    subprocess.run(f"tar -C {ROOT} --exclude=.git --exclude=.venv --exclude=.venv.releases"
                   f" --exclude=build --exclude='*.egg-info' -cf - . | (mkdir {source} &&"
                   f" tar -C {source} -xf -)", shell=True, check=True)
    subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
    done = subprocess.run([os.path.join(venv, "bin", "python3"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", source], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    subprocess.run(["chmod", "-R", "a+rX", venv], check=True)
    launcher = os.path.join(venv, "bin", "vdeliver")
    with open(launcher, "rb") as fh, open(os.path.join(ROOT, "bin", "vdeliver"), "rb") as shipped:
        assert fh.read() == shipped.read()
    site = os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    fast = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", "import sys; sys.path.insert(0,"
                           " sys.argv[1]); import vdeliver.cli; print(sum(sys.modules[m].__spec__"
                           " is None for m in sys.modules if m.startswith('vdeliver.')),"
                           " len(vdeliver.PIPE_MODULES))", site], capture_output=True, text=True,
                          check=True).stdout.split()
    assert fast[0] == fast[1], "pipe modules imported through the import system"

    def deliver(recipient, command=launcher):
        return subprocess.run([command, "-c", mail.config_path, "-f", "s@x", "--", recipient],
                              input=b"Subject: pip\n\nbody\n", capture_output=True, cwd="/",
                              env={"PATH": "/usr/bin:/bin"}, user=mail.user.pw_uid,
                              group=mail.user.pw_gid, extra_groups=[], timeout=60)
    assert (deliver("bob@example.com").returncode, len(mail.new_files("example.com/bob"))) == (0, 1)
    unknown = deliver("nobody@example.com")
    assert (unknown.returncode, unknown.stdout) == (67, b"5.1.1 user unknown: nobody@example.com")
    link = os.path.join(mail.top, "vdeliver-link")  # not beside its package: through site
    os.symlink(launcher, link)
    assert (deliver("bob@example.com", link).returncode, len(mail.new_files("example.com/bob"))) \
        == (0, 2)
    with open(os.path.join(site, "vdeliver", "cli.py"), "w") as fh:  # broken, as mid-upgrade
        fh.write("def (\n")
    broken = deliver("bob@example.com")
    assert broken.returncode == 75, broken
    assert broken.stdout.startswith(b"4.3.0 vdeliver cannot start: SyntaxError: "), broken
    assert len(mail.new_files("example.com/bob")) == 2
