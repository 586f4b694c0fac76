"""RFC 5293 editheader: addheader [:last] and deleteheader [:index N [:last]]
[COMPARATOR] [MATCH] name [value-patterns]. Off unless enabled (as Pigeonhole).

Edits apply to the run's header view (later tests see them) and are reported as
"addheader"/"deleteheader" Actions (params: name, value, last / name, index,
last, patterns, occurrences = 1-based positions among that name's fields; no
Action when nothing matched); the delivery core applies them to the stored copies
(vdeliver/headeredit.py). As Pigeonhole 0.5.19 (ext-editheader-common.c):
Received and Auto-Submitted cannot be deleted, X-Sieve-Redirected-From can be
neither added nor deleted, Subject always can; sieve_editheader_protected,
sieve_editheader_forbid_add and sieve_editheader_forbid_delete (field names
separated by blanks) add to that; a forbidden edit is a warning and no edit. An
added name is spelt as Pigeonhole stores it (`x-tag` -> `X-Tag`); a value over
sieve_editheader_max_header_size bytes (default 2048, at least 1024) is an error,
at compile time for a literal over the default. The fields one run adds may
come to limits.max_header_size bytes (1 MiB) in all: past that, a run-time
error (bounded memory; Pigeonhole has no such limit). Once a deleteheader has run, the header has no
Content-Length (Pigeonhole drops it when it parses the header for an edit: after a
deleteheader that deleted a field; one that deleted nothing leaves it, and a
deleteheader "content-length" finds nothing to delete).
Never: modify the spooled message.
"""
from .. import match, registry
from ..registry import NUMBER, STRING, STRINGS, TagSpec
from ..result import Action, SieveRuntimeError

MAX_HEADER_SIZE = 2048
MIN_MAX_HEADER_SIZE = 1024


def _names(settings, *keys):
    return {name.lower() for key in keys for name in str(settings.get(key) or "").split()}


def allow_add(settings, name):
    key = name.lower()
    if key == "subject":
        return True
    if key == "x-sieve-redirected-from":
        return False
    return key not in _names(settings, "sieve_editheader_protected", "sieve_editheader_forbid_add")


def allow_delete(settings, name):
    key = name.lower()
    if key in ("received", "auto-submitted", "x-sieve-redirected-from"):
        return False
    if key == "subject":
        return True
    return key not in _names(settings, "sieve_editheader_protected",
                             "sieve_editheader_forbid_delete")


def max_header_size(settings):
    """The setting (a size, "4k"); unset, unreadable or below the minimum: the default,
    as Pigeonhole (which warns and ignores it)."""
    from ..limits import _value
    text = settings.get("sieve_editheader_max_header_size")
    try:
        value = _value(text, "size") if text not in (None, "") else MAX_HEADER_SIZE
    except ValueError:
        return MAX_HEADER_SIZE
    return value if value >= MIN_MAX_HEADER_SIZE else MAX_HEADER_SIZE


def sanitized(name):
    """Pigeonhole's spelling of an added field's name (rfc2822_header_field_name_sanitize)."""
    out, upper = [], True
    for ch in name.lower():
        out.append(ch.upper() if upper else ch)
        upper = ch == "-"
    return "".join(out)


def _valid_name(name):
    return bool(name) and all(32 < ord(c) < 127 and c != ":" for c in name)


def _check_add(v, node):
    name, value = node.args
    if type(name) is str and not _valid_name(name):
        v.error(node.line, f"addheader command: specified field name '{name}' is invalid")
    if type(value) is str and any(c in value for c in "\0"):
        v.error(node.line, "addheader command: specified value is invalid")
    # The compiler sees no settings: a literal is checked against the default size
    if type(value) is str and len(value.encode("utf-8", "surrogatepass")) > MAX_HEADER_SIZE:
        v.error(node.line, "addheader command: specified header value is too large")


def _fold(value):
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n\t").replace("\r\n\t\t", "\r\n\t")


def _addheader(run, node):
    name, value = run.expand(node.args[0]), run.expand(node.args[1])
    if not _valid_name(name):
        raise SieveRuntimeError(node.line, f"addheader action: specified field name '{name}' is invalid")
    if not allow_add(run.settings, name):
        run.warn(node.line, f"addheader action: adding specified header field '{name}' is forbidden;"
                            " modification denied")
        return
    if "\0" in value:
        raise SieveRuntimeError(node.line, "addheader action: specified value is invalid"
                                           " (contains NUL character)")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_header_size(run.settings):
        raise SieveRuntimeError(node.line, "addheader action: specified header value is too large"
                                           f" ({size} bytes)")
    name = sanitized(name)
    # Bounded memory (the view, and every copy the delivery core writes): the fields a run
    # adds may come to max_header_size bytes in all (1 MiB, the header block vdeliver reads);
    # Pigeonhole has no such limit, a script that passes it fails (keep).
    added = run.ext.get("editheader_added", 0) + len(name) + 2 + size
    if added > run.limits.max_header_size:
        raise SieveRuntimeError(node.line, "addheader action: the added header fields exceed"
                                           f" {run.limits.max_header_size} bytes")
    run.ext["editheader_added"] = added
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
    if not allow_delete(run.settings, name):
        run.warn(node.line, f"deleteheader action: deleting specified header field '{name}' is forbidden; "
                            "modification denied")
        return
    from ..message import decode_value
    # Pigeonhole parses the header for the edit and leaves Content-Length out of it
    headers = [h for h in run.header_fields() if h[0].lower() != "content-length"]
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
        return                 # nothing changes, not even Content-Length (the mail is not modified)
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
