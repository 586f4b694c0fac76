"""Atomic, durable delivery of one message into a Maildir (maildir(5)).

Steps, in a mailbox directory opened by safepath (no symlinks): make tmp/,
new/ and cur/ (0700) when missing; create tmp/NAME with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600; write; fsync;
close and check; link to new/NAME,S=<size> (a fresh name on EEXIST); fsync
new/; unlink tmp/NAME. With Sieve, one tmp file is linked into every target;
a target whose copy editheader changed gets its own tmp file (one per distinct
content), written and fsynced before the commit and linked in the same one. The message counts as delivered only after the fsync
of new/ (marlam/mpop#8: an unlink may reach the disk before the link). The
link and that fsync are the commit point (commitpoint.py): no signal handler
raises inside it, and once new/ is durable nothing changes the outcome.

NAME is `<sec>.M<usec>P<pid>Q<n>R<random hex>.<host>`, host from
maildir_hostname or gethostname() with `/` -> `\\057` and `:` -> `\\072`; `,S=`
is the exact file size, which Dovecot trusts. A link that reports EEXIST although
it made the link (NFS) is recognised by its inode, never linked a second time.

Never: follow a symlink below the base; write outside it; leave a file in
tmp/ or a partial file in new/ on any failure; report success before the
fsyncs; fail a delivery whose file is durable in new/. Uses `posix` directly (what `os` wraps) to keep the pipe command's
start-up small. Raises DeliveryError subclasses (errors.from_os_error).
"""
import posix
import time

from vdeliver import safepath
from vdeliver.errors import MailboxUnavailable, from_os_error

FILE_FLAGS = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
NAME_ATTEMPTS = 5
_deliveries = 0  # Q<n>: deliveries made by this process


HOSTNAME = ""  # maildir_hostname (deliver.py sets it): containers that all share one


def hostname():
    name = HOSTNAME or posix.uname().nodename or "localhost"
    return name.replace("/", "\\057").replace(":", "\\072")


def unique_name():
    global _deliveries
    _deliveries += 1
    now = time.time_ns()
    seconds, micro = divmod(now // 1000, 1_000_000)
    return (f"{seconds}.M{micro}P{posix.getpid()}Q{_deliveries}"
            f"R{posix.urandom(8).hex()}.{hostname()}")


def open_maildir_dirs(mailbox_fd, shown):
    """Return (tmp fd, new fd) of the Maildir at mailbox_fd; tmp, new, cur made if missing."""
    fds = []
    try:
        for sub in ("tmp", "new", "cur"):
            fds.append(safepath.open_subdir(mailbox_fd, sub, f"{shown}/{sub}"))
        posix.close(fds.pop())  # cur/: only made, never written by a delivery agent
        return fds[0], fds[1]
    except BaseException:
        for fd in fds:
            posix.close(fd)
        raise


def create_tmp_file(tmp_fd, shown):
    for _ in range(NAME_ATTEMPTS):
        name = unique_name()
        try:
            return name, posix.open(name, FILE_FLAGS, 0o600, dir_fd=tmp_fd)
        except FileExistsError:
            continue
        except OSError as err:
            raise from_os_error(err, f"create {shown}/tmp/{name}") from None
    raise MailboxUnavailable(f"no unique file name in {shown}/tmp")


class Target:
    """One Maildir the message is linked into: the directory open at fd (INBOX or a
    Maildir++ folder), shown as `shown`, and the maildir(5) info: "" for new/, or
    ":2,FLAGS" (system flag letters, then keyword letters) for cur/; content: None
    for the message as written, or the Content (another file in tmp/) that the
    route made for this target (a copy that Sieve's editheader changed)."""
    __slots__ = ("fd", "shown", "info", "content")

    def __init__(self, fd, shown, info="", content=None):
        self.fd, self.shown, self.info, self.content = fd, shown, info, content


class Content:
    """A file in tmp/ beside the message: its name and exact size."""
    __slots__ = ("name", "size")

    def __init__(self, name, size):
        self.name, self.size = name, size


def deliver(mailbox_fd, shown, write_message, gate=None, point=None):
    """Deliver one message into the Maildir open at mailbox_fd; return its name in new/."""
    (name,) = store(mailbox_fd, shown, write_message, gate=gate, point=point)
    return name.split("/", 1)[1]


def store(mailbox_fd, shown, write_message, route=None, gate=None, point=None):
    """Write the message once into mailbox_fd's tmp/, then link it into every target.

    write_message(fd) writes the message and returns its size. route, when given,
    is called as route(open_message, size, copy) once the message is in tmp/
    (open_message() returns it as a binary file: Sieve reads it there) and
    returns the Targets (INBOX and folders of the same filesystem); [] stores
    nothing (a Sieve discard); an exception from it removes tmp/ and propagates
    (a Sieve reject). copy(write) writes another file into tmp/ as the message
    was (write(fd) -> size; fsynced, closed) and returns its Content, for a
    Target whose message differs (editheader): one file per distinct content,
    all linked in the same commit. Without route the target is mailbox_fd itself.
    gate, when given, is called as gate(size, copies, total) (total: the bytes
    of all the copies stored) and returns a context manager held around the
    commit (the quota check and update); its exit must not raise.
    point is the delivery's commitpoint.CommitPoint (default: the pipe
    command's). Returns each stored file as "new/NAME" or "cur/NAME:2,FLAGS", in
    target order. On any exception nothing is left in tmp/, new/ or cur/; once
    commit() has made every target durable, nothing here raises.
    """
    from vdeliver import commitpoint
    point = point or commitpoint.PROCESS
    tmp_fd, new_fd = open_maildir_dirs(mailbox_fd, shown)
    name = stored = None
    opened = []  # (Target, fd of its new/ or cur/) of the targets other than INBOX's new/
    extra = []   # names of the further files in tmp/ (copy())

    def copy(write):
        copy_name, copy_fd = create_tmp_file(tmp_fd, shown)
        extra.append(copy_name)
        return Content(copy_name, write_and_close(copy_fd, write, f"{shown}/tmp/{copy_name}"))
    try:
        name, fd = create_tmp_file(tmp_fd, shown)
        size = write_and_close(fd, write_message, f"{shown}/tmp/{name}")
        targets = [Target(mailbox_fd, shown)]
        if route is not None:
            targets = route(lambda: open_tmp(tmp_fd, name), size, copy)
        places = []
        for target in targets:
            if target.fd == mailbox_fd and not target.info:
                places.append((target, new_fd))
                continue
            sub_fd = open_target_dir(target)
            opened.append(sub_fd)
            places.append((target, sub_fd))
        if not places:
            point.done()  # nothing to store (discard): a success that needs no commit
            stored = []
        elif gate is None:
            stored = commit(tmp_fd, places, name, size, point)
        else:
            total = sum(size if t.content is None else t.content.size for t, _ in places)
            with gate(size, len(places), total):
                stored = commit(tmp_fd, places, name, size, point)
    except BaseException:
        point.hold()  # the cleanup must finish: nothing left in tmp/
        for tmp_name in ([name] if name is not None else []) + extra:
            remove(tmp_fd, tmp_name)
        for fd in (tmp_fd, new_fd, *opened):
            close_quietly(fd)
        if stored is not None and point.committed:
            return stored  # durable: whatever failed after the commit, it is delivered
        raise
    for tmp_name in [name, *extra]:
        remove(tmp_fd, tmp_name)
    for fd in (tmp_fd, new_fd, *opened):
        close_quietly(fd)
    return stored


def open_tmp(tmp_fd, name):
    """The message just written to tmp/, as a binary file to read."""
    fd = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=tmp_fd)
    return open(fd, "rb", closefd=True)


