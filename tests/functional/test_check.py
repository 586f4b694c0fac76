"""`vdeliver check`: one line per finding, exit 1 with findings, 0 when clean; `-n` as postconf -n.

Postfix's side is read from a private Postfix config directory (PrivatePostfix: main.cf,
master.cf, the queue directory; postconf -c DIR), each finding a real misconfiguration of
it; the LMTP cases run the real daemon on a socket in that queue directory.
"""
import os
import signal
import socket
import subprocess
import time

import pytest

from functional.test_pipe_ldap import SUFFIX, slapd  # noqa: F401  (the fixture, shared)
from postfix_config import PostfixConfig
from support import VDELIVER

PIPE_SERVICE = ("vdeliver  unix  -       n       {chroot}       -       -       pipe\n"
                "  flags={flags} {user}{null_sender}\n"
                "  argv={argv}\n")
ARGV = "{vdeliver} -c {cf} -i ${{queue_id}} -f ${{sender}} -a ${{original_recipient}} -- ${{recipient}}"
STOCK_LMTP = ("lmtp      unix  -       -       y       -       -       lmtp\n"
              "virtual   unix  -       n       n       -       -       virtual\n")


class PrivatePostfix:
    """A Postfix config directory of the test's own: master.cf.snippet's pipe entry (with
    -c naming the test's vdeliver.cf) and main.cf lines, changed as a test says."""

    def __init__(self, mail):
        self.mail = mail
        self.directory = os.path.join(mail.top, "postfix")
        self.spool = os.path.join(mail.top, "spool")
        os.makedirs(os.path.join(self.spool, "private"))
        os.chmod(self.spool, 0o755)
        self.socket = os.path.join(self.spool, "private", "vdeliver-lmtp")
        PostfixConfig(self.directory)
        self.write()

    def write(self, main=None, flags="Xh", user=None, argv=None, services=STOCK_LMTP, pipe=True,
              chroot="n", null_sender=" null_sender="):
        """main: {name: value} replacing the pipe lines' and the domains and maps the mail
        setup's table needs (None removes a line)."""
        lines = {"virtual_transport": "vdeliver:", "vdeliver_destination_recipient_limit": "1",
                 "virtual_mailbox_domains": "example.com, example.org, catchall.example",
                 "virtual_mailbox_maps": f"texthash:{self.mail.table_path}"}
        lines.update(main or {})
        user = f"user={self.mail.user.pw_name}" if user is None else user
        argv = argv or ARGV.format(vdeliver=VDELIVER, cf=self.mail.config_path)
        with open(os.path.join(self.directory, "main.cf"), "w") as fh:
            fh.write(f"compatibility_level = 3.6\nmeta_directory = {self.directory}\n"
                     f"queue_directory = {self.spool}\n"
                     + "".join(f"{k} = {v}\n" for k, v in lines.items() if v is not None))
        with open(os.path.join(self.directory, "master.cf"), "w") as fh:
            fh.write(services + (PIPE_SERVICE.format(flags=flags, user=user, argv=argv, chroot=chroot,
                                                     null_sender=null_sender) if pipe else ""))
        past = time.time() - 60  # postconf re-reads a file younger than a second (postfix_config.py)
        for name in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.directory, name), (past, past))


@pytest.fixture
def postfix(mail):
    return PrivatePostfix(mail)


def check(mail, *args, postfix=None):
    where = ["-C", postfix.directory] if postfix else []
    proc = subprocess.run([VDELIVER, "check", "-c", mail.config_path, *where, *args],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                          timeout=60)
    assert not proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_clean_setup_has_no_findings(mail, postfix):
    assert check(mail, postfix=postfix) == (0, [])


