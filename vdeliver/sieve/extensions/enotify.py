"""RFC 5435 enotify with the RFC 5436 mailto method: notify, valid_notify_method,
notify_method_capability, and the :encodeurl modifier of set.

notify produces a "notify" Action (params: method, message, importance, options,
from); limits.max_notifications per run if set (Pigeonhole 0.5 has no such limit:
max_actions bounds them). Never: send the notification.
"""
from .. import match, registry
from ..registry import STRING, STRINGS, TagSpec
from ..result import Action, SieveRuntimeError
from . import variables
from .core import valid_address



def mailto_recipients(uri):
    """A mailto: URI -> its list of recipient addresses, or None if invalid."""
    if not uri[:7].lower() == "mailto:":
        return None
    import urllib.parse
    rest = uri[7:]
    to, _, query = rest.partition("?")
    if "," in to:
        return None             # Pigeonhole: "invalid character ',' in 'to' part"
    addrs = [urllib.parse.unquote(to)] if to else []
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name.lower() == "to":
            addrs.extend(urllib.parse.unquote(a) for a in value.split(",") if a)
    if not addrs or any(valid_address(a) is None for a in addrs):
        return None
    return addrs


def valid_option(option):
    """RFC 5435 §3.1 :options items are "name=value"; the name starts with a letter or a
    digit and goes on with letters, digits, '-', '.' and '_' (Pigeonhole checks this)."""
    name, equals, _ = option.partition("=")
    return bool(equals) and bool(name) and name[0].isascii() and name[0].isalnum() and all(
        ch.isascii() and (ch.isalnum() or ch in "-._") for ch in name)


def _check(v, node):
    method = node.args[0]
    for option in node.tags.get("options", []):
        if type(option) is str and not valid_option(option):
            v.error(node.line, f"notify command: invalid option '{option}'")
    if type(method) is str and method.lower() == "mailto:":
        pass  # no recipient: Pigeonhole warns and the run sends nothing
    elif type(method) is str and mailto_recipients(method) is None:
        scheme = method.partition(":")[0]
        if scheme.lower() != "mailto":
            v.error(node.line, f"notify command: invalid method '{method}': "
                               f"notification method '{scheme}' is not supported")
        else:
            v.error(node.line, f"notify command: invalid method '{method}': invalid mailto URI")
    imp = node.tags.get("importance")
    if type(imp) is str and imp not in ("1", "2", "3"):
        v.error(node.line, "notify command: invalid :importance value (must be 1, 2 or 3)")
    frm = node.tags.get("from")
    if type(frm) is str and valid_address(frm) is None:
        v.error(node.line, f"notify command: invalid :from address '{frm}'")


def _notify(run, node):
    method = run.expand(node.args[0])
    if method.lower() == "mailto:":
        return  # no recipient at all: nothing to notify (Pigeonhole warns, the run goes on)
    if mailto_recipients(method) is None:
        raise SieveRuntimeError(node.line, f"notify action: invalid method '{method}'")
    count = run.ext.get("notify-count", 0) + 1
    if run.limits.max_notifications and count > run.limits.max_notifications:
        raise SieveRuntimeError(node.line, "number of notifications exceeds policy limit "
                                           f"({count} > {run.limits.max_notifications})")
    run.ext["notify-count"] = count
    tags = node.tags
    params = {"method": method,
              "message": run.expand(tags["message"]) if "message" in tags else None,
              "importance": run.expand(tags["importance"]) if "importance" in tags else "2",
              "options": tuple(run.expand_all(tags.get("options", []))),
              "from": run.expand(tags["from"]) if "from" in tags else None}
    run.add(Action("notify", line=node.line, params=params))


registry.command("notify", extension="enotify", positional=(STRING,), run=_notify, check=_check,
                 tags={"from": TagSpec("from", "enotify", arg=STRING),
                       "importance": TagSpec("importance", "enotify", arg=STRING),
                       "options": TagSpec("options", "enotify", arg=STRINGS),
                       "message": TagSpec("message", "enotify", arg=STRING)})

registry.test("valid_notify_method", extension="enotify", positional=(STRINGS,),
              run=lambda run, node: all(mailto_recipients(u) is not None for u in run.expand_all(node.args[0])))


def _capability(run, node):
    uri = run.expand(node.args[0])
    cap = run.expand(node.args[1]).lower()
    if mailto_recipients(uri) is None or cap != "online":
        return False
    return match.match(run, node.match, ["maybe"], node.args[2])


registry.test("notify_method_capability", extension="enotify", positional=(STRING, STRING, STRINGS),
              comparator=True, match=True, run=_capability)

def _encodeurl(s):
    import urllib.parse
    return urllib.parse.quote(s, safe="-._~")


variables.modifier("encodeurl", 15, _encodeurl, extension="enotify")
