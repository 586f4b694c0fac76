"""vdeliver.load_modules(SIEVE_MODULES): a delivery with a Sieve script runs the Sieve
modules from their .pyc files when they are current, and leaves them to the import
system otherwise, never with two copies of a module."""
import compileall
import os
import py_compile
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import vdeliver.cli
import vdeliver
vdeliver.load_modules(vdeliver.SIEVE_MODULES)
from vdeliver import filtering, sieve
compiler = "vdeliver.sieve.validator" in sys.modules  # a script from the cache runs without it
vdeliver.load_modules(vdeliver.SIEVE_COMPILER_MODULES)  # as sieveroute.load_compiler()
names = [("vdeliver." + m).removesuffix("/").removesuffix("/__init__").replace("/", ".")
         for m in vdeliver.SIEVE_MODULES + vdeliver.SIEVE_COMPILER_MODULES]
fast = [m for m in dict.fromkeys(names) if m in sys.modules and sys.modules[m].__spec__ is None]
assert not compiler
packages = [sys.modules[n] for n in ("vdeliver", "vdeliver.sieve", "vdeliver.sieve.extensions")]
one_copy = all(sys.modules.get(package.__name__ + "." + key) is value
               for package in packages for key, value in vars(package).items()
               if type(value) is type(sys) and package.__name__ + "." + key in sys.modules)
script = sieve.compile(b'require "fileinto"; if header :contains "subject" "x" { fileinto "X"; }')
result = sieve.run(script, sieve.Message.from_bytes(b"Subject: x\\n\\n"), sieve.Envelope())
assert [a.mailbox for a in result.actions] == ["X"], result
print(len(fast), len(dict.fromkeys(names)), one_copy)
"""


@pytest.fixture
def package(tmp_path):
    shutil.copytree(os.path.join(ROOT, "vdeliver"), tmp_path / "vdeliver",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # timestamp .pyc files, as pip writes them (SOURCE_DATE_EPOCH would make hash-based ones)
    assert compileall.compile_dir(str(tmp_path / "vdeliver"), quiet=1,
                                  invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    return tmp_path


def loaded(directory):
    out = subprocess.run([sys.executable, "-I", "-S", "-c", CHECK, str(directory)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    fast, total, one_copy = out.stdout.split()
    assert one_copy == "True", "two copies of a module"
    return int(fast), int(total)


COMPILER = 3  # SIEVE_COMPILER_MODULES


def test_every_sieve_module_runs_from_its_pyc(package):
    fast, total = loaded(package)
    assert fast == total == 17 + COMPILER


@pytest.mark.parametrize("module", ["sieve/nodes", "sieve/__init__", "filtering", "sievecache"])
def test_a_stale_pyc_leaves_them_all_to_the_import_system(package, module):
    source = package / "vdeliver" / f"{module}.py"
    source.write_text(source.read_text() + "\nCHANGED = True\n")
    # the compiler's modules, loaded later, still come from their .pyc files
    assert loaded(package)[0] == COMPILER


def test_a_stale_compiler_pyc_leaves_the_compiler_to_the_import_system(package):
    source = package / "vdeliver" / "sieve" / "lexer.py"
    source.write_text(source.read_text() + "\nCHANGED = True\n")
    assert loaded(package) == (17, 17 + COMPILER)


@pytest.mark.parametrize("module, fast", [("sieve/interpreter", COMPILER), ("sieve/validator", 17)])
def test_a_module_that_fails_midway_leaves_no_module_behind(package, module, fast):
    source = package / "vdeliver" / f"{module}.py"
    source.write_text(source.read_text()
                      + '\nif __spec__ is None:\n    raise RuntimeError("fails on the fast path only")\n')
    py_compile.compile(str(source), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    assert loaded(package)[0] == fast
