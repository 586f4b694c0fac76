"""vdeliver: a delivery agent for Postfix virtual mailbox domains.

Start-up (pipe(8) starts one process per message): when the installation has
a module image (`_image.marshal`, written by `python -m vdeliver.image` at
install time), the pipe command's modules are executed from it in one read,
instead of ~13 separate file imports (about 0.8 ms of a 10 ms delivery here).

Never: run stale code. The image is used only when it was made by this
Python version and every source file still has the size and mtime recorded
in it; otherwise, or if anything in it fails, it is ignored and the normal
import system loads the modules from their files.
"""
__version__ = "0.1.0"


def _load_image():
    import marshal
    import posix
    import sys
    directory = __path__[0]
    try:
        fd = posix.open(directory + "/_image.marshal", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:
        data = posix.read(fd, 1 << 22)
    finally:
        posix.close(fd)
    try:
        tag, modules = marshal.loads(data)
        if tag != sys.implementation.cache_tag + sys.version:
            return
        for name, relative, size, mtime_ns, code in modules:
            st = posix.stat(directory + relative)
            if st.st_size != size or st.st_mtime_ns != mtime_ns:
                return
    except Exception:
        return
    module_type = type(sys)
    loaded = []
    try:
        for name, relative, size, mtime_ns, code in modules:
            module = module_type(name)
            module.__file__ = directory + relative
            module.__package__ = name.rpartition(".")[0]
            if relative.endswith("/__init__.py"):
                module.__path__ = [module.__file__.rpartition("/")[0]]
                module.__package__ = name
            sys.modules[name] = module
            loaded.append(name)
            exec(code, module.__dict__)
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
    except Exception:
        for name in loaded:
            sys.modules.pop(name, None)


_load_image()
