"""`vdeliver check`, Postfix's side: does Postfix hand the mail to vdeliver as it must?

Read with Postfix's own tools, by absolute path (pipe(8) and cron give no useful
PATH): `/usr/sbin/postconf -c DIR` (DIR: --postfix-config, else postconf's own
default, /etc/postfix or $MAIL_CONFIG) for main.cf parameters (-x: expanded),
master.cf services (-M) and `/usr/sbin/postmap -s` for the entries of
transport_maps that can be listed.

Pipe mode (a master.cf pipe(8) service whose argv runs vdeliver): user= set and
not root, argv[0] a file that user (with no supplementary groups, as pipe(8)
runs it) may execute, not chrooted, no D/R/O flags unless write_delivery_headers
= no, no F, > or B (they change the message), ${recipient} in argv, -f ${sender}
with null_sender= and -a ${original_recipient} (warnings),
SERVICE_destination_recipient_limit = 1. Either mode: main.cf's
virtual_mailbox_maps is vdeliver.cf's (empty: Postfix accepts every address, an
error), and each domain of vdeliver's listable maps is a virtual mailbox domain
(names, or tables asked with postmap -q as Postfix asks), in neither
mydestination nor virtual_alias_domains, and not sent elsewhere by
transport_maps. LMTP mode (an lmtp: next hop
that is one of lmtp_listen's sockets): the socket is inside Postfix's queue
directory (a chrooted lmtp(8) sees nothing else), it exists, Postfix's
mail_owner may search every directory above it and connect to it (owner, group,
mode), and the daemon answers LHLO
there. Either way virtual_transport or a transport_maps entry must reach it.

Never: change anything (postconf and postmap are only asked); read Postfix's
files other than through postconf/postmap (only the LMTP socket and the
directories above it, and the path of a pipe service's argv[0], are stat()ed;
the socket is connected to); follow a symlink or block on a FIFO when it reads
vdeliver's texthash tables for their domains (it runs as root there); raise for a broken Postfix setup: a missing main.cf (Debian's
"No configuration" install has none) is a finding like any other.
"""
import errno
import os
import posixpath
import pwd
import socket
import stat
import subprocess

from vdeliver import config as config_module

POSTCONF = "/usr/sbin/postconf"
POSTMAP = "/usr/sbin/postmap"
TIMEOUT = 30          # seconds for one postconf/postmap run
LHLO_TIMEOUT = 10     # seconds for the LMTP probe
HEADER_FLAGS = {"D": "Delivered-To", "R": "Return-Path", "O": "X-Original-To"}
# pipe(8) flags that change the message itself (vdeliver writes mbox From_ lines and quoting).
MESSAGE_FLAGS = {"F": "prepends a From_ line to every message", ">": "quotes body lines that"
                 " start with From", "B": "appends a blank line to every message"}


class PostfixError(Exception):
    """postconf or postmap could not answer (the text is the finding)."""


