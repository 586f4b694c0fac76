"""The installed `vdeliver --lmtp` as a socketmap lookup service, for tests/tables and tests/functional.

LookupDaemon(directory, user, maps, extra) writes DIRECTORY/lookupd.cf (a mail
base, no LMTP socket, `socketmap_listen = unix:DIRECTORY/socketmap`), starts
the daemon in the foreground as root (it drops to `user`), waits until the
socket answers, and stop() ends it with SIGTERM (pause()/resume(): SIGSTOP
and SIGCONT, a daemon that hangs). request() speaks the protocol by hand.
"""
import os
import signal
import socket
import subprocess
import time

from support import VDELIVER


class LookupDaemon:
    def __init__(self, directory, user, maps, extra=""):
        self.directory = directory
        self.user = user
        self.socket_path = os.path.join(directory, "socketmap")
        self.pid_file = os.path.join(directory, "lookupd.pid")
        self.maillog = os.path.join(directory, "lookupd.log")
        self.base = os.path.join(directory, "lookupd-base")
        os.makedirs(self.base, exist_ok=True)
        os.chown(self.base, user.pw_uid, user.pw_gid)
        self.config_path = os.path.join(directory, "lookupd.cf")
        with open(self.config_path, "w") as fh:
            fh.write(f"virtual_mailbox_base = {self.base}\nvirtual_mailbox_maps = {maps}\n"
                     "recipient_delimiter = +\n" + self.settings()
                     + f"maillog_file = {self.maillog}\ntable_cache_directory =\n" + extra)
        os.chmod(self.config_path, 0o644)
        self.overrides = []
        self.proc = None

    def settings(self):
        """The daemon's lines of a config file: no LMTP socket, the socketmap one."""
        return (f"lmtp_listen =\nlmtp_pid_file = {self.pid_file}\nlmtp_user = {self.user.pw_name}\n"
                f"socketmap_listen = unix:{self.socket_path}\n")

    def start(self):
        self.proc = subprocess.Popen([VDELIVER, "--lmtp", "--foreground", "-c", self.config_path,
                                      *(arg for item in self.overrides for arg in ("-o", item))],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"lookup daemon exited: {self.proc.communicate()}")
            try:  # a reply, not just a connection: the daemon listens before it serves
                if request(self.socket_path, b"- probe", timeout=2):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("lookup daemon did not listen")

    @property
    def endpoint(self):
        return f"unix:{self.socket_path}"

    def spec(self, name):
        return f"socketmap:unix:{self.socket_path}:{name}"

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def log_text(self):
        try:
            with open(self.maillog, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""


def netstring(data):
    return b"%d:%s," % (len(data), data)


def request(path, *payloads, raw=None, timeout=10):
    """Send netstring requests (or raw bytes) on one connection; the bytes read until the
    server has answered each, or closes (b"" if it closed before taking the request), or
    timeout passes."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        try:
            sock.sendall(raw if raw is not None else b"".join(netstring(p) for p in payloads))
        except (BrokenPipeError, ConnectionResetError):  # closed before the request went out
            return b""
        wanted = len(payloads)
        data = b""
        while True:
            if wanted and len(parse_replies(data)) >= wanted:
                return data
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return data
            if not chunk:
                return data
            data += chunk


def parse_replies(data):
    """Complete netstrings at the start of data -> their payloads."""
    out = []
    while b":" in data:
        head, _, rest = data.partition(b":")
        if not head.isdigit() or len(rest) < int(head) + 1:
            break
        out.append(rest[:int(head)])
        data = rest[int(head) + 1:]
    return out
