"""RFC 5463 ihave: the ihave test (true when every named capability is enabled; its
block may then use them) and the error command.

A block guarded by ihave of an unknown capability is not validated (it may use
commands this engine lacks) and is never run: the validator folds ihave like
true/false (validator.constant), so `if not ihave "x" {...} else {...}` works too. Never: load anything at run time.
"""
from .. import registry
from ..registry import STRING, STRINGS
from ..result import SieveRuntimeError



def _check(v, node):
    caps = node.args[0]
    if any(type(c) is not str for c in caps):
        v.error(node.line, "the ihave test requires constant capability names")
        return
    if all(c in v.enabled for c in caps):
        for c in caps:
            v.add_required(c)
        node.data["result"] = True
    else:
        node.data["result"] = False           # the validator folds it: the block is dead


def _error(run, node):
    raise SieveRuntimeError(node.line, run.expand(node.args[0]))


registry.test("ihave", extension="ihave", positional=(STRINGS,), check=_check,
              run=lambda run, node: node.data["result"])
registry.command("error", extension="ihave", positional=(STRING,), run=_error)
