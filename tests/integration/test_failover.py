"""kill -9 of the leader: a new leader takes over without losing an acknowledged write, and the
killed store, restarted, catches up well enough to lead and serve everything. SIGTERM is the
orderly stop: exit status 0, and the store resumes from its data."""

from __future__ import annotations

import threading
import time

import grpc

from kvdb.pb import kvrpc_pb2
from tests.integration.client import Client, error_kind
from tests.integration.cluster import Cluster, wait_for

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
