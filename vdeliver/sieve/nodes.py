"""The validated form of a script, as the interpreter walks it: Node and IfChain.

The validator makes them from the AST; serial.py makes them from a compiled
script cached on disk. Their own module so that a cached script runs without
loading the lexer, parser or validator.

Never: hold anything but what the validator computed (no per-run state).
"""


class Node:
    """A validated command or test: its spec (what runs it), tags by key, positional
    argument values, subtests, block, extension data and MatchSpec; fast: what a
    test's run function derived from them on its first run (None: not yet), the
    same for every run (core.py's header test)."""
    __slots__ = ("name", "line", "spec", "tags", "args", "tests", "block", "data", "match", "fast")

    def __init__(self, name, line, spec):
        self.name = name
        self.line = line
        self.spec = spec
        self.tags = {}
        self.args = []
        self.tests = []
        self.block = None
        self.data = {}
        self.match = None
        self.fast = None

    def __repr__(self):
        return f"Node({self.name!r}, line {self.line}, tags={self.tags}, args={self.args})"


class IfChain:
    """if/elsif/else as one node: branches [(test Node or None for else, [Node])];
    settled: a branch is constantly true, so the ones after it are dead."""
    __slots__ = ("line", "branches", "settled")

    def __init__(self, line, branches, settled=False):
        self.line, self.branches, self.settled = line, branches, settled
