"""maildir.store()'s route for a recipient with Sieve scripts (deliver.py loads it only
then): the recipient's home, the scripts found there (sievescripts.py), and the Plan
(filtering.py) turned into Targets: INBOX, the +extension folder that extension_folder
chose, Maildir++ folders below the Maildir, with their flags and keywords. A copy
that Sieve's editheader changed is written by maildir.store()'s copy() as a file of
its own in tmp/ (one per distinct header; headeredit.py makes it), linked in the
same commit; Sender.outgoing_message() gives the message as an outgoing action
(redirect) should send it.

The Plan's outgoing mail (outgoing.py) goes out after the commit point
(after_commit(), which deliver.py calls once the message is durable), except for a
Plan whose only destinations are redirects: those are submitted from the route,
before the commit, and if one cannot be sent the message is kept in INBOX instead.

Never: write mail other than through maildir.store()'s copy() (which links the tmp
files into the Targets); open a folder outside the Maildir; defer for a folder every
retry would fail on (such a Plan is kept in INBOX instead); lose a message whose
redirect was not sent; let after_commit() raise; import outgoing.py for a result that
sends nothing.
"""
import posix
import sys

from vdeliver import address, maildir, resolve
from vdeliver.errors import MailboxUnavailable, one_line


def sieve_home(base, mailbox, recipient, config, tables, root_fd=None, shown=""):
    """The recipient's home (`~`): virtual_home_maps, looked up as the mailbox is,
    relative to the base; by default the Maildir itself (root_fd, when it is open)."""
    from vdeliver import sievescripts
    relative = mailbox.path.rstrip("/")
    if not config.get_list("virtual_home_maps"):
        if root_fd is not None:
            return sievescripts.Place(posix.dup(root_fd), shown)
    else:
        relative = home_relative(mailbox, recipient, config, tables) or relative
    return sievescripts.open_home(base, relative)


def home_relative(mailbox, recipient, config, tables):
    """virtual_home_maps' result for the recipient (relative to the base, checked as
    a mailbox result is), or None when the tables have none."""
    folded, delimiter = address.fold(recipient), config.get("recipient_delimiter")
    if tables is None:
        found = resolve.search(resolve.open_maps(config, "virtual_home_maps"), folded, delimiter)
    else:  # the daemon's delivery threads side by side: each table is safe for that
        found = resolve.search(tables.home, folded, delimiter)
    if found is None:
        return None
    return resolve.check_path(found[2].strip().rstrip("/"), found[0].spec, found[1])


class Sender:
    """The Plan's outgoing mail (outgoing.py sends it), for a Maildir's route and an
    mbox's (mboxroute.py): the redirects of a Plan that stores nothing before the
    commit (one not sent: kept in INBOX instead, as Pigeonhole), the rest after it;
    the message as each action should send it (the edits before that action, read
    from the file kept open once tmp/ is gone). outgoing.py is loaded only for a
    Plan that sends mail or asks the duplicate test."""

    def __init__(self, config, envelope, home, notes):
        self.config, self.envelope, self.home, self.notes = config, envelope, home, notes
        self.out = None           # outgoing.Outgoing, made when something needs it
        self.message = None       # the sieve.Message the scripts read
        self.plan = self.open_message = None
        self.pending = []         # outgoing Actions for after the commit
        self.kept = None          # the message file, open for after the commit

    def saw(self, message):
        self.message = message

    def outgoing(self):
        if self.out is None:
            from vdeliver import outgoing
            self.out = outgoing.Outgoing(self.config, self.envelope, self.home, self.message,
                                         self.outgoing_message)
        return self.out

    def duplicate_check(self, handle, key, seconds, last):
        return self.outgoing().duplicate_check(handle, key, seconds, last)

    def before_commit(self, plan, open_message):
        """The Plan's stores, its redirects sent now when they are its only destinations."""
        from vdeliver import filtering
        self.plan, self.open_message, stores = plan, open_message, plan.stores
        self.pending = list(plan.outgoing)
        redirects = [action for action in plan.outgoing if action.kind == "redirect"]
        if redirects and not stores:
            self.pending = [action for action in plan.outgoing if action.kind != "redirect"]
            sent = self.outgoing().redirect_first(redirects)
            self.notes.extend(self.out.notes)
            self.out.notes = []
            if not sent:
                self.notes.append("sieve: redirect not sent: kept in INBOX")
                stores = [filtering.Store(None)]
        if any(action.kind == "redirect" for action in self.pending):
            self.kept = open_message()  # readable after the commit, when tmp/ is gone
        return stores

    def outgoing_message(self, action):
        """The message as an outgoing action of the Plan (a redirect) should leave: with
        the editheader edits that came before that action applied, as Pigeonhole sends
        it. Before the commit it is read from tmp/, after it from the file kept open.
        A binary stream at its start, for the caller to close; only the header block
        is held in memory."""
        opener = self.open_message if self.kept is None else self.reopen_kept
        edits = self.plan.edits_for(action) if self.plan is not None else ()
        if not edits:
            return opener()
        from vdeliver import headeredit
        return headeredit.open_edited(opener, headeredit.apply(
            headeredit.original_header(opener), edits))

    def reopen_kept(self):
        fh = open(posix.dup(self.kept.fileno()), "rb")
        fh.seek(0)
        return fh

    def after_commit(self):
        """Once the message is durable: notes only, never raises."""
        try:
            if self.pending or (self.out is not None and self.out.duplicates):
                self.notes.extend(self.outgoing().after_commit(self.pending))
        except Exception as error:  # noqa: BLE001 - delivered already: only report
            self.notes.append(f"sieve: outgoing mail failed: {one_line(str(error), 300)}")
        finally:
            self.pending = []

    def drop(self):
        """The Plan's actions are dropped (kept in INBOX instead): so is its mail."""
        self.pending, self.out = [], None

    def close(self):
        if self.kept is not None:
            self.kept.close()
            self.kept = None
        if self.out is not None:
            self.out.close()


