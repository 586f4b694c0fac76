"""Every postmap/postconf command line of the tests: each with a private config directory.

Nothing in the tests reads the system's /etc/postfix (issue 11): a Debian
Postfix installed without configuration has no main.cf there, and postmap
dies without one; an empty one means compatibility_level 0 and so
smtputf8_enable = no; a developer's main.cf may say anything. So each
command gets `-c DIR` (and a clean environment: no MAIL_CONFIG from the
caller), and DIR/main.cf states what the comparisons depend on:

  compatibility_level = 3.6
  smtputf8_enable = yes | no      (how postmap folds and treats non-UTF-8)
  meta_directory = DIR            (dynamicmaps.cf, the plugin list, is also
                                   read from there, not from /etc/postfix)

DIR/dynamicmaps.cf lists the plugins installed in shlib_directory
(/usr/lib/postfix/postfix-TYPE.so), in Debian's format.

Never: run postmap or postconf without `-c DIR`; read or write /etc/postfix.
"""
import glob
import os
import subprocess
import time

POSTMAP = "/usr/sbin/postmap"
POSTCONF = "/usr/sbin/postconf"
SHLIB_DIRECTORY = "/usr/lib/postfix"
MODES = ("yes", "no")  # smtputf8_enable
# The plugins whose tables postmap can also write (mkmap_TYPE_open), as Postfix's
# own conf/dynamicmaps.cf and Debian's list them.
WRITABLE_PLUGINS = ("cdb", "lmdb")
ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def postfix_command(program, config_directory, *args):
    """[program, -c, config_directory, *args]; refuses the system's directory."""
    if os.path.realpath(config_directory).startswith("/etc/postfix"):
        raise ValueError(f"{program}: the tests never use the system's {config_directory}")
    return [program, "-c", str(config_directory), *map(os.fsdecode, args)]


class PostfixConfig:
    """A private Postfix configuration directory and the commands that use it."""

    def __init__(self, directory, smtputf8_enable="yes", compatibility_level="3.6"):
        if smtputf8_enable not in MODES:
            raise ValueError(f"smtputf8_enable = {smtputf8_enable}: expected yes or no")
        self.directory = str(directory)
        self.smtputf8_enable = smtputf8_enable
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "main.cf"), "w") as fh:
            fh.write("# private main.cf of the vdeliver tests (tests/postfix_config.py)\n"
                     f"compatibility_level = {compatibility_level}\n"
                     f"smtputf8_enable = {smtputf8_enable}\n"
                     f"meta_directory = {self.directory}\n")
        with open(os.path.join(self.directory, "master.cf"), "w") as fh:
            fh.write("# no services: only postmap and postconf use this directory\n")
        with open(os.path.join(self.directory, "dynamicmaps.cf"), "w") as fh:
            fh.write(dynamicmaps_text())
        # Postfix re-reads a file changed within the last second until it "cools
        # down" (dict_load_file()): 2 s per command with a new main.cf.
        past = time.time() - 60
        for name in ("main.cf", "master.cf", "dynamicmaps.cf"):
            os.utime(os.path.join(self.directory, name), (past, past))
        self.supported = self.types()

    def postmap(self, *args):
        return postfix_command(POSTMAP, self.directory, *args)

    def postconf(self, *args):
        return postfix_command(POSTCONF, self.directory, *args)

    def run(self, argv, **kwargs):
        """subprocess.run(argv) with this directory's clean environment."""
        kwargs.setdefault("env", dict(ENVIRONMENT))
        return subprocess.run(argv, **kwargs)

    def types(self):
        """The table types this Postfix supports (postconf -m)."""
        done = self.run(self.postconf("-m"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, check=True)
        return set(done.stdout.split())

    def build(self, kind, source):
        """`postmap kind:source`, the table built as this configuration says."""
        self.run(self.postmap(f"{kind}:{source}"), check=True, stderr=subprocess.DEVNULL)


def dynamicmaps_text():
    lines = ["# dict-type\tso-name (pathname)\tdict-function\tmkmap-function\n"]
    for path in sorted(glob.glob(f"{SHLIB_DIRECTORY}/postfix-*.so")):
        name = os.path.basename(path)
        kind = name[len("postfix-"):-len(".so")]
        mkmap = f"\tmkmap_{kind}_open" if kind in WRITABLE_PLUGINS else ""
        lines.append(f"{kind}\t{name}\tdict_{kind}_open{mkmap}\n")
    return "".join(lines)