@pytest.mark.parametrize("extra, wanted", [
    pytest.param("virtual_mailbox_mpas = x\n",
                 "vdeliver: error: {cf}, line 5: unknown parameter virtual_mailbox_mpas"
                 " (did you mean virtual_mailbox_maps?)", id="misspelled parameter"),
    pytest.param("time_limit = soon\n",
                 "vdeliver: error: {cf}, line 5: time_limit = soon: expected a time like 600s or 10m",
                 id="value that does not parse"),
    pytest.param("quota_exceeded_action = maybe\n",
                 "vdeliver: error: {cf}, line 5: quota_exceeded_action = maybe: expected one of"
                 " defer, bounce", id="not one of the choices"),
    pytest.param("syslog_name = $nosuch\n",
                 "vdeliver: error: {cf}, line 5: syslog_name: undefined parameter $nosuch",
                 id="expansion that does not resolve"),
    pytest.param("lmtp_metrics_listen = 127.0.0.1:9119\n",
                 "vdeliver: error: lmtp_metrics_listen: '127.0.0.1:9119' is not unix:/path or"
                 " inet:host:port", id="metrics endpoint that does not parse"),
    pytest.param("virtual_mailbox_quota_maps = texthash:/nonexistent\n",
                 "vdeliver: error: virtual_mailbox_quota_maps: texthash:/nonexistent: cannot open"
                 " texthash:/nonexistent: No such file or directory", id="table that does not open"),
    pytest.param("sendmail_path = sendmail -t\n",
                 "vdeliver: error: sendmail_path = sendmail -t: not an absolute path",
                 id="sendmail_path not absolute"),
    pytest.param("sendmail_path = /nonexistent/sendmail\n",
                 "vdeliver: warning: sendmail_path: /nonexistent/sendmail is not an executable file:"
                 " Sieve's vacation, redirect and notify will fail (the mail is kept), and so will"
                 " LMTP's NOTIFY=SUCCESS reports (lmtp_dsn)",
                 id="sendmail_path missing"),
    pytest.param("sendmail_path = /nonexistent/sendmail\nlmtp_dsn = no\n",
                 "vdeliver: warning: sendmail_path: /nonexistent/sendmail is not an executable file:"
                 " Sieve's vacation, redirect and notify will fail (the mail is kept)",
                 id="sendmail_path missing, no LMTP reports"),
    pytest.param("sieve_redirect_envelope_from = someone\n",
                 "vdeliver: error: sieve_redirect_envelope_from = someone: expected sender, recipient,"
                 " orig_recipient or <address>", id="redirect envelope sender that does not parse"),
    pytest.param("sieve_vacation_max_period = long\n",
                 "vdeliver: error: {cf}, line 5: sieve_vacation_max_period = long: expected a time"
                 " like 600s or 10m", id="vacation period that does not parse"),
])
def test_each_finding_is_one_exact_line(mail, postfix, extra, wanted):
    mail.write_config(extra)
    code, lines = check(mail, postfix=postfix)
    assert (code, lines) == (1, [wanted.format(cf=mail.config_path)])


def test_several_findings_are_all_reported(mail, postfix):
    mail.write_config("virtual_mailbox_mpas = x\ntime_limit = soon\n")
    code, lines = check(mail, postfix=postfix)
    assert code == 1 and len(lines) == 2, lines


def test_a_database_that_is_down_is_named(mail, postfix):
    pg = os.path.join(mail.top, "pg.cf")
    with open(pg, "w") as fh:
        fh.write(f"hosts = 127.0.0.1:{closed_port()}\nuser = u\npassword = p\ndbname = d\n"
                 "query = SELECT 'x' WHERE '%s' = ''\nconnect_timeout = 1\n")
    os.chmod(pg, 0o644)
    mail.write_config(maps=f"texthash:{mail.table_path}, pgsql:{pg}")
    postfix.write(main={"virtual_mailbox_maps": f"texthash:{mail.table_path}, pgsql:{pg}"})
    code, lines = check(mail, postfix=postfix)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"vdeliver: error: virtual_mailbox_maps: pgsql:{pg}: ") and \
        "no database server answered" in lines[0], lines


def test_a_table_note_is_a_warning(mail, postfix, slapd):
    """What a delivery logs as a warning when it opens a table (here Postfix's answer to an
    unknown `dereference`: use 0) is a warning of check too, and the table still answers."""
    cf = os.path.join(mail.top, "ldap.cf")
    with open(cf, "w") as fh:
        fh.write(f"server_host = {slapd.url()}\nsearch_base = {SUFFIX}\nversion = 3\n"
                 "dereference = 9\n")
    os.chmod(cf, 0o644)
    mail.write_config(maps=f"texthash:{mail.table_path}, ldap:{cf}")
    postfix.write(main={"virtual_mailbox_maps": f"texthash:{mail.table_path}, ldap:{cf}"})
    code, lines = check(mail, postfix=postfix)
    assert (code, lines) == (1, [f"vdeliver: warning: virtual_mailbox_maps: ldap:{cf}: unrecognized"
                                 " value 9 specified for dereference; using 0"])


@pytest.mark.parametrize("mode, wanted", [
    pytest.param(0o777, "error: virtual_mailbox_base {base} is writable by others: deliveries defer",
                 id="world-writable base"),
    pytest.param(0o775, "warning: virtual_mailbox_base {base} is writable by its group (gid {gid}):"
                 " its members can replace any mailbox", id="group-writable base (delivers)"),
])
def test_the_mail_base_is_checked(mail, postfix, mode, wanted):
    os.chmod(mail.base, mode)
    code, lines = check(mail, postfix=postfix)
    assert code == 1 and lines == [
        "vdeliver: " + wanted.format(base=mail.base, gid=os.stat(mail.base).st_gid)]


