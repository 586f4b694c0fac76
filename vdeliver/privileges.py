"""Never write mail as root: become the owner of virtual_mailbox_base.

pipe(8) already runs vdeliver as user= (it refuses root). An admin testing
by hand as root gets the base owner's uid and gid, and no supplementary
groups (as pipe(8) does), before any table is read.

Never: continue as root. Raises ConfigError (defer) when the base is owned by
root or cannot be examined.
"""
import posix

from vdeliver.errors import ConfigError


def drop_root(base):
    if posix.geteuid() != 0 and posix.getuid() != 0:
        return
    try:
        st = posix.stat(base)
    except OSError as err:
        raise ConfigError(f"virtual_mailbox_base {base}: {err.strerror}") from None
    if st.st_uid == 0 or st.st_gid == 0:
        raise ConfigError(f"running as root and virtual_mailbox_base {base} is owned by root"
                          " (or group root): refusing to write mail as root")
    posix.setgroups([st.st_gid])
    posix.setgid(st.st_gid)
    posix.setuid(st.st_uid)
    if posix.geteuid() == 0 or posix.getuid() == 0:
        raise ConfigError("could not give up root privileges")
