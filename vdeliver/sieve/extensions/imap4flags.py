"""RFC 5232 imap4flags: setflag/addflag/removeflag, the hasflag test, the :flags
tag on keep and fileinto, and the internal variable (run.flags) whose value at
the end of the run is the implicit keep's flags.

Invalid flags (an unknown \\System flag, a keyword with atom-specials) are
dropped, as Pigeonhole does. Never: touch a mailbox.
"""
from .. import match, registry
from ..registry import STRING, STRINGS, TagSpec
from .core import parse_flags, valid_flag

registry.add_tag(["keep", "fileinto"], TagSpec("flags", "imap4flags", arg=STRINGS), tests=False)

def clean(flags):
    return [f for f in flags if valid_flag(f)]


def _get(run, var):
    if var is None:
        return list(run.flags)
    from .variables import lookup
    return parse_flags([lookup(run, var.lower())])


def _put(run, var, flags):
    if var is None:
        run.flags = flags
    else:
        from .variables import store
        store(run, var.lower(), " ".join(flags))


def _target(run, node):
    if len(node.args) == 2:
        return run.expand(node.args[0]), node.args[1]
    return None, node.args[0]


def _setflag(run, node):
    var, flags = _target(run, node)
    _put(run, var, clean(parse_flags(run.expand_all(flags))))


def _addflag(run, node):
    var, flags = _target(run, node)
    cur = _get(run, var)
    have = {f.lower() for f in cur}
    for f in clean(parse_flags(run.expand_all(flags))):
        if f.lower() not in have:
            cur.append(f)
            have.add(f.lower())
    _put(run, var, cur)


def _removeflag(run, node):
    var, flags = _target(run, node)
    gone = {f.lower() for f in parse_flags(run.expand_all(flags))}
    _put(run, var, [f for f in _get(run, var) if f.lower() not in gone])


def _varcheck(v, node):
    if len(node.args) == 2 and "variables" not in v.required:
        v.error(node.line, f"the {node.name} command takes a variable name only when "
                           "the variables extension is required")


_ALT = ((STRINGS,), (STRING, STRINGS))
for _name, _fn in (("setflag", _setflag), ("addflag", _addflag), ("removeflag", _removeflag)):
    registry.command(_name, extension="imap4flags", positional=_ALT, run=_fn, check=_varcheck)


def _hasflag(run, node):
    if len(node.args) == 2:
        values = []
        for var in run.expand_all(node.args[0]):
            values.extend(f for f in _get(run, var) if f not in values)
        keys = node.args[1]
    else:
        values, keys = list(run.flags), node.args[0]
    if node.match.type in ("is", "contains", "value"):
        keys = parse_flags(run.expand_all(keys))
    return match.match(run, node.match, values, keys)


registry.test("hasflag", extension="imap4flags", positional=((STRINGS,), (STRINGS, STRINGS)),
              comparator=True, match=True, run=_hasflag)
