"""Leader leases on real stores: reads under a lease cost no Raft round, and a leader cut off
from its followers stops serving reads once its lease runs out, so it never answers a value
that a newer leader has already overwritten."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc

from kvdb.pb import adminpb_pb2, kvrpc_pb2
from tests.integration.client import Client, error_kind
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import MakeCluster

NO_HIBERNATE = ["--no-hibernate"]
"""These tests watch the lease of a steady leader; a hibernated (idle) range holds none."""


def test_lease_reads_do_no_raft_round(make_cluster: MakeCluster) -> None:
    # A longer lease (0.5 s election timeout - 0.05 s drift) than the other tests use, so that a
    # store starved of CPU on a shared machine does not lose it between heartbeats mid-test.
    cluster = make_cluster(tick_interval=0.05, max_clock_drift=0.05, extra_args=NO_HIBERNATE)
    client = Client(cluster)
    client.put(b"k", b"v")
    leader = client.wait_leader()
    # Warm up: the leader has applied an entry of its term and holds a lease.
    wait_for(lambda: client.status(leader).lease_valid, 10, "the leader's lease")

    before = client.status(leader)
    followers = [sid for sid in (1, 2, 3) if sid != leader]
    # Followers learn the commit index with the next heartbeat (docs/raft.md, broadcast_commit).
    wait_for(lambda: all(client.status(sid).commit_index == before.commit_index for sid in followers), 10,
             "the followers to learn the commit index")
    followers_before = {sid: client.status(sid) for sid in followers}
    n_stream, n_unary = 2000, 50
    reqs = [kvrpc_pb2.Request(id=i, get=client.request("get", key=b"k")) for i in range(n_stream)]
    responses = client.batch(leader, reqs, per_message=n_stream)
    assert len(responses) == n_stream and all(r.get.value == b"v" for r in responses)
    for _ in range(n_unary):
        body = client.attempt(leader, "get", client.request("get", key=b"k"))
        assert error_kind(body) is None and body.value == b"v"
    after = client.status(leader)

    assert after.term == before.term and after.role == "leader"
    assert after.lease_reads - before.lease_reads == n_stream + n_unary
    assert after.read_index_reads == before.read_index_reads
    # No Raft entry was written for them: nothing proposed, the log and commit index did not move.
    assert after.proposals == before.proposals
    assert (after.commit_index, after.last_index) == (before.commit_index, before.last_index)
    for sid, st in followers_before.items():
        now = client.status(sid)
        assert (now.term, now.last_index, now.commit_index) == (st.term, st.last_index, st.commit_index)
    client.close()


@dataclass
class Answer:
    invoke: float
    complete: float
    value: bytes | None
    """The value a successful get returned; None for an error, a timeout or not-found."""
    error: str


def hammer_gets(client: Client, store_id: int, key: bytes, stop: threading.Event, out: list[Answer]) -> None:
    """Send gets to one store, one at a time, recording every answer with its interval."""
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        invoke = time.monotonic()
        try:
            body = client.attempt(store_id, "get", client.request("get", key=key), timeout=0.3)
        except grpc.RpcError as exc:
            out.append(Answer(invoke, time.monotonic(), None, str(exc.code())))
            continue
        err = error_kind(body)
        value = None if err or body.not_found else body.value
        out.append(Answer(invoke, time.monotonic(), value, err or ""))


@dataclass
class Sample:
    store_id: int
    sent: float
    received: float
    status: adminpb_pb2.RangeStatus


def watch_status(client: Client, stop: threading.Event, out: list[Sample]) -> None:
    """Poll every store's RangeStatus round-robin, recording when each answer was asked for and came."""
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        for sid in (1, 2, 3):
            sent = time.monotonic()
            st = client.status(sid, timeout=0.5)
            if st is not None:
                out.append(Sample(sid, sent, time.monotonic(), st))


def test_cut_off_leader_stops_serving_stale_reads(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_args=NO_HIBERNATE)
    client = Client(cluster)
    try:
        cut_off_leader_stops_serving_stale_reads(cluster, client)
    finally:
        client.close()


def cut_off_leader_stops_serving_stale_reads(cluster: Cluster, client: Client) -> None:
    client.put(b"k", b"old")
    old = client.wait_leader()
    others = [sid for sid in (1, 2, 3) if sid != old]
    wait_for(lambda: client.status(old).lease_valid, 10, "the leader's lease")

    old_term = client.status(old).term
    probe, watcher = Client(cluster), Client(cluster)
    answers: list[Answer] = []
    samples: list[Sample] = []
    stop = threading.Event()
    threads = [threading.Thread(target=watch_status, args=(watcher, stop, samples), daemon=True),
               threading.Thread(target=hammer_gets, args=(probe, old, b"k", stop, answers), daemon=True)]
    threads[0].start()
    try:
        wait_for(lambda: any(s.store_id == old and s.status.lease_valid for s in samples), 5,
                 "the watcher to see the leader's lease")
        client.isolate(old, others)
        threads[1].start()
        wait_for(lambda: not client.status(old).lease_valid, 5, "the cut-off leader's lease to expire")
        lease_reads_at_expiry = client.status(old).lease_reads


        def put_new() -> int | None:
            sid = client.find_leader(exclude=[old])
            if sid is None:
                return None
            try:
                body = client.attempt(sid, "put", client.request("put", key=b"k", value=b"new"))
            except grpc.RpcError:
                return None
            return sid if error_kind(body) is None else None

        new = wait_for(put_new, 10, "the new leader to accept a write")
        new_acked = time.monotonic()
        assert client.attempt(new, "get", client.request("get", key=b"k")).value == b"new"

        # The old leader notices it lost its quorum (CheckQuorum) and says so.
        def stepped_down() -> bool:
            return bool(answers) and answers[-1].error == "not_leader" and answers[-1].invoke > new_acked

        wait_for(stepped_down, 5, "the old leader to answer not-leader")
        st = client.status(old)
        assert st.role != "leader" and not st.lease_valid
        assert st.lease_reads == lease_reads_at_expiry, "lease reads served after the lease expired"
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(5)
        probe.close()
        watcher.close()

    # The lease promise itself: the old leader's lease ended before anyone else led. Its lease
    # runs at least until (asked + remaining) of any answer that called it valid; a new leader
    # existed at the latest when an answer naming it arrived.
    new_led = min(s.received for s in samples if s.store_id != old and s.status.role == "leader")
    lease_end = max(s.sent + s.status.lease_remaining_ms / 1000 for s in samples
                    if s.store_id == old and s.status.lease_valid and s.status.term == old_term)
    assert lease_end <= new_led, f"the old lease ran {lease_end - new_led:.3f}s into the new leader's term"

    stale = [a for a in answers if a.value == b"old" and a.invoke > new_acked]
    assert not stale, f"the cut-off leader answered the overwritten value: {stale[:3]}"
    assert not [a for a in answers if a.value == b"new"], "the cut-off leader cannot know the new value"
    assert any(a.invoke > new_acked for a in answers), "no get reached the old leader after the new write"

    client.isolate(old, others, on=False)
    client.wait_caught_up([old])
    st, nst = client.status(old), client.status(new)
    assert st.role == "follower" and st.term == nst.term and st.leader_id == nst.peer_id
    body = client.attempt(old, "get", client.request("get", key=b"k"))
    assert error_kind(body) == "not_leader" and body.error.not_leader.leader.store_id == new
    assert body.error.not_leader.leader_address == cluster.address(new)
    client.transfer_leader(old)
    assert client.attempt(old, "get", client.request("get", key=b"k")).value == b"new"
    cluster.assert_all_running()
