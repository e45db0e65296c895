"""One PD cluster (3 members, 3 stores joined through them, the first range grown to 3 voters)
shared by the module's tests: starting one takes seconds, and the tests that kill processes
restart them before they end."""

from __future__ import annotations

import asyncio
import time
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


async def until_only_this_task_runs(timeout: float = 2.0) -> None:
    """Asserts that nothing but the caller runs on the loop; gRPC ends a closed channel's call
    bookkeeping tasks a few loop turns after close(), hence the bounded wait."""
    deadline = time.monotonic() + timeout
    while (left := asyncio.all_tasks() - {asyncio.current_task()}) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not left, f"tasks left behind: {left}"
