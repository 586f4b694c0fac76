"""RFC 5260 §6 index: :index N and :last on header, address and date
(core.select_index applies them).

Never: accept :last without :index, or index 0.
"""
from .. import registry
from ..registry import NUMBER, TagSpec



def _check(v, node):
    if node.tags.get("last") and "index" not in node.tags:
        v.error(node.line, f"the :last tag for the {node.name} test requires the :index tag")
    if node.tags.get("index") == 0:
        v.error(node.line, "the :index tag requires a positive number (not 0)")


_TESTS = ["header", "address", "date"]
registry.add_tag(_TESTS, TagSpec("index", "index", arg=NUMBER), tests=True)
registry.add_tag(_TESTS, TagSpec("last", "index"), tests=True)
registry.add_check(_TESTS, _check)
