"""Limits of a Sieve compile and run, with Pigeonhole's defaults (sieve-settings.c,
sieve-limits.h, the include and variables extensions), plus vdeliver's caps on how
much of a message is read. from_settings() reads Pigeonhole's setting names.

Never: hold state; every field is a plain number.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_script_size: int = 1 << 20      # sieve_max_script_size 1M (compile error)
    max_actions: int = 32               # sieve_max_actions
    max_redirects: int = 4              # sieve_max_redirects
    max_cpu_time: float = 30.0          # sieve_max_cpu_time, seconds of CPU for the whole run
    max_nesting: int = 32               # SIEVE_MAX_BLOCK_NESTING / SIEVE_MAX_TEST_NESTING
    max_include_depth: int = 10         # sieve_include_max_nesting_depth
    max_includes: int = 255             # sieve_include_max_includes
    max_variable_size: int = 4096       # sieve_variables_max_variable_size (bytes)
    max_variables: int = 255            # sieve_variables_max_scope_size
    max_match_values: int = 32          # SIEVE_MAX_MATCH_VALUES
    max_notifications: int = 0          # 0: none beyond max_actions (Pigeonhole 0.5; 2.4 has 10)
    max_header_size: int = 1 << 20      # vdeliver: header block bytes parsed (message.MAX_HEADER_SIZE)
    max_body_size: int = 1 << 20        # vdeliver: body bytes body/mime tests read (a pipe: message.MAX_BODY_SIZE)
    max_foreverypart: int = 1000        # vdeliver: MIME parts a foreverypart loop visits
    max_expanded_size: int = 1 << 20    # vdeliver: characters one string may expand to


DEFAULT = Limits()


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
    import dataclasses
    changes = {}
    for key, (field, kind) in SETTINGS.items():
        if key in settings and settings[key] not in (None, ""):
            changes[field] = _value(settings[key], kind)
    return dataclasses.replace(base, **changes)
