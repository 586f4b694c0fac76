"""Sieve scripts and folders laid out as Pigeonhole, ManageSieve and Roundcube leave them.

For the tests of Sieve at delivery (test_sieve_delivery.py, test_lmtp_sieve.py,
tests/faults/test_fault_sieve.py): everything below the mail base is made as
the delivery user would have made it (owner vmail, mode 0700/0600), so that
only the layout under test differs from a real mailbox.

- activate(): ~/sieve/NAME.sieve plus the relative symlink ~/.dovecot.sieve ->
  sieve/NAME.sieve, as ManageSieve's SETACTIVE (and so Roundcube) leaves it;
- make_folder(): a Maildir++ folder as Dovecot creates it (tmp/ new/ cur/ and
  the maildirfolder marker);
- stored(): every message file of a Maildir and its folders, for assertions on
  where copies landed and whether they are one inode.
"""
import os

BOX = "example.com/bob"
MESSAGE = b"From: sender@example.net\nTo: bob@example.com\nSubject: hello\n\nbody line\n"


def message(subject="hello", headers=b""):
    return (b"From: sender@example.net\nTo: bob@example.com\nSubject: " + subject.encode()
            + b"\n" + headers + b"\nbody line\n")


def own(mail, path):
    os.lchown(path, mail.user.pw_uid, mail.user.pw_gid)


def make_dirs(mail, relative, mode=0o700):
    """mail.base/relative and its missing parents, owned by the delivery user."""
    path = mail.base
    for part in relative.strip("/").split("/"):
        path = os.path.join(path, part)
        if not os.path.isdir(path):
            os.mkdir(path, mode)
            own(mail, path)
    return path


def write(mail, relative, data, mode=0o600):
    """A file below the base (parents made), owned by the delivery user."""
    make_dirs(mail, os.path.dirname(relative))
    path = mail.path(relative)
    with open(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    own(mail, path)
    return path


def activate(mail, script, name="roundcube", box=BOX):
    """ManageSieve's layout in the home `box`: sieve/NAME.sieve and the active-script link."""
    write(mail, f"{box}/sieve/{name}.sieve", script)
    link = mail.path(f"{box}/.dovecot.sieve")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(f"sieve/{name}.sieve", link)
    own(mail, link)
    return link


def make_folder(mail, directory, box=BOX):
    """The Maildir++ folder `directory` (e.g. ".Work.Urgent") as Dovecot creates it."""
    for sub in ("tmp", "new", "cur"):
        make_dirs(mail, f"{box}/{directory}/{sub}")
    write(mail, f"{box}/{directory}/maildirfolder", b"")
    for sub in ("tmp", "new", "cur"):
        make_dirs(mail, f"{box}/{sub}")


def stored(mail, box=BOX):
    """{'[FOLDER/]SUB/NAME': os.stat} of every message in new/ and cur/ of the Maildir
    and its folders: 'new/NAME' for INBOX, '.Work/cur/NAME:2,S' for a folder."""
    found = {}
    root = mail.path(box)
    if not os.path.isdir(root):
        return found
    for folder in [""] + sorted(n for n in os.listdir(root) if n.startswith(".")
                                and os.path.isdir(os.path.join(root, n))):
        for sub in ("new", "cur"):
            directory = os.path.join(root, folder, sub)
            for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
                found[os.path.join(folder, sub, name)] = os.stat(os.path.join(directory, name))
    return found


def folders_of(mail, box=BOX):
    """{folder: number of messages} ('' is INBOX), folders without messages left out."""
    counts = {}
    for path in stored(mail, box):
        folder = path.split("/", 1)[0] if path.startswith(".") else ""
        counts[folder] = counts.get(folder, 0) + 1
    return counts


def folder_of(path):
    """'.Work/new/NAME' -> '.Work'; 'new/NAME' -> '' (INBOX)."""
    return path.split("/", 1)[0] if path.startswith(".") else ""


def tmp_empty(mail, box=BOX):
    """True when no tmp/ of the Maildir or of a folder holds a file."""
    root = mail.path(box)
    for top, _, files in os.walk(root):
        if os.path.basename(top) == "tmp" and files:
            return False
    return True


def read(path):
    with open(path, "rb") as fh:
        return fh.read()
