"""vdeliver's Sieve interpreter (RFC 5228 and Pigeonhole's default extensions).

    script = sieve.compile(source, name=..., extensions=..., loader=..., limits=...)
    result = sieve.run(script, sieve.Message.from_file(path), sieve.Envelope(...))

The stages are Pigeonhole's: lexer -> parser -> validator (compile errors, with
lines) -> interpreter -> result (actions, implicit keep, run-time errors). The
delivery core executes the Result; if result.errors is non-empty the run failed
and the message goes to INBOX, as Pigeonhole does.

Never: write or send mail, print, exit, or open a file other than what the loader
or Message.from_file is given. compile() raises CompileError (or what the loader
raised when it could not look); run() never raises for anything the script, the
message or a settings callback does.
"""
from . import extensions as _extensions  # noqa: F401  (registers every extension)
from . import interpreter, registry
from .envelope import Envelope
from .limits import DEFAULT as DEFAULT_LIMITS
from .limits import Limits
from .limits import from_settings as limits_from_settings
from .message import Message
from .result import Action, Result
from .script import CompileError, Script, compile_script, default_extensions

__all__ = ["compile", "run", "let_through", "Message", "Envelope", "Limits", "limits_from_settings", "Action", "Result",
           "Script", "CompileError", "CAPABILITIES", "parse_extensions_setting", "load_extensions"]

# Pigeonhole's default sieve_extensions, in the order it announces them.
_DEFAULT_ORDER = ("fileinto reject envelope encoded-character vacation subaddress "
                  "comparator-i;ascii-numeric relational regex imap4flags copy include body "
                  "variables enotify environment mailbox date index ihave duplicate mime "
                  "foreverypart extracttext").split()
CAPABILITIES = tuple(c for c in _DEFAULT_ORDER if c in registry.CAPABILITIES and registry.CAPABILITIES[c].default)


def parse_extensions_setting(value, base=None):
    """Pigeonhole's sieve_extensions syntax: "+editheader -vacation" edits the default
    set (or `base`); a list without +/- replaces it. Unknown names are ignored."""
    words = value.split()
    current = set(default_extensions() if base is None else base)
    if not any(w[0] in "+-" for w in words):
        current = set()             # a plain list (or an empty setting) replaces the set
    for w in words:
        if w[0] == "+":
            name, add = w[1:], True
        elif w[0] == "-":
            name, add = w[1:], False
        else:
            name, add = w, True
        if name not in registry.CAPABILITIES:
            continue
        if add:
            current.add(name)
        else:
            current.discard(name)
    return current


def load_extensions():
    """Import every extension module now (a long-running daemon may prefer this to
    loading them on first use from several threads)."""
    for name in registry.CAPABILITIES:
        registry.load(name)


def let_through(*classes):
    """Name the exceptions the caller's signal handlers raise at any point (a time
    limit, SIGTERM): compile() and run() let them end the caller's work instead of
    taking them for a script's error. Once per process."""
    registry.INTERRUPTS = tuple(classes)


def compile(source, *, name="script", extensions=None, loader=None, limits=None):  # noqa: A001
    return compile_script(source, name=name, extensions=extensions, loader=loader, limits=limits)


def run(script, message, envelope, *, environment=None, limits=None, settings=None):
    return interpreter.run_script(script, message, envelope, environment, limits or DEFAULT_LIMITS, settings)
