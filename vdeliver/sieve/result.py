"""The result of a Sieve run: the actions, in order, with Pigeonhole's rules for
duplicates, conflicts and limits (sieve-result.c, sieve-actions.c, cmd-redirect.c).

- fileinto/keep to the same mailbox twice is one store (with the last one's flags);
- redirect to the same address twice is one redirect (a duplicate changes nothing,
  not even the implicit keep: `redirect :copy x; redirect x` keeps);
- discard only cancels the implicit keep;
- reject/ereject conflicts with any action that delivers (keep, fileinto,
  redirect) and with vacation; a second reject is an error;
- one vacation per run; at most max_actions actions, max_redirects redirects;
- keep, fileinto and redirect record in params["edits"] how many editheader
  edits came before them (the message they store or send is the message as
  those edits left it, Pigeonhole's snapshot); a repeated keep/fileinto keeps
  the first one's count (and so its message), though it takes the later flags.

A violated rule raises SieveRuntimeError (the interpreter turns it into a
Result error, and the run fails to the implicit keep).
Never: execute an action (no mail is written or sent here).
"""
from .value import Value


class SieveRuntimeError(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line = line
        self.message = message
        self.script = None           # set by include when raised in an included script


_set = object.__setattr__


class Action(Value):
    """One action of a run: kind (keep, fileinto, redirect, discard, reject, ...) and
    what it needs; params: an extension's other arguments (vacation, notify)."""
    __slots__ = ("kind", "mailbox", "flags", "create", "copy", "reason", "address", "line", "params")

    def __init__(self, kind, mailbox="", flags=(), create=False, copy=False, reason="", address="",
                 line=0, params=None):
        _set(self, "kind", kind)
        _set(self, "mailbox", mailbox)
        _set(self, "flags", flags)
        _set(self, "create", create)
        _set(self, "copy", copy)
        _set(self, "reason", reason)
        _set(self, "address", address)
        _set(self, "line", line)
        _set(self, "params", {} if params is None else params)


class Result(Value):
    """What a run produced: the actions in order, whether the implicit keep holds, the
    run-time errors (any: the run failed), the flags of the implicit keep, warnings."""
    __slots__ = ("actions", "implicit_keep", "errors", "keep_flags", "warnings")

    def __init__(self, actions, implicit_keep, errors, keep_flags=(), warnings=None):
        _set(self, "actions", actions)
        _set(self, "implicit_keep", implicit_keep)
        _set(self, "errors", errors)
        _set(self, "keep_flags", keep_flags)
        _set(self, "warnings", [] if warnings is None else warnings)

    @property
    def failed(self):
        return bool(self.errors)


_EDITS = frozenset({"addheader", "deleteheader"})   # message edits, not result actions
_DELIVERS = frozenset({"keep", "fileinto", "redirect"})
_SNAPSHOT = _DELIVERS          # the actions that take the message along (sieve-result.c)
_CANCELS_KEEP = frozenset({"keep", "fileinto", "redirect", "discard", "reject", "ereject"})


def merge_flags(a, b):
    seen = {f.lower() for f in a}
    return tuple(a) + tuple(f for f in b if f.lower() not in seen)


class ResultBuilder:
    def __init__(self, limits):
        self.limits = limits
        self.actions = []
        self.implicit_keep = True
        self.redirects = 0

    def add(self, action):
        kind = action.kind
        for i, other in enumerate(self.actions):
            dup = self._duplicate(action, other, i)
            if dup:
                return
            self._conflict(action, other)
            self._conflict(other, action)
        if kind == "redirect":
            if self.redirects >= self.limits.max_redirects:
                raise SieveRuntimeError(action.line, "number of redirect actions exceeds policy limit "
                                                     f"({self.redirects + 1} > {self.limits.max_redirects})")
            self.redirects += 1
        if kind in _SNAPSHOT:
            action = action.replace(params={**action.params, "edits": self._edits()})
        counted = sum(1 for a in self.actions if a.kind not in _EDITS)
        if kind not in _EDITS and counted >= self.limits.max_actions:
            raise SieveRuntimeError(action.line, "total number of actions exceeds policy limit "
                                                 f"({counted + 1} > {self.limits.max_actions})")
        self.actions.append(action)
        if kind in _CANCELS_KEEP and not action.copy:
            self.implicit_keep = False

    def _edits(self):
        return sum(1 for a in self.actions if a.kind in _EDITS)

    def _duplicate(self, action, other, i):
        """True when `action` merges into `other` (already in the result)."""
        a, o = action.kind, other.kind
        if a in ("keep", "fileinto") and o in ("keep", "fileinto"):
            if _mailbox_key(action.mailbox) != _mailbox_key(other.mailbox):
                return False
            # Pigeonhole keeps one store, with the flags of the last one; a duplicate
            # leaves the implicit keep as the first one left it
            self.actions[i] = other.replace(flags=action.flags, create=other.create or action.create)
            return True
        if a == o == "redirect" and _address_key(action.address) == _address_key(other.address):
            return True
        if a == o == "discard":
            return True
        if a in ("reject", "ereject") and o in ("reject", "ereject"):
            raise SieveRuntimeError(action.line, "duplicate reject/ereject action not allowed "
                                                 f"(previously triggered one was here: line {other.line})")
        if a == o == "vacation":
            raise SieveRuntimeError(action.line, "duplicate vacation action not allowed "
                                                 f"(previously triggered one was here: line {other.line})")
        if a == o == "notify":
            return action.params.get("method") == other.params.get("method")
        return False

    def _conflict(self, act, other):
        if act.kind not in ("reject", "ereject"):
            return
        if other.kind in _DELIVERS:
            raise SieveRuntimeError(act.line, f"{act.kind} action conflicts with other action: the "
                                              f"{other.kind} action (line {other.line}) tries to deliver "
                                              "the message")
        if other.kind == "vacation":
            raise SieveRuntimeError(act.line, f"{act.kind} action conflicts with other action: the "
                                              f"vacation action (line {other.line}) also sends a response "
                                              "to the sender")


def _address_key(addr):
    # the local part is case-sensitive (RFC 5321 §2.4), the domain is not
    local, _, domain = addr.rpartition("@")
    return local, domain.lower()


def _mailbox_key(name):
    # RFC 3501: INBOX is case-insensitive; other names are compared exactly.
    return "INBOX" if name.upper() == "INBOX" else name
