"""The outgoing side of a Sieve result: redirect (RFC 5228 §4.2, :copy), vacation
(vacation.py decides and composes), enotify's mailto notifications (RFC 5435,
RFC 5436), and the duplicate test's records (RFC 7352), through the per-user
database (userdb.py) and sendmail_path (submit.py).

An Outgoing is made by sieveroute.SieveRoute for one delivery. Before the
commit point only redirect_first() runs, for a Plan whose only destinations
are redirects (the message is in tmp/, nothing is stored yet): if any
redirect is not sent, the caller keeps the message in INBOX instead. Every
other effect runs in after_commit(), once the message is durable; each returns
notes for the log line.

Redirect: envelope sender per sieve_redirect_envelope_from (sender, recipient,
orig_recipient or <address>; <> whenever the original sender was <>);
Return-Path removed; `X-Sieve-Redirected-From: <recipient>` prepended, and a
message that already carries it for this recipient is not redirected again
(a loop); the same Message-ID to the same target within
sieve_redirect_duplicate_period is sent once. The vacation response is
claimed in the database before it is submitted (a crash in between loses the
reply, never sends it twice) and the claim is taken back when the submission
fails, so the next message may be answered.

Never: raise after the commit point (every failure becomes a note); send a
vacation response without recording it; send to more than NOTIFY_MAX
notifications of NOTIFY_RECIPIENTS recipients each; notify about an
auto-submitted message; read the message but through the route's
outgoing_message().
"""
from vdeliver.errors import one_line

NOTIFY_MAX = 10             # sieve_notify_max_notifications (Pigeonhole)
NOTIFY_RECIPIENTS = 8       # mailto max recipients (Pigeonhole)
CHUNK = 1 << 16
SUBMISSIONS = 4             # sendmail_timeouts that all of one delivery's mail may take
REDIRECTED_FROM = b"x-sieve-redirected-from"


