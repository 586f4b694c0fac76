"""RFC 5173 body test: :raw (the undecoded body), :content "type" (decoded MIME
parts of those types) and :text (the default: decoded text parts).

Reads at most limits.max_body_size bytes of body, through the Message.
Never: load a whole large message.
"""
from .. import match, registry
from ..registry import STRINGS, TagSpec

registry.capability("body")


def part_text(part):
    """A leaf MIME part -> its decoded text (transfer encoding and charset)."""
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        if isinstance(payload, list):
            return ""
        payload = str(payload).encode("utf-8", "replace")
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def type_matches(part, types):
    ctype = part.get_content_type().lower()
    for t in types:
        t = t.lower()
        if t == "" or t == ctype or ("/" not in t and ctype.split("/")[0] == t):
            return True
    return False


def _values(run, node):
    transform = node.tags.get("transform", "text")
    cap = run.limits.max_body_size
    if transform == "raw":
        return [run.message.body(cap).decode("utf-8", "replace")]
    types = run.expand_all(node.tags["content"]) if transform == "content" else ["text"]
    out = []
    for part in run.message.mime(cap).walk():
        if part.is_multipart():
            if any(t.lower() == "multipart" or t == "" for t in types) and transform == "content":
                pre = part.preamble or ""
                if pre and any(t.lower() == "multipart" for t in types):
                    out.append(pre)
            continue
        if type_matches(part, types):
            out.append(part_text(part))
    return out


registry.test("body", extension="body", positional=(STRINGS,), comparator=True, match=True,
              run=lambda run, node: match.match(run, node.match, _values(run, node), node.args[0]),
              tags={"raw": TagSpec("raw", "body", group="transform", key="transform", value="raw"),
                    "text": TagSpec("text", "body", group="transform", key="transform", value="text"),
                    "content": TagSpec("content", "body", arg=STRINGS, group="transform", key="content")})


def _check(v, node):
    if "content" in node.tags:
        node.tags["transform"] = "content"


registry.TESTS["body"].add_check(_check)
