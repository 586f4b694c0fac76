"""vdeliver.cf: main.cf syntax, $name expansion, parameters and their defaults.

Syntax as postconf(5): `name = value`; blank lines and lines whose first
non-space character is `#` are ignored; a line that starts with whitespace
continues the previous one; `$name`, `${name}`, `$(name)`, `${name?text}`,
`${name:text}` and `$$` expand when a value is read. Lists split on commas and
whitespace, keeping `{ ... }` groups whole (as `inline:{ a=b, c=d }`).

Never: guess. A missing or unreadable file, a line without `=`, an unknown
parameter name, an undefined `$name` or a bad value raises ConfigError, which
defers the mail (4.3.5). Imports nothing beyond builtins: it runs on every
message.
"""
from vdeliver.errors import ConfigError

DEFAULT_CONFIG = "/etc/vdeliver/vdeliver.cf"

# Postfix's names where Postfix has one.
DEFAULTS = {
    "virtual_mailbox_base": "",
    "virtual_mailbox_maps": "",
    "recipient_delimiter": "",
    "enable_original_recipient": "yes",
    "write_delivery_headers": "yes",
    "syslog_name": "vdeliver",
    "syslog_facility": "mail",
    "maillog_file": "",
    "time_limit": "600s",
    "table_cache_directory": "/var/cache/vdeliver",
    # shared storage (several delivery hosts): deliver.py, maildir.py
    "virtual_mailbox_base_mounted": "no",
    "maildir_hostname": "",
    # Postfix's UTF-8 mode of table lookups (address.py): case folding, non-UTF-8 keys.
    # yes as Postfix with compatibility_level >= 1; set it as the admin's main.cf does.
    "smtputf8_enable": "yes",
    # mbox delivery (mbox.py)
    "virtual_mailbox_lock": "fcntl, dotlock",
    "mbox_lock_timeout": "20s",
    # +extension into Maildir++ folders (folders.py)
    "extension_folder": "no",
    "folder_name_encoding": "utf7",
    # Maildir++ quota (quota.py, quotawarn.py)
    "virtual_mailbox_quota_maps": "",
    "virtual_mailbox_quota_default": "",
    "quota_exceeded_action": "defer",
    "quota_grace": "0",
    "quota_lock_timeout": "20s",
    "quota_warning_thresholds": "",
    "quota_warning_template": "",
    # the LMTP daemon (vdeliver --lmtp: daemon.py, lmtp.py)
    "lmtp_listen": "unix:/var/spool/postfix/private/vdeliver-lmtp",
    "lmtp_socket_owner": "postfix",
    "lmtp_socket_mode": "0660",
    "lmtp_user": "",
    "lmtp_pid_file": "/run/vdeliver-lmtpd.pid",
    "lmtp_max_connections": "50",
    "lmtp_idle_timeout": "300s",
    "lmtp_message_size_limit": "102400000",
    "lmtp_recipient_limit": "1000",
    "lmtp_delivery_threads": "8",
    "lmtp_spool_directory": "",
    "lmtp_dsn": "yes",
    "lmtp_shutdown_timeout": "60s",
    # the daemon's Prometheus endpoint (metrics.py); "" = off
    "lmtp_metrics_listen": "",
    # The daemon's socketmap lookup service (socketmapd.py) and its client (tables/socketmap.py)
    "socketmap_listen": "",
    "socketmap_maps": "virtual_mailbox_maps, virtual_mailbox_quota_maps, virtual_home_maps",
    "socketmap_socket_owner": "",
    "socketmap_socket_mode": "0660",
    "socketmap_max_connections": "100",
    "socketmap_idle_timeout": "60s",
    "socketmap_lookup_timeout": "5s",
    "socketmap_timeout": "10s",
    # Sieve (filtering.py, sievescripts.py): Pigeonhole's names and defaults
    "sieve": "yes",
    "virtual_home_maps": "",
    "sieve_script": "~/.dovecot.sieve",
    "sieve_dir": "~/sieve",
    "sieve_global_dir": "",
    "sieve_before": "",
    "sieve_after": "",
    "sieve_default": "",
    "sieve_extensions": "",
    "sieve_cache_directory": "$table_cache_directory",
    "sieve_mailbox_separator": ".",
    "imap_namespace_prefix": "",
    "sieve_max_script_size": "1M",
    "sieve_max_actions": "32",
    "sieve_max_redirects": "4",
    "sieve_max_cpu_time": "30s",
    "sieve_spamtest_status_header": "",
    "sieve_spamtest_status_type": "",
    "sieve_spamtest_max_value": "",
    "sieve_spamtest_max_header": "",
    "sieve_virustest_status_header": "",
    "sieve_virustest_status_type": "",
    "sieve_virustest_max_value": "",
    "sieve_virustest_max_header": "",
    "mbox_folder_directory": "~/mail",
    "sieve_editheader_max_header_size": "2k",
    "sieve_editheader_protected": "",
    "sieve_editheader_forbid_add": "",
    "sieve_editheader_forbid_delete": "",
    # Sieve's outgoing mail (submit.py, outgoing.py, vacation.py) and the per-user
    # database (userdb.py): Pigeonhole's and Dovecot's names
    "sendmail_path": "/usr/sbin/sendmail",
    # host[:port] of Postfix's submission service: SMTP instead of sendmail_path
    "submission_host": "",
    # Per submission, and four of them for all of one delivery's mail: well inside
    # Postfix's command_time_limit (1000s) and the lmtp client's data timeout.
    "sendmail_timeout": "30s",
    "sieve_vacation_min_period": "1d",
    "sieve_vacation_default_period": "7d",
    "sieve_vacation_max_period": "60d",
    "sieve_vacation_send_from_recipient": "no",
    "sieve_redirect_envelope_from": "sender",
    "sieve_redirect_duplicate_period": "12h",
    # Outside Sieve: the same Message-ID twice into one mailbox within the period
    "duplicate_suppression": "no",
    "duplicate_suppression_period": "1d",
}

TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_EXPANSION_DEPTH = 20


class Config:
    """Parameters read from a file plus -o overrides; values expand on access."""

    def __init__(self, raw, source):
        self.raw = raw          # name -> unexpanded value
        self.source = source    # file name, for error messages

    def get(self, name):
        if name not in self.raw:
            raise ConfigError(f"unknown parameter {name}")
        return expand(self.raw[name], self.raw, name)

    def get_list(self, name):
        return split_list(self.get(name))

    def get_bool(self, name):
        value = self.get(name).strip().lower()
        if value in ("yes", "true", "1", "on"):
            return True
        if value in ("no", "false", "0", "off"):
            return False
        raise ConfigError(f"{name} = {value}: expected yes or no")

    def get_int(self, name):
        value = self.get(name).strip()
        # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
        if not (value.isascii() and value.isdigit()):
            raise ConfigError(f"{name} = {value}: expected a whole number")
        return int(value)

    def get_choice(self, name, choices):
        value = self.get(name).strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} = {value}: expected one of {', '.join(choices)}")
        return value

    def get_size(self, name):
        """A size: a number with an optional unit K, M or G (powers of 1024)."""
        value = self.get(name).strip()
        unit = value[-1:].upper()
        factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(unit)
        digits = value[:-1] if factor else value
        if not (digits.isascii() and digits.isdigit()):
            raise ConfigError(f"{name} = {value}: expected a size like 1M or 65536")
        return int(digits) * (factor or 1)

    def get_time(self, name):
        """A Postfix time value: a number with an optional unit s/m/h/d/w."""
        value = self.get(name).strip()
        unit = "s"
        if value and value[-1].isalpha():
            value, unit = value[:-1], value[-1].lower()
        # ASCII digits only: isdigit() also takes '²', which int() refuses (tests/fuzz).
        if not (value.isascii() and value.isdigit()) or unit not in TIME_UNITS:
            raise ConfigError(f"{name} = {self.get(name)}: expected a time like 600s or 10m")
        return int(value) * TIME_UNITS[unit]