class Outgoing:
    """config, envelope (deliver.Envelope), home (sievescripts.Place), message (the
    sieve.Message the scripts saw), open_message(action) -> a binary file of the message
    as that action should send it (sieveroute.Sender.outgoing_message)."""

    def __init__(self, config, envelope, home, message, open_message):
        self.config, self.envelope, self.home = config, envelope, home
        self.message, self.open_message = message, open_message
        self._db = None
        self.db_problem = ""
        self.duplicates = []    # (handle, key, seconds, last) the duplicate test asked about
        self.notes = []
        self.deadline = None    # all submissions of one delivery: SUBMISSIONS x sendmail_timeout

    # ------------------------------------------------------------ the database

    def db(self):
        """The user's database, opened once; None (and db_problem) when unusable."""
        if self._db is None and not self.db_problem:
            from vdeliver import userdb
            try:
                self._db = userdb.UserDB.open(self.home.fd if self.home else None,
                                              self.home.shown if self.home else "")
            except userdb.UserDBError as error:
                self.db_problem = one_line(str(error), 300)
                self.notes.append(f"sieve: response database unusable ({self.db_problem})")
        return self._db

    def close(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    def duplicate_check(self, handle, key, seconds, last):
        """The duplicate test's callback: seen within its period? Recorded after the commit."""
        from vdeliver import userdb
        self.duplicates.append((handle, key, seconds, last))
        db = self.db()
        if db is None:
            return False
        try:
            return db.seen("duplicate", userdb.key_of(handle, key))
        except userdb.UserDBError as error:
            self.notes.append(f"sieve: duplicate test: {one_line(str(error), 300)}")
            return False

    # ------------------------------------------------------------ the two moments

    def redirect_first(self, actions):
        """Before the commit: send the redirects of a Plan that stores nothing. True when
        every one was sent (or had been sent already); False: keep in INBOX instead."""
        ok = True
        for action in actions:
            ok = self.redirect(action) and ok
        return ok

    def after_commit(self, actions):
        """After the commit: record the duplicate ids, send what the Plan says; never raises."""
        try:
            self.record_duplicates()
            notified = 0
            for action in actions:
                if action.kind == "redirect":
                    self.redirect(action)
                elif action.kind == "vacation":
                    self.vacation(action)
                elif action.kind == "notify":
                    notified += 1
                    if notified > NOTIFY_MAX:
                        self.notes.append(f"sieve: notify: more than {NOTIFY_MAX} notifications:"
                                          " the rest not sent")
                        break
                    self.notify(action)
        except Exception as error:  # noqa: BLE001 - delivered already: only report
            self.notes.append(f"sieve: outgoing mail failed: {one_line(str(error), 300)}")
        finally:
            self.close()
        return self.notes

    def record_duplicates(self):
        from vdeliver import userdb
        if not self.duplicates or self.db() is None:
            return
        for handle, key, seconds, last in self.duplicates:
            try:
                self._db.record("duplicate", userdb.key_of(handle, key), seconds, last)
            except userdb.UserDBError as error:
                self.notes.append(f"sieve: duplicate not recorded: {one_line(str(error), 300)}")
                return

    def submit(self, sender, recipients, parts):
        """submit.submit() within what is left of this delivery's time for outgoing mail."""
        import time
        from vdeliver import submit
        each = self.config.get_time("sendmail_timeout")
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + SUBMISSIONS * each
        left = self.deadline - now
        if left <= 0:
            raise submit.SubmitError("no time left for outgoing mail (sendmail_timeout)")
        submit.submit(self.config, sender, recipients, parts, min(each, left))

    # ------------------------------------------------------------ redirect

    def redirect(self, action):
        """Send one redirect; True when sent (or already sent earlier), False if not."""
        from vdeliver import submit, userdb
        target = action.address
        shown = one_line(target, 200)
        if self.loops():
            self.notes.append(f"sieve: redirect to <{shown}> not sent: the message was redirected"
                              f" by {one_line(self.envelope.recipient, 200)} before (a loop)")
            return False
        msgid = next(iter(self.message.raw_header("message-id")), "").strip()
        key = userdb.key_of(msgid, self.envelope.recipient.lower(), target.lower()) if msgid else None
        db = self.db() if key else None
        if db is not None:
            try:
                if db.seen("redirect", key):
                    self.notes.append(f"sieve: redirect to <{shown}> not sent again: the same"
                                      " message was redirected there before")
                    return True
            except userdb.UserDBError as error:
                self.notes.append(f"sieve: redirect: {one_line(str(error), 300)}")
                db = None
        sender = redirect_sender(self.config, self.envelope)
        try:
            with self.open_message(action) as fh:
                self.submit(sender, [target], redirect_parts(fh, self.envelope.recipient))
        except submit.SubmitError as error:
            self.notes.append(f"sieve: redirect to <{shown}> failed: {one_line(str(error), 300)}")
            return False
        self.notes.append(f"sieve: redirected to <{shown}> (from <{one_line(sender, 200)}>)")
        if db is not None:
            try:
                db.record("redirect", key, self.config.get_time("sieve_redirect_duplicate_period"))
            except userdb.UserDBError as error:
                self.notes.append(f"sieve: redirect not recorded: {one_line(str(error), 300)}")
        return True

    def loops(self):
        """The message carries X-Sieve-Redirected-From with this recipient's address."""
        from vdeliver import vacation
        mine = [self.envelope.recipient, self.envelope.original_recipient]
        for value in self.message.header(REDIRECTED_FROM.decode()):
            for word in value.replace(",", " ").split():
                if any(vacation.same_address(word, addr) for addr in mine):
                    return True
        return False

    # ------------------------------------------------------------ vacation

    def vacation(self, action):
        from vdeliver import submit, userdb
        from vdeliver import vacation as vac
        params = action.params
        why = vac.refusal(params, self.envelope, self.message)
        if why:
            self.notes.append(f"sieve: {why}")
            return
        sender = self.envelope.sender
        shown = one_line(sender, 200)
        db = self.db()
        if db is None:
            self.notes.append(f"sieve: vacation response to <{shown}> not sent: no response database")
            return
        key = userdb.key_of(sender.lower(), params.get("handle") or "")
        period = int(params.get("seconds") or 7 * 86400)
        reply = vac.compose(params, action.reason, self.envelope, self.message, hostname())
        try:
            if not db.claim("vacation", key, period):
                self.notes.append(f"sieve: vacation response to <{shown}> not sent: answered"
                                  " within the period already")
                return
        except userdb.UserDBError as error:
            self.notes.append(f"sieve: vacation response to <{shown}> not sent:"
                              f" {one_line(str(error), 300)}")
            return
        from_ = self.envelope.recipient if self.config.get_bool(
            "sieve_vacation_send_from_recipient") else ""
        try:
            self.submit(from_, [sender], [reply])
        except submit.SubmitError as error:
            try:
                db.forget("vacation", key)
            except userdb.UserDBError:
                pass
            self.notes.append(f"sieve: vacation response to <{shown}> failed:"
                              f" {one_line(str(error), 300)}")
            return
        self.notes.append(f"sieve: sent vacation response to <{shown}>")

    # ------------------------------------------------------------ notify

    def notify(self, action):
        from vdeliver import submit
        from vdeliver.sieve.extensions.enotify import mailto_recipients
        params = action.params
        for value in self.message.header("auto-submitted"):
            if value.strip().lower().split(";", 1)[0].strip() != "no":
                self.notes.append("sieve: notify: not sent for an auto-submitted message")
                return
        recipients = mailto_recipients(params.get("method", "")) or []
        if len(recipients) > NOTIFY_RECIPIENTS:
            self.notes.append(f"sieve: notify: only the first {NOTIFY_RECIPIENTS} recipients")
            recipients = recipients[:NOTIFY_RECIPIENTS]
        if not recipients:
            return
        data = compose_notify(params, self.envelope, self.message, recipients, hostname())
        shown = ", ".join(f"<{one_line(r, 100)}>" for r in recipients)
        try:
            self.submit("", recipients, [data])
        except submit.SubmitError as error:
            self.notes.append(f"sieve: notify {shown} failed: {one_line(str(error), 300)}")
            return
        self.notes.append(f"sieve: sent notification to {shown}")


def redirect_sender(config, envelope):
    """The redirect's envelope sender (sieve_redirect_envelope_from; <> stays <>)."""
    if not envelope.sender:
        return ""
    choice = config.get("sieve_redirect_envelope_from").strip()
    lowered = choice.lower()
    if lowered in ("", "sender"):
        return envelope.sender
    if lowered == "recipient":
        return envelope.recipient
    if lowered == "orig_recipient":
        return envelope.original_recipient or envelope.recipient
    if choice.startswith("<") and choice.endswith(">"):
        return choice[1:-1]
    from vdeliver.errors import ConfigError
    raise ConfigError(f"sieve_redirect_envelope_from = {choice}: expected sender, recipient,"
                      " orig_recipient or <address>")


def redirect_parts(fh, recipient):
    """The message as a redirect sends it: X-Sieve-Redirected-From first, Return-Path
    fields dropped, everything else as it is (read in chunks)."""
    from vdeliver import vacation
    yield f"X-Sieve-Redirected-From: {vacation.clean(recipient)}\n".encode("utf-8", "replace")
    skipping, line_start = False, True
    while True:
        line = fh.readline(CHUNK)
        if not line:
            return
        if line_start:
            if line in (b"\n", b"\r\n"):
                yield line
                break
            if line[:1] not in (b" ", b"\t"):
                skipping = line.split(b":", 1)[0].strip().lower() == b"return-path"
        line_start = line.endswith(b"\n")
        if not skipping:
            yield line
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            return
        yield chunk


def compose_notify(params, envelope, message, recipients, host):
    """An RFC 5436 notification: Subject from the URI's subject, else :message, else
    "Notification: " and the message's subject; the body from the URI's body, else
    :message, else a line naming the message."""
    import email.utils
    import urllib.parse
    from vdeliver import vacation
    query = params.get("method", "").partition("?")[2]
    fields = {}
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        fields.setdefault(name.lower(), urllib.parse.unquote(value))
    original_from = next(iter(message.header("from")), "")
    original_subject = next(iter(message.header("subject")), "")
    # As Pigeonhole: the URI's subject, else :message, else "Notification: " + the subject.
    subject = fields.get("subject") or params.get("message") or f"Notification: {original_subject}"
    body = fields.get("body") or params.get("message") or (
        f"Notification of new message from {original_from}: {original_subject}")
    frm = None
    if params.get("from"):
        found = vacation.parsed_address(params["from"])
        if found is not None:
            frm = vacation.format_address(found[1], found[0])
    frm = frm or vacation.format_address(envelope.recipient) or f"<postmaster@{host}>"
    to = ", ".join(filter(None, (vacation.format_address(r) for r in recipients)))
    importance = {"1": "1 (Highest)", "3": "5 (Lowest)"}.get(params.get("importance") or "2")
    lines = ["X-Sieve: vdeliver", f"Message-ID: {vacation.message_id(host)}",
             f"Date: {email.utils.formatdate(localtime=True)}", f"From: {frm}", f"To: {to}",
             f"Subject: {vacation.encode_text(subject)}", "Auto-Submitted: auto-notified",
             "Precedence: bulk", "X-Auto-Response-Suppress: All"]
    if importance:
        lines.append(f"X-Priority: {importance}")
    encoding, data = vacation.text_body(body)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
              f"Content-Transfer-Encoding: {encoding}"]
    return ("\n".join(lines) + "\n\n").encode("utf-8") + data


def hostname():
    import posix
    from vdeliver import maildir
    return maildir.HOSTNAME or posix.uname().nodename or "localhost"
