"""Hostile Sieve scripts and layouts: every one ends in a delivery (keep in INBOX, or
what the script may legally do) within the limits, exit 0, no traceback, and
nothing written outside the recipient's mailbox.

The user owns ~/sieve and ~/.dovecot.sieve (ManageSieve writes them for him):
anything there is attacker-controlled. Folder names come from the script.
The checks, for every case (hostile()): exit 0 and the status of a sent
message; no Python traceback on stderr or in the log; the whole test top
directory walked before and after, and nothing outside the Maildir changed
(no new name, no file whose size or mtime changed, the maillog aside).
"""
import os
import signal
import time

import pytest

from functional.sievelayout import (BOX, MESSAGE, activate, folders_of, make_dirs, make_folder,
                                    message, own, read, stored, tmp_empty, write)

FILEINTO = 'require ["fileinto", "mailbox", "variables", "encoded-character"];\n'


def snapshot(mail):
    """{relative path: (size, mtime_ns)} of everything under the test's top directory
    but the recipient's Maildir and the maillog."""
    out = {}
    mailbox = mail.path(BOX)
    for directory, dirs, files in os.walk(mail.top):
        dirs[:] = [d for d in dirs if os.path.join(directory, d) != mailbox]
        for name in dirs + files:
            path = os.path.join(directory, name)
            if path in (mail.maillog, mailbox):
                continue
            st = os.lstat(path)
            out[os.path.relpath(path, mail.top)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def hostile(mail, stdin=MESSAGE, recipient="bob@example.com", limit=10.0):
    """Deliver and check what every hostile case must give; return (result, log line)."""
    before = snapshot(mail)
    started = time.monotonic()
    result = mail.run("-f", "sender@example.net", "--", recipient, stdin=stdin, timeout=60)
    elapsed = time.monotonic() - started
    assert (result.code, result.stdout) == (0, b""), result
    assert b"Traceback" not in result.stderr and b"Traceback" not in result.log, result
    (line,) = result.log.decode("utf-8", "replace").splitlines()
    assert "status=sent" in line, line
    assert elapsed < limit, f"delivery took {elapsed:.1f}s"
    assert snapshot(mail) == before, "something outside the mailbox changed"
    assert tmp_empty(mail)
    return result, line


def kept(mail):
    assert folders_of(mail) == {"": 1}, stored(mail)


# --------------------------------------------------------------------------- folder names

@pytest.mark.parametrize("name", [
    pytest.param("../../x", id="dotdot up"),
    pytest.param("a/b", id="slash with separator dot"),
    pytest.param(".hidden", id="leading dot"),
    pytest.param("Work..Urgent", id="empty component"),
    pytest.param("Work.", id="trailing separator"),
    pytest.param("..", id="dotdot alone"),
    pytest.param("Work.${hex:00}x", id="NUL byte"),
    pytest.param("Work${hex:0a}X-Evil", id="newline"),
    pytest.param("/etc", id="absolute"),
    pytest.param("new", id="name of a Maildir subdirectory"),
])
@pytest.mark.parametrize("create", [":create", ""])
def test_a_folder_name_the_layout_refuses_keeps_in_inbox(mail, name, create):
    activate(mail, FILEINTO + f'fileinto {create} "{name}";\n')
    make_dirs(mail, "example.com/alice")
    _, line = hostile(mail)
    if name == "new":  # an ordinary name: the folder .new
        assert folders_of(mail) == ({".new": 1} if create else {"": 1})
        return
    kept(mail)
    assert "kept in INBOX" in line, line
    assert sorted(os.listdir(mail.path(BOX))) == [".dovecot.sieve", ".dovecot.sieve.log", "cur", "new",
                                                  "sieve", "tmp"]


def test_invalid_utf8_from_hex_escapes_becomes_replacement_characters(mail):
    """${hex:ff fe} is not UTF-8: the name is read with U+FFFD for each bad byte, a
    folder inside the mailbox ("\ufffd\ufffd" in mUTF-7), never raw bytes in a path."""
    activate(mail, FILEINTO + 'fileinto :create "${hex:ff fe}";\n')
    hostile(mail)
    assert folders_of(mail) == {".&,,3,,Q-": 1}


def test_a_folder_that_is_a_symlink_is_not_followed(mail):
    elsewhere = os.path.join(mail.top, "elsewhere")
    for sub in ("", "/tmp", "/new", "/cur"):
        os.mkdir(elsewhere + sub, 0o700)
        os.chown(elsewhere + sub, mail.user.pw_uid, mail.user.pw_gid)
    make_dirs(mail, f"{BOX}/new")
    os.symlink(elsewhere, mail.path(f"{BOX}/.Work"))
    for script in ('fileinto "Work";', 'fileinto :create "Work";'):
        activate(mail, FILEINTO + script + "\n")
        hostile(mail)
        assert os.listdir(elsewhere + "/new") == [] and os.listdir(elsewhere + "/cur") == []
    assert folders_of(mail) == {"": 2}


def test_a_folder_name_too_long_for_the_filesystem_keeps_in_inbox(mail):
    """mkdir fails (ENAMETOOLONG): the script's fault, not the mail system's: never a
    deferral that repeats on every retry until the message bounces."""
    activate(mail, FILEINTO + 'fileinto :create "' + "x" * 300 + '";\n')
    _, line = hostile(mail)
    kept(mail)
    assert "cannot store into ." in line and "kept in INBOX" in line, line
    assert "cannot store into" in read(mail.path(f"{BOX}/.dovecot.sieve.log")).decode()


def test_a_symlinked_dovecot_keywords_is_not_followed(mail):
    target = os.path.join(mail.top, "keywords-elsewhere")
    with open(target, "w") as fh:
        fh.write("0 Stolen\n")
    os.chown(target, mail.user.pw_uid, mail.user.pw_gid)
    make_dirs(mail, f"{BOX}/new")
    os.symlink(target, mail.path(f"{BOX}/dovecot-keywords"))
    activate(mail, 'require "imap4flags";\naddflag ["\\\\Seen", "Project"];\n')
    hostile(mail)
    ((path, _),) = stored(mail).items()
    assert path.startswith("cur/") and path.endswith(":2,S"), path
    assert read(target) == b"0 Stolen\n"


# --------------------------------------------------------------------------- the script's location

def elsewhere_script(mail, name="x.sieve", text='require ["fileinto", "mailbox"];\nfileinto :create "Evil";\n'):
    """A script outside bob's home, readable by the delivery user."""
    directory = os.path.join(mail.top, "other")
    os.makedirs(directory, exist_ok=True)
    os.chown(directory, mail.user.pw_uid, mail.user.pw_gid)
    path = os.path.join(directory, name)
    with open(path, "w") as fh:
        fh.write(text)
    os.chown(path, mail.user.pw_uid, mail.user.pw_gid)
    return path


def link_active(mail, target):
    make_dirs(mail, f"{BOX}/sieve")
    link = mail.path(f"{BOX}/.dovecot.sieve")
    os.symlink(target, link)
    own(mail, link)


def test_a_symlinked_sieve_dir_is_not_followed(mail):
    """~/sieve -> a directory elsewhere: the ManageSieve link then passes through a
    symlink, which must not be followed (the script does not run)."""
    elsewhere_script(mail, "roundcube.sieve")
    make_dirs(mail, BOX)
    os.symlink(os.path.join(mail.top, "other"), mail.path(f"{BOX}/sieve"))
    os.symlink("sieve/roundcube.sieve", mail.path(f"{BOX}/.dovecot.sieve"))
    _, line = hostile(mail)
    kept(mail)
    assert "kept in INBOX" in line, line


def test_include_through_a_symlinked_sieve_dir_is_not_followed(mail):
    """The active script is a plain ~/.dovecot.sieve; ~/sieve, where include :personal
    looks, is a symlink to a directory elsewhere holding x.sieve: not read."""
    write(mail, f"{BOX}/.dovecot.sieve", 'require "include";\ninclude :personal "x";\n')
    elsewhere_script(mail)
    os.symlink(os.path.join(mail.top, "other"), mail.path(f"{BOX}/sieve"))
    _, line = hostile(mail)
    kept(mail)
    assert "included personal script 'x' does not exist" in line, line


@pytest.mark.parametrize("target", [
    pytest.param("../../other/x.sieve", id="relative out of the home"),
    pytest.param("{top}/other/x.sieve", id="absolute to a script"),
    pytest.param("/etc/passwd", id="absolute to /etc/passwd"),
    pytest.param("../bob/sieve/x.sieve", id="out and back in"),
    pytest.param("sieve/link.sieve", id="to a symlink in sieve/"),
    pytest.param("sieve", id="to a directory"),
    pytest.param("sieve/fifo.sieve", id="to a FIFO"),
    pytest.param(".dovecot.sieve", id="to itself"),
    pytest.param("sieve/../../../other/x.sieve", id="dotdot inside"),
])
def test_an_active_script_link_out_of_the_home_is_not_followed(mail, target):
    script = elsewhere_script(mail)
    link_active(mail, target.format(top=mail.top))
    write(mail, f"{BOX}/sieve/x.sieve", 'require ["fileinto", "mailbox"];\nfileinto :create "Evil";\n')
    os.symlink(script, mail.path(f"{BOX}/sieve/link.sieve"))
    os.mkfifo(mail.path(f"{BOX}/sieve/fifo.sieve"), 0o600)
    own(mail, mail.path(f"{BOX}/sieve/fifo.sieve"))
    _, line = hostile(mail)  # "../bob/...": it leaves the home, refused though it ends inside
    kept(mail)
    assert "sieve" in line and "kept in INBOX" in line, line


def test_etc_passwd_as_the_script_never_reaches_the_logs(mail):
    """A link to a file the user could not read himself: at most a compile error, and its
    text never copied into the user's log."""
    make_dirs(mail, BOX)
    os.symlink("/etc/passwd", mail.path(f"{BOX}/.dovecot.sieve"))
    _, line = hostile(mail)
    kept(mail)
    assert "root:" not in line
    log = mail.path(f"{BOX}/.dovecot.sieve.log")
    assert not os.path.exists(log) or b"root:" not in read(log)


# --------------------------------------------------------------------------- limits

def test_a_script_over_sieve_max_script_size_keeps(mail):
    body = "# padding\n" * ((2 << 20) // 10) + "discard;\n"
    activate(mail, body)
    assert os.path.getsize(mail.path(f"{BOX}/sieve/roundcube.sieve")) > 2_000_000
    _, line = hostile(mail)
    kept(mail)
    assert "larger than sieve_max_script_size" in line, line


def test_a_sparse_script_of_a_terabyte_is_not_read(mail):
    activate(mail, "discard;\n")
    with open(mail.path(f"{BOX}/sieve/roundcube.sieve"), "r+b") as fh:
        fh.truncate(1 << 40)
    _, line = hostile(mail, limit=5)
    kept(mail)
    assert "larger than sieve_max_script_size" in line, line


def test_an_included_script_over_the_size_limit(mail):
    activate(mail, 'require "include";\ninclude :personal "big";\ndiscard;\n')
    write(mail, f"{BOX}/sieve/big.sieve", "keep;\n" * ((2 << 20) // 6))
    _, line = hostile(mail)
    kept(mail)
    assert "kept in INBOX" in line, line


@pytest.mark.parametrize("pattern", [
    pytest.param("(a+)+$", id="nested quantifier"),
    pytest.param("(a|aa)+$", id="alternation"),
    pytest.param("(a*)*b$", id="star of star"),
    pytest.param("^(([a-z])+.)+[A-Z]([a-z])+$", id="OWASP example"),
])
def test_redos_regex_is_bounded(mail, pattern):
    activate(mail, 'require ["regex", "fileinto", "mailbox"];\n'
                   f'if header :regex "subject" "{pattern}" {{ fileinto :create "Matched"; }}\n')
    subject = "a" * 30000 + "!"
    hostile(mail, stdin=message(subject), limit=5)
    kept(mail)


def test_a_backreference_pattern_is_an_error_not_a_backtracking_match(mail):
    activate(mail, 'require ["regex", "fileinto"];\nif header :regex "subject" "^(a+)\\\\1$" { discard; }\n')
    _, line = hostile(mail, stdin=message("aaaa"))
    kept(mail)
    assert "kept in INBOX" in line, line


@pytest.mark.parametrize("depth", [40, 5000])
def test_deep_nesting_is_a_compile_error(mail, depth):
    activate(mail, 'if true { ' * depth + "discard;" + " }" * depth + "\n")
    _, line = hostile(mail)
    kept(mail)
    assert "kept in INBOX" in line, line


@pytest.mark.parametrize("test", [
    pytest.param(lambda depth: "not " * depth + "false", id="not not not"),
    pytest.param(lambda depth: "allof(" * depth + "true" + ")" * depth, id="allof nested"),
    pytest.param(lambda depth: "anyof(" * depth + "false" + ")" * depth, id="anyof nested"),
])
@pytest.mark.parametrize("depth", [40, 20000])
def test_deeply_nested_tests_are_a_compile_error(mail, test, depth):
    activate(mail, f"if {test(depth)} {{ discard; }}\n")
    _, line = hostile(mail)
    kept(mail)
    assert "kept in INBOX" in line, line


def test_deep_nesting_of_strings_lists_and_blocks_without_recursion_error(mail):
    activate(mail, "if header :is " + "[" * 100000 + '"x"' + "]" * 100000 + ' "y" { discard; }\n')
    hostile(mail)
    kept(mail)


@pytest.mark.parametrize("script", [
    pytest.param(FILEINTO + "".join(f'fileinto :create "F{n}";\n' for n in range(10000)),
                 id="10000 fileinto :create"),
    pytest.param('require "imap4flags";\n' + "".join(f'addflag "k{n}";\n' for n in range(10000))
                 + "keep;\n" * 10000, id="10000 keeps with flags"),
    pytest.param("".join(f'redirect "u{n}@example.org";\n' for n in range(10000)), id="10000 redirects"),
    pytest.param('require ["vacation", "copy"];\n'
                 + "".join(f'redirect :copy "u{n}@example.org";\n' for n in range(100)), id="100 redirect copy"),
])
def test_many_actions_end_in_keep(mail, script):
    activate(mail, script)
    _, line = hostile(mail, limit=15)
    kept(mail)
    assert sorted(n for n in os.listdir(mail.path(BOX)) if n.startswith(".F")) == []
    assert len(line) < 4000, "the log line stays bounded"


def test_sieve_max_actions_is_the_admins(mail):
    mail.write_config("sieve_max_actions = 3\n")
    activate(mail, FILEINTO + "".join(f'fileinto :create "F{n}";\n' for n in range(3)))
    hostile(mail)
    assert folders_of(mail) == {".F0": 1, ".F1": 1, ".F2": 1}
    activate(mail, FILEINTO + "".join(f'fileinto :create "G{n}";\n' for n in range(4)))
    hostile(mail)
    assert folders_of(mail) == {".F0": 1, ".F1": 1, ".F2": 1, "": 1}


@pytest.mark.parametrize("files", [
    pytest.param({"roundcube": 'require "include"; include "roundcube";'}, id="includes itself"),
    pytest.param({"roundcube": 'require "include"; include "a";',
                  "a": 'require "include"; include "b";',
                  "b": 'require "include"; include "a";'}, id="a b a loop"),
    pytest.param({"roundcube": 'require "include"; include "l0";',
                  **{f"l{n}": f'require "include"; include "l{n + 1}";' for n in range(20)},
                  "l20": "keep;"}, id="21 levels deep"),
    pytest.param({"roundcube": 'require "include"; include "a"; include "a"; include "b";',
                  "a": 'require "include"; include :global "a";', "b": "discard;"}, id="global loop"),
    pytest.param({"roundcube": 'require "include"; include "../sieve/a";', "a": "discard;"},
                 id="slash in name"),
])
def test_include_loops_and_depth_end_in_keep(mail, files):
    global_dir = os.path.join(mail.top, "global")
    os.mkdir(global_dir)
    with open(os.path.join(global_dir, "a.sieve"), "w") as fh:
        fh.write('require "include"; include :personal "roundcube";\n')
    mail.write_config(f"sieve_global_dir = {global_dir}\n")
    activate(mail, files["roundcube"] + "\n")
    for name, text in files.items():
        if name != "roundcube":
            write(mail, f"{BOX}/sieve/{name}.sieve", text + "\n")
    _, line = hostile(mail)
    kept(mail)
    assert "kept in INBOX" in line, line


def test_a_huge_variable_is_capped(mail):
    """Doubling a variable 40 times would be a terabyte: it stops at the
    variables extension's size limit; fileinto with it is a name the layout refuses."""
    activate(mail, FILEINTO + 'set "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";\n'
             + 'set "a" "${a}${a}";\n' * 40 + 'fileinto :create "${a}";\n')
    _, line = hostile(mail)
    kept(mail)
    assert "kept in INBOX" in line, line


def test_a_huge_header_is_bounded(mail):
    activate(mail, 'require ["variables", "fileinto", "mailbox"];\n'
                   'if header :matches "subject" "*" { set "s" "${1}"; }\n'
                   'if header :contains "subject" "${s}${s}${s}" { discard; }\n')
    hostile(mail, stdin=message("s" * (8 << 20)), limit=15)
    kept(mail)


def test_a_cpu_limit_ends_a_slow_script_in_keep(mail):
    """Many :matches against a long subject: sieve_max_cpu_time (1s here) ends the run."""
    mail.write_config("sieve_max_cpu_time = 1s\n")
    tests = "".join(f'if header :matches "subject" "*a*b*c*d*e*f*g*{n}" {{ discard; }}\n'
                    for n in range(3000))
    activate(mail, tests)
    _, line = hostile(mail, stdin=message("a" * 200000), limit=20)
    kept(mail)


# --------------------------------------------------------------------------- the delivery's own limits

SLOW = "".join('if header :contains "x-a" [' + ", ".join(f'"k{n}"' for n in range(200)) + '] { discard; }\n'
               for _ in range(40))
SLOW_MESSAGE = b"Subject: slow\n" + b"X-A: vvvvvvvv\n" * 60000 + b"\nbody\n"


def test_the_time_limit_ends_a_slow_sieve_run(mail):
    """time_limit (2s) fires while the script runs (sieve_max_cpu_time is larger): the
    delivery defers 4.3.0 as anywhere else; the interpreter must not take the time
    limit for a script error and keep the message (exit 0 after the limit)."""
    mail.write_config("time_limit = 2s\nsieve_max_cpu_time = 120s\n")
    activate(mail, SLOW)
    started = time.monotonic()
    result = mail.run("-f", "s@x", "--", "bob@example.com", stdin=SLOW_MESSAGE, timeout=60)
    assert time.monotonic() - started < 8
    assert result.code == 75 and result.stdout.startswith(b"4.3.0 delivery time limit exceeded"), result
    assert stored(mail) == {} and tmp_empty(mail)


def test_sigterm_ends_a_slow_sieve_run(mail):
    mail.write_config("sieve_max_cpu_time = 120s\n")
    activate(mail, SLOW)
    proc = mail.popen("-f", "s@x", "--", "bob@example.com")
    proc.stdin.write(SLOW_MESSAGE)
    proc.stdin.close()
    time.sleep(2)
    assert proc.poll() is None, "the script should still be running"
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 75 and out.startswith(b"4.3.0 delivery interrupted"), (proc.returncode, out)
    assert stored(mail) == {} and tmp_empty(mail)


def test_a_symlinked_home_is_not_used(mail):
    """virtual_home_maps names a home that is a symlink: not followed, no script runs."""
    homes = os.path.join(mail.top, "homes")
    mail.write_table("bob@example.com homes/bob/\n", homes)
    mail.write_config(f"virtual_home_maps = texthash:{homes}\n")
    activate(mail, "discard;\n", box="real-home")
    make_dirs(mail, "homes")
    make_dirs(mail, BOX)
    os.symlink(mail.path("real-home"), mail.path("homes/bob"))
    _, line = hostile(mail)
    kept(mail)
    assert "home" in line and "not used" in line, line


def test_concurrent_deliveries_adding_keywords_agree_on_dovecot_keywords(mail):
    """20 deliveries at once, each with its own new keyword, into one folder: the dotlock
    (dovecot-keywords.lock, rename) gives each keyword one number, and every message's
    letter names its own keyword."""
    make_folder(mail, ".Work")
    activate(mail, 'require ["fileinto", "imap4flags", "variables"];\n'
                   'if header :matches "subject" "*" { set "k" "${1}"; }\n'
                   'fileinto :flags "${k}" "Work";\n')
    procs = [mail.popen("-f", "s@x", "--", "bob@example.com") for _ in range(20)]
    for number, proc in enumerate(procs):
        proc.stdin.write(message(f"kw{number}"))
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=60) == 0
        proc.stdout.close()
        proc.stderr.close()
    table = {}
    for line in read(mail.path(f"{BOX}/.Work/dovecot-keywords")).decode().splitlines():
        number, name = line.split(" ", 1)
        table[chr(ord("a") + int(number))] = name
    assert sorted(table.values()) == sorted(f"kw{n}" for n in range(20))
    files = stored(mail)
    assert len(files) == 20
    for path in files:
        letter = path.rsplit(":2,", 1)[1]
        subject = read(mail.path(f"{BOX}/{path}")).split(b"Subject: ", 1)[1].split(b"\n", 1)[0]
        assert table[letter] == subject.decode(), (path, table)
    assert not os.path.exists(mail.path(f"{BOX}/.Work/dovecot-keywords.lock"))
    assert tmp_empty(mail)


@pytest.mark.parametrize("create", ["", ":create"])
def test_a_long_folder_name_keeps_the_log_line_whole(mail, create):
    """The maillog line is cut at 2000 characters: the outcome ("kept in INBOX") must
    not be what is cut off behind a 3000-character folder name."""
    activate(mail, FILEINTO + f'fileinto {create} "' + "y" * 3000 + '";\n')
    _, line = hostile(mail)
    kept(mail)
    assert line.endswith("kept in INBOX)"), line[-200:]


def test_the_time_limit_ends_a_slow_compile(mail):
    """Compiling is not bounded by sieve_max_cpu_time: a 0.9 MB script including three
    scripts of 0.3 MB each (within the 1M all includes share) takes seconds. time_limit (1s) must still
    end the delivery (4.3.0), not become a compile error that keeps the message after it."""
    mail.write_config("time_limit = 1s\n")
    activate(mail, 'require "include";\n' + "".join(f'include :personal "p{n}";\n' for n in range(3))
             + "if true { keep; }\n" * 50000)  # the script itself: 0.9 MB more
    for n in range(3):
        write(mail, f"{BOX}/sieve/p{n}.sieve", f"# {n}\n" + "if true { keep; }\n" * 17000)
    started = time.monotonic()
    result = mail.run("-f", "s@x", "--", "bob@example.com", timeout=120)
    assert time.monotonic() - started < 8
    assert result.code == 75 and result.stdout.startswith(b"4.3.0 delivery time limit exceeded"), result
    assert stored(mail) == {} and tmp_empty(mail)
