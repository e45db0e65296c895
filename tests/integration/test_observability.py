"""Metrics, health and reflection of real store and PD processes (docs/operations.md).

Metrics are scraped over HTTP from ``/metrics`` and parsed with prometheus_client's own parser;
every check compares a counter's movement with what the load done in between implies.
"""

from __future__ import annotations

import signal
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

import kvdb
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc
from tests.integration.client import Client
from tests.integration.cluster import Cluster, ServerProcess, free_ports, wait_for
from tests.integration.conftest import MakeCluster, MakePdCluster

Samples = dict[tuple[str, frozenset], float]
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def with_metrics(cluster: Cluster) -> dict[int, str]:
    """Give every store of ``cluster`` a metrics port; store id -> its /metrics URL."""
    urls = {}
    for (sid, sp), port in zip(cluster.stores.items(), free_ports(len(cluster.stores)), strict=True):
        sp.args += ["--metrics-listen", f"127.0.0.1:{port}"]
        urls[sid] = f"http://127.0.0.1:{port}/metrics"
    return urls


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 for a labelled series not exported yet (nothing counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(scrapes: list[Samples], name: str, **labels: str) -> float:
    return sum(value(s, name, **labels) for s in scrapes)


def metered_cluster(make_cluster: MakeCluster) -> tuple[dict[int, str], Client, int]:
    """A started 3-store cluster with metrics, one write done: (metrics URLs, a client, the leader)."""
    cluster = make_cluster(start=False, tick_interval=0.05, extra_args=["--no-hibernate"])
    urls = with_metrics(cluster)
    cluster.start()
    client = Client(cluster)
    client.put(b"warm", b"up")
    return urls, client, client.wait_leader()


def test_store_metrics_follow_the_load(make_cluster: MakeCluster) -> None:
    urls, client, leader = metered_cluster(make_cluster)
    wait_for(lambda: client.status(leader).lease_valid, 10, "the leader's lease")
    before = [scrape(u) for u in urls.values()]

    n_puts, n_gets = 50, 200
    for i in range(n_puts):
        client.put(b"k%03d" % i, b"v")
    reqs = [kvrpc_pb2.Request(id=i, get=client.request("get", key=b"k001")) for i in range(n_gets)]
    assert all(r.get.value == b"v" for r in client.batch(leader, reqs, per_message=n_gets))
    after = [scrape(u) for u in urls.values()]
    client.close()

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # Every get above was answered ok, every put proposed (and committed on each of 3 replicas).
    assert moved("kvdb_kv_requests_total", kind="get", outcome="ok") == n_gets
    assert moved("kvdb_kv_requests_total", kind="put", outcome="ok") >= n_puts
    assert moved("kvdb_kv_request_duration_seconds_count", kind="get") == n_gets
    assert moved("kvdb_raft_reads_total", path="lease") >= n_gets  # the leader held its lease
    assert moved("kvdb_raft_proposals_total") >= n_puts
    assert moved("kvdb_raft_committed_entries_total") >= 3 * n_puts
    assert moved("kvdb_raft_fsync_seconds_count") > 0
    assert moved("kvdb_grpc_requests_total", method="/kvdb.kv.Kv/Batch", code="OK") >= 1
    assert total(after, "kvdb_store_ranges") == 3 and total(after, "kvdb_store_leaders") == 1
    assert all(value(s, "kvdb_store_engine_size_bytes") > 0 for s in after)
    assert all(value(s, "kvdb_raft_leader_changes_total") >= 0 for s in after)
    assert sum(value(s, "kvdb_raft_leader_changes_total") for s in after) >= 1


def test_synced_writes_run_inline_until_reads_come(make_cluster: MakeCluster) -> None:
    """With no reads to serve, a store syncs on the event loop's thread (no hand-off to the writer
    thread and back); once reads come, the leader syncs on the writer thread and serves them
    meanwhile, while its followers, asked for no reads, stay inline (kvdb.server.raft_host)."""
    urls, client, leader = metered_cluster(make_cluster)

    def synced_writes() -> dict[int, tuple[float, float]]:
        """Store id -> (synced writes, of which inline)."""
        out = {}
        for sid, url in urls.items():
            s = scrape(url)
            out[sid] = (value(s, "kvdb_raft_fsync_seconds_count"), value(s, "kvdb_raft_inline_writes_total"))
        return out

    def moved(before: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
        after = synced_writes()
        return {sid: (after[sid][0] - before[sid][0], after[sid][1] - before[sid][1]) for sid in after}

    start = synced_writes()
    for i in range(20):
        client.put(b"w%02d" % i, b"v")
    writes_only = moved(start)
    assert all(synced >= 20 and inline == synced for synced, inline in writes_only.values()), writes_only

    start = synced_writes()
    for i in range(20):
        assert client.get(b"w%02d" % i) == b"v"
        client.put(b"w%02d" % i, b"v2")  # its leader's synced write comes after a read
    mixed = moved(start)
    synced, inline = mixed[leader]
    assert synced - inline >= 20, mixed
    assert all(inline == synced for sid, (synced, inline) in mixed.items() if sid != leader), mixed


def test_pd_metrics_count_tso_stamps_and_heartbeats(make_pd_cluster: MakePdCluster) -> None:
    port = free_ports(1)[0]
    cluster, pd = make_pd_cluster(n_stores=1, n_pd=1, start_stores=False,
                                  pd_args=["--replica-count", "1", f"--metrics-listen=127.0.0.1:{port}"])
    cluster.start()
    pd.wait_voters(1)
    url = f"http://127.0.0.1:{port}/metrics"
    before = scrape(url)
    n_txns = 10
    with kvdb.connect(cluster.pd_endpoints) as client:
        for i in range(n_txns):
            txn = client.transaction().begin()
            txn.put(b"t%d" % i, b"v")
            txn.commit()
    beats = value(before, "kvdb_pd_heartbeats_total", kind="store")

    def heartbeat_counted() -> Samples | None:
        now = scrape(url)
        return now if value(now, "kvdb_pd_heartbeats_total", kind="store") > beats else None

    after = wait_for(heartbeat_counted, 10, "a store heartbeat to be counted")

    assert value(after, "kvdb_pd_leader") == 1
    assert value(after, "kvdb_pd_tso_stamps_total") - value(before, "kvdb_pd_tso_stamps_total") >= n_txns
    assert value(after, "kvdb_pd_stores", state="UP") == 1
    assert value(after, "kvdb_pd_stores", state="DOWN") == 0
    assert value(after, "kvdb_pd_tso_requests_total") >= 1
    assert value(after, "kvdb_grpc_requests_total", method="/kvdb.pd.PD/StoreHeartbeat", code="OK") >= 1
    # The PD member's own Raft group (the metadata range) is measured like a store's.
    assert value(after, "kvdb_store_ranges") == 1 and value(after, "kvdb_raft_proposals_total") > 0


def health(address: str, service: str = "") -> int | None:
    """The health status, or None while nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2).status
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            raise


def reflected_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5)
        return {s.name for answer in answers for s in answer.list_services_response.service}


def test_store_health_life_cycle_and_reflection(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_stores=1, n_pd=1, start_stores=False, pd_args=["--replica-count", "1"])
    pd_address = cluster.pd[1].address
    assert health(pd_address) == SERVING and health(pd_address, "kvdb.pd.PD") == SERVING
    pd_services = {"kvdb.pd.PD", "kvdb.raftserver.RaftTransport", "grpc.health.v1.Health"}
    assert pd_services <= reflected_services(pd_address)

    # The store waits for a PD that is not up yet: it answers health checks, NOT_SERVING.
    cluster.stop_pd(1)
    sp = cluster.stores[1]
    cluster._launch(sp)
    wait_for(lambda: health(sp.address) is not None, 30, "the store to answer health checks")
    assert health(sp.address) == NOT_SERVING and health(sp.address, "kvdb.kv.Kv") == NOT_SERVING
    store_services = {"kvdb.kv.Kv", "kvdb.admin.Admin", "kvdb.raftserver.RaftTransport"}
    assert store_services <= reflected_services(sp.address)
    with grpc.insecure_channel(sp.address) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            kvrpc_pb2_grpc.KvStub(channel).RawGet(kvrpc_pb2.RawGetRequest(key=b"k"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "starting" in refused.value.details()

    cluster.start_pd()
    sp.wait_ready()
    wait_for(lambda: health(sp.address) == SERVING, 30, "the store to serve")
    assert health(sp.address, "kvdb.kv.Kv") == SERVING

    # Watch: SERVING now, NOT_SERVING as soon as the stop begins (before the server goes).
    assert statuses_while_stopping(sp, "kvdb.kv.Kv") == [NOT_SERVING]
    assert statuses_while_stopping(cluster.pd[1], "kvdb.pd.PD") == [NOT_SERVING]


def statuses_while_stopping(process: ServerProcess, service: str) -> list[int]:
    """What a health Watch of ``service`` hears from the moment ``process`` is sent SIGTERM."""
    with grpc.insecure_channel(process.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service),
                                                           timeout=30)
        assert next(watch).status == SERVING
        process.proc.send_signal(signal.SIGTERM)
        statuses = [answer.status for answer in watch_until_end(watch)]
    assert process.proc.wait(timeout=15) == 0
    return statuses


def watch_until_end(watch: grpc.Future) -> list[health_pb2.HealthCheckResponse]:
    answers = []
    try:
        for answer in watch:
            answers.append(answer)
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), exc
    return answers
