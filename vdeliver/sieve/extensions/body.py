"""RFC 5173 body test: :raw (the undecoded body), :content "type" (decoded MIME
parts of those types) and :text (the default: decoded text parts, HTML turned
into text as Dovecot does).

Reads at most limits.max_body_size bytes of body, through the Message. Like
Pigeonhole, the body test sets no match variables.
Never: load a whole large message.
"""
from .. import match, registry
from ..registry import STRINGS, TagSpec



def html_to_text(html):
    """Text of an HTML part, by Dovecot's rules (mail-html2text): a tag ends in one
    space (never two, none at the start), comments vanish, <script>/<style>
    content vanishes, CDATA stays, entities are decoded."""
    import html.entities as ents
    out = []
    i, n = 0, len(html)

    def space():
        if out and out[-1][-1:] not in (" ", "\n"):
            out.append(" ")
    while i < n:
        c = html[i]
        if c == "<":
            low = html[i + 1:i + 10].lower()
            if html.startswith("!--", i + 1):
                j = html.find("-->", i + 4)
                i = n if j < 0 else j + 3
                continue
            for name in ("script", "style"):
                if low.startswith(name) and low[len(name):len(name) + 1] in (" ", "\t", "\r", "\n", ">"):
                    j = html.lower().find(f"</{name}>", i)
                    i = n if j < 0 else j + len(name) + 3
                    space()
                    break
            else:
                if html.startswith("![CDATA[", i + 1):
                    j = html.find("]]>", i + 9)
                    out.append(html[i + 9:n if j < 0 else j])
                    i = n if j < 0 else j + 3
                    continue
                j, quote = i + 1, None
                while j < n:
                    ch = html[j]
                    if quote:
                        if ch == "\\":
                            j += 1
                        elif ch == quote:
                            quote = None
                    elif ch in "\"'":
                        quote = ch
                    elif ch == ">":
                        break
                    j += 1
                i = j + 1
                if j < n:
                    space()
            continue
        if c == "&":
            j = i + 1
            while j < n and j - i <= 10 and html[j] not in " \t\r\n;":
                j += 1
            if j < n and html[j] == ";" and j - i <= 10:
                name = html[i + 1:j]
                ch = ents.html5.get(name + ";") or ents.html5.get(name.lower() + ";")
                if ch is None and name[:1] == "#":
                    try:
                        cp = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
                        ch = chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else None
                    except ValueError:
                        ch = None
                if ch:
                    out.append(ch)
                i = j + 1
            else:
                i += 1                     # a broken entity: the "&" is dropped
            continue
        j = html.find("<", i)
        k = html.find("&", i)
        end = min(x for x in (j, k, n) if x >= 0)
        out.append(html[i:end])
        i = end
    return "".join(out)


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
        if part.get_content_type() == "message/rfc822" and transform == "content" and \
                any(t.lower() in ("message", "message/rfc822") for t in types):
            inner = part.get_payload()
            if isinstance(inner, list) and inner:   # the encapsulated message, as text
                out.append(inner[0].as_bytes().decode("utf-8", "replace"))
            continue
        if part.is_multipart():
            if any(t.lower() == "multipart" or t == "" for t in types) and transform == "content":
                pre = part.preamble or ""
                if pre and any(t.lower() == "multipart" for t in types):
                    out.append(pre)
            continue
        if type_matches(part, types):
            text = part_text(part)
            if transform == "text" and part.get_content_type() == "text/html":
                text = html_to_text(text)
            out.append(text)
    return out


registry.test("body", extension="body", positional=(STRINGS,), comparator=True, match=True,
              run=lambda run, node: match.match(run, node.match, _values(run, node), node.args[0], capture=False),
              tags={"raw": TagSpec("raw", "body", group="transform", key="transform", value="raw"),
                    "text": TagSpec("text", "body", group="transform", key="transform", value="text"),
                    "content": TagSpec("content", "body", arg=STRINGS, group="transform", key="content")})


def _check(v, node):
    if "content" in node.tags:
        node.tags["transform"] = "content"


registry.add_check(["body"], _check)
