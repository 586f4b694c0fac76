"""Sieve at delivery: run a recipient's scripts and turn their results into a Plan.

The scripts (sievescripts.py) run in Pigeonhole's sequence, before -> personal
(or default) -> after: the next script runs only while keep is in effect; a
script that fails to compile or fails at run time, or whose fileinto cannot
store (a missing folder without :create, a name the layout refuses), ends the
sequence and its own actions are dropped: the message is kept in INBOX, the
error goes to the log line and the user's `<script>.log`. A Plan says where the
message goes (Store: a folder or INBOX, with IMAP flags), or that it is
discarded, or rejected (the user's own reason: a bounce, 5.7.1).

redirect, vacation and notify go to Plan.outgoing (one vacation per sequence,
as Pigeonhole drops a later one): sieveroute.py sends them through
outgoing.py, after the commit point, or, for a Plan whose only destinations
are redirects, before it (a redirect that cannot be sent then keeps the
message in INBOX: never lose mail). Header edits (editheader): each Store carries
the addheader/deleteheader Actions that came before its keep/fileinto (the
implicit keep: all of them), which sieveroute.py applies to that copy
(headeredit.py); in a sequence the next script sees the earlier ones' edits and
its copies have them too (Pigeonhole runs a sequence on one message); a script
that fails stores the message unedited.

Never: write mail (deliver.py executes the Plan through the commit point);
let a script's error bounce or defer the message; import vdeliver.sieve for a
recipient without scripts. Raises only what the message's own file raises
(an OSError reading it back): the caller defers.
"""
from vdeliver import folders, sievescripts
from vdeliver.errors import one_line

SYSTEM_FLAGS = {"\\seen": "S", "\\answered": "R", "\\flagged": "F", "\\deleted": "T",
                "\\draft": "D"}
ATOM_SPECIALS = frozenset('(){ %*"\\]')
_compiled = {}      # the LMTP daemon's compile cache: (kind, path, identity, exts) -> Script
CACHE_ENTRIES = 2000


EDITS = ("addheader", "deleteheader")


class Store:
    """folder: None for the keep's target (INBOX, or the +extension folder that
    extension_folder chose), "" for the INBOX itself (fileinto "INBOX"), else the
    folder's Maildir++ directory (`.Work.Urgent`, folders.sieve_folder_name);
    flags: IMAP flags; edits: the editheader Actions this copy gets, in order."""
    __slots__ = ("folder", "flags", "create", "edits")

    def __init__(self, folder, flags=(), create=False, edits=()):
        self.folder, self.flags, self.create = folder, tuple(flags), create
        self.edits = tuple(edits)

    def __repr__(self):
        return f"Store({self.folder!r}, {self.flags!r}, create={self.create}, edits={len(self.edits)})"


class Plan:
    __slots__ = ("stores", "reject", "notes", "scripts", "user_log", "results", "outgoing")

    def __init__(self):
        self.stores = []       # [] with reject None and no outgoing redirect: discarded
        self.outgoing = []     # redirect, vacation and notify Actions, in order
        self.reject = None     # the user's reason: the message bounces
        self.notes = []        # for the delivery's log line
        self.scripts = []      # the scripts that ran, for the log and -n
        self.user_log = []     # (script, [lines]) for the user's <script>.log
        self.results = []      # (sieve Result, edits of the earlier scripts) carried out

    def keep(self, flags=(), edits=()):
        self.stores = [store for store in self.stores if store.folder is not None]
        self.stores.append(Store(None, flags, edits=edits))

    def edits_for(self, action):
        """The editheader Actions in effect for `action` (a keep, fileinto or redirect of
        one of the results): the message it stores or sends is the message as they
        left it. () for an action of no result here."""
        for result, carried in self.results:
            if any(other is action for other in result.actions):
                return carried + edits_before(result, action)
        return ()


_of_config = [None, None]  # the last config and what of_config() read from it


def of_config(config):
    """What plan() reads from vdeliver.cf, once per configuration (the daemon delivers
    many messages with one Config, which is never changed once loaded): extensions,
    limits, settings, separator, folder encoding, environment, sieve_cache_directory."""
    last, values = _of_config
    if last is config:
        return values
    values = (extensions_of(config), limits_of(config), settings_of(config),
              config.get("sieve_mailbox_separator").strip() or ".",
              config.get_choice("folder_name_encoding", ("utf7", "utf8")), environment_of(config),
              config.get("sieve_cache_directory").strip())  # sievecache.py; "": none
    _of_config[:] = config, values
    return values