def load(path=DEFAULT_CONFIG, overrides=()):
    """Read the config file and apply `name=value` overrides (as postconf -o)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    return from_text(data, path, overrides)


def from_text(data, source, overrides=()):
    raw = dict(DEFAULTS)
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not valid UTF-8") from None
    if "\0" in text:
        raise ConfigError(f"{source}: contains a NUL byte")
    for number, line in logical_lines(text):
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not is_parameter_name(name):
            raise ConfigError(f"{source}, line {number}: expected 'name = value'")
        set_parameter(raw, name, value.strip(), f"{source}, line {number}")
    for item in overrides:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not is_parameter_name(name):
            raise ConfigError(f"-o {item}: expected name=value")
        set_parameter(raw, name, value.strip(), f"-o {name}")
    return Config(raw, source)


def set_parameter(raw, name, value, where):
    if name not in DEFAULTS:
        raise ConfigError(f"{where}: unknown parameter {name}")
    raw[name] = value


def is_parameter_name(name):
    return bool(name) and all(ch.isalnum() or ch == "_" for ch in name) and name.isascii()


def logical_lines(text):
    """Yield (line number, logical line): comments dropped, continuations joined.

    As Postfix's readlline(): a line starting with whitespace continues the
    previous logical line (newline dropped, indentation kept); comment and
    blank lines are skipped without ending it.
    """
    current, start = None, 0
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if current is None:
                raise ConfigError(f"line {number}: continuation line without a parameter")
            current += line
            continue
        if current is not None:
            yield start, current
        current, start = line, number
    if current is not None:
        yield start, current


def expand(value, raw, name="", depth=0):
    """Expand $name, ${name}, $(name), ${name?text}, ${name:text} and $$."""
    if "$" not in value:
        return value
    if depth > MAX_EXPANSION_DEPTH:
        raise ConfigError(f"{name}: $parameter expansion loops")
    out, i, n = [], 0, len(value)
    while i < n:
        ch = value[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise ConfigError(f"{name}: '$' at end of value")
        nxt = value[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt in "{(":
            close = "}" if nxt == "{" else ")"
            end = find_closing(value, i + 1, nxt, close)
            if end < 0:
                raise ConfigError(f"{name}: unbalanced {nxt} in value")
            body = value[i + 2:end]
            i = end + 1
            out.append(expand_reference(body, raw, name, depth))
            continue
        j = i + 1
        while j < n and (value[j].isalnum() or value[j] == "_"):
            j += 1
        if j == i + 1:
            raise ConfigError(f"{name}: '$' not followed by a parameter name")
        out.append(expand_reference(value[i + 1:j], raw, name, depth))
        i = j
    return "".join(out)


def expand_reference(body, raw, name, depth):
    ref, op, text = body, "", ""
    for k, ch in enumerate(body):
        if ch in "?:":
            ref, op, text = body[:k], ch, body[k + 1:]
            break
    ref = ref.strip()
    if ref not in raw:
        raise ConfigError(f"{name}: undefined parameter ${ref}")
    referenced = expand(raw[ref], raw, ref, depth + 1)
    if op == "?":
        return expand(text, raw, name, depth + 1) if referenced else ""
    if op == ":":
        return "" if referenced else expand(text, raw, name, depth + 1)
    return referenced


def find_closing(value, start, open_ch, close_ch):
    level = 0
    for k in range(start, len(value)):
        if value[k] == open_ch:
            level += 1
        elif value[k] == close_ch:
            level -= 1
            if level == 0:
                return k
    return -1


def split_list(value, separators=", \t\r\n"):
    """Split a Postfix list on commas and whitespace, keeping {...} groups whole."""
    items, current, level = [], [], 0
    for ch in value:
        if ch == "{":
            level += 1
        elif ch == "}" and level:
            level -= 1
        if ch in separators and level == 0:
            if current:
                items.append("".join(current))
                current = []
            continue
        current.append(ch)
    if level:
        raise ConfigError(f"unbalanced {{ in list: {value}")
    if current:
        items.append("".join(current))
    return items
