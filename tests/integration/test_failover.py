"""kill -9 of the leader: a new leader takes over without losing an acknowledged write, and the
killed store, restarted, catches up well enough to lead and serve everything. SIGTERM is the
orderly stop: exit status 0, and the store resumes from its data."""

from __future__ import annotations

import itertools
import threading
import time

import grpc

from kvdb.pb import adminpb_pb2, kvrpc_pb2
from tests.integration.client import Client, Unanswered, error_kind
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import MakeCluster

CHUNK = 50


class AckedWriter(threading.Thread):
    """Puts ``keys`` through Batch streams to whoever leads, recording each acknowledged key.

    A key counts as acknowledged only when its own put answered success; everything else (a
    stream cut by the kill, not-leader, stale command) is sent again, to the new leader.
    """

    def __init__(self, cluster: Cluster, keys: list[bytes], timeout: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.client = Client(cluster)
        self.keys = keys
        self.timeout = timeout
        self.acked: dict[bytes, bytes] = {}
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    @staticmethod
    def value_of(key: bytes) -> bytes:
        return b"value-of-" + key

    def acked_now(self) -> dict[bytes, bytes]:
        with self.lock:
            return dict(self.acked)

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # surfaced by finish() in the test's thread
            self.error = exc
        finally:
            self.client.close()

    def _write(self) -> None:
        pending = list(self.keys)
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            sid = self.client.leader or self.client.wait_leader()
            chunk = pending[:CHUNK]
            reqs = [kvrpc_pb2.Request(id=i, put=self.client.request("put", key=k, value=self.value_of(k)))
                    for i, k in enumerate(chunk)]
            try:
                responses = self.client.batch(sid, reqs, timeout=5)
            except grpc.RpcError as exc:
                responses = exc.partial
                self.client.leader = None
            with self.lock:
                for r in responses:
                    if error_kind(r.put) is None:
                        self.acked[chunk[r.id]] = self.value_of(chunk[r.id])
                    else:
                        self.client.follow(r.put.error)
            pending = [k for k in pending if k not in self.acked]

    def finish(self, timeout: float = 40.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the writer did not finish"
        if self.error is not None:
            raise self.error
        missing = len(self.keys) - len(self.acked)
        assert missing == 0, f"{missing} keys never acknowledged"


def write_all(cluster: Cluster, keys: list[bytes]) -> None:
    writer = AckedWriter(cluster, keys)
    writer.start()
    writer.finish()


def test_kill_leader_loses_no_acknowledged_write(cluster: Cluster, client: Client) -> None:
    keys = [b"key%05d" % i for i in range(1500)]
    writer = AckedWriter(cluster, keys)
    old = client.wait_leader()
    writer.start()
    wait_for(lambda: len(writer.acked_now()) >= 400, 20, "400 acknowledged writes")
    cluster.kill(old)
    acked_at_kill = writer.acked_now()
    assert len(acked_at_kill) < len(keys), "the kill came after the last write: nothing was in flight"

    new = client.wait_leader(exclude=[old])
    assert new != old
    writer.finish()
    held = client.scan_all(new)
    lost = [k for k in acked_at_kill if held.get(k) != acked_at_kill[k]]
    assert not lost, f"{len(lost)} writes acknowledged before the kill are gone, e.g. {lost[:5]}"
    assert {k: held.get(k) for k in keys} == writer.acked_now()
    assert sorted(cluster.running_ids()) == sorted({1, 2, 3} - {old})


def test_leadership_is_not_handed_to_a_killed_follower(cluster: Cluster, client: Client) -> None:
    """PD counts a store UP for seconds after it died and re-sends a transfer with every heartbeat
    answer; each transfer the leader accepted stopped its writes for an election timeout."""
    leader = client.wait_leader()
    follower = next(sid for sid in cluster.running_ids() if sid != leader)
    dead_peer = client.status(follower).peer_id
    cluster.kill(follower)
    request = adminpb_pb2.TransferLeaderRequest(cluster_id=cluster.cluster_id, range_id=client.range_id,
                                                to_peer_id=dead_peer)

    def refused() -> str | None:
        error = client.admin(leader).TransferLeader(request, timeout=2).error
        return error.message if error.WhichOneof("kind") == "server_busy" else None

    # Until the leader misses the follower's answers (at most an election timeout) it may still accept.
    words = wait_for(refused, 10, "the transfer to the killed follower to be refused")
    assert f"peer {dead_peer} has not answered the leader recently" in words

    def put_at_once(n: int) -> bool:
        req = client.request("put", key=b"k%d" % n, value=b"v")
        return error_kind(client.attempt(leader, "put", req)) is None

    wait_for(lambda: put_at_once(0), 10, "a transfer accepted before the refusals to run out")
    for n in range(1, 11):  # PD asking again and again: the writes go on
        assert refused() is not None
        assert put_at_once(n), f"put {n} was refused while transfers to the dead follower were asked for"
    assert client.find_leader() == leader


def test_restarted_store_catches_up_and_leads(cluster: Cluster, client: Client) -> None:
    first = [b"a%04d" % i for i in range(300)]
    second = [b"b%04d" % i for i in range(700)]
    write_all(cluster, first)
    victim = client.wait_leader()
    cluster.kill(victim)
    write_all(cluster, second)  # while the victim is down: it must fetch all of it after the restart
    leader = client.wait_leader(exclude=[victim])
    behind = client.status(leader).commit_index

    cluster.restart(victim)
    index = client.wait_caught_up([victim])
    assert index >= behind
    st = client.status(victim)
    assert st.role == "follower" and st.applied_index >= behind

    client.transfer_leader(victim)
    held = client.scan_all(victim)
    assert held == {k: AckedWriter.value_of(k) for k in first + second}
    client.put(b"after", b"restart")
    assert client.get(b"after") == b"restart" and client.leader == victim
    cluster.assert_all_running()


def test_sigterm_stops_a_store_cleanly_and_it_resumes(cluster: Cluster, client: Client) -> None:
    write_all(cluster, [b"t%03d" % i for i in range(100)])
    leader = client.wait_leader()
    assert cluster.stop(leader) == 0, cluster.log_tail(leader)
    assert "stopped" in cluster.log_tail(leader, lines=3)
    client.wait_leader(exclude=[leader])
    client.put(b"while-stopped", b"1")
    cluster.restart(leader)
    client.wait_caught_up([leader])
    client.transfer_leader(leader)
    held = client.scan_all(leader)
    assert len(held) == 101 and held[b"while-stopped"] == b"1"


FAILOVER_ROUNDS = 3
MAX_GAP = 3.0
"""Seconds without a successful operation that a leader's kill -9 may cost: an election at the
default ticks (0.5 s timeout) takes about 1 s; issue 10 (item 8) measured 3.1-6.6 s when the
transport lost the survivors' pre-votes to a store restarted earlier."""
DOWN_SECONDS = 2.5
"""How long a killed store stays down while the others serve: long enough for their transports'
reconnect backoff to reach its cap (0.05 s doubling to 1 s: 1.55 s), where issue 10 lost the
first batches to a store that came back."""


class Operator(threading.Thread):
    """Puts (or gets) through the test client in a loop, noting when each one succeeds."""

    def __init__(self, cluster: Cluster, kind: str, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"{kind}s")
        self.client = Client(cluster)
        self.kind = kind
        self.stop = stop
        self.successes: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                fields = {"key": b"k%d" % (n % 100)}
                if self.kind == "put":
                    fields["value"] = b"v%d" % n
                try:
                    body = self.client.call(self.kind, timeout=1.0, try_timeout=0.5, **fields)
                except Unanswered:
                    continue
                if error_kind(body) is None:
                    self.successes.append(time.monotonic())
        except BaseException as exc:  # surfaced by the test's thread
            self.error = exc
        finally:
            self.client.close()

    def succeeded_after(self, t: float) -> bool:
        return bool(self.successes) and self.successes[-1] > t

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time in [start, end] without a success (the edges count as successes)."""
        times = [start, *(t for t in self.successes if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


def test_kill_and_restart_rounds_keep_unavailability_short(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(tick_interval=0.05, max_clock_drift=0.1)  # the production defaults
    client = Client(cluster)
    stop = threading.Event()
    ops = [Operator(cluster, "put", stop), Operator(cluster, "get", stop)]
    try:
        client.wait_leader()
        for op in ops:
            op.start()
        round_start = time.monotonic()
        wait_for(lambda: all(op.succeeded_after(round_start) for op in ops), 15, "the first operations")
        victims, gaps = [], []
        for _ in range(FAILOVER_ROUNDS):
            victim = client.wait_leader()
            assert victim not in victims[-1:], "the leader is the store restarted last round"
            killed_at = time.monotonic()
            cluster.kill(victim)
            wait_for(lambda t=killed_at: all(op.succeeded_after(t) for op in ops), 15,
                     f"operations after killing store {victim}")
            recovered = time.monotonic()
            # From the end of the last round, so the victim's restart and catch-up count too.
            gaps.append(max(op.longest_gap(round_start, recovered) for op in ops))
            victims.append(victim)
            # The others serve on while the victim stays down: their transports fail to reach it
            # again and again (what used to leave a request generator behind per attempt).
            wait_for(lambda t=recovered + DOWN_SECONDS: all(op.succeeded_after(t) for op in ops), 15,
                     f"{DOWN_SECONDS}s of operations with store {victim} down")
            cluster.restart(victim)
            client.wait_caught_up([victim])
            round_start = time.monotonic()
        stop.set()
        for op in ops:
            op.join(timeout=10)
            assert not op.is_alive() and op.error is None, op.error
        print(f"failover: killed stores {victims}, unavailable for {', '.join(f'{g:.2f}s' for g in gaps)}")
        assert max(gaps) < MAX_GAP, f"rounds killing stores {victims} were unavailable for {gaps} s"
        assert len(set(victims)) > 1
    finally:
        stop.set()
        client.close()
