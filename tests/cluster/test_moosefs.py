"""The cluster tests on a real distributed filesystem: MooseFS 3.0 from Debian.

A master and a chunkserver in the root namespace on the bridge address, and one FUSE
mount (mfsmount) per delivery host, made inside that host's own network and mount
namespaces (cluster.Storage): the hosts share nothing but what MooseFS carries between
them, including the fcntl locks (MooseFS 3.0 has global POSIX locks, kept by the master).
Smaller bursts than on ext4 (FUSE on two shared cores is slow); the same assertions.
"""
import collections
import threading

import cluster
from cluster import DOMAIN
from test_cluster import SHARED, TIGHT, check_store

STORAGE = "moosefs"
MESSAGES = 2000


def test_a_burst_rotated_over_three_moosefs_clients_one_killed(cluster_up, postfix):
    """No quota mailbox in this burst: a host killed while it holds a maildirsize.lock
    leaves that lock with the MooseFS master, which kept it for more than five minutes
    here (the mailbox defers 4.2.0 meanwhile: nothing lost, but the test would wait), the
    counterpart of NFS lock recovery after a client's death (README, Several hosts). The
    quota's exactness across the three clients is the next test's, with no host killed."""
    c = cluster_up
    c.set_transports({DOMAIN: "lmtp:inet:vdpool:24"})
    recipients = {seq: c.users[seq % len(c.users)] for seq in range(MESSAGES)}
    killed = []

    def kill_h2():
        killed.append(c.hosts[1].daemon_pid())
        c.hosts[1].kill()

    accepted, refused, seconds = cluster.burst(postfix, recipients, [(4, kill_h2)])
    assert not refused and killed and killed[0]
    c.replace(2)
    cluster.drain(postfix)
    records, duplicates, per_host = check_store(c, postfix, recipients, accepted, (2,))
    assert all(per_host[f"h{i}"] > 0 for i in (1, 2, 3)), per_host
    print(f"\nMooseFS: {len(records)} files in {seconds:.1f}s of submission, "
          f"{len(duplicates)} duplicates, per host {dict(per_host)}")


def test_a_count_quota_filled_from_three_moosefs_clients_accepts_exactly_its_limit(cluster_up):
    """The maildirsize.lock fcntl lock travels through the MooseFS master: 90 deliveries
    at once from three mounts, exactly 50 accepted. (With flock, which MooseFS keeps per
    mount, the three hosts would not exclude each other.)"""
    c = cluster_up
    barrier = threading.Barrier(90)
    replies = []

    def deliver(host, seq):
        barrier.wait(timeout=30)
        replies.append(cluster.lmtp_deliver(host.address, TIGHT, cluster.message(seq)))

    threads = [threading.Thread(target=deliver, args=(c.hosts[k % 3], 500000 + k))
               for k in range(90)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    codes = collections.Counter(code for code, _ in replies)
    assert codes[250] == 50 and sum(codes.values()) == 90, codes
    assert all(text.startswith("4.2.") for code, text in replies if code != 250), replies
    assert len(c.files(TIGHT)) == 50
    assert cluster.maildirsize_totals(c, TIGHT) == cluster.store_totals(c, TIGHT)
    assert SHARED  # the shared mailbox is checked by the burst above


def test_three_moosefs_clients_create_one_new_mailbox_at_once(cluster_up):
    c = cluster_up
    users = [f"new{k}@{DOMAIN}" for k in range(10)]
    barrier = threading.Barrier(3 * len(users))
    replies = []

    def deliver(host, user, seq):
        barrier.wait(timeout=30)
        replies.append(cluster.lmtp_deliver(host.address, user, cluster.message(seq)))

    threads = [threading.Thread(target=deliver, args=(host, user, 600000 + k * 3 + host.index))
               for k, user in enumerate(users) for host in c.hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert replies == [(250, "")] * 30, replies
    for user in users:
        assert len(c.files(user)) == 3 and c.files(user, "tmp") == []
