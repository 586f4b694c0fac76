"""The built-in example setup: a config, a texthash table and a local mail base.

    python -m vdeliver.example DIR

writes DIR/vdeliver.cf, DIR/mailboxes and DIR/mail/ (the base), for a first
delivery by hand (scripts/demo). Run as root, it gives the base to the
delivery user (vmail), since vdeliver never writes mail as root.

Never: overwrite an existing config or table.
"""
import os
import pwd
import sys

CONFIG = """\
# vdeliver example configuration (vdeliver.cf(5)), written by vdeliver.example
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = texthash:{dir}/mailboxes
recipient_delimiter = +
maillog_file = {dir}/maillog
"""

TABLE = """\
# address               mailbox (relative to virtual_mailbox_base; trailing / = Maildir)
bob@example.com         example.com/bob/
alice@example.com       example.com/alice/
@example.org            example.org/catchall/
"""


def write_example(directory, user="vmail"):
    directory = os.path.abspath(directory)
    os.makedirs(os.path.join(directory, "mail"), exist_ok=True)
    os.chmod(directory, 0o755)
    for name, text in (("vdeliver.cf", CONFIG.format(dir=directory)), ("mailboxes", TABLE)):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            with open(path, "w") as fh:
                fh.write(text)
            os.chmod(path, 0o644)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(user)
        for path in (os.path.join(directory, "mail"), os.path.join(directory, "maillog")):
            if not os.path.exists(path):
                open(path, "w").close()
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return os.path.join(directory, "vdeliver.cf")


if __name__ == "__main__":
    print(write_example(sys.argv[1] if len(sys.argv) > 1 else "demo"))
