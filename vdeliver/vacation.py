"""RFC 5230 vacation (and RFC 6131 :seconds) on the delivery side: whether a
vacation Action of the Sieve result is answered (refusal(), RFC 5230 §4.5 and
RFC 3834, with Pigeonhole's checks), and the reply itself (compose()).

No reply when the envelope sender is <> or a system address (MAILER-DAEMON,
LISTSERV, majordomo, *-request*, owner-*) or the user's own; when the message
has any List-* field, Auto-Submitted other than "no", Precedence junk, bulk or
list, X-Auto-Response-Suppress All or OOF; when none of the user's addresses
(final recipient, original recipient, :addresses) is in To, Cc, Bcc or
Resent-To/-Cc/-Bcc. Whether it was answered within the period is the response
database's to say (outgoing.py, userdb.py).

The reply: To the envelope sender (with the display name of the From, Sender
or Resent-From that carries it), From :from or the user's address the message
was found addressed to, Subject :subject
or "Auto: " and the original's, In-Reply-To and References from its
Message-ID, Auto-Submitted: auto-replied (vacation), Precedence: bulk,
X-Auto-Response-Suppress: All, Date, Message-ID; a UTF-8 text/plain body, or
with :mime the reason as a MIME entity (its Content-* fields and its body).

Never: put a CR, LF or other control character from the script or from the
message into a header (every value is cleaned, non-ASCII text RFC 2047
encoded, addresses re-formatted from their parsed parts); reply to anything
but the envelope sender; send (outgoing.py submits).
"""
LIST_FIELDS = ("list-id", "list-owner", "list-subscribe", "list-post", "list-unsubscribe",
               "list-help", "list-archive")
MY_ADDRESS_FIELDS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
REPLY_TO_FIELDS = ("sender", "resent-from", "from")
SYSTEM_LOCALPARTS = ("mailer-daemon", "listserv", "majordomo")
MAX_REFERENCES = 20


def split(addr):
    local, at, domain = addr.rpartition("@")
    return (local, domain) if at else (addr, "")


def same_address(a, b):
    """Case-insensitive, as Pigeonhole compares the user's addresses."""
    return bool(a) and bool(b) and a.strip("<>").lower() == b.strip("<>").lower()


def is_system_address(addr):
    local = split(addr)[0].lower()
    return local in SYSTEM_LOCALPARTS or "-request" in local or local.startswith("owner-")


def my_addresses(envelope, params):
    found = [envelope.recipient]
    if envelope.original_recipient:
        found.append(envelope.original_recipient)
    found.extend(a for a in params.get("addresses", ()) if a)
    return found


def refusal(params, envelope, message):
    """Why no reply may be sent ("" when one may): for the log line."""
    sender = envelope.sender
    if not sender:
        return "discarded vacation response to <>"
    if is_system_address(sender):
        return f"discarded vacation response to system address <{sender}>"
    mine = my_addresses(envelope, params)
    if any(same_address(sender, addr) for addr in mine):
        return "discarded vacation response to the user's own address"
    for name in LIST_FIELDS:
        if message.raw_header(name):
            return f"discarded vacation response to a mailing list message ({name})"
    for value in message.header("auto-submitted"):
        if value.strip().lower().split(";", 1)[0].strip() != "no":
            return "discarded vacation response to an auto-submitted message"
    for value in message.header("precedence"):
        if value.strip().lower() in ("junk", "bulk", "list"):
            return f"discarded vacation response to a message with Precedence: {value.strip()}"
    for value in message.header("x-auto-response-suppress"):
        words = {word.strip().lower() for word in value.split(",")}
        if words & {"all", "oof"}:
            return "discarded vacation response: X-Auto-Response-Suppress"
    if matched_address(params, envelope, message) is None:
        return "discarded vacation response for implicitly delivered message" \
               " (no known address in To, Cc, Bcc or Resent-*)"
    return ""


def matched_address(params, envelope, message):
    """The first of the user's addresses found in To, Cc, Bcc, Resent-*, as written there;
    None when there is none. The reply is sent from it (as Pigeonhole) unless :from."""
    from vdeliver.sieve.message import parse_addresses
    mine = my_addresses(envelope, params)
    for name in MY_ADDRESS_FIELDS:
        for value in message.header(name):
            for local, domain, _ in parse_addresses(value):
                if domain is not None and any(same_address(f"{local}@{domain}", addr)
                                              for addr in mine):
                    return f"{local}@{domain}"
    return None


def clean(text, limit=998):
    """One header value's text: control characters (CR, LF, NUL...) become spaces."""
    out = "".join(" " if ord(ch) < 0x20 or ord(ch) == 0x7f else ch for ch in text)
    return " ".join(out.split())[:limit]


def encode_text(text):
    """Unstructured header text, RFC 2047-encoded (UTF-8) when it is not ASCII."""
    from email.header import Header
    text = clean(text)
    if text.isascii():
        # Header folds long ASCII text too; encode() yields no bare CR or LF but "\n ".
        return Header(text, "us-ascii", maxlinelen=76, header_name="Subject").encode()
    return Header(text, "utf-8", maxlinelen=76, header_name="Subject").encode()


