"""RFC 5490 mailbox: the mailboxexists test (settings["mailbox_exists"](name) ->
bool; without the callback no mailbox is known to exist) and fileinto :create.

Never: create or open a mailbox.
"""
from .. import registry
from ..registry import STRINGS, TagSpec

registry.add_tag(["fileinto"], TagSpec("create", "mailbox"), tests=False)


def _exists(run, node):
    check = run.settings.get("mailbox_exists")
    if check is None:
        return False
    return all(bool(check(name)) for name in run.expand_all(node.args[0]))


registry.test("mailboxexists", extension="mailbox", positional=(STRINGS,), run=_exists)
