"""One PD cluster (3 members, 3 stores joined through them, the first range grown to 3 voters)
shared by the module's tests: starting one takes seconds, and the tests that kill processes
restart them before they end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kvdb
from kvdb.client import Client
from tests.integration.client import PdHandle
from tests.integration.cluster import Cluster
from tests.integration.conftest import PD_TEST_ARGS


class PdCluster:
    def __init__(self, root: Path) -> None:
        self.cluster = Cluster.create_with_pd(root, 3, 3, PD_TEST_ARGS)
        self.pd: PdHandle | None = None

    def start(self) -> None:
        self.cluster.start_pd()
        self.pd = PdHandle(self.cluster)
        self.cluster.start()
        self.pd.wait_voters(3)

    @property
    def endpoints(self) -> str:
        return self.cluster.pd_endpoints

    def shutdown(self) -> None:
        try:
            if self.pd is not None:
                self.pd.close()
        finally:
            self.cluster.shutdown()


@pytest.fixture(scope="module")
def pd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdCluster]:
    c = PdCluster(tmp_path_factory.mktemp("client-cluster"))
    try:
        c.start()
        yield c
    finally:
        c.shutdown()


@pytest.fixture
def client(pd_cluster: PdCluster) -> Iterator[Client]:
    with kvdb.connect(pd_cluster.endpoints, timeout=10.0) as c:
        yield c
