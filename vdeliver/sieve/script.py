"""Compiling a Sieve script: source bytes -> Script (lexer, parser, validator).

compile_script() checks the size limit, tokenizes, parses and validates; all
problems come back together in CompileError.errors as sievec-style lines
"NAME: line N: error: message.". Included scripts are fetched through the
caller's loader and compiled here too (include extension), so a run never reads
anything.

Never: open a file (the loader does that), or let anything escape but
CompileError (a validator bug becomes one), what the loader itself raised
("not found" is the loader's None; "could not look" is its exception, which the
caller turns into a deferral) and the caller's interrupts (registry.INTERRUPTS).
"""
from . import registry
from .limits import DEFAULT as DEFAULT_LIMITS


class LoaderFailed(Exception):
    """The loader raised (it could not look): compile() re-raises what it raised."""


class CompileError(Exception):
    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


class Script:
    """A compiled script: its name, validated nodes, the capabilities it requires and
    those that were enabled, per-script data of extensions (includes, globals) and
    the compile warnings (sievec style). Reusable for any number of runs."""
    __slots__ = ("name", "nodes", "required", "enabled", "uses_variables", "data", "warnings")

    def __init__(self, name, nodes, required, enabled, uses_variables=False, data=None, warnings=None):
        self.name, self.nodes, self.required, self.enabled = name, nodes, required, enabled
        self.uses_variables = uses_variables
        self.data = data if data is not None else {}
        self.warnings = warnings if warnings is not None else []

    def __repr__(self):
        return f"Script({self.name!r}, {len(self.nodes)} commands, requires {sorted(self.required)})"


def default_extensions():
    return frozenset(name for name, cap in registry.CAPABILITIES.items() if cap.default)


def compile_script(source, *, name="script", extensions=None, loader=None, limits=None,
                   include_stack=()):
    from . import extensions as _load   # noqa: F401  (registers every extension)
    # Here, not at the top: a script from the compile cache (serial.py) runs without them.
    from . import lexer, parser
    from .validator import Validator
    limits = limits or DEFAULT_LIMITS
    enabled = default_extensions() if extensions is None else frozenset(
        e for e in extensions if e in registry.CAPABILITIES)
    if len(source) > limits.max_script_size:
        raise CompileError([f"{name}: error: script is too large (max {limits.max_script_size} bytes)."])
    try:
        tokens = lexer.tokenize(source)
        ast = parser.parse(tokens, limits.max_nesting)
    except (lexer.LexError, parser.ParseError) as e:
        raise CompileError([f"{name}: line {e.line}: error: {e.message}."]) from None
    except RecursionError:
        raise CompileError([f"{name}: error: script nested too deeply."]) from None
    v = Validator(name, enabled, limits, loader, include_stack)
    try:
        nodes = v.script(ast)
    except CompileError:
        raise
    except LoaderFailed as e:
        raise e.__cause__ from None
    except RecursionError:
        raise CompileError([f"{name}: error: script nested too deeply."]) from None
    except Exception as e:  # noqa: BLE001 - a validator bug is only a CompileError (interrupts pass)
        if isinstance(e, registry.INTERRUPTS):
            raise                # the caller's time limit or signal: not the script's error
        raise CompileError(v.errors + [f"{name}: error: internal error during validation: "
                                       f"{type(e).__name__}: {e}."]) from None
    if v.errors:
        raise CompileError(v.errors)
    return Script(name, nodes, frozenset(v.required), enabled,
                  uses_variables="variables" in v.required, data=v.data, warnings=v.warnings)
