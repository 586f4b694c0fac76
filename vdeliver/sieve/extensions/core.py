"""RFC 5228 core: if/elsif/else, stop, keep, discard, redirect, and the tests
address, header, exists, size, allof, anyof, not, true, false, plus the address
parts :all/:localpart/:domain and the match types :is/:contains/:matches.

Also the helpers other extensions reuse: header_values() (honours :index/:last
and a :mime header source), address_values(), action_flags(), valid_address().

Never: send, store or discard anything itself; commands only add Actions.
"""
from .. import match, registry
from ..interpreter import Stop, evaluate
from ..message import parse_addresses
from ..registry import NUMBER, STRING, STRINGS, TagSpec
from ..result import Action, SieveRuntimeError

for _m in ("is", "contains", "matches"):
    registry.match_type(_m)

registry.address_part("all", lambda local, domain, run: local if domain is None else f"{local}@{domain}")
# (address_values() gives :all the address as written, quotes included)
registry.address_part("localpart", lambda local, domain, run: None if domain is None else local)
registry.address_part("domain", lambda local, domain, run: domain)


# -- helpers shared with extensions
def parse_flags(values):
    """A list of flag strings -> flags, split on spaces, first spelling kept (RFC 5232 §3)."""
    out, seen = [], set()
    for v in values:
        for flag in v.split():
            key = flag.lower()
            if key not in seen:
                seen.add(key)
                out.append(flag)
    return out


_SYSTEM_FLAGS = {"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft"}
_ATOM_SPECIALS = frozenset('(){%*"\\]')


def valid_flag(flag):
    """RFC 3501 flag: a known system flag (not \\Recent) or an atom keyword (no
    control character, space or atom-special)."""
    if flag.startswith("\\"):
        return flag.lower() in _SYSTEM_FLAGS
    return bool(flag) and not any(c <= " " or c == "\x7f" or c in _ATOM_SPECIALS for c in flag)


def action_flags(run, node):
    if "flags" in node.tags:
        return tuple(f for f in parse_flags(run.expand_all(node.tags["flags"])) if valid_flag(f))
    return tuple(run.flags)


def valid_address(addr):
    """One RFC 5322 address (a bare addr-spec, <addr-spec>, a name-addr, comments
    allowed) -> the addr-spec as Pigeonhole writes it (a local part that is not a
    dot-atom quoted), or None."""
    addrs = parse_addresses(addr, strict=True)
    if not addrs or len(addrs) != 1 or addrs[0][1] is None or len(addrs[0][2]) > 998:
        return None
    return addrs[0][2]


def select_index(node, values):
    """RFC 5260 §6 :index N [:last]: only the Nth field (from the end with :last)."""
    index = node.tags.get("index")
    if index is None:
        return values
    if node.tags.get("last"):
        index = len(values) - index + 1
    return [values[index - 1]] if 1 <= index <= len(values) else []


def header_values(run, node, names, raw=False):
    """The values of the named fields (decoded, or raw: unfolded only)."""
    source = node.data.get("header_source")
    out = []
    for name in run.expand_all(names):
        if source is not None:
            vals = source(run, node, name, raw)
        else:
            vals = run.raw_header(name) if raw else run.header(name)
        out.extend(select_index(node, vals))
    return out


def address_values(run, node, header_vals):
    """Addresses of raw header values: parsed first, then each part decoded, so an
    encoded display name with a comma or an "@" cannot split or fake an address."""
    name = node.tags.get("address-part", "all")
    part = registry.ADDRESS_PARTS[name][1]
    out = []
    cache = run.ext.setdefault("addresses", {})     # a header's addresses, parsed once per run
    for value in header_vals:
        addrs = cache.get(value)
        if addrs is None:
            addrs = parse_addresses(value)
            if len(cache) < 1000:
                cache[value] = addrs
        for local, domain, full in addrs:
            if full == "":
                out.append("")       # an empty field: every part is "" (Pigeonhole)
            else:
                out.append(full if name == "all" else part(local, domain, run))
    return out


def constant_strings(values):
    return [v for v in values if type(v) is str]


# -- control
registry.command("if", subtests="one", block=True)
registry.command("elsif", subtests="one", block=True)
registry.command("else", block=True)


def _stop(run, node):
    raise Stop()


registry.command("stop", run=_stop)


def _keep(run, node):
    run.add(Action("keep", mailbox="INBOX", flags=action_flags(run, node), line=node.line))


def _discard(run, node):
    run.add(Action("discard", line=node.line))


registry.command("keep", run=_keep)
registry.command("discard", run=_discard)


def _redirect_check(v, node):
    addr = node.args[0]
    if type(addr) is str and valid_address(addr) is None:
        v.error(node.line, f"specified redirect address '{addr}' is invalid")


