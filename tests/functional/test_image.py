"""The pipe modules' fast start (vdeliver/__init__.py): executed straight from the .pyc files
pip compiled when they are current, imported by the import system otherwise, never both."""
import os
import py_compile
import shutil
import subprocess
import sys

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
])
def test_a_pyc_it_cannot_use_midway_leaves_the_import_system_to_it(package_copy, damage):
    python, directory = package_copy
    source = directory / "vdeliver" / "deliver.py"
    pyc = directory / "vdeliver" / "__pycache__" / f"deliver.{TAG}.pyc"
    if damage == "garbage":
        pyc.write_bytes(b"garbage")
    elif damage == "missing":
        pyc.unlink()
    else:
        py_compile.compile(str(source), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    loaded, _, where = pipe_modules(python, directory)
    assert loaded == 0 and where == "vdeliver.cli"


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