def test_a_root_owned_base_is_an_error(mail, postfix):
    os.chown(mail.base, 0, 0)
    code, lines = check(mail, postfix=postfix)
    assert code == 1
    assert f"vdeliver: error: virtual_mailbox_base {mail.base} is owned by root:" in lines[0], lines


def test_n_prints_what_differs_from_the_defaults(mail):
    mail.write_config("time_limit = 600s\nsieve = no\n")  # the first is the default's text
    code, lines = check(mail, "-n")
    assert code == 0
    assert lines == sorted(lines) and "sieve = no" in lines and not any(
        line.startswith("time_limit") for line in lines), lines
    assert f"virtual_mailbox_base = {mail.base}" in lines


# ------------------------------------------------------------------ Postfix's side: pipe(8)

@pytest.mark.parametrize("change, wanted", [
    pytest.param({"user": "user=root"},
                 ["{svc}: user=root: vdeliver never delivers as root (use the owner of"
                  " virtual_mailbox_base)"], id="user root"),
    pytest.param({"user": ""}, ["{svc}: no user= (pipe(8) requires it: the delivery user)"],
                 id="no user"),
    pytest.param({"user": "user=nobody"},
                 ["{svc}: user=nobody does not own virtual_mailbox_base {base} (uid {uid}):"
                  " its deliveries would defer"], id="user not the owner of the base"),
    pytest.param({"flags": "DRXhu"},
                 ["{svc}: flags=DRXhu: with DR Postfix writes Delivered-To, Return-Path, which"
                  " vdeliver writes too (remove them, or set write_delivery_headers = no)"],
                 id="D and R flags"),
    pytest.param({"flags": "OXh"},
                 ["{svc}: flags=OXh: with O Postfix writes X-Original-To, which vdeliver writes"
                  " too (remove them, or set write_delivery_headers = no)"], id="O flag"),
    pytest.param({"argv": f"{VDELIVER} -c {{cf}} -f ${{sender}} -a ${{original_recipient}}"
                          " -- ${{user}}@${{domain}}"},
                 ["{svc}: argv has no ${{recipient}}: vdeliver is not told the recipient"],
                 id="argv without recipient"),
    pytest.param({"argv": f"{VDELIVER} -f ${{sender}} -a ${{original_recipient}} -- ${{recipient}}"},
                 ["vdeliver: warning: Postfix: master.cf service vdeliver: runs vdeliver with config"
                  " /etc/vdeliver/vdeliver.cf, not {cf}, the one checked here"],
                 id="another vdeliver.cf"),
    pytest.param({"main": {"vdeliver_destination_recipient_limit": None}},
                 ["vdeliver: error: Postfix: vdeliver_destination_recipient_limit = 50: must be 1"
                  " for pipe(8) (vdeliver takes one recipient per delivery)"],
                 id="missing recipient limit"),
    pytest.param({"main": {"vdeliver_destination_recipient_limit": "10"}},
                 ["vdeliver: error: Postfix: vdeliver_destination_recipient_limit = 10: must be 1"
                  " for pipe(8) (vdeliver takes one recipient per delivery)"],
                 id="recipient limit 10"),
    pytest.param({"main": {"virtual_transport": "virtual"}},
                 ["{svc} runs vdeliver, but neither virtual_transport (virtual) nor transport_maps"
                  " sends mail to it"], id="virtual_transport elsewhere"),
    pytest.param({"main": {"virtual_transport": "vdeliverr:"}},
                 ["vdeliver: error: Postfix: virtual_transport = vdeliverr: names no master.cf"
                  " service vdeliverr",
                  "{svc} runs vdeliver, but neither virtual_transport (vdeliverr:) nor"
                  " transport_maps sends mail to it"], id="virtual_transport misspelled"),
    pytest.param({"pipe": False},
                 ["vdeliver: error: Postfix: virtual_transport = vdeliver: names no master.cf"
                  " service vdeliver"], id="no master.cf service"),
    pytest.param({"argv": "/nonexistent/vdeliver -c {cf} -f ${sender} -a ${original_recipient}"
                          " -- ${recipient}"},
                 ["{svc}: pipe(8) cannot run argv as user={user}: /nonexistent: No such file or"
                  " directory (every delivery would defer)"], id="argv[0] that does not exist"),
    pytest.param({"chroot": "y"},
                 ["{svc} is chrooted (master.cf chroot column y): pipe(8) would run " + VDELIVER
                  + " inside the queue directory, where it does not exist"], id="chrooted pipe"),
    pytest.param({"flags": "FXh"},
                 ["{svc}: flags=FXh: F prepends a From_ line to every message (remove it: vdeliver"
                  " stores the message as Postfix gives it)"], id="F flag"),
    pytest.param({"argv": f"{VDELIVER} -c {{cf}} -a ${{original_recipient}} -- ${{recipient}}"},
                 ["vdeliver: warning: Postfix: master.cf service vdeliver: argv has no -f ${{sender}}:"
                  " every message gets Return-Path: <>, and Sieve's vacation and redirect see the"
                  " null sender"], id="no -f sender"),
    pytest.param({"null_sender": ""},
                 ["vdeliver: warning: Postfix: master.cf service vdeliver: no null_sender= (empty):"
                  " pipe(8) passes bounces' null sender as MAILER-DAEMON, and they get Return-Path:"
                  " <MAILER-DAEMON>"], id="no null_sender="),
    pytest.param({"argv": f"{VDELIVER} -c {{cf}} -f ${{sender}} -- ${{recipient}}"},
                 ["vdeliver: warning: Postfix: master.cf service vdeliver: argv has no -a"
                  " ${{original_recipient}}: messages get no X-Original-To"], id="no -a"),
    pytest.param({"argv": f"{VDELIVER} -c {{cf}} -f ${{sender}} -a ${{original_recipient}}"
                          " ${recipient}"},
                 ["vdeliver: warning: Postfix: master.cf service vdeliver: argv has no -- before"
                  " ${{recipient}}: only allow_min_user = no keeps a recipient that begins with -"
                  " from being read as a vdeliver option (insert --)"], id="no -- before recipient"),
    pytest.param({"argv": f"{VDELIVER} -c {{cf}} -f ${{sender}} -a ${{original_recipient}}"
                          " ${recipient}", "main": {"allow_min_user": "yes"}},
                 ["{svc}: argv has no -- before ${{recipient}}, and allow_min_user = yes: a"
                  " recipient that begins with - is read as a vdeliver option (insert --)"],
                 id="no -- before recipient, allow_min_user = yes"),
    pytest.param({"main": {"transport_maps": "hash:/nonexistent/transport"}},
                 ["vdeliver: error: Postfix: transport_maps hash:/nonexistent/transport: open"
                  " database /nonexistent/transport.db: No such file or directory (trivial-rewrite"
                  " cannot open it either: Postfix defers every message)"],
                 id="transport_maps that cannot be opened"),
    pytest.param({"main": {"virtual_mailbox_maps": None}},
                 ["vdeliver: error: Postfix: virtual_mailbox_maps is empty in main.cf: Postfix"
                  " accepts every address of its virtual mailbox domains, and vdeliver bounces the"
                  " unknown ones after Postfix took them (backscatter); set it as vdeliver.cf does"],
                 id="Postfix's virtual_mailbox_maps empty"),
    pytest.param({"main": {"virtual_mailbox_maps": "inline:{{carol@example.com=x, bob@example.com=x}}"}},
                 ["vdeliver: error: Postfix: 1 key(s) of main.cf's virtual_mailbox_maps are not in"
                  " vdeliver.cf's (such as carol@example.com): mail that Postfix accepts and vdeliver"
                  " bounces (backscatter)",
                  "vdeliver: warning: Postfix: 5 key(s) of vdeliver.cf's virtual_mailbox_maps are"
                  " not in main.cf's (such as @catchall.example): mail that Postfix refuses"],
                 id="Postfix's virtual_mailbox_maps with other keys"),
    pytest.param({"main": {"virtual_mailbox_domains": "example.com"}},
                 ["vdeliver: error: Postfix: domain catchall.example (in vdeliver's"
                  " virtual_mailbox_maps) is not in virtual_mailbox_domains: Postfix does not hand"
                  " its mail to virtual_transport"], id="domain not a virtual mailbox domain"),
    pytest.param({"main": {"mydestination": "localhost, example.com"}},
                 ["vdeliver: error: Postfix: domain example.com (in vdeliver's virtual_mailbox_maps)"
                  " is in mydestination: Postfix delivers it with local_transport, never to"
                  " vdeliver"], id="domain in mydestination"),
    pytest.param({"main": {"virtual_alias_domains": "catchall.example"}},
                 ["vdeliver: error: Postfix: domain catchall.example (in vdeliver's"
                  " virtual_mailbox_maps) is in virtual_alias_domains: Postfix rejects its addresses"
                  " that virtual_alias_maps lacks (User unknown in virtual alias table)"],
                 id="domain in virtual_alias_domains"),
])
def test_each_postfix_finding_is_one_exact_line(mail, postfix, change, wanted):
    change = dict(change)
    if "argv" in change:
        change["argv"] = change["argv"].replace("{cf}", mail.config_path)
    postfix.write(**change)
    svc = "vdeliver: error: Postfix: master.cf service vdeliver"
    assert check(mail, postfix=postfix) == (1, [
        line.format(svc=svc, base=mail.base, uid=mail.user.pw_uid, cf=mail.config_path,
                    user=mail.user.pw_name, table=mail.table_path)
        for line in wanted])


