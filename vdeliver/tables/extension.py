"""Load a driver's compiled extension module without its package's Python part.

`import berkeleydb` and `import lmdb` run package __init__ files that import
os and collections (about 3 ms and 1.5 ms of every delivery here) to offer
conveniences vdeliver does not use. load() finds the extension module file
(`package/name<suffix>` on sys.path) and initialises just that, as the import
system would; when anything about that fails it falls back to a normal
import, so the result is always the real module or ImportError.

Never: load a file from outside sys.path; never register a half-loaded module;
never take a time limit or a signal (TimeLimitExceeded, Interrupted) for a
reason to fall back: they end the delivery.
"""
import posix
import sys


def load(package, name):
    """The extension module `package.name` (e.g. berkeleydb._berkeleydb)."""
    full_name = f"{package}.{name}"
    module = sys.modules.get(full_name)
    if module is not None:
        return module
    try:
        return load_directly(package, name, full_name)
    except (ImportError, OSError, KeyError, AttributeError):
        pass  # not found or not loadable this way; never a time limit or a signal
    __import__(full_name)
    return sys.modules[full_name]


def load_directly(package, name, full_name):
    import _imp
    external = sys.modules["_frozen_importlib_external"]
    bootstrap = sys.modules["_frozen_importlib"]
    for entry in sys.path:
        for suffix in _imp.extension_suffixes():
            path = f"{entry or '.'}/{package}/{name}{suffix}"
            try:
                posix.stat(path)
            except OSError:
                continue
            spec = bootstrap.ModuleSpec(full_name, external.ExtensionFileLoader(full_name, path),
                                        origin=path)
            module = _imp.create_dynamic(spec)
            _imp.exec_dynamic(module)
            return module
    raise ImportError(f"no extension module {full_name} on sys.path")