def settings_of(config):
    """What the interpreter reads from vdeliver.cf (Pigeonhole's names)."""
    settings = {"recipient_delimiter": config.get("recipient_delimiter") or "+"}
    for name in ("sieve_spamtest_status_header", "sieve_spamtest_status_type",
                 "sieve_spamtest_max_value", "sieve_spamtest_max_header",
                 "sieve_virustest_status_header", "sieve_virustest_status_type",
                 "sieve_virustest_max_value", "sieve_virustest_max_header",
                 "sieve_editheader_max_header_size", "sieve_editheader_protected",
                 "sieve_editheader_forbid_add", "sieve_editheader_forbid_delete"):
        value = config.get(name).strip()
        if value:
            settings[name] = value
    for name in ("sieve_vacation_min_period", "sieve_vacation_default_period",
                 "sieve_vacation_max_period"):
        settings[name] = config.get_time(name)
    return settings


def limits_of(config):
    from vdeliver import sieve
    return sieve.Limits(max_script_size=config.get_size("sieve_max_script_size"),
                        max_actions=config.get_int("sieve_max_actions"),
                        max_redirects=config.get_int("sieve_max_redirects"),
                        max_cpu_time=float(config.get_time("sieve_max_cpu_time")))


def find_scripts(config, home):
    if not config.get_bool("sieve"):
        return []
    return sievescripts.find(config, home, config.get_size("sieve_max_script_size"))


def plan(config, envelope, scripts, home, open_message, folder_exists, cache=False,
         duplicate_check=None, seen=None, folder_name=None,
         load_compiler=None):
    """Run scripts (sievescripts.find()) on the message open_message() returns (a
    binary file); folder_exists(name) -> bool. cache: keep compiled scripts (the
    daemon). duplicate_check: the duplicate test's callback (outgoing.Outgoing);
    seen(message): called with the sieve.Message the scripts read.
    folder_name(sieve name) -> "INBOX", the folder's name in the layout, or None
    (refused); default: Maildir++ (folders.sieve_folder_name). load_compiler():
    called before a script is compiled (the pipe command loads the lexer, parser
    and validator then, which a cached script never needs)."""
    from vdeliver import sieve
    from vdeliver.errors import Interrupted, TimeLimitExceeded
    sieve.let_through(TimeLimitExceeded, Interrupted)  # they end the delivery, compiling or running
    result_plan = Plan()
    extensions, limits, settings, separator, encoding, environment, directory = of_config(config)
    settings = dict(settings)

    if folder_name is None:
        courier = folders.courier_namespace(config)

        def folder_name(name):
            return folders.sieve_folder_name(name, separator, encoding, courier)

    def mailbox_exists(name):
        directory = folder_name(name)
        return directory is not None and (directory == "INBOX" or folder_exists(directory))
    settings["mailbox_exists"] = mailbox_exists
    if duplicate_check is not None:
        settings["duplicate_check"] = duplicate_check
    loader = sievescripts.include_loader(config, home, limits.max_script_size)
    # The file stays open while the scripts run: body, mime and size tests read it then.
    fh = open_message()
    try:
        message = sieve.Message.from_file(fh)
        if seen is not None:
            seen(message)
        sieve_envelope = sieve.Envelope(sender=envelope.sender, recipient=envelope.recipient,
                                        original_recipient=envelope.original_recipient
                                        or envelope.recipient, auth="")
        keep_flags, keep_edits, carried = (), (), ()
        for script in scripts:
            result_plan.scripts.append(script.shown)
            if script.problem:
                fail(result_plan, script, f"{script.shown}: {script.problem}")
                return finish(result_plan, True, ())
            compiled = compile_script(script, extensions, loader, limits, cache, directory,
                                      load_compiler)
            if isinstance(compiled, sieve.CompileError):
                fail(result_plan, script, *compiled.errors)
                return finish(result_plan, True, ())
            result = sieve.run(compiled, message, sieve_envelope, environment=dict(environment),
                               limits=limits, settings=settings)
            if result.errors:
                fail(result_plan, script, *result.errors)
                return finish(result_plan, True, ())
            stores, keep, problem = stores_of(result, folder_exists, separator, encoding, config,
                                              folder_name)
            if problem:
                fail(result_plan, script, problem)
                return finish(result_plan, True, ())
            result_plan.results.append((result, carried))
            for store in stores:
                store.edits = carried + store.edits
            note_outgoing(result_plan, result)
            reject = next((a for a in result.actions if a.kind in ("reject", "ereject")), None)
            if reject is not None and not envelope.sender:
                # As Pigeonhole: nobody to tell, so no bounce; the reject still cancelled
                # the keep, and the message is discarded.
                result_plan.notes.append("sieve: not sending reject message to <>")
            elif reject is not None:
                result_plan.reject = reject.reason
            result_plan.stores = [s for s in result_plan.stores if s.folder is not None] + stores
            keep_flags, keep_edits = keep, carried + keep_edits_of(result)
            if keep is None:
                break  # keep is no longer in effect: the sequence ends here
            edits = tuple(a for a in result.actions if a.kind in EDITS)
            if edits:
                # One message for the whole sequence, as Pigeonhole's multiscript has one
                # result: the next script sees the edits, its copies have them too.
                from vdeliver import headeredit
                message = message.with_header(headeredit.apply(message.header_block, edits))
                carried += edits
        return finish(result_plan, keep_flags is not None, keep_flags or (), keep_edits)

    finally:
        fh.close()