def test_postfix_maps_of_another_name_with_the_same_keys_are_fine(mail, postfix):
    """As in the e2e setup and many real ones: Postfix's own copy of the table."""
    copy = os.path.join(mail.top, "postfix-mailboxes")
    with open(mail.table_path) as fh, open(copy, "w") as out:
        out.write(fh.read())
    postfix.write(main={"virtual_mailbox_maps": f"proxy:texthash:{copy}"})
    assert check(mail, postfix=postfix) == (0, [])


def test_a_domain_list_in_a_table_is_asked_as_postfix_asks_it(mail, postfix):
    """virtual_mailbox_domains = texthash:FILE (or $virtual_mailbox_maps, Postfix's default):
    each hosted domain is looked up in it with postmap -q."""
    domains = os.path.join(mail.top, "domains")
    with open(domains, "w") as fh:
        fh.write("example.com ok\nexample.org ok\n")
    os.chmod(domains, 0o644)
    postfix.write(main={"virtual_mailbox_domains": f"texthash:{domains}"})
    assert check(mail, postfix=postfix) == (1, [
        "vdeliver: error: Postfix: domain catchall.example (in vdeliver's virtual_mailbox_maps) is"
        " not in virtual_mailbox_domains: Postfix does not hand its mail to virtual_transport"])
    postfix.write(main={"virtual_mailbox_domains": f"!catchall.example, texthash:{domains}"})
    assert check(mail, postfix=postfix)[1][0].startswith(
        "vdeliver: error: Postfix: domain catchall.example")
    with open(domains, "a") as fh:
        fh.write("catchall.example ok\n")
    postfix.write(main={"virtual_mailbox_domains": f"texthash:{domains}"})
    assert check(mail, postfix=postfix) == (0, [])


