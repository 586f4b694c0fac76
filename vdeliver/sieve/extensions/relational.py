"""RFC 5231 relational: the :count and :value match types with gt/ge/lt/le/eq/ne,
and the i;ascii-numeric comparator capability.

Never: compare here; match.py does.
"""
from .. import registry
from ..registry import STRING

registry.capability("relational")
registry.capability("comparator-i;ascii-numeric")
registry.capability("comparator-i;unicode-casemap", default=False)
registry.match_type("value", "relational", arg=STRING)
registry.match_type("count", "relational", arg=STRING)
