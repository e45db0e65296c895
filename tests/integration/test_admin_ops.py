"""``kvdb admin`` steering a real cluster (PD members and stores as processes, the command as a
subprocess, as an operator runs it).

Moving a replica and a leader by hand shows in the range's descriptor; an operator that cannot
finish (its target store stopped) is listed and cancelled; settings, schedulers and labels go
through PD's replicated config and come back as set, bad values refused with one line; a
decommission under a write load moves every replica off the store with no acknowledged write
lost (the histories are checked for linearizability), and the store ends TOMBSTONE; a cancelled
decommission leaves the store UP with its replicas. A killed store's replica shows down until it
is back, and evict-leader passes over a replica its leader cannot hear (planted: PD ignoring down
replicas when it picks the new leader fails that test).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import kvdb.client.aio as client_aio
from kvdb.pb import metapb_pb2, pdpb_pb2
from tests.integration.client import PdHandle
from tests.integration.cluster import free_ports, wait_for
from tests.integration.conftest import MakePdCluster
from tests.integration.test_client_linearizable import ATTEMPT_TIMEOUT, Workload

BALANCERS = ("balance-region", "balance-leader", "hot-region")
KEYS = [b"a", b"f", b"k", b"p", b"u", b"z"]


def admin(pd: PdHandle, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvdb", "admin", *args, "--pd", pd.cluster.pd_endpoints,
                           "--timeout", "20"], capture_output=True, text=True, timeout=timeout)


def ok(pd: PdHandle, *args: str) -> str:
    result = admin(pd, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(pd: PdHandle, *args: str) -> str:
    """The one-line error of a request PD refuses (exit 3)."""
    result = admin(pd, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result
    assert lines[0].startswith(f"kvdb admin {args[0]}: ") and "Traceback" not in result.stderr
    return lines[0]


def stores_of(info: pdpb_pb2.RangeInfo) -> set[int]:
    return {p.store_id for p in info.descriptor.peers}


def pause_balancing(pd: PdHandle) -> None:
    """Hand-made moves are checked against a cluster the schedulers leave alone."""
    for row in json.loads(ok(pd, "schedulers", "--json")):
        ok(pd, "schedulers", "pause", row["name"])


def test_move_replica_and_transfer_leader_show_in_the_descriptor(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_stores=4)
    first = pd.wait_voters(3)
    pause_balancing(pd)
    range_id = first.descriptor.id
    spare = next(sid for sid in cluster.stores if sid not in stores_of(first))
    # The leader's own replica moves: leadership is handed to another voter first.
    leader = wait_for(lambda: pd.first_range().leader.store_id, 15, "a leader of the first range")
    row = json.loads(ok(pd, "move-replica", str(range_id), "--from", str(leader), "--to", str(spare),
                        "--wait", "--json"))
    assert (row["status"], row["kind"], row["origin"]) == ("success", "move-replica", "admin")
    assert row["steps"] == 4  # transfer leader, add learner, replace voter, remove the old one
    info = pd.first_range()
    assert stores_of(info) == stores_of(first) - {leader} | {spare}
    assert all(p.role == metapb_pb2.VOTER for p in info.descriptor.peers) and not info.joint

    out = ok(pd, "transfer-leader", str(range_id), str(spare), "--wait")
    assert "ended success" in out, out
    assert pd.first_range().leader.store_id == spare

    # What PD refuses, it refuses at once with the reason, and the range is left as it was.
    other = next(iter(stores_of(info) - {spare}))
    words = refused(pd, "move-replica", str(range_id), "--from", str(spare), "--to", str(other))
    assert f"already has a replica on store {other}" in words
    assert "has no replica on store" in refused(pd, "transfer-leader", str(range_id), str(leader))
    assert "range 999999 is unknown" in refused(pd, "transfer-leader", "999999", str(spare))
    assert "store 77 is unknown" in refused(pd, "move-replica", str(range_id), "--from", str(spare),
                                            "--to", "77")
    assert pd.first_range().descriptor.epoch == info.descriptor.epoch
    history = json.loads(ok(pd, "operators", "--all", "--json"))
    assert [(r["kind"], r["status"]) for r in history if r["origin"] == "admin"] == [
        ("move-replica", "success"), ("transfer-leader", "success")]
    cluster.assert_all_running()


def test_an_operator_that_cannot_finish_is_listed_and_cancelled(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster()
    first = pd.wait_voters(3)
    pause_balancing(pd)
    leader = wait_for(lambda: pd.first_range().leader.store_id, 15, "a leader of the first range")
    target = next(sid for sid in stores_of(first) if sid != leader)
    cluster.stores[target].pause()  # it can never take over; PD still counts it UP for a second
    try:
        op = pd.run(pd.client.add_operator(first.descriptor.id, transfer_leader=target))
        running = json.loads(ok(pd, "operators", "--json"))
        peer = next(p.id for p in first.descriptor.peers if p.store_id == target)
        assert [(r["id"], r["status"], r["current"]) for r in running] == [
            (op.id, "running", f"TRANSFER_LEADER {peer}@s{target}")]
        table = ok(pd, "operators").splitlines()
        assert table[0].split()[:3] == ["ID", "RANGE", "KIND"] and table[1].split()[:3] == [
            str(op.id), str(first.descriptor.id), "transfer-leader"]
        out = ok(pd, "operators", "--cancel", str(op.id))
        assert out.startswith(f"operator {op.id} cancelled"), out
        assert json.loads(ok(pd, "operators", "--json")) == []
        # Again: not an error (a retry after a lost answer looks the same), it stays cancelled.
        again = ok(pd, "operators", "--cancel", str(op.id))
        assert again.startswith(f"operator {op.id} cancelled"), again
        finished = json.loads(ok(pd, "operators", "--all", "--json"))
        assert [r["status"] for r in finished if r["id"] == op.id] == ["cancelled"]
        assert "operator 999999 is unknown" in refused(pd, "operators", "--cancel", "999999")
    finally:
        cluster.stores[target].resume()
    assert pd.first_range().leader.store_id != target
    cluster.assert_all_running()


def test_settings_schedulers_labels_and_status(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    assert ok(pd, "config", "set", "store_limit", "2").strip() == "store_limit = 2"
    assert ok(pd, "config", "set", "max_range_size", "64MiB").strip() == f"max_range_size = {64 << 20}"
    shown = json.loads(ok(pd, "config", "show", "--json"))
    assert (shown["store_limit"], shown["max_range_size"], shown["replica_count"]) == (2, 64 << 20, 3)
    assert "store_limit" in ok(pd, "config")  # the table
    for args, words in ((["replica_count", "4"], "odd"), (["store_limit", "0"], "positive"),
                        (["replicas", "3"], "unknown setting 'replicas'; known: replica_count"),
                        (["store_down_ms", "10"], "must exceed the store disconnect time"),
                        (["evict_leader_stores", "42"], "store 42 is unknown")):
        assert words in refused(pd, "config", "set", *args)
    assert json.loads(ok(pd, "config", "--json")) == shown  # nothing changed

    assert "unknown scheduler 'balance-merge'" in refused(pd, "schedulers", "pause", "balance-merge")
    assert "now evicting from: 2" in ok(pd, "schedulers", "evict-leader", "2")
    assert json.loads(ok(pd, "config", "--json"))["evict_leader_stores"] == [2]
    assert "now evicting from: none" in ok(pd, "schedulers", "evict-leader", "2", "--cancel")

    assert ok(pd, "store-labels", "1", "zone=a", "rack=r1").strip() == "store 1 labels: zone=a,rack=r1"
    stores = {r["id"]: r for r in json.loads(ok(pd, "stores", "--json"))}
    assert stores[1]["labels"] == {"zone": "a", "rack": "r1"} and stores[2]["labels"] == {}
    assert "store 9 is unknown" in refused(pd, "store-labels", "9", "zone=a")
    cluster.kill(1)  # a store that registers again without labels of its own keeps those set here
    cluster.restart(1)
    restarted_ms = int(time.time() * 1000)  # it registers (PutStore) before it heartbeats
    wait_for(lambda: pd.stores()[1].last_heartbeat_ms > restarted_ms, 30, "store 1 to heartbeat again")
    labels = {r["id"]: r["labels"] for r in json.loads(ok(pd, "stores", "--json"))}
    assert labels[1] == {"zone": "a", "rack": "r1"}

    # A PD member added (never started here) shows as a learner, and is removed again.
    address = f"127.0.0.1:{free_ports(1)[0]}"
    out = ok(pd, "members", "add", address)
    assert out.startswith("added PD member ") and f"--listen {address} " in out, out
    learners = [r for r in json.loads(ok(pd, "members", "--json")) if r["learner"]]
    assert [r["address"] for r in learners] == [address]
    new_id = learners[0]["id"]
    assert ok(pd, "members", "remove", str(new_id)).startswith(f"removed PD member {new_id}")
    assert [r["address"] for r in json.loads(ok(pd, "members", "--json"))] == [
        cluster.pd[mid].address for mid in sorted(cluster.pd)]

    status = json.loads(ok(pd, "status", "--json"))
    assert len(status["members"]) == 3 and status["leader"]["id"] == pd.leader_member()
    assert [s["state"] for s in status["stores"]] == ["UP"] * 3 and status["range_count"] == 1
    assert status["imbalance"]["ranges"] == {"max": 1, "min": 1, "mean": 1.0, "max_over_mean_percent": 0.0,
                                             "min_under_mean_percent": 0.0}
    text = ok(pd, "status")
    assert text.startswith("PD members: 3, leader ") and "Stores: 3 (3 UP)" in text and "Ranges: 1" in text
    cluster.assert_all_running()


def test_a_killed_stores_replica_shows_down_until_it_is_back(make_pd_cluster: MakePdCluster) -> None:
    """The range's leader reports the replica on a store it stopped hearing from (PD's schedulers
    leave the range alone and hand it no leadership); `kvdb admin ranges` shows it."""
    cluster, pd = make_pd_cluster()
    info = pd.wait_voters(3)
    victim = next(p for p in info.descriptor.peers if p.store_id != info.leader.store_id)
    assert not info.down_peer_ids
    cluster.kill(victim.store_id)
    wait_for(lambda: list(pd.first_range().down_peer_ids) == [victim.id], 30,
             f"PD to hear that peer {victim.id} is down", interval=0.05)
    row = json.loads(ok(pd, "ranges", "--json"))[0]
    assert [(r["peer_id"], r["down"]) for r in row["replicas"] if r["down"]] == [(victim.id, True)]
    assert f"{victim.id}@s{victim.store_id}(down)" in ok(pd, "ranges")
    cluster.restart(victim.store_id)
    wait_for(lambda: not pd.first_range().down_peer_ids, 30, f"peer {victim.id} to be up again",
             interval=0.05)
    assert not any(r["down"] for r in json.loads(ok(pd, "ranges", "--json"))[0]["replicas"])


def test_evict_leader_hands_no_leadership_to_a_replica_the_leader_cannot_hear(
        make_pd_cluster: MakePdCluster) -> None:
    """The store PD would pick (fewest leaders, then lowest id) is UP for PD but cut off from the
    leader's store: reported down, it is passed over, and the leadership goes to the other one
    (without the report the transfer would go to it and never happen)."""
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    for name in BALANCERS:  # evict-leader keeps running
        ok(pd, "schedulers", "pause", name)
    wait_for(lambda: not json.loads(ok(pd, "operators", "--json")), 30, "balance-leader's operators to end")
    info = pd.first_range()
    leader_store = info.leader.store_id
    cut, other = sorted(p.store_id for p in info.descriptor.peers if p.store_id != leader_store)
    cut_peer = next(p.id for p in info.descriptor.peers if p.store_id == cut)
    client = pd.kv_client()

    def busy_range() -> pdpb_pb2.RangeInfo:
        """PD's record of the range, after a write: writes keep the range awake, so the store still
        hearing the leader refuses the cut store's votes (a hibernated one would grant them)."""
        client.put(b"k", b"v")
        return pd.first_range()

    try:
        client.isolate(cut, [leader_store])
        wait_for(lambda: list(busy_range().down_peer_ids) == [cut_peer], 30,
                 f"PD to hear that peer {cut_peer} is down", interval=0.05)
        assert pd.stores()[cut].state == pdpb_pb2.UP
        ok(pd, "schedulers", "evict-leader", str(leader_store))
        wait_for(lambda: busy_range().leader.store_id == other, 30,
                 f"the leadership to move to store {other}", interval=0.05)
        client.isolate(cut, [leader_store], on=False)
    finally:
        client.close()