def test_a_postmap_table_older_than_its_source_is_named(mail, postfix):
    source = os.path.join(mail.top, "boxes")
    with open(source, "w") as fh:
        fh.write("bob@example.com example.com/bob/\n")
    os.chmod(source, 0o644)
    PostfixConfig(postfix.directory).build("cdb", source)
    os.chmod(source + ".cdb", 0o644)
    mail.write_config(maps=f"cdb:{source}")
    postfix.write(main={"virtual_mailbox_maps": f"cdb:{source}"})
    assert check(mail, postfix=postfix) == (0, [])
    later = time.time() + 5
    os.utime(source, (later, later))  # edited after postmap ran
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: warning: virtual_mailbox_maps: cdb:{source}: {source}.cdb is older than"
        f" {source}: run postmap cdb:{source} (until then, both Postfix and vdeliver answer from"
        " the old one)"])


def test_a_table_that_never_answers_is_a_finding_within_time_limit(mail, postfix):
    """A FIFO where a quota table should be: open() waits for a writer that never comes, as
    every delivery would (until its time_limit: 4.3.0). check names it after time_limit
    instead of hanging (it hung until the test's 60 s timeout before)."""
    fifo = os.path.join(mail.top, "quota-fifo")
    os.mkfifo(fifo, 0o644)
    mail.write_config(f"virtual_mailbox_quota_maps = texthash:{fifo}\ntime_limit = 2s\n")
    started = time.monotonic()
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: error: virtual_mailbox_quota_maps: texthash:{fifo}: no answer within"
        " time_limit (2s): every delivery would defer 4.3.0 (a FIFO, a server that accepts"
        " and never answers)"])
    assert time.monotonic() - started < 10


def test_flags_d_and_r_are_right_with_write_delivery_headers_no(mail, postfix):
    mail.write_config("write_delivery_headers = no\n")
    postfix.write(flags="DRXhu")
    assert check(mail, postfix=postfix) == (0, [])


def test_transport_maps_may_route_to_the_service(mail, postfix):
    transport = os.path.join(mail.top, "transport")
    with open(transport, "w") as fh:
        fh.write("example.com vdeliver:\n")
    postfix.write(main={"virtual_transport": "virtual", "transport_maps": f"texthash:{transport}"})
    assert check(mail, postfix=postfix) == (0, [])


def test_transport_maps_that_sends_a_hosted_domain_elsewhere(mail, postfix):
    """transport_maps comes before virtual_transport: example.com never reached vdeliver."""
    transport = os.path.join(mail.top, "transport")
    with open(transport, "w") as fh:
        fh.write("example.com smtp:[192.0.2.1]\ncatchall.example :\n")
    postfix.write(main={"transport_maps": f"texthash:{transport}"})
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: error: Postfix: domain example.com: transport_maps texthash:{transport} sends"
        " it to smtp:[192.0.2.1], not to vdeliver (transport_maps comes before"
        " virtual_transport)"])


