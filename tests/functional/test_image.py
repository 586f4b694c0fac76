"""The module image (vdeliver/image.py): used when current, ignored when stale, never wrong."""
import os
import shutil
import subprocess
import sys

import pytest

from support import VDELIVER, require

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import vdeliver.cli, vdeliver.image
from_image = [m for m in vdeliver.image.MODULES if m in sys.modules and sys.modules[m].__spec__ is None]
print(len(from_image), len(vdeliver.image.MODULES), vdeliver.cli.main.__module__)
"""


@pytest.fixture
def package_copy(tmp_path):
    require(os.access(VDELIVER, os.X_OK), f"{VDELIVER} is not installed (run scripts/install)")
    prefix = os.path.dirname(os.path.dirname(VDELIVER))
    python = os.path.join(prefix, "bin", "python3")
    site = os.path.join(prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                        "site-packages")
    shutil.copytree(os.path.join(site, "vdeliver"), tmp_path / "vdeliver")
    subprocess.run([python, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r});"
                    "import vdeliver.image; vdeliver.image.write_image()"], check=True)
    return python, tmp_path


def modules_from_image(python, directory):
    out = subprocess.run([python, "-I", "-S", "-c", CHECK, str(directory)], capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[0]), int(out[1]), out[2]


def test_installed_command_has_a_current_image():
    require(os.access(VDELIVER, os.X_OK), f"{VDELIVER} is not installed (run scripts/install)")
    python = os.path.join(os.path.dirname(VDELIVER), "python3")
    assert subprocess.run([python, "-I", "-m", "vdeliver.image", "--check"]).returncode == 0


def test_every_pipe_module_comes_from_a_current_image(package_copy):
    python, directory = package_copy
    loaded, total, where = modules_from_image(python, directory)
    assert loaded == total and where == "vdeliver.cli"


def test_a_changed_source_makes_the_image_ignored(package_copy):
    python, directory = package_copy
    source = directory / "vdeliver" / "message.py"
    source.write_text(source.read_text() + "\nCHANGED = True\n")
    loaded, total, _ = modules_from_image(python, directory)
    assert loaded == 0
    out = subprocess.run([python, "-I", "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                          "import vdeliver.message as m; print(m.CHANGED)", str(directory)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_a_corrupt_image_is_ignored(package_copy):
    python, directory = package_copy
    (directory / "vdeliver" / "_image.marshal").write_bytes(b"garbage")
    loaded, _, where = modules_from_image(python, directory)
    assert loaded == 0 and where == "vdeliver.cli"