class SieveRoute:
    """maildir.store()'s route for a recipient with Sieve scripts: run them on the
    message in tmp/ and turn the Plan into Targets (INBOX: the mailbox, or the
    +extension folder extension_folder chose; folders below the Maildir)."""

    def __init__(self, scripts, home, root_fd, shown, box_fd, box_shown, relative, box_relative,
                 envelope, config, notes, cache):
        self.scripts, self.home = scripts, home
        self.root_fd, self.shown, self.box_fd, self.box_shown = root_fd, shown, box_fd, box_shown
        self.relative, self.box_relative = relative, box_relative
        self.envelope, self.config, self.notes, self.cache = envelope, config, notes, cache
        self.shown_targets = []
        self.opened = []
        self.plan = None
        self.open_message = self.copy = None
        self.header = None        # the message's own header block, once an edit needs it
        self.contents = {}        # edited header block -> maildir.Content
        self.sender = Sender(config, envelope, home, notes)  # the Plan's outgoing mail

    def __call__(self, open_message, size, copy=None):
        pipe = not self.cache and "vdeliver.filtering" not in sys.modules
        if pipe:
            # The pipe command (one thread, a new process per message): the Sieve modules
            # from their .pyc files, as the pipe modules were (vdeliver/__init__.py).
            import vdeliver
            vdeliver.load_modules(vdeliver.SIEVE_MODULES if "vdeliver.folders" in sys.modules
                                  else ("folders",) + vdeliver.SIEVE_MODULES)
            from vdeliver.sieve import registry
            registry.FAST_LOAD = load_extension
        from vdeliver import filtering, folders, sievescripts
        from vdeliver.errors import SieveReject
        if pipe:
            # Every object so far lives as long as the process: out of the cyclic
            # collector's sight, which would walk them all again during the compile
            # (a generation-1 collection: 0.4 ms here).
            import gc
            gc.freeze()
        plan = filtering.plan(self.config, self.envelope, self.scripts, self.home, open_message,
                              self.folder_exists, self.cache, self.sender.duplicate_check,
                              self.sender.saw, load_compiler=load_compiler if pipe else None)
        self.plan, self.open_message, self.copy = plan, open_message, copy
        base = self.shown[:-len(self.relative)] if self.shown.endswith(self.relative) else ""
        self.notes.append("sieve: ran " + ", ".join(
            path[len(base):] if base and path.startswith(base) else path for path in plan.scripts))
        self.notes.extend(plan.notes)
        for script, lines in plan.user_log:
            sievescripts.write_user_log(script, lines)
        if plan.reject is not None:
            raise SieveReject(plan.reject)
        stores = self.sender.before_commit(plan, open_message)
        targets = []
        for store in self.one_per_directory(stores):
            try:
                targets.append(self.target(store))
            except folders.UNUSABLE as error:
                return self.keep_instead(store, error)
        return targets

    def after_commit(self):
        """The Plan's outgoing mail, once the message is durable: notes only, never raises."""
        self.sender.after_commit()

    def one_per_directory(self, stores):
        """keep stores into the +extension folder when extension_folder chose one, and an
        explicit fileinto "INBOX" (folder "") into the INBOX itself: stores that name the
        same directory are one target (one copy, the last flags win)."""
        from vdeliver import filtering
        box_folder = None if self.box_relative == self.relative else \
            self.box_relative[len(self.relative) + 1:]
        seen, out = {}, []
        for store in stores:
            if store.folder == box_folder or (store.folder == "" and box_folder is None):
                store = filtering.Store(None, store.flags, edits=store.edits)
            if store.folder in seen:
                out[seen[store.folder]] = store
            else:
                seen[store.folder] = len(out)
                out.append(store)
        return out

    def keep_instead(self, store, error):
        """A folder of the Plan cannot be opened or made (a symlink, a name too long for
        the filesystem): as Pigeonhole, the script's actions are dropped and the message
        is kept in INBOX, never deferred for something every retry would repeat."""
        from vdeliver import filtering, sievescripts
        self.close()
        self.sender.drop()  # the script's actions are dropped: its outgoing mail too
        self.shown_targets = []
        detail = one_line(getattr(error, "detail", "") or str(error), 300)
        self.notes.append(f"sieve: cannot store into {one_line(store.folder, 100)} ({detail}):"
                          " kept in INBOX")
        for script in self.scripts:
            if script.kind == "personal":
                sievescripts.write_user_log(script, [
                    f"error: fileinto: cannot store into {one_line(store.folder, 300)}",
                    "error: script failed: message kept in INBOX"])
        return [self.target(filtering.Store(None))]

    def folder_exists(self, directory):
        try:
            st = posix.stat(directory, dir_fd=self.root_fd, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_mode & 0o170000) == 0o040000

    def target(self, store):
        from vdeliver import folders
        if store.folder is None:
            fd, shown, relative = self.box_fd, self.box_shown, self.box_relative
        elif store.folder == "":  # fileinto "INBOX" beside an +extension folder
            fd, shown, relative = self.root_fd, self.shown, self.relative
        else:
            try:
                fd = folders.open_folder(self.root_fd, self.shown, store.folder, store.create)
            except FileNotFoundError:
                raise MailboxUnavailable(f"folder {self.shown}/{store.folder} vanished") from None
            self.opened.append(fd)
            shown, relative = f"{self.shown}/{store.folder}", f"{self.relative}/{store.folder}"
        system = "".join(sorted(filtering_letters(store.flags)))
        words = [flag for flag in store.flags if not flag.startswith("\\")]
        letters = ""
        if words:  # IMAP keywords: only then the keywords module
            from vdeliver import keywords
            letters, dropped = keywords.letters(fd, words)
            if dropped:
                self.notes.append(f"keywords not stored in {relative} (26 in use): {', '.join(dropped)}")
        self.shown_targets.append(relative)
        info = f":2,{system}{letters}" if system or letters else ""
        return maildir.Target(fd, shown, info, self.content(store.edits))

    def edited_header(self, edits):
        """The header block as `edits` leave it; None when that is the message's own."""
        if not edits:
            return None
        from vdeliver import headeredit  # only for edits: it loads re and base64
        if self.header is None:
            self.header = headeredit.original_header(self.open_message)
        header = headeredit.apply(self.header, edits)
        return None if header == self.header else header

    def content(self, edits):
        """The maildir.Content of the copy `edits` make (one tmp file per distinct
        header), None for the message as written."""
        header = self.edited_header(edits)
        if header is None:
            return None
        from vdeliver import headeredit
        if header not in self.contents:
            self.contents[header] = self.copy(headeredit.writer(self.open_message, header))
        return self.contents[header]

    def close(self):
        for fd in self.opened:
            maildir.close_quietly(fd)
        self.opened = []
        self.sender.close()

    def files(self, stored):
        return [f"{relative}/{name}" for relative, name in zip(self.shown_targets, stored)]


