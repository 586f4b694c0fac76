"""RFC 5293 editheader: addheader [:last] and deleteheader [:index N [:last]]
[COMPARATOR] [MATCH] name [value-patterns]. Off unless enabled (as Pigeonhole).

Edits apply to the run's header view (later tests see them) and are reported as
"addheader"/"deleteheader" Actions (params: name, value, last / name, index,
last, patterns, occurrences = 1-based positions among that name's fields).
Received and Auto-Submitted cannot be deleted (a warning, no edit); adding them is
allowed, as in Pigeonhole.
Never: modify the spooled message.
"""
from .. import match, registry
from ..registry import NUMBER, STRING, STRINGS, TagSpec
from ..result import Action, SieveRuntimeError

PROTECTED = frozenset({"received", "auto-submitted"})
MAX_HEADER_SIZE = 2048


def _valid_name(name):
    return bool(name) and all(32 < ord(c) < 127 and c != ":" for c in name)


def _check_add(v, node):
    name, value = node.args
    if type(name) is str and not _valid_name(name):
        v.error(node.line, f"addheader command: specified field name '{name}' is invalid")
    if type(value) is str and any(c in value for c in "\0"):
        v.error(node.line, "addheader command: specified value is invalid")


def _fold(value):
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n\t").replace("\r\n\t\t", "\r\n\t")


def _addheader(run, node):
    name, value = run.expand(node.args[0]), run.expand(node.args[1])
    if not _valid_name(name):
        raise SieveRuntimeError(node.line, f"addheader action: specified field name '{name}' is invalid")
    if len(name) + 2 + len(value) > run.settings.get("sieve_editheader_max_header_size", MAX_HEADER_SIZE):
        raise SieveRuntimeError(node.line, "addheader action: specified header field value is too large")
    headers = list(run.header_fields())
    field = (name, " " + _fold(value))
    last = bool(node.tags.get("last"))
    if last:
        headers.append(field)
    else:
        headers.insert(0, field)
    run.headers = headers
    run.add(Action("addheader", line=node.line, params={"name": name, "value": value, "last": last}))


def _check_delete(v, node):
    name = node.args[0]
    if type(name) is str and not _valid_name(name):
        v.error(node.line, f"deleteheader command: specified field name '{name}' is invalid")
    if node.tags.get("last") and "index" not in node.tags:
        v.error(node.line, "deleteheader command: the :last tag requires the :index tag")


def _deleteheader(run, node):
    name = run.expand(node.args[0])
    if name.lower() in PROTECTED:
        run.warn(node.line, f"deleteheader action: deleting specified header field '{name}' is forbidden; "
                            "modification denied")
        return
    from ..message import decode_value
    headers = list(run.header_fields())
    key = name.lower()
    positions = [i for i, (n, _v) in enumerate(headers) if n.lower() == key]
    chosen = list(range(1, len(positions) + 1))
    index = node.tags.get("index")
    if index is not None:
        if node.tags.get("last"):
            index = len(positions) - index + 1
        chosen = [index] if 1 <= index <= len(positions) else []
    patterns = node.args[1] if len(node.args) > 1 else None
    if patterns is not None:
        chosen = [k for k in chosen
                  if match.match(run, node.match, [decode_value(headers[positions[k - 1]][1])], patterns)]
    if not chosen:
        return
    drop = {positions[k - 1] for k in chosen}
    run.headers = [h for i, h in enumerate(headers) if i not in drop]
    run.add(Action("deleteheader", line=node.line,
                   params={"name": name, "index": node.tags.get("index"), "last": bool(node.tags.get("last")),
                           "patterns": tuple(run.expand_all(patterns)) if patterns else (),
                           "occurrences": tuple(chosen)}))


registry.command("addheader", extension="editheader", positional=(STRING, STRING), run=_addheader,
                 check=_check_add, tags={"last": TagSpec("last", "editheader")})
registry.command("deleteheader", extension="editheader", positional=((STRING,), (STRING, STRINGS)),
                 comparator=True, match=True, run=_deleteheader, check=_check_delete,
                 tags={"last": TagSpec("last", "editheader"),
                       "index": TagSpec("index", "editheader", arg=NUMBER)})
