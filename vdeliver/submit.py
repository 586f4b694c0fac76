"""Hand one outgoing message to Postfix: sendmail_path (an argv list, as
`/usr/sbin/sendmail -C /private/dir`), the envelope on the command line
(`-i -f SENDER -- RCPT...`, as Dovecot's smtp-submit does), the message on
stdin, the exit status checked, all of it within sendmail_timeout; or, with
submission_host set (Dovecot's name), over SMTP to that Postfix submission
service with smtplib (each step within sendmail_timeout, the whole message in
memory, CRLF line ends; SMTPUTF8 and 8BITMIME asked for when needed).

Used after the commit point (vacation, redirect :copy, notify) and, for a
redirect that is a message's only destination, before it (sieveroute.py).

Never: talk SMTP itself or relay anywhere but through Postfix; pass a sender or
recipient with a control character, or one that could be read as an option;
wait longer than sendmail_timeout (after the commit point the pipe command's
signal handlers raise nothing: this timeout is the only one); leave the
sendmail process running when it returns or raises; inherit the caller's
environment (only PATH, and MAIL_CONFIG when set: pipe(8) exports it, and it names
the Postfix instance, postmulti's included, whose sendmail must take the mail). Raises SubmitError only (its text is for the log line); the time limit or a
signal (DeliveryError) goes through.
"""
import posix

from vdeliver.errors import DeliveryError

PATH = "/usr/bin:/bin"      # what pipe(8) gives a command
CHUNK = 1 << 16
STDERR_SHOWN = 300


class SubmitError(Exception):
    """The message was not accepted by sendmail_path (missing, failed, timed out)."""


def check_address(value, what):
    """An envelope address as it may go on sendmail's command line ("" is the null sender)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in value) or value.startswith("-"):
        raise SubmitError(f"{what} {value!r} is not a usable address")
    return value


def sendmail_argv(config, sender, recipients):
    from vdeliver.config import split_list
    command = split_list(config.get("sendmail_path"), " \t")
    if not command or not command[0].startswith("/"):
        raise SubmitError(f"sendmail_path = {config.get('sendmail_path')}: not an absolute path")
    if not recipients:
        raise SubmitError("no recipient")
    # Postfix's sendmail reads "<>" as the null sender, as Dovecot passes it.
    return command + ["-i", "-f", check_address(sender, "sender") or "<>", "--"] + [
        check_address(rcpt, "recipient") for rcpt in recipients]


def sendmail_environment():
    """PATH, and MAIL_CONFIG as vdeliver got it: the mail goes back through the Postfix
    instance that delivered it (`sendmail_path = ... -C DIR` still overrides it)."""
    environment = {b"PATH": PATH.encode()}
    if b"MAIL_CONFIG" in posix.environ:
        environment[b"MAIL_CONFIG"] = posix.environ[b"MAIL_CONFIG"]
    return environment


def submit(config, sender, recipients, parts, timeout=None):
    """Send the message made of `parts` (an iterable of bytes, read as it is sent) to
    recipients with envelope sender `sender` ("" for <>), within timeout seconds
    (default sendmail_timeout)."""
    timeout = config.get_time("sendmail_timeout") if timeout is None else timeout
    if config.get("submission_host").strip():
        return smtp_submit(config, sender, recipients, parts, timeout)
    import subprocess
    import threading
    import time
    argv = sendmail_argv(config, sender, recipients)
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=sendmail_environment(), cwd="/",
                                close_fds=True, start_new_session=True)
    except OSError as err:
        raise SubmitError(f"cannot run {argv[0]}: {err.strerror}") from None
    fed = []

    def feed():
        try:
            for part in parts:
                proc.stdin.write(part)
            proc.stdin.close()
            fed.append(True)
        except (OSError, ValueError):  # sendmail went away: its exit status says why
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
    writer = threading.Thread(target=feed, daemon=True, name="sendmail stdin")
    try:
        writer.start()
        try:
            status = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise SubmitError(f"{argv[0]} did not finish within sendmail_timeout"
                              f" ({timeout}s)") from None
        writer.join(max(0.0, deadline - time.monotonic()))
        stderr = read_some(proc.stderr)
    finally:
        if proc.returncode is None:  # a timeout, or a signal that ends the delivery
            kill(proc)
        proc.stderr.close()
    if status != 0:
        why = f"exit status {status}" if status > 0 else f"signal {-status}"
        raise SubmitError(f"{argv[0]} failed ({why}){': ' + stderr if stderr else ''}")
    if not fed:
        raise SubmitError(f"{argv[0]} exited before reading the whole message")


def kill(proc):
    import signal
    try:
        posix.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(5)
    except DeliveryError:  # the time limit, a signal: they end the delivery
        raise
    except Exception:  # noqa: BLE001 - reaped later or never: it is killed
        pass


def read_some(pipe):
    """What sendmail wrote to stderr, without waiting for a grandchild that holds it open."""
    try:
        posix.set_blocking(pipe.fileno(), False)
        data = pipe.read(4096) or b""
    except OSError:
        data = b""
    text = data.decode("utf-8", "replace")
    from vdeliver.errors import one_line
    return one_line(text.strip(), STDERR_SHOWN)


def host_port(value):
    """submission_host: host, host:port, [address]:port (port 25 by default)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not host or (port and not (port.isascii() and port.isdigit())):
        raise SubmitError(f"submission_host = {value}: expected host[:port]")
    return host, int(port or 25)


def smtp_submit(config, sender, recipients, parts, timeout):
    import re
    import smtplib
    host, port = host_port(config.get("submission_host"))
    check_address(sender, "sender")
    for rcpt in recipients:
        check_address(rcpt, "recipient")
    if not recipients:
        raise SubmitError("no recipient")
    data = re.sub(rb"(?<!\r)\n", b"\r\n", b"".join(parts))
    options = []
    if not (sender.isascii() and all(r.isascii() for r in recipients)
            and data.split(b"\r\n\r\n", 1)[0].isascii()):
        options.append("SMTPUTF8")
    if not data.isascii():
        options.append("BODY=8BITMIME")
    from vdeliver import outgoing
    try:
        with smtplib.SMTP(host, port, local_hostname=outgoing.hostname(), timeout=timeout) as smtp:
            smtp.ehlo()
            refused = smtp.sendmail(sender, recipients, data, mail_options=options)
    except smtplib.SMTPRecipientsRefused as error:
        raise SubmitError(f"{host}:{port} refused the recipients: {one_reply(error.recipients)}") from None
    except smtplib.SMTPResponseException as error:
        raise SubmitError(f"{host}:{port} said {error.smtp_code}"
                          f" {error.smtp_error.decode('utf-8', 'replace')}") from None
    except (smtplib.SMTPException, OSError) as error:
        raise SubmitError(f"{host}:{port}: {error}") from None
    if refused:
        raise SubmitError(f"{host}:{port} refused some recipients: {one_reply(refused)}")


def one_reply(refused):
    from vdeliver.errors import one_line
    return one_line("; ".join(f"<{rcpt}> {code} {text.decode('utf-8', 'replace')}"
                              for rcpt, (code, text) in refused.items()), STDERR_SHOWN)
