"""Find a recipient's Sieve scripts where Pigeonhole keeps them, and read them safely.

The recipient's home (`~`) is the virtual_home_maps result (looked up as the
mailbox is, relative to virtual_mailbox_base), or else the Maildir itself. With
Pigeonhole's parameter names and defaults, so an admin copies 90-sieve.conf:
- sieve_script (~/.dovecot.sieve): the personal script. ManageSieve makes it a
  relative symlink into sieve_dir (~/sieve); that symlink is the one link
  followed, and only to a file below the home, each component of the target
  opened with O_NOFOLLOW;
- sieve_default: runs when the user has no personal script;
- sieve_before, sieve_after: files, or directories whose `*.sieve` files run in
  byte order of their names;
- include :personal "x" reads sieve_dir/x.sieve, :global "x" sieve_global_dir/x.sieve.
A path starting with `~/` is below the home; any other must be absolute (the
admin's own files). The user log is the personal script's path + `.log`.

Finding the scripts costs a few stat calls and imports nothing of vdeliver.sieve:
a recipient without a script pays nothing more.

Never: follow a symlink below the home other than the active-script link, or
that link out of the home; read a script over sieve_max_script_size; write
anything but the user log (never a `.svbin`, never anything in sieve_dir).
Raises nothing for a missing or unreadable script: it is reported in
Script.problem, and the delivery keeps the message.
"""
import posix

from vdeliver import safepath

READ_FLAGS = posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC | posix.O_NONBLOCK
LOG_ROTATE_BYTES = 64 << 10


class Script:
    """One script of the sequence: kind is before, personal, default or after."""
    __slots__ = ("kind", "shown", "source", "problem", "identity", "log")

    def __init__(self, kind, shown, source=None, problem="", identity=None, log=None):
        self.kind, self.shown, self.source, self.problem = kind, shown, source, problem
        self.identity = identity  # (dev, ino, size, mtime_ns, ctime_ns): the compile caches' key
        self.log = log            # (home fd, relative path) of the user log, personal only

    @property
    def name(self):
        base = self.shown.rsplit("/", 1)[-1]
        return base[:-6] if base.endswith(".sieve") else base


class Place:
    """The recipient's home: an open directory (or None, with the problem) and how to show it."""
    __slots__ = ("fd", "shown", "problem")

    def __init__(self, fd, shown, problem=""):
        self.fd, self.shown, self.problem = fd, shown, problem

    def close(self):
        if self.fd is not None:
            posix.close(self.fd)
            self.fd = None


def open_home(base, relative):
    """The home below the base, opened without following links. A missing home means
    no personal script; an unsafe one (a symlink) is reported and not used."""
    from vdeliver.errors import MailboxUnavailable, UnsafeMailboxPath
    shown = f"{base.rstrip('/')}/{relative}"
    try:
        fd, shown = safepath.open_directory(base, relative, create=False)
    except FileNotFoundError:
        return Place(None, shown)
    except (UnsafeMailboxPath, MailboxUnavailable) as error:
        return Place(None, shown, f"home {shown} not used: {error.detail}")
    return Place(fd, shown)


def below_home(path):
    """'~/sieve' -> 'sieve'; None for a path that is not below the home."""
    if path == "~":
        return ""
    if path.startswith("~/"):
        return path[2:].strip("/")
    return None


def find(config, home, max_size):
    """The scripts of the sequence, in order: before..., personal or default, after...

    Returns [] when none is configured or present (the common case)."""
    scripts = []
    for path in config.get_list("sieve_before"):
        scripts += admin_scripts("before", path, home, max_size)
    personal = personal_script(config.get("sieve_script").strip(), home, max_size)
    if personal is not None:
        scripts.append(personal)
    else:
        for path in config.get_list("sieve_default"):
            scripts += admin_scripts("default", path, home, max_size)
    for path in config.get_list("sieve_after"):
        scripts += admin_scripts("after", path, home, max_size)
    return scripts