def test_a_missing_main_cf_is_a_finding_not_a_traceback(mail, postfix):
    os.unlink(os.path.join(postfix.directory, "main.cf"))
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: error: Postfix: {postfix.directory}/main.cf: No such file or directory"
        " (Postfix is not configured there; name its directory with --postfix-config DIR)"])


# ------------------------------------------------------------------ Postfix's side: LMTP

LMTP_TRANSPORT = {"virtual_transport": "lmtp:unix:private/vdeliver-lmtp",
                  "vdeliver_destination_recipient_limit": None}


class LmtpDaemon:
    """The real `vdeliver --lmtp` on the private queue directory's socket."""

    def __init__(self, mail, listen, extra=""):
        self.pid_file = os.path.join(mail.top, "lmtpd.pid")
        self.listen = listen
        mail.write_config(f"lmtp_listen = unix:{listen}\nlmtp_pid_file = {self.pid_file}\n"
                          f"lmtp_user = {mail.user.pw_name}\n" + extra)
        self.proc = subprocess.Popen([VDELIVER, "--lmtp", "--foreground", "-c", mail.config_path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
        deadline = time.monotonic() + 15
        while not self.greets():
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, "the LMTP daemon did not start"
            time.sleep(0.05)

    def greets(self):
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(self.listen)
                return sock.recv(4).startswith(b"220")
        except OSError:
            return False

    def stop(self, signum=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        self.proc.wait(30)
        self.proc.stderr.close()


@pytest.fixture
def lmtpd(mail):
    started = []

    def start(listen, extra=""):
        started.append(LmtpDaemon(mail, listen, extra))
        return started[-1]
    yield start
    for daemon in started:
        daemon.stop()


def test_lmtp_a_clean_setup_has_no_findings(mail, postfix, lmtpd):
    lmtpd(postfix.socket)
    postfix.write(main=LMTP_TRANSPORT, pipe=False)
    assert check(mail, postfix=postfix) == (0, [])


def test_lmtp_socket_mode_that_postfix_cannot_connect_to(mail, postfix, lmtpd):
    lmtpd(postfix.socket, f"lmtp_socket_owner = {mail.user.pw_name}\nlmtp_socket_mode = 0660\n")
    postfix.write(main=LMTP_TRANSPORT, pipe=False)
    st = os.stat(postfix.socket)
    assert check(mail, postfix=postfix) == (1, [
        "vdeliver: error: Postfix: virtual_transport = lmtp:unix:private/vdeliver-lmtp: LMTP socket"
        f" {postfix.socket}: owner {st.st_uid}:{st.st_gid}, mode 0660: Postfix's lmtp client"
        " (mail_owner postfix) cannot connect (see lmtp_socket_owner, lmtp_socket_mode)"])


def test_lmtp_socket_in_a_directory_postfix_cannot_search(mail, postfix, lmtpd):
    """The socket's own mode lets postfix connect, but a directory above it does not let it
    through: every LMTP delivery would defer."""
    lmtpd(postfix.socket)
    postfix.write(main=LMTP_TRANSPORT, pipe=False)
    private = os.path.dirname(postfix.socket)
    os.chmod(private, 0o700)  # root's
    try:
        assert check(mail, postfix=postfix) == (1, [
            "vdeliver: error: Postfix: virtual_transport = lmtp:unix:private/vdeliver-lmtp: LMTP"
            f" socket {postfix.socket}: Postfix's lmtp client (mail_owner postfix) cannot reach it:"
            f" {private} is not searchable by postfix"])
    finally:
        os.chmod(private, 0o755)


def test_lmtp_socket_missing(mail, postfix):
    mail.write_config(f"lmtp_listen = unix:{postfix.socket}\n")
    postfix.write(main=LMTP_TRANSPORT, pipe=False)
    assert check(mail, postfix=postfix) == (1, [
        "vdeliver: error: Postfix: virtual_transport = lmtp:unix:private/vdeliver-lmtp: LMTP socket"
        f" {postfix.socket}: No such file or directory (is vdeliver --lmtp running?)"])


def test_lmtp_daemon_that_does_not_answer(mail, postfix, lmtpd):
    daemon = lmtpd(postfix.socket)
    daemon.stop(signal.SIGKILL)  # a crashed daemon leaves its socket behind
    postfix.write(main=LMTP_TRANSPORT, pipe=False)
    assert check(mail, postfix=postfix) == (1, [
        "vdeliver: error: Postfix: virtual_transport = lmtp:unix:private/vdeliver-lmtp: LMTP socket"
        f" {postfix.socket}: the LMTP daemon does not answer: Connection refused"])


def test_lmtp_socket_outside_the_queue_directory(mail, postfix, lmtpd):
    outside = os.path.join(mail.top, "lmtp.sock")
    lmtpd(outside)
    postfix.write(main={**LMTP_TRANSPORT, "virtual_transport": f"lmtp-nc:unix:{outside}"}, pipe=False,
                  services=STOCK_LMTP + "lmtp-nc   unix  -       -       n       -       -       lmtp\n")
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: error: Postfix: virtual_transport = lmtp-nc:unix:{outside}: LMTP socket {outside}"
        f" is outside Postfix's queue directory {postfix.spool}: a chrooted lmtp(8) cannot reach it"])


def test_lmtp_next_hop_that_is_not_vdeliver_socket(mail, postfix, lmtpd):
    lmtpd(postfix.socket)
    postfix.write(main={**LMTP_TRANSPORT, "virtual_transport": "lmtp:unix:private/dovecot-lmtp"},
                  pipe=False)
    assert check(mail, postfix=postfix) == (1, [
        "vdeliver: error: Postfix: no master.cf pipe service runs vdeliver and no lmtp: next hop of"
        " virtual_transport (lmtp:unix:private/dovecot-lmtp) or transport_maps is one of"
        " lmtp_listen's sockets"])


# ------------------------------------------------------------------ Sieve

BROKEN = b'require "fileinto";\nfileintoo "x";\n'
BROKEN_LINE = "line 2: error: unknown command 'fileintoo' (only reported once at first occurrence)."
GOOD = b'require "fileinto";\nif header :contains "subject" "x" { fileinto "X"; }\n'


def user_file(mail, relative, data):
    """A file in a user's Maildir, written as the delivery user would have it."""
    path = mail.path(relative)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    for where in (directory, os.path.dirname(directory)):
        os.chown(where, mail.user.pw_uid, mail.user.pw_gid)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chown(path, mail.user.pw_uid, mail.user.pw_gid)
    return path


def admin_file(mail, name, data):
    path = os.path.join(mail.top, name)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o644)
    return path


