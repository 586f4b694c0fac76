"""The pipe(8) front end: argv + stdin -> one delivery -> exit status.

    vdeliver [-c config] [-o name=value]... [-f sender] [-a original_recipient]
             [-i queue_id] [-n] [--] recipient

This is the one place where a DeliveryError becomes an exit status and a
status line: nothing on stdout on success; on failure exactly one line,
`4.x.x reason` or `5.x.x reason`, which pipe(8) puts into the DSN (the code
overrides the exit status). One log line per delivery (log.py).

Never: exit with anything but 0, 75 (defer) or a bounce code for a fact about
the recipient or message (67, 65); usage errors and unexpected exceptions
defer 75, never 64 or 1 (Postfix bounces those). Never print a traceback on
stdout. Never outlive time_limit. Imports stay minimal: paid per message.
"""
import _signal
import posix
import sys
import time

from vdeliver import log
from vdeliver.commitpoint import PROCESS
from vdeliver.errors import (ConfigError, DeliveryError, InputError, Interrupted,
                             TimeLimitExceeded, internal_error, one_line)

USAGE = ("usage: vdeliver [-c config] [-o name=value]... [-f sender]"
         " [-a original_recipient] [-i queue_id] [-n] [--] recipient\n"
         "       vdeliver -q KEY TYPE:NAME | vdeliver [-c config] -q ADDRESS\n"
         "       vdeliver --lmtp [-c config] [-o name=value]... [--foreground]\n"
         "       vdeliver check [-c config] [-C postfix_dir] [-u address]... [--all-users] [-n]\n"
         "       vdeliver --sieve-check [-c config] SCRIPT...\n"
         "       vdeliver --sieve-test [-c config] [-f sender] [-r recipient] [-F folder]..."
         " SCRIPT MESSAGE")
VALUE_OPTIONS = {"c": "config", "o": "overrides", "f": "sender", "a": "original_recipient",
                 "i": "queue_id"}


class Options:
    def __init__(self):
        from vdeliver.config import DEFAULT_CONFIG
        self.config = DEFAULT_CONFIG
        self.overrides = []
        self.sender = ""
        self.original_recipient = ""
        self.queue_id = ""
        self.dry_run = False
        self.help = False
        self.version = False
        self.recipients = []
        self.loaded_config = None
        self.mode = "deliver"  # or "lmtp", "query"
        self.mode_index = None


def parse_args(argv):
    """getopt-style parsing without getopt (it imports gettext: 6 ms per message).

    The one parse of the command line: it also finds the mode (`--lmtp`, `-q`)
    in an option position only, never as an option's value (`-f -q` is the
    sender "-q")."""
    options = Options()
    if argv[:1] == ["check"]:  # vdeliver check [options] (check.py): only as the first argument
        options.mode, options.mode_index = "check", 0
        return options
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            break
        if arg in ("-h", "--help"):
            options.help = True
            continue
        if arg in ("-V", "--version"):
            options.version = True
            continue
        if arg == "--lmtp":
            options.mode, options.mode_index = "lmtp", index - 1
            return options  # the daemon parses its own options (daemon.parse_args)
        if arg in ("--sieve-test", "--sieve-check"):
            options.mode, options.mode_index = arg[2:], index - 1
            return options  # sievetool.py parses the rest
        if arg in ("--foreground", "-F"):
            continue  # the daemon's (it parses them again); here only to find --lmtp after it
        if arg == "-q":
            options.mode, options.mode_index = "query", index - 1
            return options  # vdeliver -q KEY TYPE:NAME | vdeliver [-c cf] -q ADDRESS
        if not arg.startswith("-") or arg == "-":
            index -= 1
            break
        letter = arg[1]
        if letter == "n" and len(arg) == 2:
            options.dry_run = True
            continue
        if letter not in VALUE_OPTIONS:
            raise ConfigError(f"unknown option {arg}; {USAGE}")
        if len(arg) > 2:
            value = arg[2:]
        elif index < len(argv):
            value = argv[index]
            index += 1
        else:
            raise ConfigError(f"option -{letter} needs a value; {USAGE}")
        if letter == "o":
            options.overrides.append(value)
        else:
            setattr(options, VALUE_OPTIONS[letter], value)
    options.recipients = argv[index:]
    return options


