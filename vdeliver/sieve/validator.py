"""Sieve validator: the AST -> executable nodes, with every compile error and its line.

Checks, as Pigeonhole's sieve-validator.c does: require (only at the top, only
enabled capabilities), that each command/test is known and its extension
required, tagged arguments (known, not repeated, of the right type, before the
positional ones), positional argument count and types, blocks and test lists,
and if/elsif/else order. Extensions add their own checks (Spec.checks). Blocks
under a constant test (if false, ihave of an unknown capability, the else of
if true) are not validated, as Pigeonhole's constant folding does.

Never: run anything, read the message, or stop at the first error (all errors are
collected, up to registry.MAX_ERRORS).
"""

from . import comparators, match, parser, registry
from .nodes import IfChain, Node
from .registry import NUMBER, STRING, STRINGS


def constant(test):
    """True/False for a test whose value is known at compile time, else None."""
    name = test.name
    if test.spec is None:
        return None
    if name == "true":
        return True
    if name == "false":
        return False
    if name == "ihave":
        return test.data.get("result")            # known when compiled (RFC 5463)
    if name == "not":
        c = constant(test.tests[0]) if test.tests else None
        return None if c is None else not c
    if name in ("allof", "anyof"):
        values = [constant(t) for t in test.tests]
        if name == "allof":
            return False if False in values else (True if values and all(v is True for v in values) else None)
        return True if True in values else (False if values and all(v is False for v in values) else None)
    return None


