"""The pipe modules' fast start (vdeliver/__init__.py): executed straight from the .pyc files
pip compiled when they are current, imported by the import system otherwise, never both."""
import os
import py_compile
import shutil
import subprocess
import sys
import time

import pytest

from support import VDELIVER, require

VERSION = "python%d.%d" % sys.version_info[:2]
TAG = sys.implementation.cache_tag

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import vdeliver.cli
names = [("vdeliver." + m).removesuffix("/__init__").replace("/", ".")
         for m in vdeliver.PIPE_MODULES]
fast = [m for m in names if m in sys.modules and sys.modules[m].__spec__ is None]
# one copy of each module: every package attribute that is a module is the one in sys.modules
one_copy = all(sys.modules.get(package.__name__ + "." + key) is value
               for package in (vdeliver, getattr(vdeliver, "tables", vdeliver))
               for key, value in vars(package).items() if type(value) is type(sys))
print(len(fast), len(names), vdeliver.cli.main.__module__, one_copy)
"""


def installed():
    require(os.access(VDELIVER, os.X_OK), f"{VDELIVER} is not installed (run scripts/install)")
    prefix = os.path.dirname(os.path.dirname(VDELIVER))
    return prefix, os.path.join(prefix, "lib", VERSION, "site-packages")


def pipe_modules(python, directory):
    """(modules run from their .pyc here, modules in PIPE_MODULES, where cli.main comes from)"""
    out = subprocess.run([python, "-I", "-S", "-c", CHECK, str(directory)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[3] == "True", "two copies of a module"
    return int(out[0]), int(out[1]), out[2]


def compile_timestamped(path):
    """A .pyc as pip writes it (SOURCE_DATE_EPOCH would make py_compile write a hash-based one)."""
    py_compile.compile(str(path), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)


@pytest.fixture
def package_copy(tmp_path):
    prefix, site = installed()
    shutil.copytree(os.path.join(site, "vdeliver"), tmp_path / "vdeliver")  # mtimes kept
    return os.path.join(prefix, "bin", "python3"), tmp_path


def test_every_pipe_module_of_the_installed_command_runs_from_its_pyc():
    prefix, site = installed()
    loaded, total, where = pipe_modules(os.path.join(prefix, "bin", "python3"), site)
    assert loaded == total and where == "vdeliver.cli"


def test_a_copied_package_runs_from_its_pyc_with_its_own_file_names(package_copy):
    python, directory = package_copy
    loaded, total, _ = pipe_modules(python, directory)
    assert loaded == total
    out = subprocess.run([python, "-I", "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                          "import vdeliver.cli as c; print(c.main.__code__.co_filename)",
                          str(directory)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(directory / "vdeliver" / "cli.py")


def test_a_changed_source_is_imported_from_its_file(package_copy):
    python, directory = package_copy
    source = directory / "vdeliver" / "message.py"
    source.write_text(source.read_text() + "\nCHANGED = True\n")
    loaded, _, where = pipe_modules(python, directory)
    assert loaded == 0 and where == "vdeliver.cli"
    out = subprocess.run([python, "-I", "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                          "import vdeliver.message as m; print(m.CHANGED)", str(directory)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


@pytest.mark.parametrize("damage", [
    pytest.param("garbage", id="corrupt pyc"),
    pytest.param("missing", id="no pyc"),
    pytest.param("hash-based", id="hash-based pyc, valid for the import system"),
    pytest.param("oversized", id="pyc larger than the one read (valid for the import system)"),
])
def test_a_pyc_it_cannot_use_midway_leaves_the_import_system_to_it(package_copy, damage):
    python, directory = package_copy
    source = directory / "vdeliver" / "deliver.py"
    pyc = directory / "vdeliver" / "__pycache__" / f"deliver.{TAG}.pyc"
    if damage == "garbage":
        pyc.write_bytes(b"garbage")
    elif damage == "missing":
        pyc.unlink()
    elif damage == "oversized":  # marshal ignores what follows the code: the import system takes it
        pyc.write_bytes(pyc.read_bytes() + b"\0" * 70000)
    else:
        py_compile.compile(str(source), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    loaded, _, where = pipe_modules(python, directory)
    assert loaded == 0 and where == "vdeliver.cli"


GC_CHECK = """
import gc, sys
if sys.argv[2] == "disabled":
    gc.disable()
