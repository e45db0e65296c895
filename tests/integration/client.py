"""A small synchronous test client for range 1 of an integration cluster.

Test tooling, not the client library: it finds the leader (NotLeader hints, else RangeStatus on
every running store), and ``call`` retries what is safe to retry (routing errors, timeouts,
unavailable stores) until a deadline. ``attempt`` sends exactly once to one store, for tests
that must see the raw answer (bad input, a cut-off leader) or must not retry (cas histories).

``PdHandle`` lets synchronous tests use the real (asyncio) ``PdClient`` of a PD cluster.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc

from kvdb.pb import adminpb_pb2, adminpb_pb2_grpc, kvrpc_pb2, kvrpc_pb2_grpc, metapb_pb2, pdpb_pb2
from kvdb.pdclient.client import PdClient
from tests.integration.cluster import Cluster, wait_for

T = TypeVar("T")

RANGE_ID = 1
CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]

# kind -> (unary method, request type); kinds are the oneof names of kvrpc.Request.
KINDS: dict[str, tuple[str, type]] = {
    "get": ("RawGet", kvrpc_pb2.RawGetRequest),
    "batch_get": ("RawBatchGet", kvrpc_pb2.RawBatchGetRequest),
    "put": ("RawPut", kvrpc_pb2.RawPutRequest),
    "batch_put": ("RawBatchPut", kvrpc_pb2.RawBatchPutRequest),
    "delete": ("RawDelete", kvrpc_pb2.RawDeleteRequest),
    "delete_range": ("RawDeleteRange", kvrpc_pb2.RawDeleteRangeRequest),
    "scan": ("RawScan", kvrpc_pb2.RawScanRequest),
    "cas": ("RawCompareAndSwap", kvrpc_pb2.RawCompareAndSwapRequest),
}

RETRYABLE_ERRORS = frozenset({"not_leader", "timeout", "stale_command", "server_busy", "epoch_not_match"})
"""Errors after which resending is safe for everything but cas (whose first try may have applied)."""


class Unanswered(Exception):
    """No usable answer before the deadline; the last error says why."""


def error_kind(body: object) -> str | None:
    """The ``kvrpc.Error`` oneof set in a response body, or None when it succeeded."""
    return body.error.WhichOneof("kind") if body.HasField("error") else None


class Client:
    def __init__(self, cluster: Cluster, range_id: int = RANGE_ID) -> None:
        self.cluster = cluster
        self.range_id = range_id
        self.leader: int | None = None
        """Store id of the last known leader."""
        self.epoch = metapb_pb2.RangeEpoch(conf_ver=1, version=1)
        self._channels: dict[str, grpc.Channel] = {}

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    # ------------------------------------------------------------------------------- plumbing
    def _channel(self, store_id: int) -> grpc.Channel:
        address = self.cluster.address(store_id)
        channel = self._channels.get(address)
        if channel is None:
            if self.cluster.node_tls is None:
                channel = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
            else:  # an admin client of the cluster's CA: the test client reads, writes and administers
                credentials = self.cluster.client_tls().channel_credentials()
                channel = grpc.secure_channel(address, credentials, options=CLIENT_OPTIONS)
            self._channels[address] = channel
        return channel

    def kv(self, store_id: int) -> kvrpc_pb2_grpc.KvStub:
        return kvrpc_pb2_grpc.KvStub(self._channel(store_id))

    def admin(self, store_id: int) -> adminpb_pb2_grpc.AdminStub:
        return adminpb_pb2_grpc.AdminStub(self._channel(store_id))

    def context(self, **overrides: object) -> kvrpc_pb2.Context:
        fields = {"cluster_id": self.cluster.cluster_id, "range_id": self.range_id, "epoch": self.epoch}
        fields.update(overrides)
        return kvrpc_pb2.Context(**fields)

    def request(self, kind: str, **fields: object) -> object:
        """A Raw*Request of ``kind`` routed with the current epoch (unless ``context`` is given)."""
        fields.setdefault("context", self.context())
        return KINDS[kind][1](**fields)

    # ------------------------------------------------------------------------------ admin view
    def status(self, store_id: int, timeout: float = 2.0) -> adminpb_pb2.RangeStatus | None:
        """This store's view of the range, or None when it is down or hosts no replica."""
        if not self.cluster.stores[store_id].running:
            return None
        try:
            resp = self.admin(store_id).RangeStatus(adminpb_pb2.RangeStatusRequest(range_id=self.range_id),
                                                    timeout=timeout)
        except grpc.RpcError:
            return None
        return None if resp.HasField("error") or not resp.ranges else resp.ranges[0]

    def statuses(self) -> dict[int, adminpb_pb2.RangeStatus]:
        result = {}
        for sid in self.cluster.running_ids():
            st = self.status(sid)
            if st is not None:
                result[sid] = st
        return result

    def find_leader(self, exclude: Iterable[int] = ()) -> int | None:
        """The store whose replica leads in the highest term (a cut-off leader may linger)."""
        skip = set(exclude)
        leaders = [(st.term, sid, st) for sid, st in self.statuses().items() if st.role == "leader"
                   and sid not in skip]
        if not leaders:
            return None
        _, sid, st = max(leaders)
        self.leader = sid
        self.epoch.CopyFrom(st.descriptor.epoch)
        return sid

    def wait_leader(self, timeout: float = 15.0, exclude: Iterable[int] = ()) -> int:
        exclude = tuple(exclude)
        return wait_for(lambda: self.find_leader(exclude), timeout, f"a leader (not on {exclude or 'any'})")

    def wait_caught_up(self, store_ids: Iterable[int], timeout: float = 15.0) -> int:
        """Wait until every named store applied everything the leader committed; that index."""
        ids = list(store_ids)

        def caught_up() -> int | None:
            leader = self.find_leader()
            lst = self.status(leader) if leader is not None else None
            if lst is None:
                return None
            sts = [self.status(sid) for sid in ids]
            if all(st is not None and st.applied_index >= lst.commit_index for st in sts):
                return lst.commit_index
            return None

        return wait_for(caught_up, timeout, f"stores {ids} to apply the leader's commit index")

    def transfer_leader(self, to_store: int, timeout: float = 15.0) -> None:
        """Move leadership to ``to_store``'s replica, re-asking if a transfer is abandoned."""
        to_peer = wait_for(lambda: self.status(to_store), timeout, f"store {to_store}'s replica").peer_id

        def moved() -> bool:
            leader = self.find_leader()
            if leader == to_store:
                return True
            if leader is not None:
                req = adminpb_pb2.TransferLeaderRequest(cluster_id=self.cluster.cluster_id,
                                                        range_id=self.range_id, to_peer_id=to_peer)
                try:
                    self.admin(leader).TransferLeader(req, timeout=2)
                except grpc.RpcError:
                    return False
            try:
                wait_for(lambda: self.find_leader() == to_store, 1.0, "the transfer")
            except AssertionError:
                return False
            return True

        wait_for(moved, timeout, f"leadership to move to store {to_store}")

    def set_failpoint(self, store_id: int, kind: int, target_store: int = 0, value: float = 0.0) -> None:
        req = adminpb_pb2.SetFailpointRequest(kind=kind, store_id=target_store, value=value)
        resp = self.admin(store_id).SetFailpoint(req, timeout=2)
        assert not resp.HasField("error"), resp.error.message

    def isolate(self, store_id: int, others: Iterable[int], on: bool = True) -> None:
        """Drop every Raft message from ``store_id`` to ``others`` and back (or stop dropping)."""
        drop = adminpb_pb2.SetFailpointRequest.DROP_TO_STORE
        for sid in others:
            self.set_failpoint(store_id, drop, sid, 1 if on else 0)
            self.set_failpoint(sid, drop, store_id, 1 if on else 0)

    # ---------------------------------------------------------------------------------- KV calls
    def attempt(self, store_id: int, kind: str, req: object, timeout: float = 2.0) -> object:
        """Send one unary request to one store; the response body (an RpcError propagates)."""
        method = KINDS[kind][0]
        return getattr(self.kv(store_id), method)(req, timeout=timeout)

    def call(self, kind: str, timeout: float = 15.0, try_timeout: float = 2.0, **fields: object) -> object:
        """Send to the leader until an answer that is not a routing/availability error arrives.

        Only for requests that are safe to repeat (not cas: a retried cas may see its own write).
        """
        deadline = time.monotonic() + timeout
        last = "nothing sent"
        while time.monotonic() < deadline:
            sid = self.leader if self.leader is not None else self.find_leader()
            if sid is None or not self.cluster.stores[sid].running:
                self.leader = None
                last = "no leader known"
                time.sleep(0.02)
                continue
            req = self.request(kind, **fields)
            try:
                body = self.attempt(sid, kind, req, min(try_timeout, max(0.05, deadline - time.monotonic())))
            except grpc.RpcError as exc:
                self.leader, last = None, f"store {sid}: {exc.code()}"
                continue
            err = error_kind(body)
            if err not in RETRYABLE_ERRORS:
                return body
            last = f"store {sid}: {body.error.message}"
            self.follow(body.error)
            if err in ("server_busy", "timeout"):
                time.sleep(0.02)
        raise Unanswered(f"{kind} unanswered after {timeout:.1f}s; last: {last}")

    def follow(self, error: kvrpc_pb2.Error) -> None:
        """Act on a routing error: go where the hint points, or learn the current epoch."""
        kind = error.WhichOneof("kind")
        if kind == "not_leader":
            hint = error.not_leader.leader.store_id if error.not_leader.HasField("leader") else 0
            self.leader = hint if hint in self.cluster.stores else None
        elif kind == "epoch_not_match":
            for desc in error.epoch_not_match.current_ranges:
                if desc.id == self.range_id:
                    self.epoch.CopyFrom(desc.epoch)
        else:
            self.leader = None

    def put(self, key: bytes, value: bytes) -> None:
        body = self.call("put", key=key, value=value)
        assert error_kind(body) is None, body.error.message

    def get(self, key: bytes) -> bytes | None:
        body = self.call("get", key=key)
        assert error_kind(body) is None, body.error.message
        return None if body.not_found else body.value

    def scan(self, start: bytes = b"", end: bytes = b"", limit: int = 0, reverse: bool = False
             ) -> list[tuple[bytes, bytes]]:
        body = self.call("scan", start_key=start, end_key=end, limit=limit, reverse=reverse)
        assert error_kind(body) is None, body.error.message
        return [(p.key, p.value) for p in body.pairs]

    def scan_all(self, store_id: int) -> dict[bytes, bytes]:
        """Every key, read from ``store_id`` alone (which must lead): what that replica holds."""
        out: dict[bytes, bytes] = {}
        start = b""
        while True:
            req = self.request("scan", start_key=start, limit=10_000)
            body = self.attempt(store_id, "scan", req, timeout=10)
            assert error_kind(body) is None, f"scan on store {store_id}: {body.error.message}"
            out.update((p.key, p.value) for p in body.pairs)
            if len(body.pairs) < 10_000:
                return out
            start = body.pairs[-1].key + b"\x00"

    def batch(self, store_id: int, requests: list[kvrpc_pb2.Request], per_message: int = 500,
              timeout: float = 20.0) -> list[kvrpc_pb2.Response]:
        """Pipeline ``requests`` on one Batch stream; every response that came back, in arrival order.

        An RpcError (the store died mid-stream) propagates; responses that arrived before it are
        in ``partial`` on the exception so callers can count what was acknowledged.
        """
        messages = [kvrpc_pb2.BatchRequest(requests=requests[i:i + per_message])
                    for i in range(0, len(requests), per_message)]
        responses: list[kvrpc_pb2.Response] = []
        try:
            for batch in self.kv(store_id).Batch(iter(messages), timeout=timeout):
                responses.extend(batch.responses)
        except grpc.RpcError as exc:
            exc.partial = responses
            raise
        return responses