def launch():
    """bin/vdeliver: main(), then the end of the process without interpreter finalization
    (1.2 ms per message here): the mail is fsynced before main() returns and the pipe path
    writes with posix.write; what other commands (-q, --lmtp) printed through sys.stdout is
    flushed first."""
    ensure_utf8_mode()
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or full stdout must not change the status
        pass
    posix._exit(status)


def ensure_utf8_mode():
    """Run in Python's UTF-8 mode, or start again in it (before anything is read): argv,
    paths and the std streams are then UTF-8 with surrogateescape, whatever the locale.
    pipe(8) exports LANG, and under a Latin-1 one Python reads a UTF-8 recipient in argv
    as Latin-1 and writes mailbox paths in Latin-1: the lookup fails, and a real user
    bounces 5.1.1. bin/vdeliver starts in it (-ISXutf8); `python -m vdeliver` or a
    wrapper that dropped the flag does not."""
    if not sys.flags.utf8_mode and "utf8" not in sys._xoptions:
        try:
            posix.execv(sys.executable, [sys.executable, "-X", "utf8", *sys.orig_argv[1:]])
        except OSError:  # no interpreter to start (sys.executable empty): go on as started;
            pass         # raising here, outside main(), would exit 1: a bounce


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main_unguarded(argv)
    except BaseException:  # noqa: BLE001 - even reporting failed: defer, never exit 1 (a bounce)
        return 0 if PROCESS.committed else 75


def main_unguarded(argv):
    started = time.monotonic()
    options = None
    try:
        options = parse_args(argv)
        if options.mode == "lmtp":
            from vdeliver import daemon
            return daemon.main(argv)
        if options.mode == "check":
            from vdeliver import check
            return check.main(argv[1:])
        if options.mode in ("sieve-test", "sieve-check"):
            from vdeliver import sievetool
            return sievetool.main(options.mode, argv[:options.mode_index] + argv[options.mode_index + 1:])
        if options.mode == "query":
            from vdeliver import query
            return query.main(argv[:options.mode_index] + argv[options.mode_index + 1:])
        set_signal_handlers()
        if options.help or options.version:
            from vdeliver import __version__
            write_stdout(USAGE if options.help else f"vdeliver {__version__}")
            return 0
        return run(options, started)
    except DeliveryError as error:
        _signal.alarm(0)
        if PROCESS.committed:
            return 0  # cannot happen (nothing raises after the commit): delivered all the same
        return report_failure(error, options, started)
    except BaseException as error:  # noqa: BLE001 - a bug must defer, never bounce (exit 1)
        _signal.alarm(0)
        if PROCESS.committed:
            return 0  # the message is durable in the mailbox: it is delivered
        return report_failure(internal_error(error), options, started)


def run(options, started):
    if not options.dry_run:
        # fd 0 not open: the first file kept open (an sqlite: table) would become
        # "stdin" and be delivered as the message. Defer before opening anything
        # (tests/faults/test_fault_stdin.py).
        try:
            posix.fstat(0)
        except OSError:
            raise InputError("standard input is not open") from None
    from vdeliver import config as config_module
    # The default limit holds while the config itself is read (a file that blocks on
    # open must not run into Postfix's command_time_limit, which bounces).
    _signal.alarm(config_module.TIME_UNITS["s"] * 600)
    config = config_module.load(options.config, options.overrides)
    options.loaded_config = config
    _signal.alarm(config.get_time("time_limit"))
    from vdeliver import address
    address.set_smtputf8(config.get_bool("smtputf8_enable"))  # before any fold or table
    if len(options.recipients) != 1:
        raise ConfigError(
            f"{len(options.recipients)} recipients given",
            hint="vdeliver takes exactly one recipient: set"
                 " vdeliver_destination_recipient_limit = 1 in main.cf")
    from vdeliver import deliver
    base = deliver.mailbox_base(config)
    if posix.geteuid() == 0 or posix.getuid() == 0:
        # Run by hand as root (pipe(8) refuses to run a command as root): only then is
        # there anything to drop, and privileges.py is not one of the pipe modules.
        from vdeliver import privileges
        privileges.drop_root(base)
    if options.dry_run:
        return dry_run(options, config)
    envelope = deliver.Envelope(options.sender, options.recipients[0], options.original_recipient)
    from vdeliver.message import read_stdin
    delivery = deliver.deliver(envelope, config, read_stdin)
    # Delivered and durable (commitpoint.PROCESS.committed): from here on nothing may
    # turn this into a deferral (Postfix would deliver the message a second time).
    _signal.alarm(0)
    log.log(config, log.delivery_line(
        envelope.recipient, envelope.original_recipient, started, "2.0.0", "sent",
        delivery.summary(), options.queue_id))
    return 0


