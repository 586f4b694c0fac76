"""RFC 5703 mime, foreverypart, extracttext: the foreverypart loop (with break
[:name]), the :mime and :anychild tags with :type/:subtype/:contenttype/:param on
header, address and exists, and extracttext [:first N] varname.

The loop walks the MIME tree of the bounded body (limits.max_body_size), at most
limits.max_foreverypart parts. Never: decode a part that no test asks for.
"""
from .. import registry
from ..interpreter import execute
from ..message import decode_2047, decode_value, unfold
from ..registry import NUMBER, STRING, STRINGS, TagSpec
from ..result import SieveRuntimeError
from . import variables
from .body import html_to_text, part_text



class Break(Exception):
    def __init__(self, name):
        self.name = name


def _current(run):
    return run.ext.get("mime-part")


def _parts_for(run, node):
    part = _current(run) or run.message.mime(run.limits.max_body_size)
    if node.tags.get("anychild"):
        return list(part.walk())      # the part and all below it, as Pigeonhole counts them
    return [part]


def _option_values(part, name, node, raw=False):
    opt = node.tags.get("mime-option")
    if opt is None:
        return [(unfold(v) if raw else decode_value(v)) for v in (part.get_all(name) or [])]
    if name.lower() != "content-type" and opt != "param":
        return []
    if part.get(name) is None:
        return []            # no Content-Type field: no value (not the text/plain default)
    if opt == "type":
        return [part.get_content_maintype()]
    if opt == "subtype":
        return [part.get_content_subtype()]
    if opt == "contenttype":
        return [part.get_content_type()]
    import email.utils
    out = []
    for pname in node.tags.get("param", []):
        v = part.get_param(pname, header=name)
        if v is not None:
            v = email.utils.collapse_rfc2231_value(v)          # RFC 2231 name*=utf-8''...
            out.append(decode_2047(v) if "=?" in v else v)
    return out


def _header_source(run, node, name, raw=False):
    if not node.tags.get("mime"):
        return run.raw_header(name) if raw else run.header(name)
    out = []
    for part in _parts_for(run, node):
        if part is run.message.mime(run.limits.max_body_size) and not node.tags.get("mime-option"):
            out.extend(run.raw_header(name) if raw else run.header(name))
        else:
            out.extend(_option_values(part, name, node, raw))
    return out


def _check(v, node):
    if node.tags.get("anychild") and not node.tags.get("mime"):
        v.error(node.line, f"the :anychild tag for the {node.name} test requires the :mime tag")
    if node.tags.get("mime-option") and not node.tags.get("mime"):
        v.error(node.line, f"the :{node.tags['mime-option']} tag for the {node.name} test requires "
                           "the :mime tag")
    if node.tags.get("mime"):
        node.data["header_source"] = _header_source


_TESTS = ["header", "address", "exists"]
registry.add_tag(_TESTS, TagSpec("mime", "mime"), tests=True)
registry.add_tag(_TESTS, TagSpec("anychild", "mime"), tests=True)
registry.add_check(_TESTS, _check)
for _opt in ("type", "subtype", "contenttype"):
    registry.add_tag(["header"], TagSpec(_opt, "mime", group="mime-option", key="mime-option", value=_opt),
                     tests=True)
registry.add_tag(["header"], TagSpec("param", "mime", arg=STRINGS, group="mime-option", key="param"), tests=True)
registry.add_check(["header"], lambda v, n: n.tags.setdefault("mime-option", "param") if "param" in n.tags else None)


def _foreverypart(run, node):
    top = _current(run) or run.message.mime(run.limits.max_body_size)
    saved = _current(run)
    name = node.tags.get("name")
    seen = 0
    # The outermost loop visits the message itself too, then every part depth-first;
    # a nested loop visits the parts below the current one.
    try:
        for part in top.walk():
            if part is top and saved is not None:
                continue
            seen += 1
            if seen > run.limits.max_foreverypart:
                raise SieveRuntimeError(node.line, "foreverypart: too many MIME parts")
            run.ext["mime-part"] = part
            run.tick(node.line)
            execute(run, node.block)
    except Break as b:
        if b.name is not None and b.name != name:
            raise
    finally:
        run.ext["mime-part"] = saved


def _break_check(v, node):
    if not v.loops:
        v.error(node.line, "the break command is not placed inside a foreverypart loop")
    elif "name" in node.tags and node.tags["name"] not in v.loops:
        v.error(node.line, f"the break command: no enclosing foreverypart loop named '{node.tags['name']}'")


def _break(run, node):
    if _current(run) is None:
        raise SieveRuntimeError(node.line, "break used outside foreverypart")
    raise Break(node.tags.get("name"))


registry.command("foreverypart", extension="foreverypart", block=True, loop=True, run=_foreverypart,
                 tags={"name": TagSpec("name", "foreverypart", arg=STRING)})
registry.command("break", extension="foreverypart", run=_break, check=_break_check,
                 tags={"name": TagSpec("name", "foreverypart", arg=STRING)})


def _extract_check(v, node):
    if "variables" not in v.required:
        v.error(node.line, "the extracttext command requires the variables extension")
    if not v.loops:
        v.error(node.line, "the extracttext command is not placed inside a foreverypart loop")
    variables.modifiers_check(v, node)


def _extracttext(run, node):
    from .variables import store
    part = _current(run)
    if part is None:
        raise SieveRuntimeError(node.line, "extracttext used outside foreverypart")
    text = "" if part.is_multipart() or part.get_content_maintype() != "text" else part_text(part)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    first = node.tags.get("first")
    if first is not None:
        # :first counts octets in Pigeonhole (a cut character becomes U+FFFD)
        text = text.encode("utf-8", "surrogateescape")[:first].decode("utf-8", "replace")
    store(run, run.expand(node.args[0]).lower(), variables.apply_modifiers(node, text))


registry.command("extracttext", extension="extracttext", positional=(STRING,), run=_extracttext,
                 check=_extract_check, tags={"first": TagSpec("first", "extracttext", arg=NUMBER)})
variables.accept_modifiers("extracttext")