def test_sieve_admin_scripts_compile(mail, postfix):
    before = admin_file(mail, "before.sieve", BROKEN)
    scripts = os.path.join(mail.top, "after.d")
    os.mkdir(scripts)
    os.chmod(scripts, 0o755)
    for name, data in (("1-good.sieve", GOOD), ("2-bad.sieve", BROKEN), ("3-ignored.txt", BROKEN)):
        admin_file(mail, f"after.d/{name}", data)
    mail.write_config(f"sieve_before = {before}\nsieve_after = {scripts}\n")
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: error: sieve_before: Sieve script {before}: before: {BROKEN_LINE}",
        f"vdeliver: error: sieve_after: Sieve script {scripts}/2-bad.sieve: 2-bad: {BROKEN_LINE}"])


def test_sieve_personal_scripts_only_with_u(mail, postfix):
    script = user_file(mail, "example.com/bob/.dovecot.sieve", BROKEN)
    user_file(mail, "example.com/alice/.dovecot.sieve", GOOD)
    assert check(mail, postfix=postfix) == (0, [])
    wanted = f"vdeliver: error: bob@example.com: Sieve script {script}: .dovecot: {BROKEN_LINE}"
    assert check(mail, "-u", "bob@example.com", "-u", "alice@example.com",
                 postfix=postfix) == (1, [wanted])


def test_sieve_personal_script_that_leads_out_of_the_home(mail, postfix):
    link = mail.path("example.com/bob/.dovecot.sieve")
    user_file(mail, "example.com/bob/new/x", b"")
    os.symlink("/etc/passwd", link)
    assert check(mail, "-u", "bob@example.com", postfix=postfix) == (1, [
        f"vdeliver: error: bob@example.com: Sieve script {link}: {link} is a symlink that does not"
        " point to a file below the home"])


def test_sieve_u_with_an_unknown_address(mail, postfix):
    assert check(mail, "-u", "nobody@example.com", postfix=postfix) == (1, [
        "vdeliver: error: nobody@example.com: user unknown: nobody@example.com"])


