"""`vdeliver check`: is this setup right? As `postfix check` and `postconf -n` do for Postfix.

    vdeliver check [-c config] [-C DIR] [-u ADDRESS]... [--all-users]
                                    one line per finding, `vdeliver: error: ...` or
                                    `vdeliver: warning: ...`; exit 0 clean, 1 with findings
    vdeliver check -n [-c config]   the parameters that differ from their defaults, as
                                    `postconf -n` prints them (`name = value`)

-C DIR (--postfix-config DIR): Postfix's config directory, as `postconf -c DIR`
(default: postconf's own); -u ADDRESS: also compile that recipient's personal
Sieve scripts; --all-users: those of every address the tables can list.

Reads the same vdeliver.cf the deliveries read, and finds what a delivery would defer
on, before mail does: an unknown or misspelled parameter (with the nearest known
name), a value that does not parse, a `$name` that does not resolve, a mail base that
is missing, owned by root or writable by others, a table that does not open or
cannot answer a probe lookup (a database that is down is named); Postfix's side
(checkpostfix.py: the master.cf service or the LMTP socket, the recipient limit,
the route to it); every Sieve script that would run compiles (checksieve.py).

Never: write, deliver or change anything; stop at the first finding (report them
all); run as root past the config checks (tables are opened as the owner of the mail
base, as deliveries do).
"""
import difflib
import os
import signal
import sys

from vdeliver import config as config_module
from vdeliver.errors import DeliveryError, TimeLimitExceeded

# What each typed parameter must parse as (the accessor the code reads it with).
KINDS = {
    "bool": ("enable_original_recipient", "write_delivery_headers", "sieve", "smtputf8_enable",
             "virtual_mailbox_base_mounted", "sieve_vacation_send_from_recipient",
             "duplicate_suppression"),
    "time": ("time_limit", "mbox_lock_timeout", "quota_lock_timeout", "lmtp_idle_timeout",
             "lmtp_shutdown_timeout", "sieve_max_cpu_time", "sendmail_timeout",
             "sieve_vacation_min_period", "sieve_vacation_default_period",
             "sieve_vacation_max_period", "sieve_redirect_duplicate_period",
             "duplicate_suppression_period", "socketmap_idle_timeout",
             "socketmap_lookup_timeout", "socketmap_timeout"),
    "int": ("lmtp_max_connections", "lmtp_message_size_limit", "lmtp_recipient_limit",
            "lmtp_delivery_threads", "sieve_max_actions", "sieve_max_redirects",
            "socketmap_max_connections"),
    "size": ("sieve_max_script_size",),
}
CHOICES = {"extension_folder": ("no", "existing", "create"),
           "folder_name_encoding": ("utf7", "utf8"),
           "imap_namespace_prefix": ("", "inbox.", "inbox/"),
           "quota_exceeded_action": ("defer", "bounce")}
MAPS = ("virtual_mailbox_maps", "virtual_mailbox_quota_maps", "virtual_home_maps")
PROBE = "vdeliver-check-probe@invalid"


class Findings:
    def __init__(self, out):
        self.out, self.count = out, 0

    def error(self, text):
        self.say("error", text)

    def warning(self, text):
        self.say("warning", text)

    def say(self, level, text):
        self.count += 1
        self.out.write(f"vdeliver: {level}: {text}\n")


