"""RFC 5183 environment test: items from the caller's environment dict
(domain, host, location, name, phase, remote-host, remote-ip, version).

Never: look anything up (DNS, hostname) itself; an unknown item never matches.
"""
from .. import match, registry
from ..registry import STRING, STRINGS

registry.capability("environment")


def _environment(run, node):
    value = run.environment.get(run.expand(node.args[0]).lower())
    if value is None or (value == "" and node.match.type != "count"):
        return match.match(run, node.match, [] if value is None else [value], node.args[1])
    return match.match(run, node.match, [str(value)], node.args[1])


registry.test("environment", extension="environment", positional=(STRING, STRINGS), comparator=True,
              match=True, run=_environment)
