"""`vdeliver check`: is this setup right? As `postfix check` and `postconf -n` do for Postfix.

    vdeliver check [-c config]      one line per finding, `vdeliver: error: ...` or
                                    `vdeliver: warning: ...`; exit 0 clean, 1 with findings
    vdeliver check -n [-c config]   the parameters that differ from their defaults, as
                                    `postconf -n` prints them (`name = value`)

Reads the same vdeliver.cf the deliveries read, and finds what a delivery would defer
on, before mail does: an unknown or misspelled parameter (with the nearest known
name), a value that does not parse, a `$name` that does not resolve, a mail base that
is missing, owned by root or writable by others, a table that does not open or
cannot answer a probe lookup (a database that is down is named).

Never: write, deliver or change anything; stop at the first finding (report them
all); run as root past the config checks (tables are opened as the owner of the mail
base, as deliveries do).
"""
import difflib
import os
import sys

from vdeliver import config as config_module
from vdeliver.errors import DeliveryError

# What each typed parameter must parse as (the accessor the code reads it with).
KINDS = {
    "bool": ("enable_original_recipient", "write_delivery_headers", "sieve", "smtputf8_enable",
             "virtual_mailbox_base_mounted"),
    "time": ("time_limit", "mbox_lock_timeout", "quota_lock_timeout", "lmtp_idle_timeout",
             "lmtp_shutdown_timeout", "sieve_max_cpu_time", "socketmap_idle_timeout",
             "socketmap_lookup_timeout", "socketmap_timeout"),
    "int": ("lmtp_max_connections", "lmtp_message_size_limit", "lmtp_recipient_limit",
            "lmtp_delivery_threads", "sieve_max_actions", "sieve_max_redirects",
            "socketmap_max_connections"),
    "size": ("sieve_max_script_size",),
}
CHOICES = {"extension_folder": ("no", "existing", "create"),
           "folder_name_encoding": ("utf7", "utf8"),
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
    if st.st_mode & 0o022:
        findings.error(f"virtual_mailbox_base {base} is writable by group or others")
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
    for parameter in MAPS:
        for spec in config.get_list(parameter):
            try:
                table = open_table(spec)
                table.lookup(PROBE)
            except DeliveryError as error:
                findings.error(f"{parameter}: {spec}: {error.detail or error.reason}")
            except Exception as error:  # noqa: BLE001 - a driver's own error names the table too
                findings.error(f"{parameter}: {spec}: {type(error).__name__}: {error}")
    if not config.get_list("virtual_mailbox_maps"):
        findings.error("virtual_mailbox_maps is empty")


def non_defaults(values, out):
    for name in sorted(values):
        if values[name] != config_module.DEFAULTS[name]:
            out.write(f"{name} = {values[name]}\n")
    return 0


def parse(argv):
    path, show, index = config_module.DEFAULT_CONFIG, False, 0
    while index < len(argv):
        arg = argv[index]
        if arg == "-n":
            show = True
        elif arg == "-c" and index + 1 < len(argv):
            path = argv[index + 1]
            index += 1
        else:
            raise ValueError(f"unknown argument {arg}")
        index += 1
    return path, show


def main(argv, out=None):
    out = out or sys.stdout
    try:
        path, show = parse(argv)
    except ValueError as error:
        sys.stderr.write(f"vdeliver: {error}\nusage: vdeliver check [-c config] [-n]\n")
        return 64
    findings = Findings(out)
    values, lines = raw_parameters(path, findings)
    if values is None:
        return 1
    if show:
        return non_defaults(values, out)
    config = config_module.Config(dict(config_module.DEFAULTS, **values), path)
    check_values(config, lines, path, findings)
    if findings.count:
        return 1  # the rest reads these values
    address_mode = config.get_bool("smtputf8_enable")
    from vdeliver import address
    address.set_smtputf8(address_mode)
    st = check_base(config, findings)
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
    return 1 if findings.count else 0
