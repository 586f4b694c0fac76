"""IMAP keywords of a Maildir, in Dovecot's `dovecot-keywords` file.

A message's keywords are letters after its maildir(5) flags (`:2,Sab`): letter
`a` + N is keyword number N of the folder's `dovecot-keywords`, whose lines are
`N name`. At most 26 per folder. A new keyword is added as Dovecot does it: the
new file is written to the dotlock `dovecot-keywords.lock` (created with
O_EXCL) and renamed over `dovecot-keywords`, so readers see the old or the new
file, never a partial one.

Never: fail a delivery over keywords (a lock that stays held, a full table: the
keyword is dropped and the caller notes it); follow a symlink; rewrite
numbers Dovecot has given out.
"""
import posix
import time

FILE = "dovecot-keywords"
LOCK = FILE + ".lock"
MAX_KEYWORDS = 26
LOCK_WAIT_SECONDS = 2.0
STALE_LOCK_SECONDS = 120


def read(dir_fd):
    """{number: name} of dovecot-keywords (missing: empty)."""
    try:
        fd = posix.open(FILE, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return {}
    try:
        data = b""
        while len(data) < 65536:
            chunk = posix.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        posix.close(fd)
    table = {}
    for line in data.decode("utf-8", "replace").splitlines():
        number, _, name = line.partition(" ")
        if number.isdigit() and name and int(number) < MAX_KEYWORDS:
            table[int(number)] = name
    return table


def letters(dir_fd, keywords):
    """(letters, dropped): the letters for keywords, adding unknown ones to the file.
    A dovecot-keywords that cannot be read (a symlink: ELOOP, a directory, EIO)
    drops every keyword: never a reason to fail the delivery."""
    try:
        table = read(dir_fd)
        missing = [word for word in keywords if find(table, word) is None]
        dropped = []
        if missing:
            table, dropped = add(dir_fd, missing)
    except OSError:
        return "", list(keywords)
    chosen = sorted({chr(ord("a") + number) for word in keywords
                     for number in [find(table, word)] if number is not None})
    return "".join(chosen), dropped


def find(table, word):
    for number, name in table.items():
        if name.lower() == word.lower():  # IMAP keywords compare case-insensitively
            return number
    return None


def add(dir_fd, words):
    """Add words under the dotlock; returns (the table as written, words dropped)."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fd = posix.open(LOCK, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                            | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            try:
                age = time.time() - posix.stat(LOCK, dir_fd=dir_fd, follow_symlinks=False).st_mtime
                if age > STALE_LOCK_SECONDS:
                    posix.unlink(LOCK, dir_fd=dir_fd)
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() >= deadline:
                return read(dir_fd), list(words)
            time.sleep(0.05)
        except OSError:
            return read(dir_fd), list(words)
    try:
        table = read(dir_fd)  # again, under the lock
        dropped = []
        for word in words:
            if find(table, word) is not None:
                continue
            free = next((n for n in range(MAX_KEYWORDS) if n not in table), None)
            if free is None:
                dropped.append(word)
                continue
            table[free] = word
        text = "".join(f"{number} {name}\n" for number, name in sorted(table.items()))
        posix.write(fd, text.encode("utf-8"))
        posix.fsync(fd)
        posix.close(fd)
        fd = None
        posix.rename(LOCK, FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return table, dropped
    except BaseException as error:  # OSError, or a time limit: never leave the lock
        try:
            posix.unlink(LOCK, dir_fd=dir_fd)
        except OSError:
            pass
        if not isinstance(error, OSError):
            raise
        return read(dir_fd), list(words)
    finally:
        if fd is not None:
            try:
                posix.close(fd)
            except OSError:
                pass
