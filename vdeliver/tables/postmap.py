"""The fallback reader: ask Postfix's own `/usr/sbin/postmap -q KEY TYPE:NAME`.

Used for hash: and btree: when the Berkeley DB binding (the `bdb` extra,
`pip install vdeliver[bdb]`) is not installed. postmap(1) exits 0 and prints
the value when found; exits 1 with nothing on stderr (warnings aside) when
not found; anything else -- a fatal error, a signal, a time-out, no postmap
-- is a TableError. When /etc/postfix/main.cf does not exist, postmap gets
a private, empty configuration directory (MAIL_CONFIG), as it refuses to run
without one. `note` tells the caller, once, that this slow path is in use.

Costs one postmap process (a few milliseconds) per distinct key.

Never: pass a key through a shell; treat "could not look" as "not found".
"""
import posix

from vdeliver.errors import TableError

POSTMAP = "/usr/sbin/postmap"
TIMEOUT = 30  # seconds; well inside pipe(8)'s time limit
DEFAULT_MAIN_CF = "/etc/postfix/main.cf"


class PostmapTable:
    note = None

    def __init__(self, spec, type_name, fixed_keys=True, note=None):
        self.spec = spec
        self.type_name = type_name  # "hash:/etc/postfix/vmailbox"
        self.fixed_keys = fixed_keys
        self.note = note
        self.answers = {}

    def lookup(self, key):
        if key not in self.answers:
            self.answers[key] = query(self.spec, self.type_name, key)
        return self.answers[key]


def query(spec, type_name, key):
    import subprocess
    # `-q -` reads keys from stdin: the only way to ask for the key "-".
    stdin_mode = key == "-"
    argv = [POSTMAP, "-q", "-" if stdin_mode else key, type_name]
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    private = None
    try:
        if not posix.access(DEFAULT_MAIN_CF, posix.R_OK):
            private = private_config_directory()
            environment["MAIL_CONFIG"] = private
        try:
            done = subprocess.run(
                argv, input=(key + "\n").encode("utf-8", "surrogateescape") if stdin_mode else b"",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
                timeout=TIMEOUT, close_fds=True)
        except subprocess.TimeoutExpired:
            raise TableError(f"{spec}: {POSTMAP} -q timed out after {TIMEOUT}s") from None
        except OSError as err:
            raise TableError(f"{spec}: cannot run {POSTMAP}: {err.strerror}") from None
    finally:
        if private:
            remove_private(private)
    stderr = done.stderr.decode("utf-8", "replace")
    problems = [line for line in stderr.splitlines() if ": warning: " not in line]
    if done.returncode == 0 and not problems:
        value = done.stdout.decode("utf-8", "surrogateescape")
        if value.endswith("\n"):
            value = value[:-1]
        if stdin_mode:
            value = value.partition("\t")[2]
        return value
    if done.returncode == 1 and not problems and not done.stdout:
        return None
    detail = problems[-1] if problems else f"exit status {done.returncode}"
    raise TableError(f"{spec}: postmap -q failed: {detail}")


def private_config_directory():
    import tempfile
    directory = tempfile.mkdtemp(prefix="vdeliver-postmap-")
    fd = posix.open(directory + "/main.cf", posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o600)
    posix.close(fd)
    return directory


def remove_private(directory):
    try:
        posix.unlink(directory + "/main.cf")
        posix.rmdir(directory)
    except OSError:
        pass