class Postfix:
    """postconf/postmap with one config directory (None: their own default)."""

    def __init__(self, directory):
        self.directory = directory

    def run(self, program, *args):
        argv = [program] + (["-c", self.directory] if self.directory else []) + list(args)
        env = {"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"}
        if not self.directory and os.environ.get("MAIL_CONFIG"):
            env["MAIL_CONFIG"] = os.environ["MAIL_CONFIG"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                  env=env, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostfixError(f"{' '.join(argv[:3])}: {error}") from None
        return done.returncode, done.stdout, done.stderr.strip().splitlines()

    def config_directory(self):
        if self.directory:
            return self.directory
        code, out, err = self.run(POSTCONF, "-d", "-h", "config_directory")
        if code or not out.strip():
            raise PostfixError(err[-1] if err else f"{POSTCONF} -d config_directory failed")
        return os.environ.get("MAIL_CONFIG") or out.strip()

    def parameters(self, *names):
        """{name: expanded value} as postconf -x prints them (unknown names are left out)."""
        code, out, err = self.run(POSTCONF, "-x", *names)
        if code:
            raise PostfixError(err[-1] if err else f"{POSTCONF} exited {code}")
        values = {}
        for line in out.splitlines():
            name, sep, value = line.partition(" = ")
            if sep:
                values[name.strip()] = value.strip()
            elif line.endswith(" ="):
                values[line[:-2].strip()] = ""
        return values

    def services(self):
        """master.cf entries (postconf -M), each a Service."""
        code, out, err = self.run(POSTCONF, "-M")
        if code:
            raise PostfixError(err[-1] if err else f"{POSTCONF} -M exited {code}")
        return [Service(line) for line in out.splitlines() if len(line.split()) >= 8]

    def table_values(self, spec):
        """The values of a table, or None when postmap cannot list it (regexp:, SQL ...)."""
        items = self.table_items(spec)
        return None if items is None else [value for _, value in items]

    def table_items(self, spec):
        """[(key, value)] of a table (postmap -s), or None when it cannot be listed."""
        code, out, _ = self.run(POSTMAP, "-s", spec)
        if code:
            return None
        return [tuple(line.split("\t", 1)) for line in out.splitlines() if "\t" in line]


class Service:
    """One master.cf entry as `postconf -M` prints it on one line."""

    def __init__(self, line):
        fields = line.split(None, 7)
        self.name, self.type, self.chroot = fields[0], fields[1], fields[4]
        words = config_module.split_list(fields[7], " \t")
        self.command = words[0]
        self.attributes, self.argv = {}, []
        rest = iter(words[1:])
        for word in rest:
            if word == "-o":
                next(rest, None)
            elif word.startswith("argv="):
                self.argv = [word[5:]] + [unbrace(item) for item in rest]
            else:
                name, _, value = word.partition("=")
                self.attributes[name] = value

    @property
    def chrooted(self):
        # "-" is the default: n since Postfix 3.0 (Debian's stock lines say y explicitly).
        return self.chroot == "y"

    def runs_vdeliver(self):
        if self.command != "pipe" or not self.argv:
            return False
        return posixpath.basename(self.argv[0]) == "vdeliver" or self.argv[1:3] == ["-m", "vdeliver"]

    def option(self, flag):
        """The value after `flag` in argv (e.g. -c), or None."""
        for index, word in enumerate(self.argv[:-1]):
            if word == flag:
                return self.argv[index + 1]
        return None


def unbrace(word):
    return word[1:-1].strip() if word.startswith("{") and word.endswith("}") else word


def check(config, config_path, directory, findings):
    """Add the findings of Postfix's side; returns nothing."""
    postfix, before = Postfix(directory), findings.count
    try:
        where = postfix.config_directory()
        main_cf = os.path.join(where, "main.cf")
        if not os.path.exists(main_cf):
            findings.error(f"Postfix: {main_cf}: No such file or directory (Postfix is not"
                           " configured there; name its directory with --postfix-config DIR)")
            return
        services = postfix.services()
        names = {service.name: service for service in services if service.type == "unix"}
        mine = [service for service in services if service.runs_vdeliver()]
        params = postfix.parameters("virtual_transport", "transport_maps", "queue_directory",
                                    "mail_owner", "virtual_mailbox_maps", "virtual_mailbox_domains",
                                    "mydestination", "virtual_alias_domains", "allow_min_user",
                                    *(f"{s.name}_destination_recipient_limit" for s in mine))
        routes = [("virtual_transport", params.get("virtual_transport", ""))]
        for spec in config_module.split_list(params.get("transport_maps", "")):
            for value in postfix.table_values(spec) or ():
                routes.append((f"transport_maps {spec}", value))
    except PostfixError as error:
        findings.error(f"Postfix: {error}")
        return
    check_mailbox_maps(config, params, postfix, findings)
    domains = hosted_domains(config, postfix)
    check_domains(postfix, params, domains, findings)
    transports = transport_overrides(postfix, params, domains, findings)
    reached, lmtp_reached, sockets = set(), False, set()
    for source, route in routes:
        transport, _, nexthop = route.partition(":")
        service = names.get(transport)
        if service is not None and service.runs_vdeliver():
            reached.add(service.name)
        elif service is not None and service.command == "lmtp" and nexthop:
            if check_lmtp_route(source, route, service, nexthop, config, params, findings, sockets):
                lmtp_reached = True
        elif source == "virtual_transport" and transport and service is None:
            findings.error(f"Postfix: virtual_transport = {route} names no master.cf service"
                           f" {transport}")
    for domain, spec, route in transports:
        transport = route.partition(":")[0]
        service = names.get(transport)
        if transport and not (service is not None and (
                service.runs_vdeliver() or (service.command == "lmtp" and lmtp_reached))):
            findings.error(f"Postfix: domain {domain}: transport_maps {spec} sends it to {route},"
                           " not to vdeliver (transport_maps comes before virtual_transport)")
    for service in mine:
        check_pipe_service(service, config, config_path, params, findings,
                           service.name in reached or not lmtp_reached)
        if service.name not in reached and not lmtp_reached:
            findings.error(f"Postfix: master.cf service {service.name} runs vdeliver, but neither"
                           f" virtual_transport ({params.get('virtual_transport', '')}) nor"
                           " transport_maps sends mail to it")
    if lmtp_reached and not config.get_bool("write_delivery_headers"):
        findings.error("write_delivery_headers = no: the LMTP daemon refuses it (Postfix's lmtp"
                       " client writes no Delivered-To: vdeliver must)")
    if not mine and not lmtp_reached and findings.count == before:
        findings.error("Postfix: no master.cf pipe service runs vdeliver and no lmtp: next hop of"
                       f" virtual_transport ({params.get('virtual_transport', '')}) or"
                       " transport_maps is one of lmtp_listen's sockets")


def check_mailbox_maps(config, params, postfix, findings):
    """Postfix's smtpd accepts the addresses of its virtual_mailbox_maps, vdeliver delivers
    those of its own: an address only Postfix has is accepted and then bounced (backscatter).
    Tables of other names are compared by their keys when postmap -s lists both sides
    (texthash:, inline:, hash: ...); others (SQL, LDAP, proxy: of them) are not judged."""
    ours = config.get_list("virtual_mailbox_maps")
    theirs = [spec.removeprefix("proxy:")
              for spec in config_module.split_list(params.get("virtual_mailbox_maps", ""))]
    if not theirs:
        findings.error("Postfix: virtual_mailbox_maps is empty in main.cf: Postfix accepts every"
                       " address of its virtual mailbox domains, and vdeliver bounces the unknown"
                       " ones after Postfix took them (backscatter); set it as vdeliver.cf does")
        return
    if theirs == ours:
        return
    mine, postfixs = listed_keys(postfix, ours), listed_keys(postfix, theirs)
    if mine is None or postfixs is None:
        return
    for keys, where, other, outcome, report in (
            (postfixs - mine, "main.cf's", "vdeliver.cf's", "Postfix accepts and vdeliver bounces"
             " (backscatter)", findings.error),
            (mine - postfixs, "vdeliver.cf's", "main.cf's", "Postfix refuses", findings.warning)):
        if keys:
            report(f"Postfix: {len(keys)} key(s) of {where} virtual_mailbox_maps are not in"
                   f" {other} (such as {min(keys)}): mail that {outcome}")


def listed_keys(postfix, specs):
    """The keys (folded) of all `specs`, or None when postmap -s cannot list one of them."""
    keys = set()
    for spec in specs:
        items = postfix.table_items(spec)
        if items is None:
            return None
        keys.update(key.lower() for key, _ in items)
    return keys


def hosted_domains(config, postfix):
    """The domains of the keys (user@domain, @domain) of vdeliver's virtual_mailbox_maps
    tables that can be listed (texthash:, and what postmap -s lists); no others guessed."""
    from vdeliver.checksieve import INDEXED
    from vdeliver.errors import DeliveryError
    from vdeliver.tables.textfile import parse_entries
    domains = set()
    for spec in config.get_list("virtual_mailbox_maps"):
        kind, _, name = spec.partition(":")
        try:
            if kind == "texthash":
                keys = parse_entries(read_plain_file(name).decode("utf-8", "surrogateescape"))
            elif kind in INDEXED:
                keys = [key for key, _ in postfix.table_items(spec) or ()]
            else:
                continue
        except (OSError, DeliveryError, PostfixError):
            continue  # check_tables() reports the table
        domains.update(key.rpartition("@")[2].lower() for key in keys if key.rpartition("@")[2])
    return sorted(domains)


def read_plain_file(name):
    """The bytes of a regular file, opened as check runs (root, here: before it drops to the
    delivery user) never through a symlink, and never blocking on a FIFO; OSError else."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def check_domains(postfix, params, domains, findings):
    """Each hosted domain reaches virtual_transport only as a virtual mailbox domain, and
    not in mydestination or virtual_alias_domains (which Postfix tries first)."""
    for domain in domains:
        where = f"Postfix: domain {domain} (in vdeliver's virtual_mailbox_maps)"
        if domain_listed(postfix, params.get("mydestination", ""), domain):
            findings.error(f"{where} is in mydestination: Postfix delivers it with"
                           " local_transport, never to vdeliver")
        elif domain_listed(postfix, params.get("virtual_alias_domains", ""), domain):
            findings.error(f"{where} is in virtual_alias_domains: Postfix rejects its addresses"
                           " that virtual_alias_maps lacks (User unknown in virtual alias table)")
        elif domain_listed(postfix, params.get("virtual_mailbox_domains", ""), domain) is False:
            findings.error(f"{where} is not in virtual_mailbox_domains: Postfix does not hand"
                           " its mail to virtual_transport")


def transport_overrides(postfix, params, domains, findings):
    """[(domain, table, route)]: what transport_maps answers for each hosted domain, as
    trivial-rewrite asks it (the domain, then `*`); an answer with an empty transport
    keeps virtual_transport and is left out by the caller's test. A table postmap cannot
    open is a finding (once): trivial-rewrite cannot either, and Postfix defers all mail."""
    found, unopened = [], set()
    for domain in domains:
        for spec in config_module.split_list(params.get("transport_maps", "")):
            route = None
            for key in (domain, "*"):
                if spec in unopened:
                    break
                code, out, err = postfix.run(POSTMAP, "-q", key, spec)
                if code == 0:
                    route = out.strip()
                    break
                fatal = next((line for line in err if ": fatal: " in line), None)
                if fatal:
                    unopened.add(spec)
                    findings.error(f"Postfix: transport_maps {spec}: {fatal.partition(': fatal: ')[2]}"
                                   " (trivial-rewrite cannot open it either: Postfix defers every"
                                   " message)")
            if route is not None:
                found.append((domain, spec, route))
                break
    return found


def domain_listed(postfix, value, domain):
    """Is `domain` in a Postfix domain list (a postconf -x value): names, and type:table
    entries asked with postmap -q as Postfix asks them; the first match decides, and
    `!entry` negates. None when an entry cannot be judged here (a /file/name list, a
    table postmap cannot open)."""
    for item in config_module.split_list(value):
        negated, item = item.startswith("!"), item.removeprefix("!")
        if item.startswith("/"):
            return None
        if ":" in item:
            code, _, _ = postfix.run(POSTMAP, "-q", domain, item)
            if code not in (0, 1):
                return None
            hit = code == 0
        else:
            hit = item.lower() == domain
        if hit:
            return not negated
    return False


def runnable_problem(path, uid, gid):
    """Why the user uid:gid (no supplementary groups: pipe(8) gives none) cannot run the
    file `path`, or "" (a path that is not absolute is left to pipe(8)'s PATH)."""
    if not path.startswith("/"):
        return ""
    real = os.path.realpath(path)
    parts = real.split("/")
    for depth in range(1, len(parts)):
        where = "/".join(parts[:depth]) or "/"
        try:
            st = os.stat(where)
        except OSError as err:
            return f"{where}: {err.strerror}"
        if not permitted(st, uid, gid, 0o1):
            return f"{where} is not searchable by uid {uid} gid {gid}"
    try:
        st = os.stat(real)
    except OSError as err:
        return f"{path}: {err.strerror}"
    if not stat.S_ISREG(st.st_mode) or not permitted(st, uid, gid, 0o1):
        return f"{path} is not a file uid {uid} gid {gid} may execute"
    return ""


def permitted(st, uid, gid, bit):
    """The permission `bit` (1 x, 2 w, 4 r) of st for uid:gid, as the kernel decides it."""
    if st.st_uid == uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid == gid:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def group_id(user, entry):
    """The gid of a pipe(8) user= value: `user:group`, else the user's own group."""
    import grp
    group = user.partition(":")[2]
    if not group:
        return entry.pw_gid
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def check_pipe_service(service, config, config_path, params, findings, used=True):
    """used: mail may go there (not an entry left beside an LMTP setup: then only
    the master.cf line itself is checked)."""
    name = f"Postfix: master.cf service {service.name}"
    user = service.attributes.get("user", "")
    account = user.partition(":")[0]
    if not account:
        findings.error(f"{name}: no user= (pipe(8) requires it: the delivery user)")
    else:
        try:
            entry = pwd.getpwnam(account) if not account.isdigit() else pwd.getpwuid(int(account))
        except KeyError:
            findings.error(f"{name}: user={user}: no such user")
        else:
            if entry.pw_uid == 0:
                findings.error(f"{name}: user={user}: vdeliver never delivers as root"
                               " (use the owner of virtual_mailbox_base)")
            else:
                check_base_owner(name, user, entry, config, findings)
                gid = group_id(user, entry)
                problem = runnable_problem(service.argv[0], entry.pw_uid, gid) if gid is not None \
                    else f"user={user}: no such group"
                if problem and used:
                    findings.error(f"{name}: pipe(8) cannot run argv as user={user}: {problem}"
                                   " (every delivery would defer)")
    if service.chrooted and used:
        findings.error(f"{name} is chrooted (master.cf chroot column y): pipe(8) would run"
                       f" {service.argv[0]} inside the queue directory, where it does not exist")
    flags = service.attributes.get("flags", "")
    for letter, what in MESSAGE_FLAGS.items():
        if letter in flags and used:
            findings.error(f"{name}: flags={flags}: {letter} {what} (remove it: vdeliver stores"
                           " the message as Postfix gives it)")
    written = [letter for letter in flags if letter in HEADER_FLAGS]
    if written and config.get_bool("write_delivery_headers"):
        headers = ", ".join(HEADER_FLAGS[letter] for letter in written)
        findings.error(f"{name}: flags={flags}: with {''.join(written)} Postfix writes {headers},"
                       " which vdeliver writes too (remove them, or set write_delivery_headers = no)")
    recipient_at = next((index for index, word in enumerate(service.argv)
                         if "${recipient}" in word or "$recipient" in word), None)
    if recipient_at is None:
        findings.error(f"{name}: argv has no ${{recipient}}: vdeliver is not told the recipient")
    elif used and "--" not in service.argv[1:recipient_at]:
        check_option_end(name, params, findings)
    if used:
        check_envelope_arguments(name, service, findings)
    limit_name = f"{service.name}_destination_recipient_limit"
    limit = params.get(limit_name, "")
    if used and limit != "1":
        findings.error(f"Postfix: {limit_name} = {limit}: must be 1 for pipe(8) (vdeliver takes"
                       " one recipient per delivery)")
    other = service.option("-c") or config_module.DEFAULT_CONFIG
    if used and os.path.abspath(other) != os.path.abspath(config_path):
        findings.warning(f"{name}: runs vdeliver with config {other}, not {config_path},"
                         " the one checked here")


def check_option_end(name, params, findings):
    """No `--` before ${recipient}: an address that begins with "-" is read as an option
    (-o sets a parameter, -c another config). Postfix's queue manager bounces such
    recipients unless allow_min_user = yes; with it, the argv is open to them."""
    if params.get("allow_min_user", "no").lower() == "yes":
        findings.error(f"{name}: argv has no -- before ${{recipient}}, and allow_min_user = yes:"
                       " a recipient that begins with - is read as a vdeliver option (insert --)")
    else:
        findings.warning(f"{name}: argv has no -- before ${{recipient}}: only allow_min_user = no"
                         " keeps a recipient that begins with - from being read as a vdeliver"
                         " option (insert --)")


def check_envelope_arguments(name, service, findings):
    """-f ${sender} (with null_sender= empty) and -a ${original_recipient}, as
    master.cf.snippet passes them."""
    if service.option("-f") not in ("${sender}", "$sender"):
        findings.warning(f"{name}: argv has no -f ${{sender}}: every message gets Return-Path: <>,"
                         " and Sieve's vacation and redirect see the null sender")
    elif "null_sender" not in service.attributes:
        findings.warning(f"{name}: no null_sender= (empty): pipe(8) passes bounces' null sender"
                         " as MAILER-DAEMON, and they get Return-Path: <MAILER-DAEMON>")
    if service.option("-a") not in ("${original_recipient}", "$original_recipient"):
        findings.warning(f"{name}: argv has no -a ${{original_recipient}}: messages get no"
                         " X-Original-To")


def check_base_owner(name, user, entry, config, findings):
    base = config.get("virtual_mailbox_base").strip()
    try:
        owner = os.stat(base).st_uid
    except OSError:
        return  # check.py reports the base itself
    if owner not in (entry.pw_uid, 0):
        findings.error(f"{name}: user={user} does not own virtual_mailbox_base {base}"
                       f" (uid {owner}): its deliveries would defer")


def check_lmtp_route(source, route, service, nexthop, config, params, findings, seen):
    """One lmtp: next hop; True when it is one of vdeliver's sockets (each socket is
    checked once, named with the first route that reaches it: seen)."""
    kind, _, where = nexthop.partition(":")
    queue = params.get("queue_directory", "").rstrip("/")
    listen = config.get_list("lmtp_listen")
    if kind != "unix":
        return check_lmtp_inet(source, route, nexthop if kind != "inet" else where, listen,
                               findings, seen)
    # lmtp(8) resolves a relative path against the queue directory (its working
    # directory), and a chrooted one resolves every path inside it.
    path = posixpath.normpath(where if where.startswith("/") and not service.chrooted
                              else f"{queue}/{where.lstrip('/')}")
    if f"unix:{path}" not in listen:
        return False
    if path in seen:
        return True
    seen.add(path)
    label = f"Postfix: {source} = {route}: LMTP socket {path}"
    if not (path + "/").startswith(queue + "/"):
        findings.error(f"{label} is outside Postfix's queue directory {queue}: a chrooted"
                       " lmtp(8) cannot reach it")
    try:
        st = os.lstat(path)
    except OSError as err:
        hint = " (is vdeliver --lmtp running?)" if err.errno == errno.ENOENT else ""
        findings.error(f"{label}: {err.strerror}{hint}")
        return True
    if not stat.S_ISSOCK(st.st_mode):
        findings.error(f"{label} is not a socket")
        return True
    owner = params.get("mail_owner", "postfix")
    blocked = unsearchable_parent(path, owner)
    if blocked:
        findings.error(f"{label}: Postfix's lmtp client (mail_owner {owner}) cannot reach it:"
                       f" {blocked} is not searchable by {owner}")
        return True
    if not may_connect(st, owner):
        findings.error(f"{label}: owner {st.st_uid}:{st.st_gid}, mode {st.st_mode & 0o7777:04o}:"
                       f" Postfix's lmtp client (mail_owner {owner}) cannot connect"
                       " (see lmtp_socket_owner, lmtp_socket_mode)")
        return True
    problem = lhlo_problem(socket.AF_UNIX, path)
    if problem:
        findings.error(f"{label}: {problem}")
    return True


def check_lmtp_inet(source, route, hostport, listen, findings, seen):
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not (host and port.isdigit()) or f"inet:{host}:{port}" not in listen:
        return False
    if hostport in seen:
        return True
    seen.add(hostport)
    problem = lhlo_problem(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, int(port)))
    if problem:
        findings.error(f"Postfix: {source} = {route}: {problem}")
    return True


def unsearchable_parent(path, user):
    """The first directory above `path` that `user` (with its own group: Postfix's
    daemons run with no other) cannot search, or ""."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return ""
    parts = posixpath.dirname(path).split("/")
    for depth in range(1, len(parts) + 1):
        where = "/".join(parts[:depth]) or "/"
        try:
            st = os.stat(where)
        except OSError:
            return ""
        if entry.pw_uid != 0 and not permitted(st, entry.pw_uid, entry.pw_gid, 0o1):
            return where
    return ""


def may_connect(st, user):
    """Can `user` connect to the socket st describes (write permission on it)?"""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    if entry.pw_uid == 0:
        return True
    if st.st_uid == entry.pw_uid:
        return bool(st.st_mode & 0o200)
    if st.st_gid in os.getgrouplist(user, entry.pw_gid):
        return bool(st.st_mode & 0o020)
    return bool(st.st_mode & 0o002)


def lhlo_problem(family, where):
    """"" when the server greets with 220 and answers LHLO with 250; else what went wrong."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(LHLO_TIMEOUT)
            sock.connect(where)
            stream = sock.makefile("rwb")
            greeting = stream.readline(1024)
            if not greeting.startswith(b"220"):
                return f"no LMTP greeting (got {greeting[:80]!r})"
            stream.write(b"LHLO vdeliver-check.invalid\r\n")
            stream.flush()
            while True:
                line = stream.readline(1024)
                if not line.startswith(b"250"):
                    return f"LHLO not answered with 250 (got {line[:80]!r})"
                if line[3:4] != b"-":
                    break
            stream.write(b"QUIT\r\n")
            stream.flush()
    except OSError as err:
        return f"the LMTP daemon does not answer: {err.strerror or err}"
    return ""
