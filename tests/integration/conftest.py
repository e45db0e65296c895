"""Fixtures for multi-process tests: clusters that are always torn down, logs shown on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.client import Client
from tests.integration.cluster import Cluster

MakeCluster = Callable[..., Cluster]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Append the tail of every store's log to a failed test's report: the stores' side of the story."""
    outcome = yield
    report = outcome.get_result()
    clusters: list[Cluster] = getattr(item, "_kvdb_clusters", [])
    if report.failed and clusters:
        for i, cluster in enumerate(clusters):
            report.sections.append((f"store logs (cluster {i})", cluster.log_tails()))


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