def load_compiler():
    """The pipe command compiles a script (not in the compile cache): the lexer, parser
    and validator from their .pyc files, as the other Sieve modules."""
    if "vdeliver.sieve.validator" not in sys.modules:
        import vdeliver
        vdeliver.load_modules(vdeliver.SIEVE_COMPILER_MODULES)


def load_extension(module):
    """registry.load() in the pipe command: an extension module from its .pyc file."""
    import vdeliver
    vdeliver.load_modules((f"sieve/extensions/{module}",))


def filtering_letters(flags):
    from vdeliver.filtering import SYSTEM_FLAGS
    return [SYSTEM_FLAGS[flag.lower()] for flag in flags if flag.lower() in SYSTEM_FLAGS]


def sieve_route(home, root_fd, shown, relative, box_fd, box_shown, box_relative, envelope, config,
                notes, cache):
    """A SieveRoute when the recipient has a script to run, else None (nothing of
    vdeliver.sieve is imported then)."""
    from vdeliver import sievescripts
    if home.problem:
        notes.append(home.problem)
    scripts = sievescripts.find(config, home, config.get_size("sieve_max_script_size"))
    if not scripts:
        return None
    return SieveRoute(scripts, home, root_fd, shown, box_fd, box_shown, relative, box_relative,
                      envelope, config, notes, cache)
