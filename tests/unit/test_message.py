"""message.py: prepended headers, exact copy, header-block loop detection, bounded memory."""
import os

import pytest

from vdeliver.errors import MailLoop
from vdeliver.message import HeaderScanner, copy_message, delivery_headers


def chunks_of(data, size):
    parts = [data[i:i + size] for i in range(0, len(data), size)] + [b""]
    return iter(parts).__next__


def copy(data, recipient="bob@example.com", chunk=65536, sender="s@x", orig=""):
    path = f"/tmp/vdeliver-test-copy-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = copy_message(fd, chunks_of(data, chunk), sender, recipient, orig)
        os.lseek(fd, 0, 0)
        written = os.read(fd, size + 1)
        assert len(written) == size
        return written
    finally:
        os.close(fd)
        os.unlink(path)


def test_headers_in_postfix_order():
    assert delivery_headers("s@x", "Bob@Example.com", "orig@x") == (
        b"Return-Path: <s@x>\nX-Original-To: orig@x\nDelivered-To: bob@example.com\n")
    assert delivery_headers("", "b@x", "") == b"Return-Path: <>\nDelivered-To: b@x\n"


@pytest.mark.parametrize("body", [
    pytest.param(b"Subject: x\n\nline\n", id="plain"),
    pytest.param(b"Subject: \xe9t\xe9\n\n\x00\xff\r\nbare\rcr\nno final newline", id="8-bit NUL CR"),
    pytest.param(b"", id="empty"),
    pytest.param(b"no header at all", id="no header"),
])
@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_copy_is_exact(body, chunk):
    out = copy(body, chunk=chunk)
    prefix = b"Return-Path: <s@x>\nDelivered-To: bob@example.com\n"
    assert out == prefix + body


def test_crlf_message_gets_crlf_headers():
    out = copy(b"Subject: x\r\n\r\nbody\r\n")
    assert out.startswith(b"Return-Path: <s@x>\r\nDelivered-To: bob@example.com\r\nSubject")


@pytest.mark.parametrize("headers", [
    pytest.param(b"Delivered-To: bob@example.com\n", id="same"),
    pytest.param(b"delivered-to:   BOB@Example.COM  \n", id="case and spaces"),
    pytest.param(b"Delivered-To: <bob@example.com>\r\n", id="angle brackets crlf"),
    pytest.param(b"Delivered-To:\n bob@example.com\n", id="folded"),
    pytest.param(b"Received: x\nDelivered-To: other@x\nDelivered-To: bob@example.com", id="second one, no body"),
])
@pytest.mark.parametrize("chunk", [1, 65536])
def test_loop_detected(headers, chunk):
    with pytest.raises(MailLoop) as caught:
        copy(headers + b"\nbody\n", chunk=chunk)
    assert caught.value.status == "5.4.6"


@pytest.mark.parametrize("message", [
    pytest.param(b"Subject: x\n\nDelivered-To: bob@example.com\n", id="in the body"),
    pytest.param(b"Delivered-To: bob@example.com.evil\n\n", id="different address"),
    pytest.param(b"X-Delivered-To: bob@example.com\n\n", id="other header"),
    pytest.param(b"From someone\nDelivered-To: bob@example.com\n\n", id="after a non-header line"),
])
def test_no_false_loop(message):
    assert copy(message).endswith(message)


def test_huge_header_line_keeps_memory_bounded():
    scanner = HeaderScanner("bob@example.com")
    assert scanner.feed(b"X-Long: ")
    for _ in range(200):
        assert scanner.feed(b"X" * 65536)  # one 13 MB line with no newline
    assert len(scanner.pending) <= 4096
    assert scanner.feed(b"\nDelivered-To: bob@example.com\n") is True
    with pytest.raises(MailLoop):
        scanner.feed(b"\n")
