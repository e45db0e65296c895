"""Hibernation in real processes: an idle range stops ticking, a read wakes it (through a quorum
round, not a lease), and when the hibernated leader's process dies a follower notices through
the store liveness beats and takes over."""

from __future__ import annotations

import time

from tests.integration.client import Client
from tests.integration.cluster import wait_for
from tests.integration.conftest import MakeCluster

IDLE_TICKS = ["--hibernate-idle-ticks", "5"]


def all_hibernated(client: Client, n: int) -> bool:
    statuses = client.statuses()
    return len(statuses) == n and all(st.hibernated for st in statuses.values())


def test_idle_range_hibernates_a_read_wakes_it_and_a_dead_leader_is_replaced(
        make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_args=IDLE_TICKS)
    client = Client(cluster)
    try:
        client.put(b"k", b"v")
        leader = client.wait_leader()
        wait_for(lambda: all_hibernated(client, 3), 15, "every replica to hibernate")
        before = client.status(leader)
        assert before.role == "leader" and not before.lease_valid

        assert client.get(b"k") == b"v"
        after = client.status(leader)
        assert after.read_index_reads == before.read_index_reads + 1, "the read did not take a quorum round"
        assert after.lease_reads == before.lease_reads

        wait_for(lambda: all_hibernated(client, 3), 15, "the range to hibernate again")
        cluster.kill(leader)
        killed = time.monotonic()
        new = client.wait_leader(timeout=15, exclude=[leader])
        print(f"a follower took over {time.monotonic() - killed:.2f}s after the hibernated leader died")
        assert new != leader
        client.put(b"k", b"w")
        assert client.get(b"k") == b"w"
    finally:
        client.close()