sys.path.insert(0, sys.argv[1])
collections = []
gc.callbacks.append(lambda phase, info: collections.append(phase))
import vdeliver.cli
print(gc.isenabled(), gc.get_freeze_count() > 3000, len(collections))
"""


@pytest.mark.parametrize("before, enabled", [
    pytest.param("enabled", "True", id="collector on"),
    pytest.param("disabled", "False", id="collector off before the import"),
])
def test_the_pipe_modules_are_made_without_a_collection_and_then_frozen(package_copy, before,
                                                                        enabled):
    """No cyclic collection runs while the pipe modules are made (one ran twice over them,
    0.1 ms per message), their objects end frozen (out of every later collection's walk),
    and the collector is left as it was."""
    python, directory = package_copy
    out = subprocess.run([python, "-I", "-S", "-c", GC_CHECK, str(directory), before],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [enabled, "True", "0"]


def test_a_delivery_through_a_current_cache_reads_only_the_pipe_modules(mail):
    """strace the installed command, not as root, with its texthash cache current: it opens
    the pipe modules' .pyc files and none other of the package, so neither the table
    parser (tables/textfile: only when the cache misses) nor privileges (only as root)."""
    require(shutil.which("strace"), "needs strace (scripts/setup-e2e installs it)")
    cache = os.path.join(mail.top, "cache")
    os.mkdir(cache, 0o700)
    os.chown(cache, mail.user.pw_uid, mail.user.pw_gid)
    mail.write_config(f"table_cache_directory = {cache}\n")
    past = time.time() - 60  # a table written just now is not cached (texthash.HOT_SECONDS)
    os.utime(mail.table_path, (past, past))
    assert mail.run("-f", "s@x", "--", "bob@example.com").code == 0  # writes the cache
    trace = os.path.join(mail.top, "strace.out")
    with open(trace, "w"):
        pass
    os.chown(trace, mail.user.pw_uid, mail.user.pw_gid)
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,open", "-o", trace]
                          + mail.command("-f", "s@x", "--", "bob@example.com"),
                          input=b"Subject: x\n\nbody\n", capture_output=True, cwd="/",
                          env={"PATH": "/usr/bin:/bin"}, user=mail.user.pw_uid,
                          group=mail.user.pw_gid, extra_groups=[], timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b""), proc
    assert len(mail.new_files("example.com/bob")) == 2
    with open(trace) as fh:
        calls = fh.read()
    assert "texthash-" in calls, "the trace saw the cache being opened"
    opened = sorted({line.split('"')[1].rsplit("/vdeliver/", 1)[1]
                     for line in calls.splitlines() if '.pyc"' in line and "/vdeliver/" in line})
    prefix, site = installed()
    modules = subprocess.run([os.path.join(prefix, "bin", "python3"), "-I", "-S", "-c",
                              "import sys; sys.path.insert(0, sys.argv[1]); import vdeliver;"
                              " print(*vdeliver.PIPE_MODULES)", site],
                             capture_output=True, text=True, check=True).stdout.split()
    wanted = sorted(f"{m.rpartition('/')[0] + '/' if '/' in m else ''}__pycache__/"
                    f"{m.rpartition('/')[2]}.{TAG}.pyc" for m in ["__init__"] + modules)
    assert opened == wanted
    assert not {"tables/__pycache__/textfile.%s.pyc" % TAG, "__pycache__/privileges.%s.pyc" % TAG} \
        & set(opened)


def test_python_dash_o_is_left_to_the_import_system(package_copy):
    python, directory = package_copy
    out = subprocess.run([python, "-O", "-I", "-S", "-c", "import sys; sys.path.insert(0,"
                          " sys.argv[1]); import vdeliver.cli as c; print(c.__spec__ is None,"
                          " c.__spec__.cached.endswith('.opt-1.pyc'))", str(directory)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_pipe_modules_out_of_import_order_are_ignored(package_copy):
    python, directory = package_copy
    init = directory / "vdeliver" / "__init__.py"
    # cli first: it imports the others through the import system before their turn comes
    init.write_text(init.read_text().replace('"errors", "commitpoint"', '"cli", "errors", "commitpoint"'))
    loaded, _, where = pipe_modules(python, directory)
    assert loaded == 0 and where == "vdeliver.cli"


# A module whose code fails on the fast path only (its .pyc is current): the fault a
# MemoryError under a tight RLIMIT_AS gives for real. The files themselves import fine.
FAST_PATH_ONLY = '\nif __spec__ is None:\n    raise RuntimeError("fails on the fast path only")\n'


@pytest.mark.parametrize("failing", [
    pytest.param("errors", id="first module fails"),
    pytest.param("deliver", id="a module after resolve fails"),
    pytest.param("cli", id="last module fails"),
])
def test_a_module_that_fails_midway_leaves_no_module_behind(mail, failing):
    """After a failed fast start the import system loads everything as if there had been none:
    no module made by it stays (in sys.modules or as a package attribute) beside its second
    copy from the import system, whose UnknownUser the first copy's code would raise and cli.py
    would not catch as a DeliveryError (5.1.1 would come out as 4.3.0, a deferral)."""
    prefix, site = installed()
    root = os.path.join(mail.top, "release")
    package = os.path.join(root, "lib", VERSION, "site-packages", "vdeliver")
    shutil.copytree(os.path.join(site, "vdeliver"), package)
    with open(os.path.join(package, failing + ".py"), "a") as fh:
        fh.write(FAST_PATH_ONLY)
    compile_timestamped(os.path.join(package, failing + ".py"))
    os.makedirs(os.path.join(root, "bin"))
    launcher = os.path.join(root, "bin", "vdeliver")
    shutil.copy(VDELIVER, launcher)
    for top, _, files in os.walk(root):
        os.chmod(top, 0o755)
        for name in files:
            os.chmod(os.path.join(top, name), 0o755)
    run = dict(capture_output=True, cwd="/", env={"PATH": "/usr/bin:/bin"}, user=mail.user.pw_uid,
               group=mail.user.pw_gid, extra_groups=[])
    unknown = subprocess.run([launcher, "-c", mail.config_path, "-f", "s@x", "--",
                              "nobody@example.com"], input=b"Subject: x\n\nbody\n", **run)
    assert (unknown.returncode, unknown.stdout) == (67, b"5.1.1 user unknown: nobody@example.com")
    known = subprocess.run([launcher, "-c", mail.config_path, "-f", "s@x", "--", "bob@example.com"],
                           input=b"Subject: x\n\nbody\n", **run)
    assert (known.returncode, known.stdout) == (0, b"")
    assert len(mail.new_files("example.com/bob")) == 1


TABLE_MODULE = """
import sys, threading
sys.path.insert(0, sys.argv[1])
import vdeliver.tables
if sys.argv[2] == "thread":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
vdeliver.tables.open_table("socketmap:unix:/nonexistent:name")
module = sys.modules["vdeliver.tables.socketmap"]
print(module.__spec__ is None, vdeliver.tables.socketmap is module)
"""


@pytest.mark.parametrize("threads, fast", [("none", "True"), ("thread", "False")])
def test_a_table_module_runs_from_its_pyc_only_without_other_threads(threads, fast):
    """tables.open_table() loads a table type's module as the pipe modules are loaded, but
    not in a process with threads (the LMTP daemon): load_modules takes no import lock."""
    prefix, site = installed()
    out = subprocess.run([os.path.join(prefix, "bin", "python3"), "-I", "-S", "-c", TABLE_MODULE,
                          site, threads], capture_output=True, text=True, check=True).stdout.split()
    assert out == [fast, "True"]
