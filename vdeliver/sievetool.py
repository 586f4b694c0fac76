"""The admin's Sieve tools, like Pigeonhole's sievec and sieve-test.

    vdeliver --sieve-check [-c config] SCRIPT...
        compile each script with the extensions vdeliver.cf enables; print each
        error as `SCRIPT: line N: error: ...`; exit 0 when all compile, 1 if not.
    vdeliver --sieve-test [-c config] [-f SENDER] [-r RECIPIENT] [-a ORIGINAL]
                          [-F FOLDER]... SCRIPT MESSAGE
        run SCRIPT on the message file and print the actions the delivery would
        take (stores with their flags, discard, reject, what is reported but not
        sent), without delivering; -F names a folder that exists (others do
        not, unless :create). Exit 0, 1 for a compile error.

Never: deliver, write or send anything; read a file other than the ones named
(and what include names); run as root (scripts are user input: run this as
the delivery user).
"""
import sys

from vdeliver import config as config_module

USAGE = ("usage: vdeliver --sieve-check [-c config] SCRIPT...\n"
         "       vdeliver --sieve-test [-c config] [-f sender] [-r recipient] [-a original]"
         " [-F folder]... SCRIPT MESSAGE")


def parse(argv, values):
    options = {"c": config_module.DEFAULT_CONFIG, "f": "", "r": "user@localhost", "a": "", "F": []}
    rest = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            rest += argv[index:]
            break
        if len(arg) == 2 and arg[0] == "-" and arg[1] in values:
            if index >= len(argv):
                raise ValueError(f"option {arg} needs a value")
            if arg[1] == "F":
                options["F"].append(argv[index])
            else:
                options[arg[1]] = argv[index]
            index += 1
        elif arg.startswith("-") and arg != "-":
            raise ValueError(f"unknown option {arg}")
        else:
            rest.append(arg)
    return options, rest


def load_config(path):
    try:
        return config_module.load(path)
    except Exception:  # noqa: BLE001 - a tool without vdeliver.cf uses the defaults
        return config_module.from_text(b"", "(defaults)")


def compile_file(path, config):
    """(compiled script or None, [error lines])."""
    from vdeliver import filtering, sieve, sievescripts
    script = sievescripts.read_absolute("personal", path, config.get_size("sieve_max_script_size"))
    if script is None or script.problem:
        return None, [script.problem if script else f"{path} does not exist"]
    directory = path.rsplit("/", 1)[0] if "/" in path else "."

    def loader(location, name):
        where = directory if location == "personal" else config.get("sieve_global_dir").strip()
        found = sievescripts.read_absolute(location, f"{where}/{name}.sieve",
                                           config.get_size("sieve_max_script_size"), missing_ok=True)
        return None if found is None or found.problem else found.source
    try:
        return sieve.compile(script.source, name=script.name, loader=loader,
                             extensions=filtering.extensions_of(config),
                             limits=filtering.limits_of(config)), []
    except sieve.CompileError as error:
        return None, list(error.errors)


def check(argv, out):
    options, scripts = parse(argv, "c")
    if not scripts:
        raise ValueError("no script given")
    config = load_config(options["c"])
    failed = False
    for path in scripts:
        _, errors = compile_file(path, config)
        for line in errors:
            out.write(f"{path}: {line}\n")
        failed = failed or bool(errors)
    return 1 if failed else 0


def test(argv, out):
    from vdeliver import filtering
    options, rest = parse(argv, "cfraF")
    if len(rest) != 2:
        raise ValueError("expected SCRIPT MESSAGE")
    path, message_path = rest
    config = load_config(options["c"])
    _, errors = compile_file(path, config)
    if errors:
        for line in errors:
            out.write(f"{path}: {line}\n")
        return 1
    from vdeliver import folders, sievescripts
    script = sievescripts.read_absolute("personal", path, config.get_size("sieve_max_script_size"))
    separator = config.get("sieve_mailbox_separator").strip() or "."
    encoding = config.get_choice("folder_name_encoding", ("utf7", "utf8"))
    courier = folders.courier_namespace(config)
    existing = {folders.sieve_folder_name(name, separator, encoding, courier) for name in options["F"]}

    class Envelope:
        sender, recipient, original_recipient = options["f"], options["r"], options["a"]
    home = sievescripts.Place(None, path.rsplit("/", 1)[0] if "/" in path else ".")
    plan = filtering.plan(config, Envelope, [script], home, lambda: open(message_path, "rb"),
                          lambda directory: directory in existing)
    out.write(f"script: {path}\n")
    if plan.reject is not None:
        out.write(f"reject: {plan.reject}\n")
    for store in plan.stores:
        flags = f" flags: {' '.join(store.flags)}" if store.flags else ""
        create = " (created)" if store.create and store.folder not in existing else ""
        out.write(f"store: {store.folder or 'INBOX'}{create}{flags}\n")
    if not plan.stores and plan.reject is None:
        out.write("discard\n")
    for note in plan.notes:
        out.write(f"note: {note}\n")
    return 0


def main(mode, argv, out=None):
    out = out or sys.stdout
    import posix
    if posix.geteuid() == 0:
        # Scripts and what they include are users' files: as root a path could lead
        # through their symlinks. Run it as the delivery user (runuser -u vmail -- ...).
        sys.stderr.write("vdeliver: refusing to read Sieve scripts as root: run this as the"
                         " delivery user\n")
        return 64
    try:
        return check(argv, out) if mode == "sieve-check" else test(argv, out)
    except ValueError as error:
        sys.stderr.write(f"vdeliver: {error}\n{USAGE}\n")
        return 64
    except OSError as error:
        sys.stderr.write(f"vdeliver: {error}\n")
        return 75