def dry_run(options, config):
    """Resolve only: print what a delivery would do; exit with its status."""
    from vdeliver import address, deliver, resolve
    recipient = address.check_recipient(options.recipients[0])
    folded = address.fold(recipient)
    queries = address.lookup_queries(folded, config.get("recipient_delimiter"))
    lines = [f"recipient: {recipient}", f"lookup keys: {', '.join(key for key, _ in queries)}"]
    try:
        mailbox = resolve.resolve(recipient, config)
    except DeliveryError:
        write_stdout("\n".join(lines) + "\n")
        raise
    base = deliver.mailbox_base(config)
    lines += [f"table: {mailbox.table}", f"matched key: {mailbox.key}",
              f"result: {mailbox.result}", f"mailbox: {base.rstrip('/')}/{mailbox.path}",
              f"format: {mailbox.format}"]
    if config.get_bool("sieve"):
        from vdeliver import filtering
        if mailbox.format == resolve.MAILDIR:
            from vdeliver import sieveroute
            home = sieveroute.sieve_home(base, mailbox, recipient, config, None)
        else:
            from vdeliver import mboxroute
            home = mboxroute.home_of(base, mailbox, recipient, config, None)[0]
        try:
            scripts = filtering.find_scripts(config, home)
        finally:
            home.close()
        lines.append(f"home: {home.shown}")
        lines += [f"sieve {script.kind}: {script.shown}"
                  + (f" ({script.problem})" if script.problem else "") for script in scripts]
        if not scripts:
            lines.append("sieve: no script")
    write_stdout("\n".join(lines) + "\n")
    return 0


def report_failure(error, options, started):
    """Print the status line, log the attempt, return the exit status."""
    write_stdout(error.status_line())
    config = getattr(options, "loaded_config", None)
    recipient = options.recipients[0] if options and len(options.recipients) == 1 else "?"
    original = options.original_recipient if options else ""
    outcome = "bounced" if error.is_bounce else "deferred"
    queue_id = options.queue_id if options else ""
    log.log(config, log.delivery_line(one_line(recipient, 300), one_line(original, 300), started,
                                      error.status, outcome, error.text(), queue_id),
            "info" if error.is_bounce else "warning")
    return error.exit_code


def set_signal_handlers():
    # _signal, not signal: the signal module imports enum (milliseconds per message).
    _signal.signal(_signal.SIGALRM, on_alarm)
    for number in (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGINT):
        _signal.signal(number, on_terminate)
    # A mask inherited from the parent (a wrapper, a supervisor) would hold SIGALRM back:
    # time_limit would never end a hung delivery, and Postfix's kill bounces (5.3.0).
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, (_signal.SIGALRM, _signal.SIGTERM,
                                                  _signal.SIGHUP, _signal.SIGINT))


def on_alarm(signum, frame):
    # Inside the commit point (or a failure's cleanup) a handler raises nothing:
    # the store's own result decides (commitpoint.py).
    if not PROCESS.holding:
        raise TimeLimitExceeded("time_limit reached")


def on_terminate(signum, frame):
    if not PROCESS.holding:
        raise Interrupted(f"signal {signum}")


def write_stdout(text):
    """pipe(8) gives a non-blocking pipe: one short write, errors ignored.

    No final newline unless stdout is a terminal: pipe(8) turns it into a
    trailing space in its log line and the DSN.
    """
    if posix.isatty(1):
        text += "\n"
    try:
        posix.write(1, text.encode("utf-8", "surrogateescape"))
    except OSError:
        pass
