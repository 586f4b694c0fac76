"""RFC 5231 relational: the :count and :value match types with gt/ge/lt/le/eq/ne,
and the i;ascii-numeric comparator capability.

Never: compare here; match.py does.
"""
from .. import registry
from ..registry import STRING

registry.match_type("value", "relational", arg=STRING)
registry.match_type("count", "relational", arg=STRING)
