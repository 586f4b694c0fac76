"""`vdeliver check`, Sieve: does every script that would run compile?

The admin's scripts (sieve_before, sieve_after, sieve_default: files, or the
`*.sieve` files of a directory) always; with `-u ADDRESS` or `--all-users` the
personal scripts too, found as a delivery finds them (the mailbox from the
tables, the home from virtual_home_maps, sieve_script below it; sievescripts.py)
and compiled as a delivery compiles them (filtering.compile_script with the
extensions and limits vdeliver.cf sets, includes through the same loader), so a
finding here is a script that a delivery would keep the message for.

--all-users lists the keys of the virtual_mailbox_maps tables whose type can be
listed (texthash: and inline: read here; hash:, btree:, lmdb:, dbm: with
Postfix's `postmap -s`; the others, cdb: (postmap has no sequence operation for
it), SQL and LDAP, are named in a warning and skipped); `@domain` catch-alls are
not users.

Never: run as root (check.py drops to the delivery user first: the scripts and
what they include are users' files, their symlinks hostile); write anything (no
.svbin, no user log); stop at the first broken script.
"""
from vdeliver import filtering, resolve, sievescripts
from vdeliver.errors import DeliveryError

LISTABLE = ("texthash", "inline")
INDEXED = ("hash", "btree", "lmdb", "dbm")  # listed by Postfix's postmap -s (cdb: cannot)
ADMIN_KINDS = ("sieve_before", "sieve_default", "sieve_after")


def check(config, addresses, all_users, findings, postfix_directory=None):
    if not config.get_bool("sieve"):
        return
    max_size = config.get_size("sieve_max_script_size")
    nowhere = sievescripts.Place(None, "")
    for parameter in ADMIN_KINDS:
        for path in config.get_list(parameter):
            for script in sievescripts.admin_scripts(parameter[6:], path, nowhere, max_size):
                report(compile_one(config, script, nowhere, max_size), script,
                       f"{parameter}: ", findings)
    if all_users:
        addresses = list(addresses) + [key for key in list_users(config, findings,
                                                                 postfix_directory)
                                       if key not in addresses]
    for recipient in addresses:
        check_user(config, recipient, max_size, findings)


def check_user(config, recipient, max_size, findings):
    try:
        mailbox = resolve.resolve(recipient, config)
    except DeliveryError as error:
        findings.error(f"{recipient}: {error.detail or error.reason}")
        return
    if mailbox.format == resolve.MBOX:
        return  # Sieve runs for Maildir deliveries only
    from vdeliver import sieveroute
    base = config.get("virtual_mailbox_base")
    try:
        home = sieveroute.sieve_home(base, mailbox, recipient, config, None)
    except DeliveryError as error:
        findings.error(f"{recipient}: home: {error.detail or error.reason}")
        return
    try:
        if home.problem:
            findings.error(f"{recipient}: {home.problem}")
        for script in sievescripts.find(config, home, max_size):
            if script.kind == "personal" or script.shown.startswith(home.shown + "/"):
                report(compile_one(config, script, home, max_size), script,
                       f"{recipient}: ", findings)
    finally:
        home.close()


def compile_one(config, script, home, max_size):
    """[error lines] of one script (empty: it compiles)."""
    if script.problem:
        return [script.problem]
    loader = sievescripts.include_loader(config, home, max_size)
    compiled = filtering.compile_script(script, filtering.extensions_of(config), loader,
                                        filtering.limits_of(config), False)
    return list(getattr(compiled, "errors", ()))


def report(errors, script, prefix, findings):
    for line in errors:
        findings.error(f"{prefix}Sieve script {script.shown}: {line}")


def list_users(config, findings, postfix_directory=None):
    """The addresses in the listable virtual_mailbox_maps (a warning for each other table)."""
    from vdeliver.tables.textfile import parse_entries
    users = []
    for spec in config.get_list("virtual_mailbox_maps"):
        kind, _, name = spec.partition(":")
        if kind in INDEXED:
            from vdeliver import checkpostfix
            try:
                items = checkpostfix.Postfix(postfix_directory).table_items(spec)
            except checkpostfix.PostfixError:
                items = None
            if items is None:
                findings.warning(f"--all-users: virtual_mailbox_maps: {spec}: {checkpostfix.POSTMAP}"
                                 " -s cannot list it: its users' Sieve scripts are not checked")
                continue
            users += [key for key, _ in items if "@" in key and not key.startswith("@")]
            continue
        if kind not in LISTABLE:
            findings.warning(f"--all-users: virtual_mailbox_maps: {spec}: a {kind}: table cannot"
                             " be listed: its users' Sieve scripts are not checked (name them"
                             " with -u ADDRESS)")
            continue
        try:
            if kind == "texthash":
                with open(name, "rb") as fh:
                    entries = parse_entries(fh.read().decode("utf-8", "surrogateescape"))
            else:
                from vdeliver.tables.inline import open_table
                entries = open_table(name, spec).entries
        except OSError as err:
            findings.error(f"--all-users: virtual_mailbox_maps: {spec}: {err.strerror}")
            continue
        except DeliveryError as error:
            findings.error(f"--all-users: virtual_mailbox_maps: {error.detail}")
            continue
        users += [key for key in entries if "@" in key and not key.startswith("@")]
    return users
