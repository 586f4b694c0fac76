"""RFC 5183 environment test: items from the caller's environment dict
(domain, host, location, name, phase, remote-host, remote-ip, version).

Never: look anything up (DNS, hostname) itself; an unknown item never matches.
"""
from .. import match, registry
from ..registry import STRING, STRINGS



def _environment(run, node):
    value = run.environment.get(run.expand(node.args[0]).lower())
    values = [] if value is None or value == "" else [str(value)]   # empty: not known here
    return match.match(run, node.match, values, node.args[1])


registry.test("environment", extension="environment", positional=(STRING, STRINGS), comparator=True,
              match=True, run=_environment)
