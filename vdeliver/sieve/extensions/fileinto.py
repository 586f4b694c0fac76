"""RFC 5228 §4.1 fileinto: store into a named mailbox.

The mailbox name is returned exactly as the script (after variable expansion)
gives it, "../../x" included: the delivery core validates and maps folder names.
Never: check or create the mailbox here.
"""
from .. import registry
from ..registry import STRING
from ..result import Action
from .core import action_flags



def _fileinto(run, node):
    run.add(Action("fileinto", mailbox=run.expand(node.args[0]), flags=action_flags(run, node),
                   create=bool(node.tags.get("create")), copy=bool(node.tags.get("copy")),
                   line=node.line))


registry.command("fileinto", extension="fileinto", positional=(STRING,), run=_fileinto)