def finish(result_plan, keep, keep_flags, keep_edits=()):
    if keep and result_plan.reject is None:
        result_plan.keep(keep_flags, keep_edits)
    if result_plan.reject is not None and result_plan.stores:
        result_plan.notes.append("sieve: reject ignored: an earlier script stored the message")
        result_plan.reject = None
    seen, stores = {}, []
    for store in result_plan.stores:  # one copy per folder, the last flags win
        key = None if store.folder is None else store.folder
        if key in seen:
            stores[seen[key]] = store
        else:
            seen[key] = len(stores)
            stores.append(store)
    result_plan.stores = stores
    if not stores and result_plan.reject is None and not any(
            action.kind == "redirect" for action in result_plan.outgoing):
        result_plan.notes.append("sieve: discarded")
    return result_plan


def fail(result_plan, script, *errors):
    """A script that cannot run to the end: its actions are dropped; keep in INBOX."""
    lines = [str(error) for error in errors][:20]
    # The whole log line is cut at 2000 characters: keep "kept in INBOX" inside it.
    first = one_line(lines[0], 300) if lines else "error"
    result_plan.notes.append(f"sieve: {script.shown} failed ({first}): kept in INBOX")
    result_plan.user_log.append((script, [line if ": error:" in line or line.startswith("error:")
                                          else f"error: {line}" for line in lines]
                                 + ["error: script failed: message kept in INBOX"]))


def stores_of(result, folder_exists, separator, encoding, config, folder_name=None):
    """(stores, keep flags or None, problem) of one successful run. keep flags: the
    flags of the keep still in effect (explicit or implicit), None if it is not."""
    stores, keep = [], None
    create_all = config.get("extension_folder").strip().lower() == "create"
    for action in result.actions:
        if action.kind == "keep":
            keep = store_flags(action.flags)
        elif action.kind == "fileinto":
            name = (folder_name(action.mailbox) if folder_name is not None
                    else folders.sieve_folder_name(action.mailbox, separator, encoding,
                                                   folders.courier_namespace(config)))
            if name is None:
                return [], None, f"fileinto {action.mailbox!r}: invalid mailbox name"
            if name == "INBOX":  # the INBOX itself, even beside an +extension folder
                stores.append(Store("", store_flags(action.flags), edits=edits_before(result, action)))
                continue
            create = action.create or create_all
            if not create and not folder_exists(name):
                return [], None, f"fileinto {action.mailbox!r}: mailbox does not exist"
            stores.append(Store(name, store_flags(action.flags), create,
                                edits_before(result, action)))
    if result.implicit_keep and keep is None:
        keep = store_flags(result.keep_flags)
    return stores, keep, ""


def edits_before(result, action):
    """The editheader Actions of `result` that came before `action` (its
    params["edits"], sieve/result.py): the edits its copy of the message gets."""
    count = action.params.get("edits", 0)
    return tuple(a for a in result.actions if a.kind in EDITS)[:count]


