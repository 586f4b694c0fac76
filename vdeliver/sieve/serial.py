"""A compiled script as text and back, for the compile cache (vdeliver/sievecache.py).

    text = serial.dump(script_or_compile_error)   # None: this one is not stored
    compiled = serial.load(text, enabled)         # a Script or a CompileError

The text is data only: words separated by US (0x1F), in prefix order, each a
type letter and its value: s string, i integer, t/f/n true/false/none, L a
list of strings (its items separated by RS, 0x1E), l list and d dict (the
count; the items follow), C an if-chain and N a command or test (their fields
separated by RS; their parts follow). "%", US and RS in a string are written
%25, %1F and %1E. Few words, split by str.split: loading a 50-rule script
costs a fraction of compiling it. load() rebuilds Nodes whose commands and tests are looked
up by name in the registry (only those of the capabilities the script
required, which must be enabled), with match types and comparators by name,
so a cache file names code, it never carries any.

Only plain scripts are stored: every tag and argument a string, number,
boolean or list of strings, no extension data in a node (include, ihave,
variables' modifiers and targets, a mime header source), no variables in a
string, no constant :regex key, no per-script extension data. Anything else
makes dump() return None and the script is compiled every time, as before.

Never: evaluate, import or unpickle anything from the text (no pickle, marshal,
eval); return a Script from text it did not fully understand. Raises:
ValueError (load: text that is not exactly what dump writes; the caller
ignores the cache entry).
"""
from . import comparators, match, registry
from .nodes import IfChain, Node
from .script import CompileError, Script

FORMAT = "vdeliver-sieve-compiled 2"
US, RS = "\x1f", "\x1e"
MATCH_TYPES = ("is", "contains", "matches", "value", "count")
_MATCH_SPECS = {}


class NotPlain(Exception):
    """A part of the script that dump() does not store (the script is not cached)."""


def dump(compiled):
    """The text of a Script or CompileError, or None when it is not plain enough."""
    out = [FORMAT]
    if isinstance(compiled, CompileError):
        out.append("E")
        _value(out, list(compiled.errors))
        return US.join(out)
    if compiled.data or any(type(w) is not str for w in compiled.warnings):
        return None
    out.append("S")
    try:
        _value(out, compiled.name)
        _value(out, sorted(compiled.required))
        _value(out, compiled.uses_variables)
        _value(out, list(compiled.warnings))
        _nodes(out, compiled.nodes)
    except NotPlain:
        return None
    return US.join(out)


def _string(s):
    if "%" in s:
        s = s.replace("%", "%25")
    if US in s:
        s = s.replace(US, "%1F")
    if RS in s:
        s = s.replace(RS, "%1E")
    return s


def _unescape(s):
    return s.replace("%1F", US).replace("%1E", RS).replace("%25", "%")


def _value(out, v):
    t = type(v)
    if t is str:
        out.append("s" + _string(v))
    elif t is bool:
        out.append("t" if v else "f")
    elif t is int:
        out.append(f"i{v}")
    elif v is None:
        out.append("n")
    elif t is list and all(type(item) is str for item in v):
        out.append(RS.join(["L"] + [_string(item) for item in v]))
    elif t is list:
        out.append(f"l{len(v)}")
        for item in v:
            _value(out, item)
    elif t is dict:
        out.append(f"d{len(v)}")
        for key, item in v.items():
            if type(key) is not str:
                raise NotPlain(key)
            out.append("s" + _string(key))
            _value(out, item)
    else:                       # a variables Template, a tuple, a compiled pattern...
        raise NotPlain(v)


def _nodes(out, nodes):
    out.append(f"l{len(nodes)}")
    for node in nodes:
        if type(node) is IfChain:
            out.append(f"C{RS}{len(node.branches)}{RS}{node.line}{RS}{int(node.settled)}")
            for test, block in node.branches:
                if test is None:
                    out.append("n")
                else:
                    _node(out, test)
                _nodes(out, block)
        else:
            _node(out, node)


def _node(out, node):
    if node.spec is None or node.data or type(node.line) is not int:
        raise NotPlain(node)
    spec = node.match
    if spec is None:
        matching = ["", "", ""]
    elif spec.regexes or spec.type not in MATCH_TYPES:
        raise NotPlain(spec)
    else:
        matching = [spec.type, _string(spec.relop), spec.comparator.name]
    out.append(RS.join(["Nt" if node.spec.is_test else "Nc", _string(node.name), str(node.line),
                        str(len(node.tags)), str(len(node.args)), str(len(node.tests)),
                        "-1" if node.block is None else "0"] + matching))
    for key, item in node.tags.items():
        if type(key) is not str:
            raise NotPlain(key)
        out.append("s" + _string(key))
        _value(out, item)
    for item in node.args:
        _value(out, item)
    for test in node.tests:
        _node(out, test)
    if node.block is not None:
        _nodes(out, node.block)


def load(text, enabled):
    """The Script or CompileError `text` (dump()'s) describes, for the enabled
    capabilities (a script requiring one that is not enabled is refused)."""
    words = text.split(US)
    if words[0] != FORMAT or len(words) < 3:
        raise ValueError("not a compiled script of this version")
    try:
        return _load(words, enabled)
    except (IndexError, KeyError, TypeError, RecursionError, StopIteration):
        raise ValueError("malformed compiled script") from None


