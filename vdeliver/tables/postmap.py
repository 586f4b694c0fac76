"""The fallback reader: ask Postfix's own `/usr/sbin/postmap -q KEY TYPE:NAME`.

Used for hash: and btree: when the Berkeley DB binding (the `bdb` extra,
`pip install vdeliver[bdb]`) is not installed. postmap(1) exits 0 and prints
the value when found; exits 1 with nothing on stderr (warnings aside) when
not found; anything else -- a fatal error, a signal, a time-out, no postmap
-- is a TableError. `note` tells the caller, once, that this slow path is in
use.

postmap never reads the system's /etc/postfix/main.cf: each query gets a
private configuration directory (MAIL_CONFIG, a temporary directory removed
after the query) whose main.cf says `compatibility_level = 2`,
`smtputf8_enable` as vdeliver.cf does (address.py), and `meta_directory` =
that directory, which holds no dynamicmaps.cf: postmap then knows only its
built-in table types, and hash: and btree: are built in. Why: main.cf may be absent
(Debian's postfix installed without configuration; postmap then dies with
"fatal: open /etc/postfix/main.cf"), empty (compatibility_level 0, so postmap
folds ASCII only and looks up non-UTF-8 keys) or say anything else; vdeliver's
answers must depend on vdeliver.cf alone, the same through this fallback as
through the native readers and in the LMTP daemon. Nothing else in main.cf
changes what `postmap -q` answers for hash: or btree:.

Costs one postmap process (a few milliseconds) per distinct key. The answers
remembered are at most MAX_ANSWERS (then forgotten all at once): the LMTP
daemon keeps a table open for days, and every RCPT of a dictionary attack is
a new key.

Threads: each query is a process of its own; the answers remembered are a
dict (one operation to read, one to write): two threads asking the same key
at once both run postmap, and get the same answer.


Never: pass a key through a shell; treat "could not look" as "not found";
read /etc/postfix/main.cf.
"""
import posix

from vdeliver import address
from vdeliver.errors import TableError

MAX_ANSWERS = 10000  # remembered answers (see the top)
POSTMAP = "/usr/sbin/postmap"
TIMEOUT = 30  # seconds; well inside pipe(8)'s time limit


class PostmapTable:
    note = None

    def __init__(self, spec, type_name, fixed_keys=True, note=None):
        self.spec = spec
        self.type_name = type_name  # "hash:/etc/postfix/vmailbox"
        self.fixed_keys = fixed_keys
        self.note = note
        self.answers = {}

    def lookup(self, key):
        answer = self.answers.get(key, self)
        if answer is self:
            answer = query(self.spec, self.type_name, key)
            if len(self.answers) >= MAX_ANSWERS:
                self.answers.clear()
            self.answers[key] = answer
        return answer


def query(spec, type_name, key):
    import subprocess
    # `-q -` reads keys from stdin: the only way to ask for the key "-".
    stdin_mode = key == "-"
    argv = [POSTMAP, "-q", "-" if stdin_mode else key, type_name]
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        private = private_config_directory()
    except OSError as err:
        raise TableError(f"{spec}: cannot make a configuration directory for {POSTMAP}:"
                         f" {err.strerror}") from None
    environment["MAIL_CONFIG"] = private
    try:
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


def main_cf_text(directory):
    """What the private main.cf states: all that postmap -q's answers depend on."""
    utf8 = "yes" if address.SMTPUTF8_ENABLE else "no"
    return (f"# written by vdeliver for postmap -q (vdeliver/tables/postmap.py)\n"
            f"compatibility_level = 2\nsmtputf8_enable = {utf8}\nmeta_directory = {directory}\n")


def private_config_directory():
    import tempfile
    import time
    directory = tempfile.mkdtemp(prefix="vdeliver-postmap-")
    try:
        fd = posix.open(directory + "/main.cf",
                        posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW, 0o600)
        try:
            posix.write(fd, main_cf_text(directory).encode())
            # Dated back a minute: Postfix re-reads a file changed within the last second
            # until it "cools down" (dict_load_file()), which cost 2 s per postmap run.
            past = int(time.time()) - 60
            posix.utime(fd, (past, past))
        finally:
            posix.close(fd)
    except OSError:
        remove_private(directory)
        raise
    return directory


def remove_private(directory):
    try:
        posix.unlink(directory + "/main.cf")
        posix.rmdir(directory)
    except OSError:
        pass
