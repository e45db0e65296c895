"""Fixtures for multi-process tests: clusters that are always torn down, logs shown on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.client import Client, PdHandle
from tests.integration.cluster import Cluster

MakeCluster = Callable[..., Cluster]
MakePdCluster = Callable[..., tuple[Cluster, PdHandle]]

PD_TEST_ARGS = ["--store-down-ms", "3000", "--store-disconnect-ms", "1000"]
"""Short store timeouts so repair starts within seconds (stores heartbeat every 0.2 s)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Append the tail of every store's log to a failed test's report: the stores' side of the story."""
    outcome = yield
    report = outcome.get_result()
    clusters: list[Cluster] = getattr(item, "_kvdb_clusters", [])
    if report.failed and clusters:
        for i, cluster in enumerate(clusters):
            report.sections.append((f"process logs (cluster {i})", cluster.log_tails()))


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeCluster]:
    """Build and start a cluster of 3 static stores; keyword arguments go to ``Cluster.create``."""
    clusters: list[Cluster] = []
    request.node._kvdb_clusters = clusters

    def make(n: int = 3, start: bool = True, **kwargs: object) -> Cluster:
        cluster = Cluster.create(tmp_path / f"cluster{len(clusters)}", n, **kwargs)
        clusters.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        cluster.shutdown()


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Cluster:
    return make_cluster()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    c = Client(cluster)
    c.wait_leader()
    yield c
    c.close()


@pytest.fixture
def make_pd_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakePdCluster]:
    """Build and start a PD cluster (members first, then stores that join through them) and a
    ``PdHandle`` on it; keyword arguments go to ``Cluster.create_with_pd``."""
    clusters: list[Cluster] = []
    handles: list[PdHandle] = []
    request.node._kvdb_clusters = clusters

    def make(n_stores: int = 3, n_pd: int = 3, start_stores: bool = True, pd_args: list[str] = PD_TEST_ARGS,
             **kwargs: object) -> tuple[Cluster, PdHandle]:
        root = tmp_path / f"cluster{len(clusters)}"
        cluster = Cluster.create_with_pd(root, n_stores, n_pd, pd_args, **kwargs)
        clusters.append(cluster)
        cluster.start_pd()
        handles.append(PdHandle(cluster))
        if start_stores and n_stores:
            cluster.start()
        return cluster, handles[-1]

    try:
        yield make
    finally:
        try:
            for handle in handles:
                handle.close()
        finally:
            for cluster in clusters:
                cluster.shutdown()