def open_target_dir(target):
    """new/ or cur/ of a target (its tmp/, new/, cur/ made if missing)."""
    tmp_fd, new_fd = open_maildir_dirs(target.fd, target.shown)
    close_quietly(tmp_fd)
    if not target.info:
        return new_fd
    close_quietly(new_fd)
    return safepath.open_subdir(target.fd, "cur", f"{target.shown}/cur")


def commit(tmp_fd, places, name, size, point):
    """The commit point (commitpoint.py): link tmp/name (or the place's own content)
    into each place, fsync each.

    From point.enter() on no signal handler raises; the only failure left is a
    directory that cannot be made durable, and then every link is taken back
    (marlam/mpop#8: an unlink may reach the disk before the link)."""
    point.enter()
    made = []  # (dir fd, file name, shown "new/NAME")
    doing = ""
    try:
        for target, dir_fd in places:
            sub = "cur" if target.info else "new"
            doing = f"link into {target.shown}/{sub}"
            content = target.content or Content(name, size)
            made.append((dir_fd, *link_into(tmp_fd, dir_fd, content.name, content.size, target,
                                            sub)))
        synced = set()
        for (target, dir_fd), (_, _, stored) in zip(places, made):
            if dir_fd not in synced:
                doing = f"fsync {target.shown}/{stored.split('/', 1)[0]}"
                posix.fsync(dir_fd)
                synced.add(dir_fd)
    except OSError as err:
        for dir_fd, file_name, _ in made:
            remove(dir_fd, file_name)
        raise from_os_error(err, doing) from None
    except BaseException:
        for dir_fd, file_name, _ in made:
            remove(dir_fd, file_name)
        raise
    point.done()
    return [shown for _, _, shown in made]


def link_into(tmp_fd, dir_fd, name, size, target, sub):
    """Link tmp/name to SUB/name,S=size[info]; on EEXIST retry with a fresh name, unless
    the name already is this very file: on NFS a link() whose reply was lost is retried
    by the client and reports EEXIST although it succeeded (link(2), BUGS; Dovecot's
    nfs_safe_link()). Linking again under a new name would deliver the message twice."""
    file_name = f"{name},S={size}{target.info}"
    for _ in range(NAME_ATTEMPTS):
        try:
            posix.link(name, file_name, src_dir_fd=tmp_fd, dst_dir_fd=dir_fd)
            return file_name, f"{sub}/{file_name}"
        except FileExistsError:
            if same_file(tmp_fd, name, dir_fd, file_name):
                return file_name, f"{sub}/{file_name}"
            file_name = f"{unique_name()},S={size}{target.info}"
    raise MailboxUnavailable(f"no unique file name in {target.shown}/{sub}")


def same_file(dir_a, name_a, dir_b, name_b):
    """True when both names are links to one inode (never following a symlink)."""
    try:
        a = posix.stat(name_a, dir_fd=dir_a, follow_symlinks=False)
        b = posix.stat(name_b, dir_fd=dir_b, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def write_and_close(fd, write_message, shown):
    """Write, fsync, close: each checked, the fd closed on every path."""
    try:
        size = write_message(fd)
        posix.fsync(fd)
    except OSError as err:
        close_quietly(fd)
        raise from_os_error(err, f"write {shown}") from None
    except BaseException:
        close_quietly(fd)
        raise
    try:
        posix.close(fd)  # NFS reports some write errors only at close (maildir(5))
    except OSError as err:
        raise from_os_error(err, f"close {shown}") from None
    return size


def close_quietly(fd):
    try:
        posix.close(fd)
    except OSError:
        pass


def remove(dir_fd, name):
    try:
        posix.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