def test_sieve_all_users_lists_what_can_be_listed(mail, postfix):
    import sqlite3
    bob = user_file(mail, "example.com/bob/.dovecot.sieve", BROKEN)
    carol = user_file(mail, "example.org/carol/.dovecot.sieve", BROKEN)
    database = os.path.join(mail.top, "boxes.sqlite")
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE boxes (address TEXT, maildir TEXT)")
        db.execute("INSERT INTO boxes VALUES ('carol@example.org', 'example.org/carol/')")
    os.chmod(database, 0o644)
    sqlite_cf = admin_file(mail, "boxes.cf", f"dbpath = {database}\n"
                           "query = SELECT maildir FROM boxes WHERE address = '%s'\n".encode())
    mail.write_table("bob@example.com example.com/bob/\nalice@example.com example.com/alice/\n"
                     "@catchall.example catchall/\nabs@example.com /etc/\n")
    mail.write_config(maps=f"texthash:{mail.table_path}, sqlite:{sqlite_cf}")
    postfix.write(main={"virtual_mailbox_maps": f"texthash:{mail.table_path}, sqlite:{sqlite_cf}"})
    code, lines = check(mail, "--all-users", postfix=postfix)
    assert (code, lines) == (1, [
        f"vdeliver: warning: --all-users: virtual_mailbox_maps: sqlite:{sqlite_cf}: a sqlite:"
        " table cannot be listed: its users' Sieve scripts are not checked (name them with"
        " -u ADDRESS)",
        f"vdeliver: error: bob@example.com: Sieve script {bob}: .dovecot: {BROKEN_LINE}",
        f"vdeliver: error: abs@example.com: texthash:{mail.table_path} result for abs@example.com"
        " is an absolute path"])
    code, lines = check(mail, "--all-users", "-u", "carol@example.org", postfix=postfix)
    assert code == 1 and lines[1:] == [
        f"vdeliver: error: carol@example.org: Sieve script {carol}: .dovecot: {BROKEN_LINE}",
        f"vdeliver: error: bob@example.com: Sieve script {bob}: .dovecot: {BROKEN_LINE}",
        f"vdeliver: error: abs@example.com: texthash:{mail.table_path} result for abs@example.com"
        " is an absolute path"], lines


def test_sieve_all_users_lists_indexed_tables_with_postmap(mail, postfix):
    dave = user_file(mail, "example.org/dave/.dovecot.sieve", BROKEN)
    source = admin_file(mail, "boxes", b"dave@example.org example.org/dave/\n@example.org x/\n")
    PostfixConfig(postfix.directory).build("lmdb", source)
    PostfixConfig(postfix.directory).build("cdb", source)
    postfix.write()
    os.chmod(source + ".lmdb", 0o644)
    os.chmod(source + ".cdb", 0o644)
    mail.write_table("bob@example.com example.com/bob/\n")
    mail.write_config(maps=f"texthash:{mail.table_path}, lmdb:{source}, cdb:{source}")
    postfix.write(main={"virtual_mailbox_maps": f"texthash:{mail.table_path}, lmdb:{source}, cdb:{source}"})
    assert check(mail, "--all-users", postfix=postfix) == (1, [
        f"vdeliver: warning: --all-users: virtual_mailbox_maps: cdb:{source}: a cdb: table cannot"
        " be listed: its users' Sieve scripts are not checked (name them with -u ADDRESS)",
        f"vdeliver: error: dave@example.org: Sieve script {dave}: .dovecot: {BROKEN_LINE}"])


def test_lmtp_a_pipe_entry_left_beside_it_needs_no_recipient_limit(mail, postfix, lmtpd):
    """As master.cf.snippet's LMTP part says: the pipe lines of main.cf go, its master.cf
    entry may stay (unused: only the entry itself is checked)."""
    lmtpd(postfix.socket)
    postfix.write(main=LMTP_TRANSPORT, argv=f"{VDELIVER} -- ${{recipient}}")
    assert check(mail, postfix=postfix) == (0, [])
    postfix.write(main=LMTP_TRANSPORT, user="user=root")
    assert check(mail, postfix=postfix) == (1, [
        "vdeliver: error: Postfix: master.cf service vdeliver: user=root: vdeliver never delivers"
        " as root (use the owner of virtual_mailbox_base)"])


def test_lmtp_inet_next_hop(mail, postfix, lmtpd):
    port = closed_port()  # free now: the daemon listens there
    daemon = lmtpd(postfix.socket, f"lmtp_listen = unix:{postfix.socket}, inet:127.0.0.1:{port}\n")
    route = f"lmtp:inet:127.0.0.1:{port}"
    postfix.write(main={**LMTP_TRANSPORT, "virtual_transport": route}, pipe=False)
    assert check(mail, postfix=postfix) == (0, [])
    daemon.stop()
    assert check(mail, postfix=postfix) == (1, [
        f"vdeliver: error: Postfix: virtual_transport = {route}: the LMTP daemon does not answer:"
        " Connection refused"])


def test_lmtp_refuses_write_delivery_headers_no(mail, postfix):
    mail.write_config(f"lmtp_listen = unix:{postfix.socket}\nwrite_delivery_headers = no\n")
    postfix.write(main=LMTP_TRANSPORT, pipe=False)
    code, lines = check(mail, postfix=postfix)
    assert code == 1 and lines[-1] == (
        "vdeliver: error: write_delivery_headers = no: the LMTP daemon refuses it (Postfix's lmtp"
        " client writes no Delivered-To: vdeliver must)"), lines