class Validator:
    def __init__(self, name, enabled, limits, loader=None, include_stack=()):
        self.name = name
        self.enabled = enabled
        self.limits = limits
        self.loader = loader
        self.include_stack = include_stack
        self.required = set()
        self.errors = []
        self.reported_unknown = set()
        self.data = {}               # per-script state of extensions (variables, include)
        self.warnings = []
        self.loops = []              # names of the enclosing loops (foreverypart)
        self.hooks = []              # string hooks of the required extensions

    # -- errors
    def error(self, line, message):
        if len(self.errors) < registry.MAX_ERRORS:
            self.errors.append(f"{self.name}: line {line}: error: {message}.")

    def warn(self, line, message):
        self.warnings.append(f"{self.name}: line {line}: warning: {message}.")

    def has(self, ext):
        return ext is None or ext in self.required

    # -- entry
    def script(self, commands):
        i = 0
        while i < len(commands) and commands[i].name == "require":
            self.require(commands[i])
            i += 1
        return self.block(commands[i:])

    def require(self, cmd):
        if cmd.tests or cmd.block is not None or len(cmd.args) != 1 or \
                not isinstance(cmd.args[0], (parser.String, parser.StringList)):
            self.error(cmd.line, "the require command expects a string list argument (capabilities)")
            return
        arg = cmd.args[0]
        names = [arg.value] if isinstance(arg, parser.String) else arg.values
        for cap in names:
            if cap not in self.enabled:
                self.error(cmd.line, f"require command: unknown Sieve capability '{cap}'")
                continue
            self.add_required(cap)

    def add_required(self, cap):
        for name in (cap,) + (registry.CAPABILITIES[cap].implies if cap in registry.CAPABILITIES else ()):
            registry.load(name)
            self.required.add(name)
        self.hooks = [fn for _order, ext, fn in registry.STRING_HOOKS if ext in self.required]

    def block(self, commands):
        out = []
        for cmd in commands:
            name = cmd.name
            if name == "require":
                self.error(cmd.line, "the require command can only be placed at top level "
                                     "at the beginning of the file")
                continue
            if name in ("elsif", "else"):
                prev = out[-1] if out else None
                if not isinstance(prev, IfChain) or prev.branches[-1][0] is None:
                    self.error(cmd.line, f"the {name} command must follow an if or elseif command")
                    self.command(cmd)
                    continue
                node = self.command(cmd, dead=prev.settled)
                if node is not None:
                    test = node.tests[0] if node.tests else None
                    prev.branches.append((test, node.block or []))
                    prev.settled = prev.settled or test is None or constant(test) is True
                continue
            node = self.command(cmd)
            if node is None:
                continue
            if name == "if":
                test = node.tests[0] if node.tests else None
                out.append(IfChain(node.line, [(test, node.block or [])],
                                   settled=test is not None and constant(test) is True))
            else:
                out.append(node)
        return out

    def known(self, name, table, what):
        spec = table.get(name)
        if spec is None or not self.has(spec.extension):
            other = registry.TESTS if table is registry.COMMANDS else registry.COMMANDS
            if name in other and self.has(other[name].extension):
                return None, (f"{what} '{name}' is not valid here: it is a "
                              f"{'test' if other is registry.TESTS else 'command'}")
            return None, f"unknown {what} '{name}' (only reported once at first occurrence)"
        return spec, None

    def command(self, cmd, dead=False):
        spec, err = self.known(cmd.name, registry.COMMANDS, "command")
        if spec is None:
            if (cmd.name, "c") not in self.reported_unknown:
                self.reported_unknown.add((cmd.name, "c"))
                self.error(cmd.line, err)
            return None
        node = self.arguments(cmd, spec, "command")
        if spec.subtests == "one":
            if len(cmd.tests) != 1 or cmd.test_list:
                self.error(cmd.line, f"the {cmd.name} command requires one test argument")
            else:
                node.tests = [self.test(cmd.tests[0])]
        elif cmd.tests:
            self.error(cmd.line, f"the {cmd.name} command accepts no test arguments")
        for check in spec.checks:
            check(self, node)
        # Pigeonhole folds constant tests: a block that can never run is not validated
        skip = dead or (cmd.name in ("if", "elsif") and node.tests and constant(node.tests[0]) is False)
        if spec.block:
            if cmd.block is None:
                self.error(cmd.line, f"the {cmd.name} command requires a command block")
            elif skip:
                node.block = []
            else:
                if spec.loop:
                    self.loops.append(node.tags.get("name"))
                node.block = self.block(cmd.block)
                if spec.loop:
                    self.loops.pop()
        elif cmd.block is not None:
            self.error(cmd.line, f"the {cmd.name} command does not accept a command block")
        return node

    def test(self, t):
        spec, err = self.known(t.name, registry.TESTS, "test")
        if spec is None:
            if (t.name, "t") not in self.reported_unknown:
                self.reported_unknown.add((t.name, "t"))
                self.error(t.line, err)
            return Node(t.name, t.line, None)
        node = self.arguments(t, spec, "test")
        if spec.subtests == "one":
            if len(t.tests) != 1 or t.test_list:
                self.error(t.line, f"the {t.name} test requires one test argument")
            else:
                node.tests = [self.test(t.tests[0])]
        elif spec.subtests == "list":
            if not t.test_list:
                self.error(t.line, f"the {t.name} test requires a list of tests")
            else:
                node.tests = [self.test(x) for x in t.tests]
        elif t.tests:
            self.error(t.line, f"the {t.name} test accepts no test arguments")
        for check in spec.checks:
            check(self, node)
        return node

    # -- arguments

    def string(self, s, line):
        for hook in self.hooks:
            s = hook(self, s, line)
        return s

    def kind_ok(self, arg, kind):
        t = type(arg)
        if kind == NUMBER:
            return t is parser.Number
        if kind == STRING:
            return t is parser.String
        return t is parser.String or t is parser.StringList

    def arguments(self, cmd, spec, what):
        node = Node(cmd.name, cmd.line, spec)
        args = cmd.args
        want = spec.positional
        if args or want:
            self.fill(node, cmd, spec, what, args, want)
        if spec.match or spec.comparator:
            node.match = self.match_spec(node, cmd.line)
        return node

    def fill(self, node, cmd, spec, what, args, want):
        groups = set()
        positional = []
        i, n = 0, len(args)
        Tag = parser.Tag
        while i < n:
            arg = args[i]
            if type(arg) is not Tag:
                positional.append(arg)
                i += 1
                continue
            if positional:
                self.error(arg.line, f"unexpected tagged argument ':{arg.name}' after positional "
                                     f"arguments of the {cmd.name} {what}")
            tag = self.find_tag(spec, arg.name)
            if tag is None:
                self.error(arg.line, f"unknown tagged argument ':{arg.name}' for the {cmd.name} {what}")
                i += 1
                continue
            group = tag.group or tag.name
            if group in groups:
                if group in ("match-type", "address-part"):
                    self.error(arg.line, f"multiple {group.replace('-', ' ')} arguments specified for the "
                                         f"{cmd.name} {what}")
                else:
                    self.error(arg.line, f"encountered duplicate tag ':{arg.name}' for the {cmd.name} {what}")
            groups.add(group)
            key = tag.key or tag.name
            if tag.arg is None:
                node.tags[key] = tag.value
                i += 1
                continue
            if i + 1 >= n or not self.kind_ok(args[i + 1], tag.arg):
                self.error(arg.line, f"the :{tag.name} tag for the {cmd.name} {what} requires a "
                                     f"{tag.arg} argument")
                i += 1
                continue
            val = self.value(args[i + 1])
            if tag.arg == STRINGS and type(val) is not list:
                val = [val]
            if key == "match-type":
                node.tags["match-type"] = tag.value
                node.tags["relop"] = val
            else:
                node.tags[key] = val
            i += 2
        if want and type(want[0]) is tuple:        # alternatives, by argument count
            want = next((w for w in want if len(w) == len(positional)), want[-1])
        if len(positional) != len(want):
            if len(positional) < len(want):
                self.error(cmd.line, f"the {cmd.name} {what} requires {len(want)} positional "
                                     f"argument(s), but {len(positional)} found")
            else:
                self.error(positional[len(want)].line, f"the {cmd.name} {what} accepts only {len(want)} "
                                                       f"positional argument(s), but {len(positional)} found")
        out = node.args
        for arg, kind in zip(positional, want):
            if not self.kind_ok(arg, kind):
                found = {parser.Number: "number", parser.String: "string", parser.StringList: "string list"}
                self.error(arg.line, f"the {cmd.name} {what} expects a {kind} as positional argument, "
                                     f"but {found[type(arg)]} was found")
                out.append([] if kind == STRINGS else ("" if kind == STRING else 0))
                continue
            val = self.value(arg)
            if kind == STRINGS and type(val) is not list:
                val = [val]
            out.append(val)
        while len(out) < len(want):
            out.append([] if want[len(out)] == STRINGS else ("" if want[len(out)] == STRING else 0))

    def value(self, arg):
        t = type(arg)
        if t is parser.String:
            return self.string(arg.value, arg.line) if self.hooks else arg.value
        if t is parser.StringList:
            if not self.hooks:
                return list(arg.values)
            return [self.string(s, arg.line) for s in arg.values]
        return arg.value

    def find_tag(self, spec, name):
        tag = spec.tags.get(name)
        if tag is not None:
            return tag if self.has(tag.extension) else None
        if spec.comparator and name == "comparator":
            return _COMPARATOR_TAG
        if spec.match and name in registry.MATCH_TYPES:
            tag = registry.MATCH_TYPES[name]
            return tag if self.has(tag.extension) else None
        if spec.address_part and name in registry.ADDRESS_PARTS:
            ext, _fn = registry.ADDRESS_PARTS[name]
            return _ADDRESS_PART_TAGS.setdefault(name, registry.TagSpec(
                name, ext, group="address-part", key="address-part", value=name)) if self.has(ext) else None
        return None

    def match_spec(self, node, line):
        tags = node.tags
        cname = tags.get("comparator")
        cmp = comparators.COMPARATORS[node.spec.default_comparator]
        if cname is not None:
            if not isinstance(cname, str):
                self.error(line, "the comparator name must be a constant string")
            else:
                c = comparators.COMPARATORS.get(cname)
                cap = comparators.CAPABILITY.get(cname)
                if c is None or (cap is not None and cap not in self.required):
                    self.error(line, f"unknown comparator '{cname}'")
                else:
                    cmp = c
        mtype = tags.get("match-type", "is")
        relop = tags.get("relop", "")
        if mtype in ("value", "count"):
            if not isinstance(relop, str) or relop.lower() not in match.RELOPS:
                self.error(line, f"invalid relational match type '{relop}' (must be one of gt, ge, lt, le, eq, ne)")
                relop = "eq"
            relop = relop.lower()
        if mtype in ("contains", "matches", "regex") and not cmp.substring:
            self.error(line, f"the specified {cmp.name} comparator does not support sub-string matching "
                             f"as required by the :{mtype} match type")
        if mtype == "regex" and node.args and isinstance(node.args[-1], list):
            regexes = tuple(self.regex(k, cmp, line) for k in node.args[-1])
            return match.MatchSpec(mtype, relop, cmp, regexes)
        key = (mtype, relop, cmp)
        spec = _MATCH_SPECS.get(key)
        if spec is None:
            spec = _MATCH_SPECS[key] = match.MatchSpec(mtype, relop, cmp)
        return spec

    def regex(self, key, cmp, line):
        """Compile a constant :regex key now, so a bad pattern is a compile error."""
        if not isinstance(key, str):
            return None                  # contains variables: compiled at run time
        from . import regex
        try:
            return regex.compile_pattern(key, cmp)
        except regex.RegexError as e:
            self.error(line, f"invalid regular expression '{key}' for regex match: {e}")
            return None


_MATCH_SPECS = {}
_COMPARATOR_TAG = registry.TagSpec("comparator", None, arg=STRING, group="comparator", key="comparator")
_ADDRESS_PART_TAGS = {}