def _redirect(run, node):
    raw = run.expand(node.args[0])
    addr = valid_address(raw)
    if addr is None:
        raise SieveRuntimeError(node.line, f"specified redirect address '{raw}' is invalid")
    local, _, domain = addr.rpartition("@")
    addr = f"{local}@{domain.lower()}"           # as Pigeonhole normalises it
    run.add(Action("redirect", address=addr, copy=bool(node.tags.get("copy")), line=node.line))


registry.command("redirect", positional=(STRING,), run=_redirect, check=_redirect_check)


# -- tests
ADDRESS_HEADERS = frozenset("""from to cc bcc sender resent-from resent-to reply-to resent-reply-to
resent-sender resent-cc resent-bcc for-approval for-handling for-comment apparently-to errors-to
delivered-to return-receipt-to x-admin read-receipt-to x-confirm-reading-to return-receipt-requested
registered-mail-reply-requested-by mail-followup-to mail-reply-to abuse-reports-to x-complaints-to
x-report-abuse-to x-beenthere""".split())


def valid_field_name(name):
    """RFC 5322 §3.6.8 ftext: printable US-ASCII but the colon."""
    return bool(name) and all("!" <= c <= "~" and c != ":" for c in name)


def check_header_names(v, node, what):
    for name in constant_strings(node.args[0]):
        if not valid_field_name(name):
            v.warn(node.line, f"specified header field name '{name}' is invalid")   # Pigeonhole warns


def _address_check(v, node):
    check_header_names(v, node, "address")
    for name in constant_strings(node.args[0]):
        if name.lower() not in ADDRESS_HEADERS:
            v.error(node.line, f"specified header '{name}' is not allowed for the address test")
            break


def _address(run, node):
    values = address_values(run, node, header_values(run, node, node.args[0], raw=True))
    return match.match(run, node.match, values, node.args[1])


def _header(run, node):
    fast = node.fast
    if fast is None:
        fast = node.fast = _header_fast(run, node)
    if fast is False or run.headers is not None:
        return match.match(run, node.match, header_values(run, node, node.args[0]), node.args[1])
    # The common test of a filter script (header :contains "subject" "[list]"), as
    # match.match() does it without the layers (_header_fast() says when it may).
    names, keys, fold, contains = fast
    folded = run.folded      # (field, comparator) -> its values folded, once per run
    for name in names:
        values = folded.get(name)
        if values is None:
            values = folded[name] = [fold(value) for value in run.message.header(name[0])]
        for value in values:
            for key in keys:
                if (key in value) if contains else (key == value):
                    return True
    return False


def _header_fast(run, node):
    """((field, comparator name)..., folded keys, fold, contains) for a header test that needs none of
    match.match()'s layers, else False: :is or :contains (which set no match values),
    a script without variables (every string constant), no :index, no extension data
    (a :mime header source). Computed at the node's first run; the same for all."""
    spec = node.match
    if (spec.type not in _PLAIN_MATCH or run.script.uses_variables or node.data
            or "index" in node.tags):
        return False
    fold = spec.comparator.fold
    return (tuple((name.lower(), spec.comparator.name) for name in node.args[0]),
            tuple(fold(k) for k in node.args[1]), fold, spec.type == "contains")


_PLAIN_MATCH = frozenset(("is", "contains"))


def _exists(run, node):
    source = node.data.get("header_source")
    for name in run.expand_all(node.args[0]):
        vals = source(run, node, name, True) if source is not None else run.raw_header(name)
        if not vals:
            return False
    return True


def _size_check(v, node):
    if "size" not in node.tags:
        v.error(node.line, "the size test requires either the :under or the :over tag")


def _size(run, node):
    limit = node.args[0]
    return run.message.size > limit if node.tags["size"] == "over" else run.message.size < limit


registry.test("address", positional=(STRINGS, STRINGS), comparator=True, match=True,
              address_part=True, run=_address, check=_address_check)
registry.test("header", positional=(STRINGS, STRINGS), comparator=True, match=True, run=_header,
              check=lambda v, node: check_header_names(v, node, "header"))
registry.test("exists", positional=(STRINGS,), run=_exists,
              check=lambda v, node: check_header_names(v, node, "exists"))
registry.test("size", positional=(NUMBER,), run=_size, check=_size_check,
              tags={"over": TagSpec("over", group="size", key="size", value="over"),
                    "under": TagSpec("under", group="size", key="size", value="under")})
registry.test("allof", subtests="list", run=lambda run, node: all(evaluate(run, t) for t in node.tests))
registry.test("anyof", subtests="list", run=lambda run, node: any(evaluate(run, t) for t in node.tests))
registry.test("not", subtests="one", run=lambda run, node: not evaluate(run, node.tests[0]))
registry.test("true", run=lambda run, node: True)
registry.test("false", run=lambda run, node: False)
