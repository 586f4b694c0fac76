"""vdeliver: a delivery agent for Postfix virtual mailbox domains.

Start-up (pipe(8) starts one process per message): the pipe command's modules
are executed straight from the .pyc files pip compiled at install time, read
with posix in PIPE_MODULES order, instead of 14 trips through the import
system's finders and loaders (0.6 ms of a 7 ms delivery here); a delivery
with a Sieve script loads SIEVE_MODULES the same way when its first script runs.

Never: run stale code, or code from both this path and the import system. A
.pyc is used only under the rule the import system applies: this Python's
magic number, a timestamp header matching the source's mtime and size. If
any module is missing, stale, out of order or fails as it runs, every module
of the list made here is removed again and the import system loads them all,
as if this path did not exist.
"""
__version__ = "0.1.0"

# The pipe command's modules, each after the modules it imports.
PIPE_MODULES = (
    "errors", "commitpoint", "address", "config", "log", "tables/__init__", "tables/cdb",
    "tables/texthash", "resolve", "message", "safepath", "maildir", "deliver", "cli",
)
# Not tables/textfile (texthash parses its file only when its cache misses) nor privileges
# (only run by hand as root): each module costs ~40,000 instructions and 4 system calls.
# What a pipe delivery with a Sieve script adds (sieveroute.SieveRoute loads them the same
# way: 0.7 ms of 4 here, bench/sieve_bench.py). "sieve/" makes the package before its modules;
# its __init__, which imports them, runs after them. The core extension comes before
# extensions/__init__, which imports it last; the others load when a script requires them.
# Not folders: a +extension delivery may have imported it already.
SIEVE_MODULES = (
    "filtering", "sieve/", "sieve/value", "sieve/registry", "sieve/comparators",
    "sieve/match", "sieve/result", "sieve/nodes",
    "sieve/interpreter", "sieve/message", "sieve/extensions/", "sieve/extensions/core",
    "sieve/extensions/__init__", "sieve/envelope", "sieve/limits", "sieve/script", "sieve/__init__",
    "sieve/serial", "sievecache",
)
# Only when a script is compiled: one from the compile cache (sievecache.py) runs without them.
SIEVE_COMPILER_MODULES = ("sieve/lexer", "sieve/parser", "sieve/validator")
# Before them, when deliver.py finds that the recipient may have a script.
SIEVE_ROUTE_MODULES = ("sievescripts", "sieveroute")


MAX_PYC_SIZE = 1 << 16  # a larger .pyc (no listed module's is half that) goes to the import system


def load_modules(modules):
    """Run `modules` (PIPE_MODULES order: names below this package, "x/" for a package
    whose __init__ comes later) from their .pyc files; on any failure leave them to the
    import system. Not for threads: the import system's module locks are not taken."""
    import _imp
    import gc
    import marshal
    import posix
    import sys
    from _frozen_importlib_external import MAGIC_NUMBER
    if sys.flags.optimize:  # python -O reads .opt-1.pyc files, without asserts: leave it those
        return
    header = MAGIC_NUMBER + b"\0\0\0\0"  # flags 0: a timestamp .pyc, not a hash-based one
    suffix = f".{sys.implementation.cache_tag}.pyc"
    module_type = type(sys)
    before = set(sys.modules)
    shells = []  # packages made before their __init__ runs
    # No cyclic collection while the modules are made, and none of their objects (which
    # live as long as the process) walked by a later one: the pipe command's import ran
    # two collections over them, 0.1 ms per message (bench/results/pipe-bench-n500-2026-12-01-b.txt).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for relative in modules:
            shell = relative.endswith("/")
            relative = relative + "__init__" if shell else relative
            folder, _, base = f"{__path__[0]}/{relative}".rpartition("/")
            name = f"{__name__}.{relative}".removesuffix("/__init__").replace("/", ".")
            module = sys.modules.get(name)
            if module is not None and not (base == "__init__" and module in shells and not shell):
                # imported from its file by an earlier one: out of order
                raise ImportError(f"{name} comes too late in its module list")
            source = f"{folder}/{base}.py"
            if module is None:
                module = module_type(name)
                module.__file__ = source
                module.__package__ = name if base == "__init__" else name.rpartition(".")[0]
                if base == "__init__":
                    module.__path__ = [folder]
                sys.modules[name] = module
                if shell:
                    shells.append(module)
                    parent, _, child = name.rpartition(".")
                    setattr(sys.modules[parent], child, module)
                    continue
            st = posix.stat(source)
            pyc = f"{folder}/__pycache__/{base}{suffix}"
            fd = posix.open(pyc, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                # One read, no fstat: a regular file's read is short only at its end. The
                # buffer stays under malloc's mmap threshold (128 KiB): a larger one is mapped
                # and unmapped on every read (0.4 ms for 15 files in a new process).
                data = posix.read(fd, MAX_PYC_SIZE)
            finally:
                posix.close(fd)
            if len(data) >= MAX_PYC_SIZE:
                raise ImportError(f"{name}: .pyc of {MAX_PYC_SIZE} bytes or more")
            if (data[:8] != header
                    or data[8:12] != (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                    or data[12:16] != (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")):
                raise ImportError(f"{name}: no current .pyc")
            code = marshal.loads(memoryview(data)[16:])
            _imp._fix_co_filename(code, source)  # compiled elsewhere (a copied release)
            exec(code, module.__dict__)
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
        gc.freeze()
    except Exception:  # noqa: BLE001 - any failure: undo, the import system loads them
        # Undo all of it: every module of this package that appeared meanwhile (made
        # here, or imported by one made here). A module left in sys.modules, or as an
        # attribute of its package (which `from vdeliver import log` reads first), would
        # live on beside its second copy from the import system, with its own exception
        # classes: an UnknownUser that cli.py does not catch as a DeliveryError turns a
        # 5.1.1 into a 4.3.0.
        for name in [name for name in sys.modules
                     if name.startswith(__name__ + ".") and name not in before]:
            module = sys.modules.pop(name)
            parent, _, child = name.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is module:
                delattr(sys.modules[parent], child)
    finally:
        if collecting:
            gc.enable()


load_modules(PIPE_MODULES)
