"""RFC 5229 variables: ${name} and ${N} in strings, the set command with its
modifiers, and the string test.

Strings that reference variables are compiled once into a Template; all others
stay plain str (run.expand() is then a no-op). Values are capped at
limits.max_variable_size bytes (truncated at a UTF-8 boundary, as Pigeonhole),
a script may name at most limits.max_variables variables.
Other extensions add set modifiers with modifier() (regex: :quoteregex,
enotify: :encodeurl) and variable namespaces with namespace() (include: global).

Never: evaluate anything at compile time but constant strings; raise on a
reference to an unset variable (it is the empty string).
"""
import re

from .. import match, registry
from ..registry import STRING, STRINGS, TagSpec


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_REF = re.compile(rf"\$\{{(?:([0-9]+)|({_IDENT}(?:\.{_IDENT})*))\}}")
_NAME = re.compile(rf"(?:{_IDENT}\.)?{_IDENT}")
NAMESPACES = {}          # namespace -> capability (e.g. "global" -> "include")
MODIFIERS = {}           # name -> (precedence, fn, extension)


MODIFIER_COMMANDS = ["set"]


def modifier(name, precedence, fn, extension="variables"):
    MODIFIERS[name] = (precedence, fn, extension)
    for command in MODIFIER_COMMANDS:
        registry.COMMANDS[command].add_tag(TagSpec(name, extension, key=f"modifier:{name}"))


def accept_modifiers(command):
    """Let another command (extracttext) take the set modifiers, present and future."""
    MODIFIER_COMMANDS.append(command)
    for name, (_prec, _fn, ext) in MODIFIERS.items():
        registry.COMMANDS[command].add_tag(TagSpec(name, ext, key=f"modifier:{name}"))


def modifiers_check(v, node):
    mods = sorted((MODIFIERS[k[9:]] for k in node.tags if k.startswith("modifier:")), key=lambda m: -m[0])
    for a, b in zip(mods, mods[1:]):
        if a[0] == b[0]:
            v.error(node.line, f"modifiers with the same precedence cannot be used together "
                               f"in a {node.name} command")
    node.data["modifiers"] = [m[1] for m in mods]


def apply_modifiers(node, value):
    for fn in node.data["modifiers"]:
        value = fn(value)
    return value


def namespace(name, extension):
    NAMESPACES[name] = extension


class Template:
    """A string with variable references: parts are str, int (match value) or
    (scope, name) where scope is None (by declaration) or "global"."""
    __slots__ = ("parts", "source")

    def __init__(self, parts, source):
        self.parts = parts
        self.source = source

    def render(self, run):
        # bounded: "${a}${a}..." over a whole script must not build gigabytes
        out = []
        size, cap = 0, run.limits.max_expanded_size
        for p in self.parts:
            t = type(p)
            if t is str:
                piece = p
            elif t is int:
                mv = run.match_values
                piece = mv[p] if p < len(mv) else ""
            else:
                piece = lookup(run, p[1], p[0])
            out.append(piece)
            size += len(piece)
            if size > cap:
                return "".join(out)[:cap]
        return "".join(out)

    def __repr__(self):
        return f"Template({self.source!r})"


def scope_of(run, name, scope=None):
    if scope == "global" or name in run.script.data.get("globals", ()):
        return run.globals
    return run.variables


def lookup(run, name, scope=None):
    return scope_of(run, name, scope).get(name, "")


def store(run, name, value, scope=None):
    cap = run.limits.max_variable_size
    if len(value) > cap // 4 and len(value.encode("utf-8", "surrogateescape")) > cap:
        value = value.encode("utf-8", "surrogateescape")[:cap].decode("utf-8", "ignore")
    scope_of(run, name, scope)[name] = value


MAX_NAME = 64              # Pigeonhole's EXT_VARIABLES_MAX_VARIABLE_NAME_LEN


def _count(v, name, line):
    names = v.data.setdefault("variable-names", set())
    if name not in names:
        names.add(name)
        if len(names) > v.limits.max_variables:
            v.error(line, f"(implicit) declaration of new variable '{name}' exceeds the limit "
                          f"(max variables: {v.limits.max_variables})")


def split_name(v, name, line):
    """'x' -> (None, 'x'); 'global.x' -> ('global', 'x'); errors for others."""
    lname = name.lower()
    if "." in lname:
        ns, _, rest = lname.partition(".")
        ext = NAMESPACES.get(ns)
        if ext is None or ext not in v.required:
            v.error(line, f"unknown variable namespace '{ns}'")
        return ns, rest
    return None, lname


def _hook(v, s, line):
    if "${" not in s:
        return s
    parts = []
    pos = 0
    for m in _REF.finditer(s):
        if m.group(1) is not None:
            ref = int(m.group(1))
        else:
            if len(m.group(2)) > MAX_NAME:
                continue                          # not a variable reference: stays as written
            scope, name = split_name(v, m.group(2), line)
            _count(v, name, line)
            ref = (scope, name)
        if m.start() > pos:
            parts.append(s[pos:m.start()])
        parts.append(ref)
        pos = m.end()
    if not parts:
        return s
    if pos < len(s):
        parts.append(s[pos:])
    return Template(parts, s)


registry.string_hook("variables", _hook, order=20)


# -- set
def _quotewildcard(value):
    return "".join("\\" + c if c in "*?\\" else c for c in value)


def _set_check(v, node):
    name = node.args[0]
    if type(name) is not str or not _NAME.fullmatch(name) or len(name.rpartition(".")[2]) > MAX_NAME:
        v.error(node.line, f"invalid variable name '{getattr(name, 'source', name)}'")
        return
    scope, lname = split_name(v, name, node.line)
    _count(v, lname, node.line)
    node.data["target"] = (scope, lname)
    modifiers_check(v, node)


def _set(run, node):
    value = apply_modifiers(node, run.expand(node.args[1]))
    scope, name = node.data["target"]
    store(run, name, value, scope)


registry.command("set", extension="variables", positional=(STRING, STRING), run=_set, check=_set_check)
_LOWER = {c: c + 32 for c in range(65, 91)}
_UPPER = {c + 32: c for c in range(65, 91)}


def _lower(s):
    return s.translate(_LOWER)


def _upper(s):
    return s.translate(_UPPER)


# Pigeonhole changes the case of ASCII letters only.
for _name, _prec, _fn in (("lower", 40, _lower), ("upper", 40, _upper),
                          ("lowerfirst", 30, lambda s: _lower(s[:1]) + s[1:]),
                          ("upperfirst", 30, lambda s: _upper(s[:1]) + s[1:]),
                          ("quotewildcard", 20, _quotewildcard),
                          ("length", 10, lambda s: str(len(s)))):
    modifier(_name, _prec, _fn)


# -- string test
def _string(run, node):
    values = run.expand_all(node.args[0])
    if node.match.type == "count":
        values = [v if v != "" else None for v in values]
    return match.match(run, node.match, values, node.args[1])


registry.test("string", extension="variables", positional=(STRINGS, STRINGS), comparator=True,
              match=True, run=_string)
