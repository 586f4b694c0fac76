"""The LMTP front end (RFC 2033): sessions, one reply per recipient, errors -> replies.

This is the other place (besides cli.main) where a DeliveryError becomes an
answer for Postfix. A small asyncio server of our own rather than aiosmtpd:
aiosmtpd's LMTP class sends one reply per DATA (RFC 2033 4.2 wants one per
accepted RCPT, in order, each after that copy is safe), keeps the message in
memory, and answers unexpected exceptions with a permanent 500; all three
would have to be overridden, leaving little of the library.

A transaction: LHLO; MAIL FROM (SIZE checked, lmtp_message_size_limit = 0:
no limit); RCPT TO, each resolved at once on a lookup thread (550 5.1.1
unknown user, 451 4.3.0 table error); DATA, decoded and spooled by spool.py
(dot-unstuffing, CRLF -> LF, an unnamed file that knows its length); after
the final dot, each accepted recipient is delivered through deliver.deliver()
on the delivery thread pool (one slow fsync does not stall other sessions)
and its reply is sent when its copy is durable: 250 2.0.0, 451/452 4.x.x,
552 5.2.2, 554 5.4.6. A duplicate RCPT is delivered once and gets the first
one's reply. Every reply text and code is data in lmtptext.py (LMTP_REPLIES,
LMTP_CODES), beside the parsers of the command arguments. With lmtp_dsn
(dsn.py) LHLO announces DSN, so Postfix sends ORCPT (X-Original-To); a
malformed RET, ENVID or NOTIFY is logged and ignored (a 501 would make Postfix
bounce mail over a notice), and a recipient that asked NOTIFY=SUCCESS gets its
"delivered" report sent once its copy is durable, before its reply, as Sieve's
outgoing mail is (a report not sent is noted in the log line).

Shutdown (Server.begin_shutdown, then abandon): each delivery carries a
Ticket, its commit point seen from both sides. The delivery thread calls
Ticket.enter() just before the link into new/; past lmtp_shutdown_timeout
the event loop calls Ticket.abandon(). Whichever comes first wins, under a
lock: an abandoned delivery raises errors.Abandoned at its commit point
(its tmp file removed, no reply: Postfix retries), a committed one is
waited for and its reply sent before the connection closes.

Never: send 250 before the copy is fsynced; answer 5xx for a fault the admin
can fix or for a bug (451 4.3.0); deliver a message whose DATA did not end
with the final dot (EOF or shutdown mid-DATA delivers nothing and sends no
reply; a timeout mid-DATA gets 421 4.4.2); hold a message in memory; commit
a delivery whose reply can no longer be sent; open tables or wait for a
delivery on the event loop (a reload runs on a lookup thread).
"""
import asyncio
import threading
import time

from vdeliver import address, deliver, dsn, log, metrics, resolve
from vdeliver.commitpoint import CommitPoint
from vdeliver.errors import (Abandoned, BadRecipientAddress, BadSenderAddress, DeliveryError,
                             MessageTooBig, from_os_error, internal_error, one_line)
from vdeliver.lmtptext import LMTP_REPLIES, decode_orcpt, lmtp_reply, parse_path
from vdeliver.spool import CHUNK_SIZE, Decoder, Spool

# Postfix's lmtp client xtext-quotes ORCPT (an 8-bit byte becomes +XX) of an address its
# smtpd took in lines of up to 2048 bytes: an RCPT line it sends can exceed 6 KB. A longer
# line is answered 500 5.5.2 (a 5xx at RCPT bounces that recipient) and the session goes on.
MAX_COMMAND_LINE = 16384
MAX_REPLY_ADDRESS = 400  # a reply line stays under RFC 5321's 512 octets
# RFC 5321 commands this server knows and does not offer: 502, where an unknown verb gets 500.
NOT_IMPLEMENTED = ("EXPN", "HELP", "TURN", "ETRN", "BDAT", "STARTTLS", "AUTH", "SEND", "SOML",
                   "SAML")
# Tables answered from memory: resolved on the event loop, without a thread hop.
IN_MEMORY_TABLES = ("texthash", "inline", "static", "regexp", "pcre")


def reply(name, *args):
    return LMTP_REPLIES[name].format(*args)