class PdHandle:
    """A ``PdClient`` on an event loop thread of its own, so synchronous tests can call PD.

    Connecting teaches the cluster PD's cluster id, which the stores took from PD too and which
    every KV and admin request must carry.
    """

    def __init__(self, cluster: Cluster, timeout: float = 20.0) -> None:
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pd-client", daemon=True)
        self._thread.start()
        tls = cluster.client_tls() if cluster.node_tls is not None else None
        self.client = PdClient(cluster.pd_endpoints, timeout=timeout, tls=tls)
        try:
            self.run(self.client.connect())
            self.run(self.client.is_bootstrapped())  # the leader has settled the cluster id once this answers
        except BaseException:
            self.close()
            raise
        cluster.cluster_id = self.client.cluster_id

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and wait for it (the client's own timeout bounds it)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def leader_member(self) -> int:
        """The id of the PD member that serves now: the one that just answered a read."""
        self.run(self.client.is_bootstrapped())
        return self.cluster.pd_member_at(self.client.leader_address)

    def stores(self) -> dict[int, pdpb_pb2.StoreInfo]:
        return {info.id: info for info in self.run(self.client.get_all_stores(exclude_tombstones=False))}

    def first_range(self) -> pdpb_pb2.RangeInfo | None:
        return self.run(self.client.get_range(b""))

    def wait_voters(self, n: int, timeout: float = 30.0, exclude_stores: Iterable[int] = ()
                    ) -> pdpb_pb2.RangeInfo:
        """Poll PD until the first range has exactly ``n`` voters on ``n`` distinct stores (none of
        ``exclude_stores``) and no learner: a finished growth or repair, as PD records it."""
        skip = set(exclude_stores)

        def grown() -> pdpb_pb2.RangeInfo | None:
            info = self.first_range()
            if info is None:
                return None
            peers = info.descriptor.peers
            voters = {p.store_id for p in peers if p.role == metapb_pb2.VOTER}
            done = len(peers) == n and len(voters) == n and not voters & skip
            return info if done else None

        return wait_for(grown, timeout, f"PD to record the first range on {n} voters (not on {skip or '-'})",
                        interval=0.05)

    def kv_client(self) -> Client:
        """A test client for the first range (PD chose its id) of this PD cluster."""
        info = wait_for(self.first_range, 30.0, "PD to know the first range", interval=0.05)
        return Client(self.cluster, range_id=info.descriptor.id)


@contextmanager
def split_pd_cluster(root: Path, split_keys: list[bytes], pd_args: list[str]) -> Iterator[PdHandle]:
    """One PD member and three stores, the key space split at ``split_keys`` (for tests that need
    a transaction across ranges); shut down on exit."""
    cluster = Cluster.create_with_pd(root, 3, 1, pd_args)
    pd = None
    try:
        cluster.start_pd()
        pd = PdHandle(cluster)
        cluster.start()
        pd.wait_voters(3)
        pd.run(pd.client.split_ranges(split_keys, timeout=20))
        yield pd
    finally:
        if pd is not None:
            pd.close()
        cluster.shutdown()
