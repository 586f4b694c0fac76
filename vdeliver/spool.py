"""LMTP DATA: the decoder (dot-unstuffing, CRLF -> LF) and the spool file it fills.

Decoder turns what an LMTP client sends after 354 into the message as pipe(8)
would hand it over (RFC 5321 4.5.2): the data ends at the first CRLF.CRLF; a
line that starts with a dot loses that dot; CRLF becomes LF; a bare CR or LF
is kept. It works chunk by chunk, never line by line, and holds at most one
line (a line longer than MAX_DATA_LINE is passed on as it comes). No sockets:
tests/unit/test_spool.py feeds it by hand.

Spool is one unnamed file (O_TMPFILE) per session, reused for each message,
that knows its length (where the filesystem has no O_TMPFILE, as NFS and FUSE
filesystems such as MooseFS: a file created with O_EXCL under a random
dot-name and unlinked at once, so it is visible for one system call): reader() gives back exactly the bytes written since
the last reset(), so a truncate that failed can never hand the previous
message's tail to the next recipient. Between messages the file keeps its
blocks (at most KEEP bytes: a longer message's are given back at once).

Never: hold a message in memory; read past the current message's length;
make the spool visible beyond that moment (it has no name, and is gone when
closed); open it without O_EXCL|O_NOFOLLOW. Raises
OSError (the front end classifies it with errors.from_os_error).
"""
import posix

CHUNK_SIZE = 1 << 16
MAX_DATA_LINE = 1 << 20
KEEP = 1 << 18  # a spool file larger than this (256 KiB) is truncated between messages
END = b"\r\n.\r\n"


class Decoder:
    """feed(bytes) -> the decoded bytes ready for the spool; done and rest once the final
    dot was seen (rest: what came after it, e.g. pipelined commands)."""

    def __init__(self):
        # Unprocessed input. When it starts at a line boundary it starts with the CRLF that
        # ended the previous line (a dummy one at first), so the end is the first CRLF.CRLF
        # and dot-unstuffing is replacing CRLF. by CRLF.
        self.pending = b"\r\n"
        self.first = True
        self.done = False
        self.rest = b""

    def buffered(self):
        return len(self.pending)

    def feed(self, data):
        pending = self.pending + data
        end = pending.find(END)
        if end >= 0:
            body, self.rest, self.pending, self.done = pending[:end + 2], pending[end + 5:], b"", True
        else:
            cut = pending.rfind(b"\r\n")
            if cut <= 0 and len(pending) > MAX_DATA_LINE:
                cut = len(pending) - 4  # inside a very long line: keep what may begin the end
            body, self.pending = (pending[:cut], pending[cut:]) if cut > 0 else (b"", pending)
        if not body:
            return b""
        text = body.replace(b"\r\n.", b"\r\n").replace(b"\r\n", b"\n")
        if self.first:
            text, self.first = text[1:], False  # the dummy line end
        return text


class Spool:
    """An unnamed file in `directory` holding one message at a time, and its length."""

    def __init__(self, directory):
        try:
            self.fd = posix.open(directory, posix.O_RDWR | posix.O_TMPFILE | posix.O_CLOEXEC,
                                 0o600)
        except OSError as err:
            import errno
            # open(2): EOPNOTSUPP where the filesystem lacks O_TMPFILE (NFS, FUSE), EISDIR
            # or EINVAL from kernels or filesystems that do not know the flag.
            if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            self.fd = named_then_unlinked(directory)
        self.length = 0
        self.high = 0  # the file's size: the longest message since the last truncate

    def write(self, data):
        view = memoryview(data)
        while view:
            written = posix.pwrite(self.fd, view, self.length)
            self.length += written
            view = view[written:]

    def reader(self):
        """read_chunk(size) over the current message: exactly `length` bytes, then b""."""
        offset, length, fd = 0, self.length, self.fd

        def read_chunk(size=CHUNK_SIZE):
            nonlocal offset
            if offset >= length:
                return b""
            data = posix.pread(fd, min(size, length - offset), offset)
            if not data:  # shorter than what was written: never deliver a partial message
                raise OSError(5, f"the DATA spool ends at {offset} of {length} bytes")  # EIO
            offset += len(data)
            return data

        return read_chunk

    def reset(self):
        """Start the next message. Reads never go past `length`, so what an earlier, longer
        message left beyond it is never read, and the file is truncated only when it holds
        more than KEEP bytes (the blocks go back to a disk that may need them; its failure
        changes nothing): truncating after every message, and allocating the blocks again
        for the next one, cost 19 us of the event loop's time per message here."""
        if self.length > self.high:
            self.high = self.length
        self.length = 0
        if self.high > KEEP:
            self.high = 0
            try:
                posix.ftruncate(self.fd, 0)
            except OSError:
                pass

    def close(self):
        posix.close(self.fd)


def named_then_unlinked(directory):
    """An O_EXCL file under a random dot-name in directory, unlinked at once: its fd."""
    name = f"{directory.rstrip('/')}/.vdeliver-spool.{posix.urandom(12).hex()}"
    fd = posix.open(name, posix.O_RDWR | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                    | posix.O_CLOEXEC, 0o600)
    try:
        posix.unlink(name)
    except BaseException:
        posix.close(fd)
        raise
    return fd