def keep_edits_of(result):
    """The edits of the keep still in effect: an explicit keep's own (the last one);
    the implicit keep, or a keep instead of a redirect, gets them all."""
    keep = None
    for action in result.actions:
        if action.kind == "keep":
            keep = action
    if keep is not None:
        return edits_before(result, keep)
    return tuple(a for a in result.actions if a.kind in EDITS)


def note_outgoing(result_plan, result):
    """The run's outgoing actions into the Plan: one vacation per sequence, and a
    redirect to an address an earlier script redirected to already is one redirect."""
    for action in result.actions:
        if action.kind == "redirect":
            if not any(earlier.kind == "redirect" and earlier.address.lower() == action.address.lower()
                       for earlier in result_plan.outgoing):
                result_plan.outgoing.append(action)
        elif action.kind == "vacation":
            if any(earlier.kind == "vacation" for earlier in result_plan.outgoing):
                result_plan.notes.append("sieve: a second vacation in the sequence ignored")
            else:
                result_plan.outgoing.append(action)
        elif action.kind == "notify":
            result_plan.outgoing.append(action)


def store_flags(flags):
    """The flags a Maildir store keeps, as Dovecot does: system flags it knows and
    keywords that are IMAP atoms, each once (case-insensitively)."""
    kept, seen = [], set()
    for flag in flags or ():
        lowered = flag.lower()
        if lowered in seen:
            continue
        if flag.startswith("\\"):
            if lowered not in SYSTEM_FLAGS:
                continue
        elif not flag or any(not 0x20 < ord(ch) < 0x7f or ch in ATOM_SPECIALS for ch in flag):
            continue
        seen.add(lowered)
        kept.append(flag)
    return tuple(kept)


def extensions_of(config):
    from vdeliver import sieve
    value = config.get("sieve_extensions").strip()
    return None if not value else sieve.parse_extensions_setting(value)


def environment_of(config):
    import posix
    from vdeliver import __version__
    host = posix.uname().nodename
    return {"domain": host.partition(".")[2] or host, "host": host, "location": "MDA",
            "phase": "during", "name": "vdeliver", "version": __version__}


class IncludesTooLarge(Exception):
    """The included scripts of one script add up to more than sieve_max_script_size."""


def compile_script(script, extensions, loader, limits, cache, directory="", load_compiler=None):
    """A compiled script, or the CompileError (cached too: a broken script is not
    recompiled for every message the daemon delivers): from the daemon's memory,
    else from sieve_cache_directory (sievecache.py), else compiled (and stored in
    both)."""
    from vdeliver import sieve
    key = None
    if cache and script.identity is not None:
        key = (script.kind, script.shown, script.identity,
               None if extensions is None else frozenset(extensions))
        if key in _compiled:
            return _compiled[key]
    on_disk = directory and script.identity is not None
    if on_disk:
        from vdeliver import sievecache
        enabled = sieve.default_extensions() if extensions is None else frozenset(
            e for e in extensions if e in sieve.registry.CAPABILITIES)
        compiled = sievecache.get(directory, script, extensions, limits, enabled)
        if compiled is not None:
            if key is not None:
                remember(key, compiled)
            return compiled
    if load_compiler is not None:
        load_compiler()
    included = []
    budget = [limits.max_script_size]  # bytes all included scripts may add up to

    def recording_loader(location, name):
        included.append((location, name))
        source = loader(location, name)
        if source is not None:
            budget[0] -= len(source)
            if budget[0] < 0:
                raise IncludesTooLarge(name)
        return source
    try:
        compiled = sieve.compile(script.source, name=script.name, extensions=extensions,
                                 loader=recording_loader, limits=limits)
    except sieve.CompileError as error:
        compiled = error
    except IncludesTooLarge as error:
        # Compiling is not bounded by sieve_max_cpu_time (only the run is): 255 includes of
        # 1M each would hold a delivery for minutes. All included scripts together get the
        # budget of one script; past it the script does not compile (keep).
        compiled = sieve.CompileError([f"{script.name}: error: include {error}: the included"
                                       " scripts exceed sieve_max_script_size in all"])
    if not included:  # an included file may change unseen: no cache
        if key is not None:
            remember(key, compiled)
        if on_disk:
            sievecache.put(directory, script, extensions, limits, compiled)
    return compiled


def remember(key, compiled):
    if len(_compiled) >= CACHE_ENTRIES:
        _compiled.clear()
    _compiled[key] = compiled
