"""Delivery status notification for LMTP (RFC 3461, RFC 3464): the DSN extension's
parameters, and the "delivered" report owed to a sender who asked NOTIFY=SUCCESS.

Postfix's lmtp client sends ORCPT, the original recipient that X-Original-To is
made from, only to a server that announces DSN, and it then takes that server for
an intermediate hop: it sends no success notice itself (smtp_rcpt_done() drops
NOTIFY=SUCCESS). So with lmtp_dsn = yes the daemon announces DSN, parses MAIL's
RET and ENVID and RCPT's NOTIFY (RFC 3461 4.1-4.4; lmtp.py logs and ignores a
malformed one: a 501 would make Postfix bounce the mail), and once a copy is durable sends the "delivered" report itself through sendmail_path
(submit.py), from the null sender to the envelope sender: one report per
delivered recipient, with the original's header block as text/rfc822-headers
(RFC 6522), never its body. Failures need nothing from here: they are replies,
and Postfix reports them.

Never: send a report for a null sender, without NOTIFY=SUCCESS, or before the
copy is durable; raise from send_success() (the copy is delivered: every failure
is a note for the log line); put anything from the envelope into the report but
after xtext decoding and one_line() (no CR, LF or control character).
"""
from vdeliver.errors import one_line
from vdeliver.lmtptext import decode_orcpt, decode_xtext

NOTIFY_WORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ENVID = 100               # RFC 3461 4.4
MAX_HEADERS = 64 << 10        # of the original's header block in the report


class Notice:
    """What a success report needs from the transaction: the envelope id (decoded, or
    ""), the RCPT's ORCPT as given, the host name the daemon announces, read_chunk
    over the spooled message (spool.Spool.reader()) and when its DATA ended (time.time())."""
    __slots__ = ("envid", "orcpt", "hostname", "read_chunk", "arrival")

    def __init__(self, envid, orcpt, hostname, read_chunk, arrival):
        self.envid, self.orcpt, self.hostname = envid, orcpt, hostname
        self.read_chunk, self.arrival = read_chunk, arrival


def parse_ret(value):
    """MAIL's RET=FULL|HDRS -> the word; ValueError otherwise."""
    word = value.upper()
    if word not in ("FULL", "HDRS"):
        raise ValueError("RET must be FULL or HDRS")
    return word


def parse_envid(value):
    """MAIL's ENVID=xtext -> the decoded envelope id; ValueError when malformed or long."""
    if not value or len(value) > MAX_ENVID:
        raise ValueError("ENVID must be 1 to 100 characters of xtext")
    return decode_xtext(value, strict=True)


def parse_notify(value):
    """RCPT's NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY -> frozenset of the words
    (empty for NEVER); ValueError otherwise."""
    words = [word.upper() for word in value.split(",")]
    if words == ["NEVER"]:
        return frozenset()
    if not words or any(word not in NOTIFY_WORDS for word in words):
        raise ValueError("NOTIFY must be NEVER or SUCCESS, FAILURE, DELAY")
    return frozenset(words)


def original_recipient(orcpt):
    """The report's Original-Recipient value, "rfc822; bob@example.com", or "" for none."""
    address = decode_orcpt(orcpt)
    return one_line(f"{orcpt.partition(';')[0].lower()}; {address}", 500) if address else ""


def header_block(read_chunk):
    """The message's header block (up to MAX_HEADERS bytes), ending in one line end."""
    data = b""
    while len(data) < MAX_HEADERS:
        chunk = read_chunk()
        if not chunk:
            break
        data += chunk
        end = data.find(b"\n\n")
        if end >= 0:
            return data[:end + 1]
        if data.startswith(b"\n"):
            return b""
    data = data[:MAX_HEADERS]
    return data[:data.rfind(b"\n") + 1]


def compose(notice, sender, recipient):
    """The RFC 3464 report (bytes, LF line ends) that recipient's copy was delivered."""
    import email.utils
    import posix
    host = one_line(notice.hostname, 255) or "localhost"
    boundary = f"{posix.urandom(9).hex()}/{host}"
    final = one_line(recipient, 500)
    envelope = [f"Reporting-MTA: dns; {host}"]
    if notice.envid:
        envelope.append(f"Original-Envelope-Id: {one_line(notice.envid, MAX_ENVID)}")
    envelope.append(f"Arrival-Date: {email.utils.formatdate(notice.arrival, localtime=True)}")
    per_recipient = [f"Final-Recipient: rfc822; {final}"]
    original = original_recipient(notice.orcpt)
    if original:
        per_recipient.append(f"Original-Recipient: {original}")
    per_recipient += ["Action: delivered", "Status: 2.0.0",
                      f"Last-Attempt-Date: {email.utils.formatdate(localtime=True)}"]
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"To: <{one_line(sender, 500)}>",
        "Subject: Successful Mail Delivery Report",
        f"Date: {email.utils.formatdate(localtime=True)}",
        f"Message-ID: <{posix.urandom(12).hex()}@{host}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"This is the mail system at host {host}.",
        "",
        "Your message was successfully delivered to the destination listed below.",
        "",
        f"<{final}>: delivered to mailbox",
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        *envelope,
        "",
        *per_recipient,
        "",
        f"--{boundary}",
        "Content-Description: Message Headers",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    text = "\n".join(head).encode("utf-8", "replace") + b"\n"
    return text + header_block(notice.read_chunk) + f"\n--{boundary}--\n".encode()


def send_success(config, notice, sender, recipient):
    """Send the "delivered" report for recipient's durable copy; a note for the log line."""
    from vdeliver import submit
    try:
        report = compose(notice, sender, recipient)
        submit.submit(config, "", [sender], [report])
    except Exception as error:  # noqa: BLE001 - delivered already: a lost report is only noted
        return one_line(f"success DSN to {sender} not sent: {error}", 300)
    return f"success DSN sent to {one_line(sender, 300)}"
