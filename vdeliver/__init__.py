"""vdeliver: a delivery agent for Postfix virtual mailbox domains.

Start-up (pipe(8) starts one process per message): the pipe command's modules
are executed straight from the .pyc files pip compiled at install time, read
with posix in PIPE_MODULES order, instead of 17 trips through the import
system's finders and loaders (0.6 ms of a 7 ms delivery here).

Never: run stale code, or code from both this path and the import system. A
.pyc is used only under the rule the import system applies: this Python's
magic number, a timestamp header matching the source's mtime and size. If
any module is missing, stale, out of order or fails as it runs, every module
made here is removed again and the import system loads them all, as if this
path did not exist.
"""
__version__ = "0.1.0"

# The pipe command's modules, each after the modules it imports.
PIPE_MODULES = (
    "errors", "commitpoint", "address", "config", "log", "tables/__init__", "tables/textfile",
    "tables/cdb", "tables/texthash", "resolve", "message", "safepath", "sievescripts", "maildir",
    "privileges", "deliver", "cli",
)


def _load_pipe_modules():
    import _imp
    import marshal
    import posix
    import sys
    from _frozen_importlib_external import MAGIC_NUMBER
    if sys.flags.optimize:  # python -O reads .opt-1.pyc files, without asserts: leave it those
        return
    header = MAGIC_NUMBER + b"\0\0\0\0"  # flags 0: a timestamp .pyc, not a hash-based one
    suffix = f".{sys.implementation.cache_tag}.pyc"
    module_type = type(sys)
    try:
        for relative in PIPE_MODULES:
            folder, _, base = f"{__path__[0]}/{relative}".rpartition("/")
            name = f"{__name__}.{relative}".removesuffix("/__init__").replace("/", ".")
            if name in sys.modules:  # imported from its file by an earlier one: out of order
                raise ImportError(f"{name} comes too late in PIPE_MODULES")
            source = f"{folder}/{base}.py"
            st = posix.stat(source)
            pyc = f"{folder}/__pycache__/{base}{suffix}"
            fd = posix.open(pyc, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                # Its own size: reading into a large buffer maps and unmaps it, which cost
                # more here (0.4 ms for 15 files in a new process) than all the rest.
                data = posix.read(fd, posix.fstat(fd).st_size)
            finally:
                posix.close(fd)
            if (data[:8] != header
                    or data[8:12] != (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                    or data[12:16] != (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")):
                raise ImportError(f"{name}: no current .pyc")
            code = marshal.loads(memoryview(data)[16:])
            _imp._fix_co_filename(code, source)  # compiled elsewhere (a copied release)
            module = module_type(name)
            module.__file__ = source
            module.__package__ = name if base == "__init__" else name.rpartition(".")[0]
            if base == "__init__":
                module.__path__ = [folder]
            sys.modules[name] = module
            exec(code, module.__dict__)
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
    except Exception:  # noqa: BLE001 - any failure: undo, the import system loads them
        # Undo all of it. A module left in sys.modules, or as an attribute of this
        # package (which `from vdeliver import log` reads first), would live on beside
        # its second copy from the import system, with its own exception classes: an
        # UnknownUser that cli.py does not catch as a DeliveryError turns a 5.1.1 into
        # a 4.3.0.
        for name in [name for name in sys.modules if name.startswith(__name__ + ".")]:
            del sys.modules[name]
        for name, value in list(globals().items()):
            if type(value) is module_type and value.__name__ == f"{__name__}.{name}":
                del globals()[name]


_load_pipe_modules()