def personal_script(path, home, max_size):
    if not path:
        return None
    relative = below_home(path)
    if relative is None:
        return read_absolute("personal", path, max_size, missing_ok=True)
    if home.fd is None:
        return None
    shown = f"{home.shown}/{relative}"
    target = relative
    try:
        st = posix.stat(relative, dir_fd=home.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as err:
        return Script("personal", shown, problem=f"cannot examine {shown}: {err.strerror}")
    if (st.st_mode & 0o170000) == 0o120000:  # the ManageSieve active-script link
        target = active_link_target(home.fd, relative)
        if target is None:
            return Script("personal", shown,
                          problem=f"{shown} is a symlink that does not point to a file below the home")
    script = read_below(home, "personal", target, max_size, missing_ok=True)
    if script is not None:
        script.log = (home.fd, relative + ".log")
    return script


def active_link_target(home_fd, relative):
    """The home-relative path a relative symlink at `relative` names, or None if it
    is absolute or leaves the home."""
    try:
        link = posix.readlink(relative, dir_fd=home_fd)
    except OSError:
        return None
    if link.startswith("/"):
        return None
    parts = relative.split("/")[:-1]
    for part in link.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or None


def read_below(home, kind, relative, max_size, missing_ok=False):
    """Read home/relative, every component opened with O_NOFOLLOW."""
    shown = f"{home.shown}/{relative}"
    parent, _, name = relative.rpartition("/")
    dir_fd = None
    try:
        if parent:
            dir_fd, _ = walk(home.fd, parent, home.shown)
        fd = posix.open(name, READ_FLAGS, dir_fd=home.fd if dir_fd is None else dir_fd)
    except FileNotFoundError:
        return None if missing_ok else Script(kind, shown, problem=f"{shown} does not exist")
    except OSError as err:
        return Script(kind, shown, problem=f"cannot open {shown}: {err.strerror}")
    finally:
        if dir_fd is not None:
            posix.close(dir_fd)
    return read_open(kind, shown, fd, max_size)


def walk(top_fd, relative, shown):
    fd = posix.dup(top_fd)
    try:
        for part in relative.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                raise OSError(1, "'..' in a path below the home")
            child = posix.open(part, safepath.DIR_FLAGS, dir_fd=fd)
            posix.close(fd)
            fd = child
            shown = f"{shown}/{part}"
    except BaseException:
        posix.close(fd)
        raise
    return fd, shown


def read_absolute(kind, path, max_size, missing_ok=False):
    try:
        fd = posix.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None if missing_ok else Script(kind, path, problem=f"{path} does not exist")
    except OSError as err:
        return Script(kind, path, problem=f"cannot open {path}: {err.strerror}")
    return read_open(kind, path, fd, max_size)


def read_open(kind, shown, fd, max_size):
    try:
        st = posix.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:
            return Script(kind, shown, problem=f"{shown} is not a regular file")
        if st.st_size > max_size:
            return Script(kind, shown, problem=f"{shown} is larger than sieve_max_script_size")
        chunks, total = [], 0
        while total <= max_size:
            chunk = posix.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_size:
            return Script(kind, shown, problem=f"{shown} is larger than sieve_max_script_size")
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        return Script(kind, shown, b"".join(chunks), identity=identity)
    except OSError as err:
        return Script(kind, shown, problem=f"cannot read {shown}: {err.strerror}")
    finally:
        posix.close(fd)


def admin_scripts(kind, path, home, max_size):
    """A file, or the `*.sieve` files of a directory in byte order of their names."""
    relative = below_home(path)
    if relative is not None:
        if home.fd is None:
            return []
        script = read_below(home, kind, relative, max_size)
        return [script] if script is not None else []
    if not path.startswith("/"):
        return [Script(kind, path, problem=f"{path}: not an absolute path or ~/...")]
    try:
        names = posix.listdir(path)
    except NotADirectoryError:
        return [read_absolute(kind, path, max_size)]
    except FileNotFoundError:
        return [Script(kind, path, problem=f"{path} does not exist")]
    except OSError as err:
        return [Script(kind, path, problem=f"cannot list {path}: {err.strerror}")]
    names = sorted((name for name in names if name.endswith(".sieve")),
                   key=lambda name: name.encode("utf-8", "surrogateescape"))
    return [read_absolute(kind, f"{path.rstrip('/')}/{name}", max_size) for name in names]


def include_loader(config, home, max_size):
    """loader(location, name) -> bytes|None for the include extension."""
    personal_dir = config.get("sieve_dir").strip()
    global_dir = config.get("sieve_global_dir").strip()

    def load(location, name):
        if not name or "/" in name or name.startswith(".") or "\0" in name:
            return None
        directory = personal_dir if location == "personal" else global_dir
        if not directory:
            return None
        relative = below_home(directory)
        if relative is not None:
            if home.fd is None:
                return None
            script = read_below(home, location, f"{relative}/{name}.sieve".lstrip("/"), max_size,
                                missing_ok=True)
        else:
            script = read_absolute(location, f"{directory.rstrip('/')}/{name}.sieve", max_size,
                                   missing_ok=True)
        return None if script is None or script.problem else script.source
    return load


def write_user_log(script, lines):
    """Append to the personal script's log (`<script>.log`, as Pigeonhole); a log
    over LOG_ROTATE_BYTES starts again. Never raises, never follows a link."""
    if script.log is None or not lines:
        return
    import time
    dir_fd, relative = script.log
    parent, _, name = relative.rpartition("/")
    stamp = time.strftime("%b %d %H:%M:%S")
    text = "".join(f"{stamp} sieve: {line}\n" for line in lines).encode("utf-8", "replace")
    sub_fd = None
    try:
        if parent:
            sub_fd, _ = walk(dir_fd, parent, "")
        target = dir_fd if sub_fd is None else sub_fd
        flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_CLOEXEC
        fd = posix.open(name, flags, 0o600, dir_fd=target)
        try:
            if posix.fstat(fd).st_size > LOG_ROTATE_BYTES:
                posix.ftruncate(fd, 0)
            posix.write(fd, text)
        finally:
            posix.close(fd)
    except OSError:
        pass
    finally:
        if sub_fd is not None:
            posix.close(sub_fd)
