"""The extension registry: capabilities, commands, tests, tags, match types,
address parts and string hooks, as data that extension modules fill in.

Each module under extensions/ calls command(), test(), add_tag() ... when it is
imported; the validator and interpreter only consult this registry. Adding an
extension is one new module plus its line in extensions/__init__.py, which
declares every capability and the module that implements it; a module is
imported only when a script requires one of its capabilities (load()), so a
plain fileinto script never imports mime, date or regex.

Never: import an extension module except through load(); hold per-script state.
"""
# Positional and tag argument kinds.
STRING, STRINGS, NUMBER = "string", "string-list", "number"


# Plain classes, not dataclasses: every delivery with a script imports this
# module, and each @dataclass costs about a millisecond to create.
class TagSpec:
    """A tagged argument: name, the capability it needs (None: core), the kind of
    its argument (None, STRING, STRINGS, NUMBER), its exclusion group, the key it
    is stored under in node.tags and the value stored when it has no argument."""
    __slots__ = ("name", "extension", "arg", "group", "key", "value")

    def __init__(self, name, extension=None, arg=None, group=None, key=None, value=True):
        self.name, self.extension, self.arg = name, extension, arg
        self.group, self.key, self.value = group, key, value


class Spec:
    """A command or test: its positional argument kinds (or alternatives, a tuple of
    tuples), tags, whether it takes :comparator / match types / address parts, a
    block, subtests ("one", "list"), and its run and compile-time check functions."""
    __slots__ = ("name", "extension", "is_test", "positional", "tags", "comparator", "match",
                 "address_part", "block", "loop", "subtests", "run", "default_comparator", "checks")

    def __init__(self, name, extension=None, is_test=False, positional=(), tags=None, comparator=False,
                 match=False, address_part=False, block=False, loop=False, subtests=None, run=None,
                 check=None, default_comparator="i;ascii-casemap"):
        self.name, self.extension, self.is_test, self.positional = name, extension, is_test, positional
        self.tags = dict(tags or {})
        self.comparator, self.match, self.address_part = comparator, match, address_part
        self.block, self.loop, self.subtests, self.run = block, loop, subtests, run
        self.default_comparator = default_comparator
        self.checks = [check] if check is not None else []

    def add_tag(self, tag):
        self.tags[tag.name] = tag

    def add_check(self, fn):
        self.checks.append(fn)


class Capability:
    """A capability name, the extension module implementing it, whether it is in
    Pigeonhole's default sieve_extensions, what requiring it implies, and whether
    the SIEVE capability string lists it."""
    __slots__ = ("name", "module", "default", "implies", "announce")

    def __init__(self, name, module="", default=True, implies=(), announce=True):
        self.name, self.module, self.default = name, module, default
        self.implies, self.announce = tuple(implies), announce


CAPABILITIES = {}
COMMANDS = {}
TESTS = {}
MATCH_TYPES = {}                     # tag -> TagSpec (value: match type name)
ADDRESS_PARTS = {}                   # tag -> (extension, fn(localpart, domain, run) -> str|None)
STRING_HOOKS = []                    # (order, extension, fn(validator, value, line) -> value)
MAX_ERRORS = 50
# Exceptions the caller's signal handlers raise (its time limit, SIGTERM): compile() and
# run() let them through, never a compile or run-time error of the script (let_through()).
INTERRUPTS = ()
_PENDING = {}                        # command/test name -> [fn(spec)] for specs not loaded yet
# fn(module): the pipe command loads an extension module from its .pyc file (sieveroute.py;
# one thread); whatever it leaves undone, the import below does.
FAST_LOAD = None
_LOADED = set()


def capability(name, module, default=True, implies=(), announce=True):
    CAPABILITIES[name] = Capability(name, module, default, tuple(implies), announce)


def load(name):
    """Import the module of capability `name` (it registers itself), once."""
    cap = CAPABILITIES.get(name)
    if cap is not None and cap.module and cap.module not in _LOADED:
        if FAST_LOAD is not None:
            FAST_LOAD(cap.module)
        # __import__, not importlib.import_module: the importlib package is not loaded
        # yet in a pipe delivery (0.3 ms with what it imports)
        __import__(f"{__package__}.extensions.{cap.module}")
        _LOADED.add(cap.module)


def _registered(spec, table):
    table[spec.name] = spec
    for fn in _PENDING.pop((spec.name, table is TESTS), ()):
        fn(spec)
    return spec


def command(name, **kw):
    return _registered(Spec(name, **kw), COMMANDS)


def test(name, **kw):
    return _registered(Spec(name, is_test=True, **kw), TESTS)


def _each(names, fn, tests):
    for name in names:
        table = TESTS if tests else COMMANDS
        if name in table:
            fn(table[name])
        else:                        # the extension that defines it is loaded later
            _PENDING.setdefault((name, tests), []).append(fn)


def match_type(name, extension=None, arg=None):
    MATCH_TYPES[name] = TagSpec(name, extension, arg=arg, group="match-type", key="match-type", value=name)


def address_part(name, fn, extension=None):
    ADDRESS_PARTS[name] = (extension, fn)


def string_hook(extension, fn, order):
    """fn runs on every string of a script that requires `extension`, lowest order first."""
    STRING_HOOKS.append((order, extension, fn))
    STRING_HOOKS.sort(key=lambda h: h[0])


def add_tag(names, tag, tests):
    """Add a tagged argument to commands (tests=False) or tests (tests=True) of other
    extensions (e.g. :copy on redirect), now or when they are loaded."""
    _each(names, lambda spec: spec.add_tag(tag), tests)


def add_check(names, fn, tests=True):
    """Add a compile-time check to tests (or commands) of other extensions."""
    _each(names, lambda spec: spec.add_check(fn), tests)