def raw_parameters(path, findings):
    """(name -> value as written, name -> line) of the file, each bad line a finding."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except OSError as err:
        findings.error(f"cannot read {path}: {err.strerror}")
        return None, {}
    values, lines = {}, {}
    try:
        for number, line in config_module.logical_lines(text):
            name, sep, value = line.partition("=")
            name = name.strip()
            if not sep or not config_module.is_parameter_name(name):
                findings.error(f"{path}, line {number}: expected 'name = value'")
                continue
            if name not in config_module.DEFAULTS:
                near = difflib.get_close_matches(name, config_module.DEFAULTS, n=1, cutoff=0.6)
                hint = f" (did you mean {near[0]}?)" if near else ""
                findings.error(f"{path}, line {number}: unknown parameter {name}{hint}")
                continue
            values[name], lines[name] = value.strip(), number
    except DeliveryError as error:
        findings.error(f"{path}: {error.detail}")
    return values, lines


def check_values(config, lines, path, findings):
    getters = {"bool": config.get_bool, "time": config.get_time, "int": config.get_int,
               "size": config.get_size}
    for name in config_module.DEFAULTS:
        where = f"{path}, line {lines[name]}: " if name in lines else ""
        try:
            config.get(name)  # every $name expands
            for kind, names in KINDS.items():
                if name in names:
                    getters[kind](name)
            if name in CHOICES:
                config.get_choice(name, CHOICES[name])
        except DeliveryError as error:
            findings.error(f"{where}{error.detail}")


def check_metrics(config, findings):
    spec = config.get("lmtp_metrics_listen").strip()
    if not spec:
        return
    from vdeliver import metrics
    try:
        metrics.parse_listen(spec)
    except DeliveryError as error:
        findings.error(error.detail)
    import importlib.util
    if importlib.util.find_spec("prometheus_client") is None:
        findings.error("lmtp_metrics_listen is set, but prometheus_client is not installed"
                       " (the vdeliver[metrics] extra): the LMTP daemon will not start")


def check_base(config, findings):
    base = config.get("virtual_mailbox_base").strip()
    if not base:
        findings.error("virtual_mailbox_base is not set")
        return None
    if not base.startswith("/"):
        findings.error(f"virtual_mailbox_base {base} is not an absolute path")
        return None
    try:
        st = os.stat(base)
    except OSError as err:
        findings.error(f"virtual_mailbox_base {base}: {err.strerror}")
        return None
    if st.st_uid == 0:
        findings.error(f"virtual_mailbox_base {base} is owned by root: vdeliver never writes mail as root")
    if st.st_mode & 0o002:
        findings.error(f"virtual_mailbox_base {base} is writable by others: deliveries defer")
    elif st.st_mode & 0o020:
        findings.warning(f"virtual_mailbox_base {base} is writable by its group (gid"
                         f" {st.st_gid}): its members can replace any mailbox")
    if config.get_bool("virtual_mailbox_base_mounted"):
        from vdeliver import deliver
        try:
            deliver.check_mounted(base)
        except DeliveryError as error:
            findings.error(error.detail)
    return st


def check_tables(config, findings):
    from vdeliver.tables import open_table
    from vdeliver.tables import texthash
    texthash.CACHE_DIRECTORY = config.get("table_cache_directory").strip()
    limit = config.get_time("time_limit")
    for parameter in MAPS:
        for spec in config.get_list(parameter):
            try:
                table = within(limit, open_table, spec)
                if getattr(table, "note", None):  # what a delivery logs as a warning
                    findings.warning(f"{parameter}: {spec}: {table.note}")
                stale = stale_index(spec)
                if stale:
                    findings.warning(f"{parameter}: {spec}: {stale}")
                within(limit, table.lookup, PROBE)
            except TimeLimitExceeded:
                findings.error(f"{parameter}: {spec}: no answer within time_limit ({limit}s):"
                               " every delivery would defer 4.3.0 (a FIFO, a server that"
                               " accepts and never answers)")
            except DeliveryError as error:
                findings.error(f"{parameter}: {spec}: {error.detail or error.reason}")
            except Exception as error:  # noqa: BLE001 - a driver's own error names the table too
                findings.error(f"{parameter}: {spec}: {type(error).__name__}: {error}")
    if not config.get_list("virtual_mailbox_maps"):
        findings.error("virtual_mailbox_maps is empty")


def within(seconds, call, *args):
    """call(*args), ended by TimeLimitExceeded after `seconds`, as a delivery's time_limit
    ends it: a table that never answers must be a finding, not a check that hangs."""
    def expire(signum, frame):
        raise TimeLimitExceeded("time_limit reached")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        return call(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


INDEX_SUFFIXES = {"hash": ".db", "btree": ".db", "cdb": ".cdb", "lmdb": ".lmdb"}


def stale_index(spec):
    """A postmap-made table older than its source file: the source was edited and postmap
    not run again (Postfix only logs it); "" otherwise."""
    kind, _, name = spec.partition(":")
    suffix = INDEX_SUFFIXES.get(kind)
    if not suffix:
        return ""
    try:
        source, index = os.stat(name).st_mtime_ns, os.stat(name + suffix).st_mtime_ns
    except OSError:
        return ""
    if source <= index:
        return ""
    return f"{name}{suffix} is older than {name}: run postmap {spec} (until then, both Postfix" \
           " and vdeliver answer from the old one)"


def non_defaults(values, out):
    for name in sorted(values):
        if values[name] != config_module.DEFAULTS[name]:
            out.write(f"{name} = {values[name]}\n")
    return 0


USAGE = ("usage: vdeliver check [-c config] [-C postfix_config_dir] [-u address]..."
         " [--all-users] [-n]")


class Options:
    path = config_module.DEFAULT_CONFIG
    show = all_users = False
    postfix = None   # Postfix's config directory; None: postconf's default

    def __init__(self):
        self.users = []


def parse(argv):
    options, index = Options(), 0
    while index < len(argv):
        arg = argv[index]
        value = argv[index + 1] if index + 1 < len(argv) else None
        if arg == "-n":
            options.show = True
        elif arg == "--all-users":
            options.all_users = True
        elif arg in ("-c", "-C", "--postfix-config", "-u") and value is not None:
            if arg == "-c":
                options.path = value
            elif arg == "-u":
                options.users.append(value)
            else:
                options.postfix = value
            index += 1
        else:
            raise ValueError(f"unknown argument {arg}")
        index += 1
    return options


def main(argv, out=None):
    out = out or sys.stdout
    try:
        options = parse(argv)
    except ValueError as error:
        sys.stderr.write(f"vdeliver: {error}\n{USAGE}\n")
        return 64
    path = options.path
    findings = Findings(out)
    values, lines = raw_parameters(path, findings)
    if values is None:
        return 1
    if options.show:
        return non_defaults(values, out)
    config = config_module.Config(dict(config_module.DEFAULTS, **values), path)
    check_values(config, lines, path, findings)
    if findings.count:
        return 1  # the rest reads these values
    address_mode = config.get_bool("smtputf8_enable")
    from vdeliver import address
    address.set_smtputf8(address_mode)
    check_metrics(config, findings)
    st = check_base(config, findings)
    # As root: the LMTP socket may be in Postfix's private/ (mode 0700, owner postfix).
    from vdeliver import checkpostfix
    checkpostfix.check(config, path, options.postfix, findings)
    if os.geteuid() == 0:
        if st is None or st.st_uid == 0:
            # Opening tables writes texthash caches: never as root, in a directory the
            # delivery user owns.
            findings.error("tables not checked: no delivery user to open them as"
                           " (the owner of virtual_mailbox_base)")
            return 1
        from vdeliver import privileges
        try:
            privileges.drop_root(config.get("virtual_mailbox_base"))  # tables as deliveries see them
        except DeliveryError as error:
            findings.error(error.detail)
            return 1
    check_tables(config, findings)
    from vdeliver import checksieve
    checksieve.check(config, options.users, options.all_users, findings, options.postfix)
    check_outgoing(config, findings)
    return 1 if findings.count else 0


def check_outgoing(config, findings):
    """sendmail_path runs (an absolute, executable file), or submission_host parses (Sieve's
    outgoing mail, and LMTP's success reports with lmtp_dsn); sieve_redirect_envelope_from parses."""
    from vdeliver import outgoing, submit
    command = config_module.split_list(config.get("sendmail_path"), " \t")
    if config.get("submission_host").strip():
        try:
            submit.host_port(config.get("submission_host"))
        except submit.SubmitError as error:
            findings.error(str(error))
    elif not command or not command[0].startswith("/"):
        findings.error(f"sendmail_path = {config.get('sendmail_path')}: not an absolute path")
    elif not os.access(command[0], os.X_OK):
        reports = (", and so will LMTP's NOTIFY=SUCCESS reports (lmtp_dsn)"
                   if config.get_bool("lmtp_dsn") else "")
        findings.warning(f"sendmail_path: {command[0]} is not an executable file: Sieve's"
                         f" vacation, redirect and notify will fail (the mail is kept){reports}")
    try:
        outgoing.redirect_sender(config, _Sender())
    except DeliveryError as error:
        findings.error(error.detail)


class _Sender:
    sender, recipient, original_recipient = "a@invalid", "b@invalid", ""
