"""Admin queries: what a table, or the whole lookup, answers for a key.

    python -m vdeliver.query [-c config] [-o name=value]... KEY TYPE:NAME
    python -m vdeliver.query [-c config] [-o name=value]... - TYPE:NAME < keys
    python -m vdeliver.query [-c config] [-o name=value]... ADDRESS

The first form is `postmap -q KEY TYPE:NAME` with vdeliver's readers (of
the config file, -c or the default when it exists, and -o only
smtputf8_enable matters to it, as main.cf's to postmap): one literal query,
the key case-folded for fixed-key tables (not for regexp:, pcre:, fail:),
the value on stdout. With `-` as the key, keys are read from
stdin, one a line, and each hit printed as `key<TAB>value` (postmap -q -).
The last form runs virtual(8)'s lookup order over virtual_mailbox_maps from
the config file through the same resolve.search() a delivery uses, and
prints every key it tries against every table, then the mailbox.

Exit status: 0 found, 1 not found (as postmap), 75 the lookup could not be
done (a table error or bad configuration: what defers mail), 64 usage.
Notes a table has for the admin (e.g. "looking up with postmap -q") go to
stderr.

Never: write anywhere but stdout and stderr; never open a table for writing.
"""
import sys

from vdeliver.errors import DeliveryError, UnknownUser

USAGE = ("usage: python -m vdeliver.query [-c config] [-o name=value]... KEY TYPE:NAME\n"
         "       python -m vdeliver.query [-c config] [-o name=value]... - TYPE:NAME < keys\n"
         "       python -m vdeliver.query [-c config] [-o name=value]... ADDRESS")
EX_FOUND, EX_NOTFOUND, EX_USAGE, EX_TEMPFAIL = 0, 1, 64, 75


def main(argv=None, stdin=None, stdout=None, stderr=None):
    argv = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        config_path, overrides, arguments = parse_args(argv)
    except ValueError as err:
        print(f"{err}\n{USAGE}", file=stderr)
        return EX_USAGE
    try:
        if len(arguments) == 2:
            key, spec = arguments
            use_smtputf8_enable(config_path, overrides)
            return query_table(key, spec, stdin, stdout, stderr)
        return query_address(arguments[0], config_path, overrides, stdout, stderr)
    except DeliveryError as err:
        print(f"vdeliver: {err.status_line()}", file=stderr)
        return EX_TEMPFAIL


def parse_args(argv):
    config_path, overrides, index = None, [], 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if arg in ("-c", "-o"):
            if index + 1 >= len(argv):
                raise ValueError(f"option {arg} needs a value")
            if arg == "-c":
                config_path = argv[index + 1]
            else:
                overrides.append(argv[index + 1])
            index += 2
            continue
        if arg.startswith("-") and arg != "-":
            raise ValueError(f"unknown option {arg}")
        break
    arguments = argv[index:]
    if len(arguments) not in (1, 2):
        raise ValueError("expected KEY TYPE:NAME or ADDRESS")
    return config_path, overrides, arguments


def open_reporting(spec, stderr):
    from vdeliver.tables import open_table
    table = open_table(spec)
    if getattr(table, "note", None):
        print(f"vdeliver: note: {table.note}", file=stderr)
    return table


def query_table(key, spec, stdin, stdout, stderr):
    from vdeliver.address import fold
    table = open_reporting(spec, stderr)
    if key != "-":
        value = table.lookup(fold(key) if table.fixed_keys else key)
        if value is None:
            return EX_NOTFOUND
        print(value, file=stdout)
        return EX_FOUND
    found = False
    for line in stdin:
        line = line.rstrip("\n")
        value = table.lookup(fold(line) if table.fixed_keys else line)
        if value is not None:
            found = True
            print(f"{line}\t{value}", file=stdout)
    return EX_FOUND if found else EX_NOTFOUND


def use_smtputf8_enable(config_path, overrides):
    """smtputf8_enable from -o, the -c file or the default file; `yes` without any."""
    import os
    from vdeliver import address, config
    if config_path is None and not os.path.exists(config.DEFAULT_CONFIG):
        loaded = config.from_text("", "-o", overrides)
    else:
        loaded = config.load(config_path or config.DEFAULT_CONFIG, overrides)
    address.set_smtputf8(loaded.get_bool("smtputf8_enable"))


def query_address(recipient, config_path, overrides, stdout, stderr):
    from vdeliver import address, config, resolve
    loaded = config.load(config_path or config.DEFAULT_CONFIG, overrides)
    address.set_smtputf8(loaded.get_bool("smtputf8_enable"))
    tables = [open_reporting(spec, stderr) for spec in loaded.get_list("virtual_mailbox_maps")]
    address.check_recipient(recipient)

    def show(key, table, outcome):  # each step of resolve.search(), as a delivery takes it
        if outcome is resolve.SKIPPED:
            text = "(skipped: full address only)"
        elif isinstance(outcome, DeliveryError):
            text = f"error: {outcome.text()}"
        else:
            text = "not found" if outcome is None else outcome
        print(f"{key}\t{table.spec}\t{text}", file=stdout)

    try:
        mailbox = resolve.resolve(recipient, loaded, resolve.Tables(tables), trace=show)
    except UnknownUser as err:
        print(f"result: {err.status_line()}", file=stdout)
        return EX_NOTFOUND
    print(f"result: {mailbox.format} {mailbox.path} (table {mailbox.table}, key {mailbox.key})",
          file=stdout)
    return EX_FOUND


if __name__ == "__main__":
    sys.exit(main())