def test_schedulers_pause_and_resume(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_stores=1)
    listed = {r["name"]: r["paused"] for r in json.loads(ok(pd, "schedulers", "--json"))}
    assert set(listed) >= {*BALANCERS, "evict-leader"} and not any(listed.values())
    assert ok(pd, "schedulers", "pause", "balance-leader").strip() == "scheduler balance-leader paused"
    listed = {r["name"]: r["paused"] for r in json.loads(ok(pd, "schedulers", "--json"))}
    assert listed["balance-leader"] and not listed["balance-region"]
    assert json.loads(ok(pd, "config", "--json"))["paused_schedulers"] == ["balance-leader"]
    assert "balance-leader" in ok(pd, "status")  # "Schedulers paused: balance-leader"
    # Replicated: the next PD leader keeps it paused.
    cluster.kill_pd(pd.leader_member())
    listed = {r["name"]: r["paused"] for r in json.loads(ok(pd, "schedulers", "--json"))}
    assert listed["balance-leader"]
    assert ok(pd, "schedulers", "resume", "balance-leader").strip() == "scheduler balance-leader running"
    assert json.loads(ok(pd, "config", "--json"))["paused_schedulers"] == []


def test_decommission_under_load_loses_no_write_and_ends_tombstone(
        make_pd_cluster: MakePdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_aio, "ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT)
    cluster, pd = make_pd_cluster(n_stores=4)
    pd.wait_voters(3)
    pd.run(pd.client.split_ranges([b"d", b"h", b"m", b"s"], 30))
    victim = max(cluster.stores, key=lambda sid: sum(sid in stores_of(r)
                                                     for r in pd.run(pd.client.scan_ranges(b""))))
    workload = Workload(cluster.pd_endpoints, keys=KEYS)
    workload.thread.start()
    try:
        workload.phase("to start with")
        started = time.monotonic()
        out = ok(pd, "decommission", str(victim))
        assert out.startswith(f"store {victim} is OFFLINE"), out

        def emptied() -> bool:
            ranges = pd.run(pd.client.scan_ranges(b""))
            return not any(victim in stores_of(r) for r in ranges)

        wait_for(emptied, 120, f"every replica to leave store {victim}", interval=0.2)
        wait_for(lambda: pd.stores()[victim].state == pdpb_pb2.TOMBSTONE, 30,
                 f"store {victim} to be a tombstone", interval=0.2)
        took = time.monotonic() - started
        workload.phase("after the decommission")
    finally:
        workload.finish()
    workload.checked(phases=2)
    ranges = pd.run(pd.client.scan_ranges(b""))
    assert len(ranges) == 5 and all(len(stores_of(r)) == 3 and victim not in stores_of(r) for r in ranges)
    stores = {r["id"]: r for r in json.loads(ok(pd, "stores", "--json"))}
    assert victim not in stores  # tombstones are not listed
    assert "TOMBSTONE" in refused(pd, "decommission", "--cancel", str(victim))
    print(f"decommission of store {victim} ({sum(1 for _ in ranges)} ranges) under load took {took:.1f}s")
    cluster.assert_all_running()


def test_a_cancelled_decommission_keeps_the_store_and_its_replicas(make_pd_cluster: MakePdCluster) -> None:
    # Stores count as UP for 5 s of silence: long enough to set things up around a stopped one.
    slow = ["--store-down-ms", "20000", "--store-disconnect-ms", "5000"]
    cluster, pd = make_pd_cluster(n_stores=4, pd_args=slow)
    first = pd.wait_voters(3)
    pause_balancing(pd)
    leader = wait_for(lambda: pd.first_range().leader.store_id, 15, "a leader of the first range")
    victim, held = sorted(stores_of(first) - {leader})
    range_id = first.descriptor.id
    cluster.stores[held].pause()
    try:
        # A hand-made operator that cannot finish holds the range: the replica checker cannot move
        # the victim's replica meanwhile, so what the cancel leaves is exactly what was there.
        op = pd.run(pd.client.add_operator(range_id, transfer_leader=held))
        assert pd.run(pd.client.set_store_state(victim, pdpb_pb2.OFFLINE)).state == pdpb_pb2.OFFLINE
        # Another decommission now would leave 2 UP stores for 3 replicas.
        assert "would leave 2 UP stores for 3 replicas per range" in refused(pd, "decommission", str(leader))
        out = ok(pd, "decommission", "--cancel", str(victim))
        assert out.startswith(f"store {victim} is UP"), out
        pd.run(pd.client.cancel_operator(op.id))
    finally:
        cluster.stores[held].resume()
    assert pd.stores()[victim].state == pdpb_pb2.UP
    assert victim in stores_of(pd.first_range())
    made = [r for r in json.loads(ok(pd, "operators", "--all", "--json")) if r["id"] > op.id]
    assert made == [], made  # nothing moved the victim's replica since
    assert "not being decommissioned (it is UP)" in refused(pd, "decommission", "--cancel", str(victim))
    cluster.assert_all_running()
