"""Compiled Sieve scripts kept on disk, for the next process (pipe(8) starts one per message).

Compiling a 50-rule script costs more than running it (bench/sieve_bench.py), so
filtering.py keeps each compiled script (sieve/serial.py's text: data, never
code) in sieve_cache_directory (default: table_cache_directory, owned by the
delivery user; "" turns the cache off), one file per script named after its
path, `sieve-PATH.compiled` with PATH escaped as texthash.cache_path() does. An
entry is used only while its key still matches: the script's path, device,
inode, size, mtime and ctime (ns), the enabled extensions, the compile limits,
vdeliver's version and the format of serial.py and the installed code (the
sieve package's directory and its mtime) -- and the script's bytes, stored in
the entry and compared, so that an edit that keeps size and timestamps is not
served stale either. Scripts with include are never stored (an included file
may change unseen), nor scripts serial.py does not store (variables, regex...).

An entry that does not match, does not parse, or is not a regular file owned
by the delivery user (or root) and writable by it alone is ignored, and
rewritten after the compile: a temporary file (O_EXCL, O_NOFOLLOW, 0600) renamed
over it, so a reader sees the old entry or the new one, never half of one.
Trouble with the cache (an unwritable directory, a full disk) only means the
script is compiled this time.

Never: follow a symlink (the directory's last component and every entry are
opened with O_NOFOLLOW; rename replaces a planted link itself); write anywhere
but sieve_cache_directory (never a .svbin, nothing in sieve_dir); unpickle,
unmarshal or evaluate an entry; let trouble with the cache hide a time limit or
a signal (only OSError and ValueError mean "compile this time").
"""
import _thread
import posix

READ_FLAGS = posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC | posix.O_NONBLOCK
DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
MAX_ENTRY = 16 << 20
_code = []      # the installed code's stamp, computed once per process


def entry_name(path):
    """The cache file of the script at `path` (texthash.cache_path()'s escaping)."""
    escaped = path.replace("%", "%25").replace("/", "%2F")
    if len(escaped) > 200:
        from vdeliver.tables.cdb import djb_hash
        escaped = f"{djb_hash(escaped.encode('utf-8', 'surrogateescape')):08x}{escaped[-100:]}"
    return f"sieve-{escaped}.compiled"


def code_stamp():
    if not _code:
        from vdeliver import __version__, sieve
        from vdeliver.sieve import serial
        folder = sieve.__path__[0]
        st = posix.stat(folder)
        _code.append(f"{__version__} {serial.FORMAT} {folder} {st.st_mtime_ns}")
    return _code[0]


def key_of(script, extensions, limits):
    """Everything the compiled form depends on but the bytes, as bytes without a NUL."""
    exts = "default" if extensions is None else " ".join(sorted(extensions))
    numbers = " ".join(f"{name}={getattr(limits, name)!r}" for name in limits.__slots__)
    key = (f"{script.kind}\n{script.shown}\n{' '.join(map(str, script.identity))}\n"
           f"{len(script.source)}\n{exts}\n{numbers}\n{code_stamp()}")
    return key.replace("\0", "\\0").encode("utf-8", "surrogateescape")


def get(directory, script, extensions, limits, enabled):
    """The cached Script or CompileError of `script` (a sievescripts.Script), or None."""
    from vdeliver.sieve import serial
    try:
        dir_fd = posix.open(directory, DIR_FLAGS)
    except OSError:
        return None
    try:
        fd = posix.open(entry_name(script.shown), READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        posix.close(dir_fd)
    try:
        st = posix.fstat(fd)
        if ((st.st_mode & 0o170000) != 0o100000 or st.st_uid not in (0, posix.geteuid())
                or st.st_mode & 0o022 or st.st_size > MAX_ENTRY):
            return None
        data = posix.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        posix.close(fd)
    key, nul, rest = data.partition(b"\0")
    source = script.source
    if not nul or key != key_of(script, extensions, limits) or rest[:len(source)] != source:
        return None
    try:
        return serial.load(rest[len(source):].decode("utf-8", "surrogatepass"), enabled)
    except ValueError:       # not what dump() writes (UnicodeDecodeError is one too)
        return None


def put(directory, script, extensions, limits, compiled):
    """Best effort: store `compiled`; any failure leaves the old entry (or none) and no
    temporary file."""
    from vdeliver.sieve import serial
    text = serial.dump(compiled)
    if text is None:
        return
    data = b"".join((key_of(script, extensions, limits), b"\0", script.source,
                     text.encode("utf-8", "surrogatepass")))
    try:
        posix.mkdir(directory, 0o700)
    except OSError:
        pass
    try:
        dir_fd = posix.open(directory, DIR_FLAGS)
    except OSError:
        return
    name = entry_name(script.shown)
    # pid and thread: the daemon's delivery threads may store the same script at once
    temporary = f"{name}.{posix.getpid()}.{_thread.get_ident()}.tmp"
    fd = None
    try:
        try:
            posix.unlink(temporary, dir_fd=dir_fd)  # left by a process of the same pid
        except FileNotFoundError:
            pass
        fd = posix.open(temporary, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                        | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
        posix.close(fd)
        fd = None
        posix.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as error:
        if fd is not None:
            try:
                posix.close(fd)
            except OSError:
                pass
        try:
            posix.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        if not isinstance(error, (OSError, ValueError)):
            raise           # the time limit or a signal ends the delivery
    finally:
        posix.close(dir_fd)