def format_address(addr, name=""):
    """'Name <addr>' from parsed parts, or None for an address unfit for a header."""
    from email.utils import formataddr
    addr = addr.strip().strip("<>")
    if not addr or any(ord(ch) <= 0x20 or ord(ch) == 0x7f or ch in "<>()," for ch in addr) \
            or addr.count("@") != 1 and not addr.startswith('"'):
        return None
    name = clean(name, 200)
    if not name:
        return f"<{addr}>"
    try:
        return formataddr((name, addr), charset="utf-8")
    except (UnicodeError, ValueError):  # an SMTPUTF8 address: the name encoded on its own
        from email.header import Header
        return f"{Header(name, 'utf-8').encode()} <{addr}>"


def parsed_address(value):
    """The first (display name, address) of a script's address string, or None."""
    from email.utils import parseaddr
    name, addr = parseaddr(clean(value, 998))
    return (name, addr) if addr and "@" in addr else None


def message_id(hostname):
    import posix
    import time
    return f"<{time.time_ns()}.{posix.getpid()}.{posix.urandom(6).hex()}.vdeliver@{hostname}>"


def msgid_of(message):
    """The original's Message-ID as a header may carry it: one <...> token, or None."""
    for value in message.raw_header("message-id"):
        text = clean(value).strip()
        if text.startswith("<") and text.endswith(">") and " " not in text and len(text) < 500 \
                and text.isascii():
            return text
    return None


def reply_to_field(envelope, message):
    """To: the envelope sender, with its display name when a From/Sender/Resent-From has it."""
    from email.utils import getaddresses
    for name in REPLY_TO_FIELDS:
        for value in message.header(name):
            for display, addr in getaddresses([clean(value)]):
                if same_address(addr, envelope.sender):
                    return format_address(envelope.sender, display)
    return format_address(envelope.sender)


def compose(params, reason, envelope, message, hostname):
    """The reply as bytes (LF line ends). The header is ASCII but for an SMTPUTF8
    address (RFC 6532), which stays UTF-8; ids that are not ASCII are left out."""
    import email.utils
    frm = None
    if params.get("from"):
        found = parsed_address(params["from"])
        if found is not None:
            frm = format_address(found[1], found[0])
    frm = frm or format_address(matched_address(params, envelope, message) or envelope.recipient) \
        or f"<postmaster@{hostname}>"
    to = reply_to_field(envelope, message) or "<postmaster@invalid>"
    if params.get("subject") is not None:
        subject = params["subject"]
    else:
        original = next((v for v in message.header("subject")), "").strip()
        subject = f"Auto: {original}" if original else "Automated reply"
    lines = ["X-Sieve: vdeliver",
             f"Message-ID: {message_id(hostname)}",
             f"Date: {email.utils.formatdate(localtime=True)}",
             f"From: {frm}",
             f"To: {to}",
             f"Subject: {encode_text(subject)}"]
    original_id = msgid_of(message)
    if original_id is not None:
        lines.append(f"In-Reply-To: {original_id}")
        references = [ref for value in message.raw_header("references")
                      for ref in clean(value, 10000).split() if ref.startswith("<")
                      and ref.endswith(">") and len(ref) < 250 and ref.isascii()]
        references = references[-MAX_REFERENCES:] + [original_id]
        lines.append("References: " + "\n ".join(references))
    lines += ["Auto-Submitted: auto-replied (vacation)", "Precedence: bulk",
              "X-Auto-Response-Suppress: All", "MIME-Version: 1.0"]
    entity = mime_entity(reason) if params.get("mime") else None
    if entity is None:
        body = text_body(reason)
        lines += ["Content-Type: text/plain; charset=utf-8", f"Content-Transfer-Encoding: {body[0]}"]
        return ("\n".join(lines) + "\n\n").encode("utf-8") + body[1]
    fields, body = entity
    return ("\n".join(lines + fields) + "\n\n").encode("utf-8") + body


def text_body(text):
    """(transfer encoding, bytes) of a UTF-8 text body, LF line ends."""
    import quopri
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8", "replace")
    if not data.endswith(b"\n"):
        data += b"\n"
    if data.isascii() and all(len(line) <= 998 for line in data.split(b"\n")):
        return "7bit", data
    return "quoted-printable", quopri.encodestring(data)


def mime_entity(reason):
    """:mime: the reason is a MIME entity: (its Content-* fields, its body), or None when
    its header is not a clean ASCII header (then it is sent as text)."""
    text = reason.replace("\r\n", "\n").replace("\r", "\n")
    head, sep, body = text.partition("\n\n")
    if not sep:
        return None
    fields = []
    for line in head.split("\n"):
        if not line or not line.isascii() or any(ord(ch) < 0x20 and ch != "\t" or ord(ch) == 0x7f
                                                 for ch in line) or len(line) > 998:
            return None
        if line[0] in " \t":
            if not fields:
                return None
            fields[-1] += "\n" + line
            continue
        name, colon, _ = line.partition(":")
        if not colon or not name or any(ch <= " " for ch in name):
            return None
        fields.append(line)
    fields = [field for field in fields if field.split(":", 1)[0].strip().lower().startswith("content-")]
    if not any(field.lower().startswith("content-type:") for field in fields):
        fields.insert(0, "Content-Type: text/plain; charset=utf-8")
    data = body.encode("utf-8", "replace")
    if not data.isascii() and not any(f.lower().startswith("content-transfer-encoding:") for f in fields):
        fields.append("Content-Transfer-Encoding: 8bit")
    return fields, data if data.endswith(b"\n") else data + b"\n"
