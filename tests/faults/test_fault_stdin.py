"""Errors reading the message on stdin: every one that read() reports defers, delivering nothing.

What can be detected and what cannot:
- read() failing is detectable, and each way below, produced for real
  without FUSE, defers 4.3.0 and leaves nothing in tmp/ or new/: stdin not
  open at all (EBADF, or worse, see below), opened write-only (EBADF), a
  terminal whose other side hung up (EIO: a pty's slave after its master
  closed), a TCP connection reset by the peer (ECONNRESET), a non-blocking
  pipe with nothing in it (EAGAIN; pipe(8)'s pipe is blocking).
- A writer that stops early and closes (or dies) is just EOF: pipe(8) sends
  no length, and ${size} is approximate, so a truncated message cannot be
  told from a short one. vdeliver delivers exactly the bytes it received;
  pipe(8) in turn notices its own failure and defers, so Postfix retries
  (possibly a duplicate, never a loss). A stall is bounded by time_limit
  (tests/functional/test_pipe.py::test_time_limit_defers_and_cleans_up).
- A directory on stdin never reaches vdeliver: the interpreter refuses to
  start (exit 1, a bounce); pipe(8) always gives a pipe.

Found here: with fd 0 closed, the first file vdeliver kept open took fd 0
and was read as the message: with an sqlite: table an empty message was
delivered, exit 0. cli.run now defers first ("standard input is not open").
"""
import os
import pty
import socket
import sqlite3
import struct
import subprocess
import time
import tty

import pytest

from functional.conftest import Result
from outcomes import assert_deferred, delivered, maildir_state, run_as_pipe

PARTIAL = b"Subject: cut short\n\nfirst part of the body\n"


def nothing_delivered(mail):
    assert maildir_state(mail, "example.com/bob") == ([], [])


def sqlite_table(mail):
    """An sqlite: table: its database stays open during the delivery (the fd 0 trap)."""
    database = os.path.join(mail.top, "mailboxes.sqlite")
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE mailbox (address TEXT, path TEXT)")
        connection.execute("INSERT INTO mailbox VALUES ('bob@example.com', 'example.com/bob/')")
    connection.close()
    config = os.path.join(mail.top, "sqlite.cf")
    with open(config, "w") as fh:
        fh.write(f"dbpath = {database}\nquery = SELECT path FROM mailbox WHERE address = '%s'\n")
    for path in (database, config):
        os.chmod(path, 0o644)
    mail.write_config(maps=f"sqlite:{config}")


@pytest.mark.parametrize("table", ["texthash", "sqlite"])
def test_stdin_not_open_defers(mail, table):
    """fd 0 closed: the first file vdeliver kept open would become "stdin" and be
    read as the message (with an sqlite: table this delivered an empty message)."""
    if table == "sqlite":
        sqlite_table(mail)
    result = run_as_pipe(mail, "-f", "s@x", "--", "bob@example.com", stdin=subprocess.DEVNULL,
                         preexec_fn=lambda: os.close(0))
    # Before the config is read: the detail ("standard input is not open") goes to syslog.
    assert_deferred(result, "4.3.0", "error reading the message")
    nothing_delivered(mail)
    dry = run_as_pipe(mail, "-n", "bob@example.com", stdin=subprocess.DEVNULL,
                      preexec_fn=lambda: os.close(0))
    assert dry.code == 0 and b"mailbox: " in dry.stdout  # -n reads no stdin: still works


def test_write_only_stdin_defers(mail):
    path = os.path.join(mail.top, "write-only")
    with open(path, "wb") as stdin:
        result = run_as_pipe(mail, "-f", "s@x", "--", "bob@example.com", stdin=stdin)
    assert_deferred(result, "4.3.0", "error reading the message", "Bad file descriptor")
    nothing_delivered(mail)


def feed_then(mail, stdin, feed, finish):
    """Start vdeliver on `stdin`; feed(), wait until it has read, finish(); return its Result."""
    mark = mail.log_size()
    proc = mail.popen("-f", "s@x", "--", "bob@example.com", stdin=stdin)
    try:
        feed()
        deadline = time.monotonic() + 10
        while (not mail.tmp_files("example.com/bob") and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.005)
        time.sleep(0.05)  # it has read what was fed, and waits for more
        finish()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(proc.returncode, out, err, mail.log_since(mark))


def test_terminal_hangup_defers_eio(mail):
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        result = feed_then(mail, slave, lambda: (os.close(slave), os.write(master, PARTIAL)),
                           lambda: os.close(master))
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass
    assert_deferred(result, "4.3.0", "Input/output error")
    nothing_delivered(mail)


def test_connection_reset_defers_econnreset(mail):
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    server.close()

    def reset():
        # SO_LINGER {on, 0}: close() sends RST, the reader gets ECONNRESET, not EOF.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()

    try:
        result = feed_then(mail, client, lambda: peer.sendall(PARTIAL), reset)
    finally:
        client.close()
    assert_deferred(result, "4.3.0", "Connection reset by peer")
    nothing_delivered(mail)


def test_non_blocking_empty_pipe_defers_eagain(mail):
    reader, writer = os.pipe()
    os.set_blocking(reader, False)
    try:
        result = feed_then(mail, reader, lambda: os.write(writer, PARTIAL), lambda: None)
    finally:
        os.close(reader)
        os.close(writer)
    assert_deferred(result, "4.3.0", "Resource temporarily unavailable")
    nothing_delivered(mail)


def test_writer_closing_early_is_eof_and_delivers_what_arrived(mail):
    """Not detectable (see the module docstring): the bytes received, exactly, exit 0."""
    reader, writer = os.pipe()
    try:
        result = feed_then(mail, reader, lambda: os.write(writer, PARTIAL), lambda: os.close(writer))
    finally:
        os.close(reader)
    assert (result.code, result.stdout) == (0, b"")
    (path,) = mail.new_files("example.com/bob")
    with open(path, "rb") as fh:
        assert fh.read() == delivered("s@x", "bob@example.com", PARTIAL)


@pytest.mark.xfail(strict=True, reason="CPython exits 1 before vdeliver runs when stdin is a"
                   " directory (init_sys_streams); pipe(8) never does this")
def test_directory_on_stdin_defers(mail):
    fd = os.open(mail.top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = run_as_pipe(mail, "-f", "s@x", "--", "bob@example.com", stdin=fd)
    finally:
        os.close(fd)
    nothing_delivered(mail)
    assert result.code == 75