def _load(words, enabled):
    nxt = iter(words[2:]).__next__

    def value(w):
        t = w[0]
        if t == "s":
            return _unescape(w[1:]) if "%" in w else w[1:]
        if t == "L":
            items = w.split(RS)[1:]
            return [_unescape(i) for i in items] if "%" in w else items
        if t == "i":
            return int(w[1:])
        if w == "t":
            return True
        if w == "f":
            return False
        if w == "n":
            return None
        if t == "l":
            return [value(nxt()) for _ in range(int(w[1:]))]
        if t == "d":
            out = {}
            for _ in range(int(w[1:])):
                key = nxt()
                if key[0] != "s":
                    raise ValueError("bad dict key")
                out[value(key)] = value(nxt())
            return out
        raise ValueError(f"unexpected {w[:20]!r}")

    # A count needs no bound: every item takes at least one word, and a count past
    # the end meets StopIteration (a ValueError for the caller).
    def nodes():
        w = nxt()
        if w[0] != "l":
            raise ValueError("expected a list of commands")
        out = []
        for _ in range(int(w[1:])):
            w = nxt()
            if w[0] == "C":
                _c, n, line, settled = w.split(RS)
                branches = []
                for _ in range(int(n)):
                    first = nxt()
                    branches.append((None if first == "n" else node(first, True), nodes()))
                if not branches or settled not in ("0", "1"):
                    raise ValueError("bad if-chain")
                out.append(IfChain(int(line), branches, settled == "1"))
            else:
                out.append(node(w, False))
        return out

    tables = (registry.COMMANDS, registry.TESTS)
    new = object.__new__

    def node(w, test):
        kind, name, line, ntags, nargs, ntests, block, mtype, relop, cname = w.split(RS)
        if kind != ("Nt" if test else "Nc"):
            raise ValueError(f"expected a {'test' if test else 'command'}")
        if "%" in name:
            name = _unescape(name)
        spec = tables[test].get(name)
        if spec is None or (spec.extension is not None and spec.extension not in required):
            raise ValueError(f"{name!r} is not available to this script")
        # Node's slots set here, not by Node(): 200 nodes of a 50-rule script, and its
        # __init__ makes four containers each that would be replaced at once.
        n = new(Node)
        n.name, n.line, n.spec, n.data, n.fast = name, int(line), spec, {}, None
        # value() inlined for the strings and string lists nearly every argument is
        tags = {}
        if ntags != "0":
            for _ in range(int(ntags)):
                key = nxt()
                if key[0] != "s":
                    raise ValueError("bad tag")
                w = nxt()
                if w[0] == "s":
                    v = _unescape(w[1:]) if "%" in w else w[1:]
                else:
                    v = value(w)
                tags[_unescape(key[1:]) if "%" in key else key[1:]] = v
        n.tags = tags
        args = []
        if nargs != "0":
            for _ in range(int(nargs)):
                w = nxt()
                t = w[0]
                if t == "L":
                    v = w.split(RS)
                    del v[0]
                    if "%" in w:
                        v = [_unescape(item) for item in v]
                elif t == "s":
                    v = _unescape(w[1:]) if "%" in w else w[1:]
                else:
                    v = value(w)
                args.append(v)
        n.args = args
        tests = []
        if ntests != "0":
            for _ in range(int(ntests)):
                tests.append(node(nxt(), True))
        n.tests = tests
        if block == "0":
            n.block = nodes()
        elif block == "-1":
            n.block = None
        else:
            raise ValueError("bad block")
        if mtype:
            if "%" in relop:
                relop = _unescape(relop)
            spec = _MATCH_SPECS.get((mtype, relop, cname))
            if spec is None or cname in comparators.CAPABILITY:
                spec = match_spec(mtype, relop, cname)
            n.match = spec
        else:
            n.match = None
        return n

    def match_spec(kind, relop, name):
        key = (kind, relop, name)
        spec = _MATCH_SPECS.get(key)
        if spec is None:
            comparator = comparators.COMPARATORS.get(name)
            if kind not in MATCH_TYPES or comparator is None or (
                    kind in ("value", "count") and relop not in match.RELOPS):
                raise ValueError("bad match spec")
            spec = _MATCH_SPECS[key] = match.MatchSpec(kind, relop, comparator)
        cap = comparators.CAPABILITY.get(name)
        if cap is not None and cap not in required:
            raise ValueError(f"comparator {name!r} not required")
        return spec

    kind = words[1]
    required = frozenset()
    if kind == "E":
        errors = value(nxt())
        if type(errors) is not list or not all(type(e) is str for e in errors):
            raise ValueError("bad error list")
        compiled = CompileError(errors)
    elif kind == "S":
        name, needed, uses_variables, warnings = [value(nxt()) for _ in range(4)]
        if (type(name) is not str or type(needed) is not list or type(uses_variables) is not bool
                or type(warnings) is not list
                or not all(type(w) is str for w in warnings + needed)):
            raise ValueError("bad script header")
        for capability in needed:
            if capability not in enabled or capability not in registry.CAPABILITIES:
                raise ValueError(f"capability {capability!r} is not enabled")
            registry.load(capability)
        required = frozenset(needed)
        compiled = Script(name, nodes(), required, frozenset(enabled),
                          uses_variables=uses_variables, warnings=warnings)
    else:
        raise ValueError("unknown kind")
    try:
        nxt()
    except StopIteration:
        return compiled
    raise ValueError("trailing words")
