"""The extension registry: capabilities, commands, tests, tags, match types,
address parts and string hooks, as data that extension modules fill in.

Each module under extensions/ calls capability(), command(), test() ... at import
time; the validator and interpreter only consult this registry. Adding an
extension is one new module plus its name in extensions/__init__.py.

Never: import an extension module from here, or hold per-script state.
"""
from dataclasses import dataclass, field

# Positional and tag argument kinds.
STRING, STRINGS, NUMBER = "string", "string-list", "number"


@dataclass
class TagSpec:
    name: str
    extension: str | None = None     # capability that must be required; None: core
    arg: str | None = None           # None, STRING, STRINGS or NUMBER
    group: str | None = None         # tags of one group exclude each other
    key: str | None = None           # where the validator stores it in node.tags
    value: object = True             # stored when the tag takes no argument


@dataclass
class Spec:
    name: str
    extension: str | None = None
    is_test: bool = False
    positional: tuple = ()           # argument kinds, or a tuple of such tuples (alternatives)
    tags: dict = field(default_factory=dict)
    comparator: bool = False         # takes :comparator
    match: bool = False              # takes match-type tags
    address_part: bool = False       # takes address-part tags
    block: bool = False              # command needs a block (never for tests)
    loop: bool = False               # its block is a loop (break may end it)
    subtests: str | None = None      # None, "one" or "list"
    run: object = None               # command: run(run, node); test: run(run, node) -> bool
    check: object = None             # check(validator, node): extra compile-time checks
    default_comparator: str = "i;ascii-casemap"
    checks: list = field(default_factory=list)

    def __post_init__(self):
        if self.check is not None:
            self.checks.append(self.check)

    def add_tag(self, tag):
        self.tags[tag.name] = tag

    def add_check(self, fn):
        self.checks.append(fn)


@dataclass
class Capability:
    name: str
    default: bool = True             # in Pigeonhole's default sieve_extensions
    implies: tuple = ()              # requiring it also makes these available
    announce: bool = True            # listed in the SIEVE capability string


CAPABILITIES = {}
COMMANDS = {}
TESTS = {}
MATCH_TYPES = {}                     # tag -> TagSpec (value: match type name)
ADDRESS_PARTS = {}                   # tag -> (extension, fn(localpart, domain, run) -> str|None)
STRING_HOOKS = []                    # (extension, fn(validator, value, line) -> value), in order
MAX_ERRORS = 50


def capability(name, default=True, implies=(), announce=True):
    CAPABILITIES[name] = Capability(name, default, tuple(implies), announce)


def command(name, **kw):
    spec = Spec(name, **kw)
    COMMANDS[name] = spec
    return spec


def test(name, **kw):
    spec = Spec(name, is_test=True, **kw)
    TESTS[name] = spec
    return spec


def match_type(name, extension=None, arg=None):
    MATCH_TYPES[name] = TagSpec(name, extension, arg=arg, group="match-type", key="match-type", value=name)


def address_part(name, fn, extension=None):
    ADDRESS_PARTS[name] = (extension, fn)


def string_hook(extension, fn):
    STRING_HOOKS.append((extension, fn))


def add_tag(names, tag):
    """Add a tagged argument to existing commands/tests (e.g. :copy on redirect)."""
    for name in names:
        spec = COMMANDS.get(name) or TESTS.get(name)
        if spec is not None:
            spec.add_tag(tag)