class Settings:
    """What one transaction uses: config and open tables (replaced on SIGHUP).

    Counted: each transaction holds its Settings from MAIL to its last reply; the tables
    of Settings that a reload replaced are closed when the last transaction lets go."""

    def __init__(self, config, tables):
        self.config = config
        self.tables = tables
        self.max_message_size = config.get_int("lmtp_message_size_limit")  # 0: no limit
        self.max_recipients = config.get_int("lmtp_recipient_limit")
        self.idle_timeout = config.get_time("lmtp_idle_timeout")
        self.dsn = config.get_bool("lmtp_dsn")  # announce DSN and check its parameters (dsn.py)
        self.users = 0
        self.retired = False
        self.closer = resolve.close_tables  # the Server's: on a lookup thread

    def too_big(self, size):
        return 0 < self.max_message_size < size

    def acquire(self):
        self.users += 1
        return self

    def release(self):
        self.users -= 1
        self.close_if_unused()

    def retire(self):
        self.retired = True
        self.close_if_unused()

    def close_if_unused(self):
        if self.retired and self.users <= 0 and self.tables is not None:
            tables, self.tables = self.tables, None
            self.closer(tables)


class Ticket(CommitPoint):
    """One delivery's commit point (commitpoint.py) seen from both sides: enter() (the
    delivery thread, just before its link into new/ or its mbox fsync) and abandon()
    (the event loop, at shutdown) exclude each other."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.state = "running"  # running | committed | abandoned

    def enter(self):
        with self.lock:
            if self.state == "abandoned":
                raise Abandoned()
            self.state = "committed"
        super().enter()

    def abandon(self):
        """True when the delivery will now never commit (its reply is not waited for)."""
        with self.lock:
            if self.state == "running":
                self.state = "abandoned"
            return self.state == "abandoned"


class Server:
    """State shared by all sessions; daemon.py creates it and owns the event loop."""

    def __init__(self, settings, delivery_pool, lookup_pool, hostname, max_connections):
        self.settings = settings
        self.delivery_pool = delivery_pool
        self.lookup_pool = lookup_pool    # lmtp_delivery_threads threads; tables are shared
        self.hostname = hostname
        self.max_connections = max_connections
        self.sessions = {}                # Session -> its task
        self.closing = False
        self.abandoning = False

        async def no_refresh():
            pass
        self.refresh = no_refresh         # daemon.py: reload when a table file changed

    async def handle(self, reader, writer):
        # asyncio's socket transport reads up to 256 KiB at a time (max_size, a class
        # attribute of its selector transport), which the session's buffer then holds
        # beside what it has not read yet; CHUNK_SIZE is what a session reads at a time.
        if isinstance(getattr(writer.transport, "max_size", None), int):
            writer.transport.max_size = CHUNK_SIZE
        session = Session(self, reader, writer)
        self.sessions[session] = asyncio.current_task()
        try:
            with metrics.current.session():
                await session.run()
        finally:
            self.sessions.pop(session, None)

    def replace_settings(self, settings):
        old, self.settings = self.settings, settings
        old.closer = self.close_tables  # retire() may close them now, on the event loop
        old.retire()

    def close_tables(self, tables):
        """Close replaced tables on a lookup thread: closing may wait (an LDAP unbind, a
        database's goodbye) and the event loop serves every session."""
        try:
            self.lookup_pool.submit(resolve.close_tables, tables)
        except RuntimeError:  # the pool is shut down: the daemon is stopping
            resolve.close_tables(tables)

    def begin_shutdown(self):
        """Stop sessions that are idle or receiving DATA; let deliveries finish."""
        self.closing = True
        for session, task in list(self.sessions.items()):
            if session.phase != "delivering":
                task.cancel()

    def abandon(self):
        """Past lmtp_shutdown_timeout: no delivery starts; one that has not reached its commit
        point never will, and its session closes without a reply. A committed one goes on."""
        self.abandoning = True
        for session, task in list(self.sessions.items()):
            if session.phase != "delivering" or (session.ticket and session.ticket.abandon()):
                task.cancel()

    async def wait_sessions(self, timeout):
        """Wait for the sessions (at most timeout seconds, None: for ever); True if all ended."""
        tasks = list(self.sessions.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            return not pending
        return True


class Session:
    def __init__(self, server, reader, writer):
        self.server, self.reader, self.writer = server, reader, writer
        self.phase = "idle"   # idle | data | delivering
        self.greeted = False
        self.leftover = b""   # bytes read but not yet used (pipelined commands)
        self.outbox = []      # replies not yet written
        self.spool = None     # one spool per session, reset per message
        self.in_flight = None # the delivery thread's future while it reads the spool
        self.ticket = None    # that delivery's commit point
        self.settings = None
        self.reset()

    def reset(self):
        if self.settings is not None:
            self.settings.release()
        self.settings = None
        self.sender = None
        self.recipients = []  # (recipient, original recipient, Mailbox)
        self.envid = ""       # MAIL's ENVID, decoded (dsn.py)
        self.notices = {}     # folded recipient -> its ORCPT as given, for NOTIFY=SUCCESS

    async def send(self, *lines, now=False):
        """Queue replies; write them now unless another pipelined command is already here
        (then they go out together with its reply: one write, as Postfix's smtpd does).
        now: write them at once whatever follows (the replies after the final dot: Postfix
        pipelines QUIT behind the dot and waits for each of them in turn)."""
        self.outbox.extend(line + "\r\n" for line in lines)
        if now or b"\n" not in self.leftover:
            await self.flush()

    def peer_gone(self):
        """The client closed or reset the connection: a reply can no longer reach it."""
        return self.writer.transport.is_closing() or self.reader.at_eof()

    async def flush(self):
        if self.outbox:
            text, self.outbox = "".join(self.outbox), []
            self.writer.write(text.encode("utf-8", "surrogateescape"))
            await self.writer.drain()

    async def run(self):
        try:
            if len(self.server.sessions) > self.server.max_connections:
                await self.send(reply("too many connections"))
                return
            await self.send(reply("greeting", self.server.hostname))
            while not self.server.closing:
                line = await self.read_command()
                if line is None:
                    return
                if not await self.dispatch(line):
                    return
            await self.send(reply("shutting down"))
        except asyncio.CancelledError:
            if self.phase == "idle":  # between commands: say goodbye
                try:
                    self.writer.write((reply("shutting down") + "\r\n").encode())
                except Exception:  # noqa: BLE001 - a goodbye to a peer that may be gone
                    pass
            # mid-DATA, or a delivery abandoned at shutdown: close without a reply;
            # nothing was delivered (Ticket)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception as error:  # noqa: BLE001 - a bug: say so and close; Postfix retries later
            config = (self.settings or self.server.settings).config
            log.log(config, f"LMTP session ended by {internal_error(error).text()}", "error")
            try:
                await self.send(reply("internal error"))
            except Exception:  # noqa: BLE001 - the session is ending anyway
                pass
        finally:
            self.end()

    def end(self):
        """Close the session's files and connection; what a delivery thread still reads (its
        session was cancelled mid-delivery) is released once that delivery is done: closing
        the spool under the thread could let the fd number be reused and the thread copy
        another file's bytes."""
        spool, settings, in_flight = self.spool, self.settings, self.in_flight
        self.spool = self.settings = None

        def release(_=None):
            if spool is not None:
                spool.close()
            if settings is not None:
                settings.release()

        if in_flight is not None and not in_flight.done():
            in_flight.add_done_callback(release)
        else:
            release()
        if self.outbox:  # e.g. 221 to a QUIT pipelined behind other commands
            try:
                self.writer.write("".join(self.outbox).encode("utf-8", "surrogateescape"))
            except Exception:  # noqa: BLE001 - the peer may be gone; the socket closes next
                pass
        self.writer.close()

    async def read_command(self):
        """The next command line, from what was read already or from the socket; None: close.
        A line over MAX_COMMAND_LINE is dropped to its end and answered with one 500 (one
        reply per command keeps a pipelining client in step); the session goes on."""
        timeout = (self.settings or self.server.settings).idle_timeout
        too_long = False
        while True:
            newline = self.leftover.find(b"\n")
            if newline >= 0:
                line, self.leftover = self.leftover[:newline + 1], self.leftover[newline + 1:]
                if not too_long and len(line) <= MAX_COMMAND_LINE:
                    break
                too_long = False
                await self.send(reply("line too long"))
                continue
            if len(self.leftover) > MAX_COMMAND_LINE:
                too_long, self.leftover = True, b""  # memory stays bounded: drop what is read
            await self.flush()  # nothing more to answer: the client may be waiting for us
            try:
                async with asyncio.timeout(timeout):
                    chunk = await self.reader.read(CHUNK_SIZE)
            except TimeoutError:
                await self.send(reply("idle timeout"))
                return None
            if not chunk:
                return None  # EOF; an unfinished line is not a command
            self.leftover += chunk
        return line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")

    async def dispatch(self, line):
        """Run one command; False: close the connection."""
        verb, _, argument = line.partition(" ")
        verb = verb.upper()
        if verb == "LHLO":
            await self.lhlo(argument)
        elif verb in ("HELO", "EHLO"):
            await self.send(reply("use lhlo"))
        elif verb == "MAIL":
            await self.mail(argument)
        elif verb == "RCPT":
            await self.rcpt(argument)
        elif verb == "DATA":
            return await self.data()
        elif verb == "RSET":
            self.reset()
            await self.send(reply("ok"))
        elif verb == "NOOP":
            await self.send(reply("ok"))
        elif verb == "VRFY":
            await self.send(reply("cannot verify" if argument.strip() else "vrfy syntax"))
        elif verb == "QUIT":
            await self.send(reply("bye"))
            return False
        elif verb in NOT_IMPLEMENTED:
            await self.send(reply("not implemented"))
        else:
            await self.send(reply("unknown command"))
        return True

    async def lhlo(self, argument):
        if not argument.strip():
            await self.send(reply("lhlo syntax"))
            return
        self.greeted = True
        self.reset()
        size = self.server.settings.max_message_size
        # RFC 1870: SIZE without a number announces the extension, no fixed limit.
        dsn_keyword = ("250-DSN",) if self.server.settings.dsn else ()
        await self.send(f"250-{self.server.hostname}", "250-PIPELINING", "250-ENHANCEDSTATUSCODES",
                        "250-8BITMIME", "250-SMTPUTF8", *dsn_keyword,
                        f"250 SIZE {size}" if size > 0 else "250 SIZE")

    async def mail(self, argument):
        if not self.greeted:
            await self.send(reply("lhlo first"))
            return
        if self.sender is not None:
            await self.send(reply("nested mail"))
            return
        path, params = parse_path(argument, "FROM:")
        if path is None:
            await self.send(reply("mail syntax"))
            return
        path = address.unquote_local_part(path)
        await self.server.refresh()
        settings = self.server.settings
        declared = params.get("SIZE", "0")
        if declared.isascii() and declared.isdigit() and settings.too_big(int(declared)):
            log.log(settings.config, one_line(f"LMTP MAIL FROM:<{path}>: SIZE={declared} is over"
                                              " lmtp_message_size_limit: refused", 500))
            await self.send(lmtp_reply(MessageTooBig()))
            return
        try:
            address.check_sender(path)
        except BadSenderAddress as error:
            await self.send(lmtp_reply(error))
            return
        envid = ""
        if settings.dsn:
            try:
                if "RET" in params:
                    dsn.parse_ret(params["RET"])  # a success report never returns the body
                if "ENVID" in params:
                    envid = dsn.parse_envid(params["ENVID"])
            except ValueError as error:  # 501 here would make Postfix bounce the message
                dsn_ignored(settings.config, f"MAIL FROM:<{path}>", error)
        self.settings, self.sender, self.envid = settings.acquire(), path, envid
        await self.send(reply("sender ok"))

    async def rcpt(self, argument):
        if self.sender is None:
            await self.send(reply("mail first"))
            return
        path, params = parse_path(argument, "TO:")
        if not path:
            await self.send(reply("rcpt syntax"))
            return
        path = address.unquote_local_part(path)  # external (quoted) form -> internal, as pipe(8) gives
        if len(self.recipients) >= self.settings.max_recipients:
            await self.send(reply("too many recipients"))
            return
        notify = frozenset()
        if self.settings.dsn and "NOTIFY" in params:
            try:
                notify = dsn.parse_notify(params["NOTIFY"])
            except ValueError as error:  # 501 here would make Postfix bounce the recipient
                dsn_ignored(self.settings.config, f"RCPT TO:<{path}>", error)
        # ORCPT carries the external form ("john doe"@x); pipe(8)'s -a gives the internal one.
        original = address.unquote_local_part(decode_orcpt(params.get("ORCPT", "")))
        try:
            address.check_recipient(path)
            # A malformed ORCPT only loses X-Original-To (deliver.Envelope drops it, noted).
            settings = self.settings
            if all(table.spec.split(":", 1)[0] in IN_MEMORY_TABLES for table in settings.tables.mailbox):
                mailbox = resolve.resolve(path, settings.config, settings.tables)
            else:
                loop = asyncio.get_running_loop()
                mailbox = await loop.run_in_executor(
                    self.server.lookup_pool, resolve.resolve, path, settings.config, settings.tables)
        except BadRecipientAddress as error:
            await self.send(lmtp_reply(error))
            return
        except DeliveryError as error:
            log_failure(self.settings.config, path, original, time.monotonic(), error)
            await self.send(lmtp_reply(error))
            return
        except Exception as error:  # noqa: BLE001 - a bug defers this recipient (451), logged
            error = internal_error(error)
            log_failure(self.settings.config, path, original, time.monotonic(), error)
            await self.send(lmtp_reply(error))
            return
        self.recipients.append((path, original, mailbox))
        if "SUCCESS" in notify and self.sender:  # never a report to <>
            self.notices.setdefault(address.fold(path), params.get("ORCPT", ""))
        await self.send(reply("recipient ok"))

    async def data(self):
        """DATA up to the final dot, then one reply per recipient; False: close."""
        if not self.recipients:
            await self.send(reply("no recipients"))
            return True
        config = self.settings.config
        try:
            if self.spool is None:
                self.spool = Spool(spool_directory(config))
        except OSError as err:  # e.g. a full, read-only or unwritable spool directory
            await self.refuse_all(spool_open_error(config, err))
            self.reset()
            return True
        spool = self.spool
        try:
            await self.send(reply("start data"))
            await self.flush()  # the client waits for it, whatever else it sent
            self.phase = "data"
            try:
                too_big, spool_error = await self.receive(spool)
            except asyncio.TimeoutError:
                log.log(config, f"LMTP session: timeout during DATA after {spool.length} bytes,"
                                " closing connection", "warning")
                await self.send(reply("data timeout"))
                self.phase = "idle"
                return False
            # The final dot was read: from here only shutdown's abandon() cancels it.
            self.phase = "delivering"
            if spool_error is not None:
                await self.refuse_all(spool_error, per_recipient=True)
            elif too_big:
                await self.refuse_all(MessageTooBig(
                    f"{spool.length}+ bytes over lmtp_message_size_limit"), per_recipient=True)
            elif not await self.deliver_all(spool):
                return False
            self.phase = "idle"  # only here: run() reads the phase a cancellation came in
            return True
        finally:
            self.reset()
            if self.in_flight is None:  # never under a delivery thread still reading it
                spool.reset()

    async def refuse_all(self, error, per_recipient=False):
        """The same failure for every accepted recipient: logged for each, one reply to a
        refused DATA, or one reply per recipient after the final dot."""
        started = time.monotonic()
        for recipient, original, _ in self.recipients:
            log_failure(self.settings.config, recipient, original, started, error)
        await self.send(*[lmtp_reply(error)] * (len(self.recipients) if per_recipient else 1))

    async def receive(self, spool):
        """Read DATA up to the final dot into the spool; (too_big, spool_error).

        A write to the spool that fails (a full disk) is kept as spool_error;
        the rest is read and dropped, so the replies can follow the dot.
        asyncio.TimeoutError: the client sent nothing for lmtp_idle_timeout.
        """
        settings = self.settings
        decoder, data, self.leftover = Decoder(), self.leftover, b""
        size, too_big, spool_error = 0, False, None
        while True:
            text = decoder.feed(data)
            if text:
                size += len(text)
                too_big = too_big or settings.too_big(size)
                if not too_big and spool_error is None:
                    try:
                        spool.write(text)
                    except OSError as err:
                        spool_error = from_os_error(
                            err, f"write the DATA spool in {spool_directory(settings.config)}")
            if decoder.done:
                self.leftover = decoder.rest
                return too_big, spool_error
            async with asyncio.timeout(settings.idle_timeout):
                data = await self.reader.read(CHUNK_SIZE)
            if not data:
                raise ConnectionError("connection closed during DATA")

    async def deliver_all(self, spool):
        """One delivery per distinct recipient, in RCPT order, each reply sent when its copy
        is durable; False when shutdown abandoned the rest or the client went away (no
        reply for them)."""
        loop = asyncio.get_running_loop()
        replies = {}
        for recipient, original, mailbox in self.recipients:
            key = address.fold(recipient)
            if key not in replies:
                if self.server.abandoning:
                    return False
                if self.peer_gone():  # a copy committed now would get no reply, and come again
                    return self.client_gone(replies)
                self.ticket = Ticket()
                notice = None
                if key in self.notices:
                    notice = dsn.Notice(self.envid, self.notices[key], self.server.hostname,
                                        spool.reader(), time.time())
                future = loop.run_in_executor(
                    self.server.delivery_pool, deliver_one, self.settings, self.sender, recipient,
                    original, mailbox, spool.reader(), self.ticket, notice)
                self.in_flight = future
                with metrics.current.delivering():
                    answer = await asyncio.shield(future)
                self.in_flight = self.ticket = None
                if answer is None:  # abandoned at its commit point
                    return False
                replies[key] = answer
                if answer.startswith("250"):
                    metrics.current.sent_bytes(spool.length)
            try:
                await self.send(replies[key], now=True)
            except ConnectionError:
                return self.client_gone(replies)
        return True

    def client_gone(self, replies):
        """Postfix gave up (lmtp_data_done_timeout) or went away after the final dot: the
        deliveries not started are not made (a copy committed now would get no reply and
        come again). Logged; False: the session ends."""
        left = len({address.fold(r) for r, _, _ in self.recipients} - replies.keys())
        log.log(self.settings.config, f"LMTP client gone after the final dot: {left}"
                " recipient(s) not delivered (no reply; the client retries them)", "warning")
        return False


def deliver_one(settings, sender, recipient, original, mailbox, read_chunk, point, notice=None):
    """Deliver one copy from the spool (a delivery thread); its LMTP reply, None if abandoned.
    notice (a dsn.Notice): the sender asked NOTIFY=SUCCESS; the report follows the commit."""
    started = time.monotonic()
    config = settings.config
    try:
        envelope = deliver.Envelope(sender, recipient, original)
        delivery = deliver.deliver(envelope, config, read_chunk, settings.tables, mailbox, point)
    except BaseException as error:  # noqa: BLE001 - a bug defers this copy (451), unless it is durable
        if point.committed:  # in new/ already: any other reply would deliver it twice
            log.log(config, log.delivery_line(recipient, original, started, "2.0.0", "sent",
                                              one_line(f"delivered; after the commit: {error!r}")))
            metrics.current.sent(started)  # metrics.py: a hook never raises
            return reply("delivered", one_line(recipient, MAX_REPLY_ADDRESS))
        if not isinstance(error, Exception):
            raise  # KeyboardInterrupt, SystemExit: not this copy's outcome
        if isinstance(error, DeliveryError):
            log_failure(config, recipient, original, started, error)
            return None if isinstance(error, Abandoned) else lmtp_reply(error)
        error = internal_error(error)
        log_failure(config, recipient, original, started, error)
        return lmtp_reply(error)
    try:
        text = delivery.summary()
    except Exception as error:  # noqa: BLE001 - the copy is durable: only the log text suffers
        text = one_line(f"delivered; no summary: {error!r}")
    if notice is not None:
        text += f"; {dsn.send_success(config, notice, sender, recipient)}"
    log.log(config, log.delivery_line(recipient, original, started, "2.0.0", "sent", text))
    metrics.current.sent(started, delivery)
    return reply("delivered", one_line(recipient, MAX_REPLY_ADDRESS))


def dsn_ignored(config, command, error):
    """A malformed DSN parameter: logged and ignored (its default applies). Refusing it
    would bounce mail over a notice; a malformed ORCPT only loses X-Original-To."""
    log.log(config, one_line(f"LMTP {command}: ignoring a malformed DSN parameter: {error}", 500),
            "warning")


def log_failure(config, recipient, original, started, error):
    outcome = "bounced" if error.is_bounce else "deferred"
    metrics.current.failed(error)
    log.log(config, log.delivery_line(one_line(recipient, 300), one_line(original, 300), started,
                                      error.status, outcome, error.text()),
            "info" if error.is_bounce else "warning")


def spool_directory(config):
    return config.get("lmtp_spool_directory") or config.get("virtual_mailbox_base")


def spool_open_error(config, err):
    """Why the DATA spool could not be opened. The spool lives in the mail base unless
    lmtp_spool_directory says otherwise, and an unmounted base (an empty root-owned
    mount point) refuses it: say that (4.3.0, as each delivery would) rather than 4.2.0."""
    if not config.get("lmtp_spool_directory") and config.get_bool("virtual_mailbox_base_mounted"):
        try:
            deliver.check_mounted(deliver.mailbox_base(config))
        except DeliveryError as error:
            return error
    return from_os_error(err, f"open the DATA spool in {spool_directory(config)}")
