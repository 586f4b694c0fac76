"""A sendmail_path program that keeps what it is given, for the tests of Sieve's
outgoing mail below the e2e tier (test_sieve_outgoing.py, tests/faults/
test_fault_outgoing.py): each call leaves N.args (its argv, one per line) and
N.msg (its stdin) in the outbox directory, and exits with the number in the
outbox's `exit` file (0 without one). The end-to-end tests use Postfix's own
sendmail instead (tests/e2e/test_e2e_outgoing.py).
"""
import email
import email.policy
import os

SCRIPT = """#!/bin/sh
dir='{outbox}'
code=0
[ -f "$dir/exit" ] && code=$(cat "$dir/exit")
if [ "$code" != 0 ]; then cat >/dev/null; echo "refused by the test" >&2; exit "$code"; fi
n=$(date +%s%N).$$
cat > "$dir/$n.part"
printf '%s\\n' "$@" > "$dir/$n.args"
env > "$dir/$n.env"
mv "$dir/$n.part" "$dir/$n.msg"
"""


class Outbox:
    def __init__(self, mail):
        self.dir = os.path.join(mail.top, "outbox")
        os.mkdir(self.dir, 0o700)
        os.chown(self.dir, mail.user.pw_uid, mail.user.pw_gid)
        self.program = os.path.join(mail.top, "sendmail")
        with open(self.program, "w") as fh:
            fh.write(SCRIPT.format(outbox=self.dir))
        os.chmod(self.program, 0o755)

    def config(self, extra=""):
        return f"sendmail_path = {self.program} -C /nonexistent/dir\n" + extra

    def fail_with(self, code):
        path = os.path.join(self.dir, "exit")
        with open(path, "w") as fh:
            fh.write(f"{code}\n")
        os.chmod(path, 0o644)

    def sent(self):
        """[(argv after sendmail_path's own words, message bytes)] in the order sent."""
        out = []
        for name in sorted(n for n in os.listdir(self.dir) if n.endswith(".msg")):
            stem = os.path.join(self.dir, name[:-4])
            with open(stem + ".args") as fh:
                args = fh.read().splitlines()
            with open(stem + ".msg", "rb") as fh:
                out.append((args, fh.read()))
        return out


    def environments(self):
        """[{name: value}] of the environment each call got, in the order sent."""
        out = []
        for name in sorted(n for n in os.listdir(self.dir) if n.endswith(".env")):
            with open(os.path.join(self.dir, name)) as fh:
                out.append(dict(line.split("=", 1) for line in fh.read().splitlines() if "=" in line))
        return out


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def envelope(args):
    """(sender, [recipients]) of a `-C dir -i -f SENDER -- RCPT...` command line."""
    assert args[:2] == ["-C", "/nonexistent/dir"], args
    assert args[2] == "-i" and args[3] == "-f" and args[5] == "--", args
    return args[4], args[6:]
