"""The message: prepended delivery headers, streamed copy, header-block loop check.

vdeliver writes, as Postfix does, `Return-Path: <sender>`, `X-Original-To:
orig` and `Delivered-To: rcpt` above the message, then copies the message
bytes unchanged (8-bit, CRLF, NUL, no final newline), chunk by chunk.
While copying it scans the header block (up to the first empty line or the
first line that is not a header) for a `Delivered-To:` equal to the
recipient: that is a mail loop (5.4.6), as pipe(8)'s D flag finds it.

Never: hold the message in memory (only one chunk plus at most
MAX_HEADER_KEEP bytes of one header line); never put CR, LF or NUL from an
address into a header (address.check_* refused them before); never parse the
message with the `email` package (slow, and it rewrites).
"""
import posix

from vdeliver.address import fold, quote_local_part, to_bytes
from vdeliver.errors import InputError, MailLoop

CHUNK_SIZE = 1 << 16
MAX_HEADER_KEEP = 4096  # bytes of a Delivered-To value worth comparing


def delivery_headers(sender, recipient, original_recipient, eol=b"\n"):
    """Return-Path, X-Original-To (when given), Delivered-To, in Postfix's order.

    Addresses in external form, as Postfix's mail_copy() writes them: a local
    part that is not a dot-string is quoted (`"john doe"@example.com`).
    """
    lines = [b"Return-Path: <" + (to_bytes(quote_local_part(sender)) if sender else b"") + b">"]
    if original_recipient:
        lines.append(b"X-Original-To: " + to_bytes(quote_local_part(original_recipient)))
    lines.append(b"Delivered-To: " + to_bytes(quote_local_part(fold(recipient))))
    return eol.join(lines) + eol


def line_ending(first_chunk):
    """CRLF when the message's first line ends in CRLF (run by hand), else LF (pipe(8))."""
    newline = first_chunk.find(b"\n")
    return b"\r\n" if newline > 0 and first_chunk[newline - 1:newline] == b"\r" else b"\n"


MAX_DELIVERED_TO = 4096  # bytes of one Delivered-To field kept for the loop check


class HeaderScanner:
    """Watches the header block for a Delivered-To equal to the recipient."""

    def __init__(self, recipient):
        self.recipient = fold(recipient)
        # what delivery_headers() writes, and the bare form an older agent may have written
        self.loop_values = {self.recipient, quote_local_part(self.recipient)}
        self.pending = b""         # an incomplete line (at most MAX_HEADER_KEEP bytes)
        self.overlong = False      # the pending line was cut; skip to its newline
        self.delivered_to = None   # value parts of the current Delivered-To header
        self.kept = 0              # bytes in delivered_to

    def feed(self, chunk):
        """Scan more bytes; False once the header block has ended. May raise MailLoop."""
        data = self.pending + chunk if self.pending else chunk
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                rest = data[start:]
                if len(rest) > MAX_HEADER_KEEP:
                    rest, self.overlong = rest[:MAX_HEADER_KEEP], True
                self.pending = rest
                return True
            line = data[start:newline]
            start = newline + 1
            if self.overlong:
                self.overlong = False
                line = line[:MAX_HEADER_KEEP]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not self.take_line(line):
                self.pending = b""
                return False

    def finish(self):
        """End of input inside the header block (a message with no body)."""
        if self.pending:
            self.take_line(self.pending.rstrip(b"\r"))
            self.pending = b""
        self.end_header()

    def take_line(self, line):
        if line[:1] in (b" ", b"\t"):
            if self.delivered_to is not None:
                self.delivered_to.append(line)
                self.kept += len(line)
                if self.kept > MAX_DELIVERED_TO:  # longer than any address: no loop of ours,
                    self.delivered_to = None      # and millions of folded lines stay unheld
            return True
        self.end_header()
        colon = line.find(b":")
        if colon <= 0 or not is_header_name(line[:colon]):
            return False  # empty line or body text: the header block is over
        if line[:colon].lower() == b"delivered-to":
            self.delivered_to = [line[colon + 1:]]
            self.kept = len(line)
        return True

    def end_header(self):
        if self.delivered_to is None:
            return
        value = b"".join(self.delivered_to).strip(b" \t")
        self.delivered_to = None
        if value.startswith(b"<") and value.endswith(b">"):
            value = value[1:-1]
        if fold(value.decode("utf-8", "surrogateescape")) in self.loop_values:
            raise MailLoop(reason=f"mail forwarding loop for {self.recipient}")


def is_header_name(name):
    return all(33 <= byte <= 126 for byte in name)


def read_stdin(size=CHUNK_SIZE):
    try:
        return posix.read(0, size)
    except OSError as err:
        raise InputError(f"reading standard input: {err.strerror}") from None


def write_all(fd, data):
    view = memoryview(data)
    while view:
        written = posix.write(fd, view)
        view = view[written:]
    return len(data)


def copy_message(out_fd, read_chunk, sender, recipient, original_recipient, headers=True):
    """Write headers + message to out_fd; return the byte count. Raises MailLoop, InputError.

    headers=False (write_delivery_headers = no: pipe(8)'s D and R flags wrote them,
    and D checked for a loop): the message alone, no loop check.
    """
    chunk = read_chunk()
    size = 0
    if headers:
        size = write_all(out_fd, delivery_headers(sender, recipient, original_recipient,
                                                  line_ending(chunk)))
    scanner = HeaderScanner(recipient)
    scanning = headers
    while chunk:
        if scanning:
            scanning = scanner.feed(chunk)
        size += write_all(out_fd, chunk)
        chunk = read_chunk()
    if scanning:
        scanner.finish()
    return size
