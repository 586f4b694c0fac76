"""RFC 5429 reject and ereject: refuse the message with a reason.

Conflicts (reject with keep/fileinto/redirect/vacation) are result.py's rules.
Never: send the rejection; the delivery core does (or answers 5xx for ereject).
"""
from .. import registry
from ..registry import STRING
from ..result import Action



def _make(kind):
    def run_reject(run, node):
        run.add(Action(kind, reason=run.expand(node.args[0]), line=node.line))
    return run_reject


registry.command("reject", extension="reject", positional=(STRING,), run=_make("reject"))
registry.command("ereject", extension="ereject", positional=(STRING,), run=_make("ereject"))
