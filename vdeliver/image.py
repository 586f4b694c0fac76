"""Write or check the module image that speeds up the pipe command's start-up.

    python -m vdeliver.image          write vdeliver/_image.marshal
    python -m vdeliver.image --check  exit 1 unless the image is present and current

The image holds, for each module of the pipe delivery path, its compiled
code and the size and mtime of its source; vdeliver/__init__.py executes
them in MODULES order (each module after those it imports) when all still
match. scripts/install writes it after pip installs the package.

Never: include a module whose imports come later in MODULES (the loader finds
them already imported from their files and ignores the image;
tests/functional/test_image.py checks that every module comes from the image).
"""
import marshal
import os
import sys

# The pipe command's modules, each after the modules it imports.
MODULES = (
    "vdeliver.errors", "vdeliver.address", "vdeliver.config", "vdeliver.log",
    "vdeliver.tables", "vdeliver.tables.textfile", "vdeliver.tables.cdb", "vdeliver.tables.texthash",
    "vdeliver.resolve", "vdeliver.message", "vdeliver.safepath", "vdeliver.maildir",
    "vdeliver.privileges",
    "vdeliver.deliver", "vdeliver.cli",
)
IMAGE_NAME = "_image.marshal"


def package_directory():
    return os.path.dirname(os.path.abspath(__file__))


def source_relative(name):
    """'vdeliver.tables.texthash' -> '/tables/texthash.py' (relative to the package)."""
    parts = name.split(".")[1:]
    directory = package_directory()
    if os.path.isdir(os.path.join(directory, *parts)):
        return "/" + "/".join(parts + ["__init__.py"])
    return "/" + "/".join(parts) + ".py"


def build_image():
    directory = package_directory()
    modules = []
    for name in MODULES:
        relative = source_relative(name)
        path = directory + relative
        with open(path, "rb") as fh:
            source = fh.read()
        st = os.stat(path)
        # optimize=2 drops docstrings (and asserts): a smaller image, a faster load.
        code = compile(source, path, "exec", dont_inherit=True, optimize=2)
        modules.append((name, relative, st.st_size, st.st_mtime_ns, code))
    return marshal.dumps((sys.implementation.cache_tag + sys.version, modules))


def write_image():
    path = os.path.join(package_directory(), IMAGE_NAME)
    temporary = path + ".tmp"
    with open(temporary, "wb") as fh:
        fh.write(build_image())
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


def image_is_current():
    import vdeliver
    modules = vdeliver._current_image()
    return bool(modules) and [entry[0] for entry in modules] == list(MODULES)


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if image_is_current() else 1)
    print(write_image())
