"""The module image (vdeliver/image.py): used when current, ignored when stale, never wrong."""
import marshal
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
# one copy of each module: every package attribute that is a module is the one in sys.modules
one_copy = all(sys.modules.get(package.__name__ + "." + key) is value
               for package in (vdeliver, getattr(vdeliver, "tables", vdeliver))
               for key, value in vars(package).items() if type(value) is type(sys))
print(len(from_image), len(vdeliver.image.MODULES), vdeliver.cli.main.__module__, one_copy)
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
    assert out[3] == "True", "two copies of a module"
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


def test_an_image_out_of_import_order_is_ignored(package_copy):
    python, directory = package_copy
    path = directory / "vdeliver" / "_image.marshal"
    tag, modules = marshal.loads(path.read_bytes())
    path.write_bytes(marshal.dumps((tag, modules[::-1])))  # cli first: it imports the others
    loaded, _, where = modules_from_image(python, directory)
    assert loaded == 0 and where == "vdeliver.cli"


# The image's code for one module fails as it runs; its sizes and mtimes still match, so the
# loader starts on it (in life: a MemoryError under a tight RLIMIT_AS, a source edited with
# its size and mtime restored). The files themselves are sound.
FAILING_IMAGE = """
import marshal, sys
sys.path.insert(0, sys.argv[1])
import vdeliver.image as image
tag, modules = marshal.loads(image.build_image())
modules = [entry[:4] + (compile("raise RuntimeError('image fault')", entry[1], "exec"),)
           if entry[0] == sys.argv[2] else entry for entry in modules]
with open(image.os.path.join(image.package_directory(), image.IMAGE_NAME), "wb") as fh:
    fh.write(marshal.dumps((tag, modules)))
"""


@pytest.mark.parametrize("failing", [
    pytest.param("vdeliver.errors", id="first module fails"),
    pytest.param("vdeliver.deliver", id="a module after resolve fails"),
    pytest.param("vdeliver.cli", id="last module fails"),
])
def test_an_image_that_fails_midway_leaves_no_module_behind(mail, failing):
    """After a failed image load the files are imported as if there were no image: no module
    from the image stays (in sys.modules or as a package attribute) beside its second copy
    from the file, whose UnknownUser the first copy's code would raise and cli.py would not
    catch as a DeliveryError (5.1.1 would come out as 4.3.0, a deferral)."""
    prefix = os.path.dirname(os.path.dirname(VDELIVER))
    version = "python%d.%d" % sys.version_info[:2]
    root = os.path.join(mail.top, "release")
    site = os.path.join(root, "lib", version, "site-packages")
    shutil.copytree(os.path.join(prefix, "lib", version, "site-packages", "vdeliver"),
                    os.path.join(site, "vdeliver"))
    os.makedirs(os.path.join(root, "bin"))
    launcher = os.path.join(root, "bin", "vdeliver")
    shutil.copy(VDELIVER, launcher)
    python = os.path.join(prefix, "bin", "python3")
    subprocess.run([python, "-I", "-S", "-c", FAILING_IMAGE, site, failing], check=True)
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
