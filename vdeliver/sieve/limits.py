"""Limits of a Sieve compile and run, with Pigeonhole's defaults (sieve-settings.c,
sieve-limits.h, the include and variables extensions), plus vdeliver's caps on how
much of a message is read. from_settings() reads Pigeonhole's setting names.

Never: hold state; every field is a plain number.
"""
from .value import Value

# Every limit and its default.
_DEFAULTS = {
    "max_script_size": 1 << 20,     # sieve_max_script_size 1M (compile error)
    "max_actions": 32,              # sieve_max_actions
    "max_redirects": 4,             # sieve_max_redirects
    "max_cpu_time": 30.0,           # sieve_max_cpu_time, seconds of CPU for the whole run
    "max_nesting": 32,              # SIEVE_MAX_BLOCK_NESTING / SIEVE_MAX_TEST_NESTING
    "max_include_depth": 10,        # sieve_include_max_nesting_depth
    "max_includes": 255,            # sieve_include_max_includes
    "max_variable_size": 4096,      # sieve_variables_max_variable_size (bytes)
    "max_variables": 255,           # sieve_variables_max_scope_size
    "max_match_values": 32,         # SIEVE_MAX_MATCH_VALUES
    "max_notifications": 0,         # 0: none beyond max_actions (Pigeonhole 0.5; 2.4 has 10)
    "max_header_size": 1 << 20,     # vdeliver: header block bytes parsed (message.MAX_HEADER_SIZE)
    "max_body_size": 1 << 20,       # vdeliver: body bytes body/mime tests read (a pipe: message.MAX_BODY_SIZE)
    "max_foreverypart": 1000,       # vdeliver: MIME parts a foreverypart loop visits
    "max_expanded_size": 1 << 20,   # vdeliver: characters one string may expand to
}


class Limits(Value):
    """The limits, each a number: Limits(max_actions=5) is the defaults but one."""
    __slots__ = tuple(_DEFAULTS)

    def __init__(self, **values):
        unknown = values.keys() - _DEFAULTS.keys()
        if unknown:
            raise TypeError(f"Limits has no {', '.join(sorted(unknown))}")
        for name, default in _DEFAULTS.items():
            object.__setattr__(self, name, values.get(name, default))


DEFAULT = Limits()
# Pigeonhole's EXT_VARIABLES_REQUIRED_MAX_VARIABLE_SIZE (RFC 5229 asks for at least 4000).
MIN_VARIABLE_SIZE = 4000


# Pigeonhole's setting names for the limits above (dovecot.conf plugin section).
SETTINGS = {
    "sieve_max_script_size": ("max_script_size", "size"),
    "sieve_max_actions": ("max_actions", "number"),
    "sieve_max_redirects": ("max_redirects", "number"),
    "sieve_max_cpu_time": ("max_cpu_time", "time"),
    "sieve_include_max_nesting_depth": ("max_include_depth", "number"),
    "sieve_include_max_includes": ("max_includes", "number"),
    "sieve_variables_max_scope_size": ("max_variables", "number"),
    "sieve_variables_max_variable_size": ("max_variable_size", "size"),
}
_SIZE = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_TIME = {"": 1, "s": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hours": 3600}


def _value(text, kind):
    text = str(text).strip().lower()
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = text[len(digits):].strip()
    table = _SIZE if kind == "size" else _TIME if kind == "time" else {"": 1}
    if unit not in table or not digits.replace(".", "", 1).isdigit():
        raise ValueError(f"invalid value {text!r}")
    number = float(digits) if kind == "time" else int(float(digits))
    return number * table[unit]


def from_settings(settings, base=DEFAULT):
    """Limits from Pigeonhole-named settings ("sieve_max_actions": "32",
    "sieve_max_script_size": "1M", "sieve_max_cpu_time": "30s"); others are ignored.
    Raises ValueError for a value that is not a number with a known unit."""
    changes = {}
    for key, (field, kind) in SETTINGS.items():
        if key in settings and settings[key] not in (None, ""):
            changes[field] = _value(settings[key], kind)
    if changes.get("max_variable_size", MIN_VARIABLE_SIZE) < MIN_VARIABLE_SIZE:
        del changes["max_variable_size"]  # as Pigeonhole: below its minimum, the setting is ignored
    return base.replace(**changes)
