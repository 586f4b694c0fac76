"""spool.Decoder: DATA as an LMTP client sends it -> the message as it is spooled.

RFC 5321 4.5.2: the data ends at CRLF.CRLF; a line that starts with a dot
loses that dot; CRLF line ends become LF (what pipe(8) hands over); a bare
CR or LF is kept as it is. No sockets: chunks are fed by hand, cut anywhere.
"""
import pytest

from vdeliver import spool

CASES = [
    pytest.param(b".\r\n", b"", b"", id="empty message"),
    pytest.param(b"a\r\nb\r\n.\r\n", b"a\nb\n", b"", id="two lines"),
    pytest.param(b"..x\r\n.\r\n", b".x\n", b"", id="dot-stuffed line"),
    pytest.param(b"..\r\n.\r\n", b".\n", b"", id="a line holding one dot, stuffed"),
    pytest.param(b"a\r\n.x\r\n.\r\n", b"a\nx\n", b"", id="leading dot of a line is removed"),
    pytest.param(b"a.\r\n.\r\n", b"a.\n", b"", id="dot at the end of a line is kept"),
    pytest.param(b"a\nb\rc\r\n.\r\n", b"a\nb\rc\n", b"", id="bare LF and bare CR kept"),
    pytest.param(b"a\r\n.\r\nQUIT\r\n", b"a\n", b"QUIT\r\n", id="commands pipelined after the dot"),
    pytest.param(b"a\r\n.\r\n.\r\n", b"a\n", b".\r\n", id="only the first final dot ends it"),
    pytest.param(b"a\r\n. \r\n.\r\n", b"a\n \n", b"", id="dot space is not the end"),
    pytest.param(b"\xff\x00\r\n.\r\n", b"\xff\x00\n", b"", id="8-bit and NUL kept"),
]


def decode(chunks):
    decoder = spool.Decoder()
    out = b""
    for chunk in chunks:
        assert not decoder.done
        out += decoder.feed(chunk)
    return out, decoder


@pytest.mark.parametrize("data, message, rest", CASES)
def test_decode_in_one_chunk(data, message, rest):
    out, decoder = decode([data])
    assert (out, decoder.done, decoder.rest) == (message, True, rest)


@pytest.mark.parametrize("data, message, rest", CASES)
def test_decode_cut_at_every_place(data, message, rest):
    for cut in range(1, len(data)):
        decoder = spool.Decoder()
        out = decoder.feed(data[:cut])
        if decoder.done:  # the end was in the first piece: the second is not DATA
            assert (out, decoder.rest + data[cut:]) == (message, rest), cut
            continue
        out += decoder.feed(data[cut:])
        assert (out, decoder.done, decoder.rest) == (message, True, rest), cut


def test_decode_byte_by_byte():
    data = b"Subject: x\r\n\r\n..a\r\nb\r\r\n\r\n.\r\nNOOP\r\n"
    out, decoder = decode([data[i:i + 1] for i in range(data.index(b"\r\n.\r\n") + 5)])
    assert out == b"Subject: x\n\n.a\nb\r\n\n" and decoder.done and decoder.rest == b""


def test_not_done_without_the_final_dot():
    out, decoder = decode([b"a\r\nb\r\n", b".x\r\n"])
    assert not decoder.done and out == b"a\nb\nx"  # the last line end is held back


def test_a_line_longer_than_max_data_line_streams_out():
    """Memory stays bounded: a line with no end is passed on as it comes, but for the last
    bytes, which may begin the final CRLF.CRLF."""
    decoder = spool.Decoder()
    total = 0
    for _ in range(4):
        total += len(decoder.feed(b"x" * spool.MAX_DATA_LINE))
        assert decoder.buffered() <= spool.MAX_DATA_LINE + 4
    assert total >= 3 * spool.MAX_DATA_LINE
    total += len(decoder.feed(b"\r\n.\r\n"))
    assert decoder.done and total == 4 * spool.MAX_DATA_LINE + 1


def test_spool_reads_back_exactly_its_length(tmp_path):
    """A spool that knows its length: a reused spool whose truncate did nothing still gives
    back only the current message."""
    box = spool.Spool(str(tmp_path))
    try:
        box.write(b"a long first message\n" * 100)
        box.reset()
        box.write(b"short\n")
        read_chunk = box.reader()
        got = b""
        while True:
            chunk = read_chunk(7)
            if not chunk:
                break
            got += chunk
        assert got == b"short\n" and box.length == 6
    finally:
        box.close()


def test_spool_truncates_only_past_keep(tmp_path):
    """Small messages reuse the spool's blocks (a truncate per message cost the event loop
    19 us); one longer than KEEP gives its blocks back at the next reset."""
    import os
    box = spool.Spool(str(tmp_path))
    try:
        box.write(b"x" * 5000)
        box.reset()
        box.write(b"y" * 100)
        assert os.fstat(box.fd).st_size == 5000          # not truncated: 100 bytes are the message
        read_chunk = box.reader()
        assert read_chunk(10_000) == b"y" * 100 and read_chunk() == b""
        box.reset()
        assert os.fstat(box.fd).st_size == 5000
        box.write(b"z" * (spool.KEEP + 1))
        box.reset()
        assert os.fstat(box.fd).st_size == 0             # past KEEP: the blocks go back
        box.write(b"w")
        box.reset()
        assert os.fstat(box.fd).st_size == 1
    finally:
        box.close()


def test_the_fallback_spool_where_o_tmpfile_is_missing_leaves_no_name(tmp_path):
    """NFS and FUSE filesystems (MooseFS: tests/cluster/test_moosefs.py) refuse O_TMPFILE
    with EOPNOTSUPP; the spool is then a file made with O_EXCL and unlinked at once."""
    import os
    fd = spool.named_then_unlinked(str(tmp_path))
    try:
        assert os.listdir(tmp_path) == []
        assert os.fstat(fd).st_nlink == 0 and os.fstat(fd).st_mode & 0o777 == 0o600
        os.pwrite(fd, b"message", 0)
        assert os.pread(fd, 100, 0) == b"message"
    finally:
        os.close(fd)
