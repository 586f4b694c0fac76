"""Sieve interpreter: walks validated nodes against a message and an envelope and
fills a ResultBuilder.

The whole run is bounded by limits.max_cpu_time (thread CPU time, checked at every
command and test), by the action limits in result.py and by the caps of the
extensions. Control flow: Stop ends the run, Return ends an included script.

Never: raise out of run() (every error becomes Result.errors and the run falls
back to the implicit keep), except the caller's interrupts (registry.INTERRUPTS,
sieve.let_through(): its time limit and signals, raised by its signal handlers at
any point of the run); write or send mail, or open a file.
"""
import time

from . import registry
from . import result as result_mod
from .match import MatchError
from .result import SieveRuntimeError
from .nodes import IfChain


class Stop(Exception):
    """stop: end the whole run (RFC 5228 §3.3)."""


class Return(Exception):
    """return: end the current included script (RFC 6609 §3.3)."""


DEFAULT_ENVIRONMENT = {
    "location": "MDA", "phase": "during", "name": "vdeliver", "version": "",
    "domain": "", "host": "", "remote-host": "", "remote-ip": "",
}


TICKS = 8


class Run:
    """The state of one run: what the tests read and what the commands change."""

    def __init__(self, script, message, envelope, environment, limits, settings):
        self.script = script
        self.message = message
        self.envelope = envelope
        self.environment = dict(DEFAULT_ENVIRONMENT, **(environment or {}))
        self.limits = limits
        self.settings = settings or {}
        self.result = result_mod.ResultBuilder(limits)
        self.variables = {}          # the current script's local scope
        self.globals = {}
        self.match_values = []
        self.flags = []              # imap4flags internal variable
        self.headers = None          # editheader's edited header list, None = untouched
        self.folded = {}             # (field, comparator) -> folded values (core's header test)
        self.ext = {}                # per-run state of extensions
        self.warnings = []
        self.deadline = time.thread_time() + limits.max_cpu_time
        self.ticks = 0
        self.script_name = script.name

    # -- the clock
    def tick(self, line):
        # The first command, then every TICKS-th: reading the thread's CPU clock is a
        # system call (no vDSO for it), 50 of them a tenth of a 50-rule run; what runs
        # between two readings is bounded (long matches read it themselves: check_time).
        self.ticks += 1
        if self.ticks % TICKS == 1 and time.thread_time() > self.deadline:
            raise SieveRuntimeError(line, "execution exceeded CPU time limit")

    def check_time(self):
        """The clock inside a long match (raises MatchError, which gets the test's line)."""
        if time.thread_time() > self.deadline:
            raise MatchError("execution exceeded CPU time limit")

    # -- strings
    def expand(self, s):
        return s if type(s) is str else s.render(self)

    def expand_all(self, values):
        return [v if type(v) is str else v.render(self) for v in values]

    def set_match_values(self, values):
        if self.script.uses_variables:
            self.match_values = values[:self.limits.max_match_values]

    # -- the message
    def header(self, name):
        if self.headers is None:
            return self.message.header(name)
        from .message import decode_value
        key = name.lower()
        return [decode_value(v) for n, v in self.headers if n.lower() == key]

    def raw_header(self, name):
        """Unfolded but not RFC 2047-decoded values (the address test parses these)."""
        from .message import unfold
        key = name.lower()
        return [unfold(v) for n, v in self.header_fields() if n.lower() == key]

    def header_fields(self):
        return self.message.headers if self.headers is None else self.headers

    def add(self, action):
        self.result.add(action)

    def warn(self, line, message):
        self.warnings.append(f"{self.script_name}: line {line}: warning: {message}.")


def execute(run, nodes):
    for node in nodes:
        run.ticks += 1          # run.tick(node.line), inline: once per command
        if run.ticks % TICKS == 1 and time.thread_time() > run.deadline:
            raise SieveRuntimeError(node.line, "execution exceeded CPU time limit")
        if type(node) is IfChain:
            for test, block in node.branches:
                if test is None:
                    execute(run, block)
                    break
                try:
                    hit = test.spec.run(run, test)
                except MatchError as e:
                    raise SieveRuntimeError(test.line, str(e)) from None
                if hit:
                    execute(run, block)
                    break
        else:
            try:
                node.spec.run(run, node)
            except MatchError as e:
                raise SieveRuntimeError(node.line, str(e)) from None


def evaluate(run, node):
    return node.spec.run(run, node)


def run_script(script, message, envelope, environment, limits, settings):
    run = Run(script, message, envelope, environment, limits, settings)
    errors = []
    try:
        try:
            execute(run, script.nodes)
        except (Stop, Return):
            pass
    except SieveRuntimeError as e:
        errors.append(f"{e.script or run.script_name}: line {e.line}: error: {e.message}.")
    except RecursionError:
        errors.append(f"{run.script_name}: error: execution nested too deeply.")
    except MemoryError:
        errors.append(f"{run.script_name}: error: out of memory.")
    except Exception as e:       # an interpreter bug must still end in the implicit keep
        if isinstance(e, registry.INTERRUPTS):
            raise                # the caller's time limit or signal: not the script's error
        errors.append(f"{run.script_name}: error: internal error during execution: "
                      f"{type(e).__name__}: {e}.")
    rb = run.result
    return result_mod.Result(actions=list(rb.actions), implicit_keep=True if errors else rb.implicit_keep,
                             errors=errors, keep_flags=() if errors else tuple(run.flags),
                             warnings=run.warnings)
