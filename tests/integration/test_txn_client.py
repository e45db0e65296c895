"""The transactional client against real processes: PD and 3 stores, the key space split at
``m`` so that ``a...`` and ``z...`` keys live in different ranges (cross-range commits).

Covers the atomic transfer, one winner of two conflicting transactions, write skew under SI and
get_for_update, the ``kvdb txn`` command, and clients killed with SIGKILL mid-commit: after
their prewrites (2PC: readers roll the transaction back once its TTL expired; async commit:
readers roll it forward) and after the primary's commit (readers roll the rest forward).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import kvdb
from kvdb.client import Client
from kvdb.errors import WriteConflictError
from tests.integration.client import PdHandle, split_pd_cluster
from tests.integration.cluster import Cluster
from tests.integration.conftest import PD_TEST_ARGS

SPLIT_KEY = b"m"


class TxnCluster:
    def __init__(self, cluster: Cluster, pd: PdHandle) -> None:
        self.cluster = cluster
        self.pd = pd

    @property
    def endpoints(self) -> str:
        return self.cluster.pd_endpoints

    def range_id(self, key: bytes) -> int:
        return self.pd.run(self.pd.client.get_range(key)).descriptor.id


@pytest.fixture(scope="module")
def txn_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TxnCluster]:
    with split_pd_cluster(tmp_path_factory.mktemp("txn-cluster"), [SPLIT_KEY], PD_TEST_ARGS) as pd:
        yield TxnCluster(pd.cluster, pd)


@pytest.fixture
def client(txn_cluster: TxnCluster) -> Iterator[Client]:
    with kvdb.connect(txn_cluster.endpoints, timeout=15.0) as c:
        yield c


def read(client: Client, *keys: bytes) -> list[bytes | None]:
    with client.transaction() as txn:
        got = txn.batch_get(keys)
    return [got.get(k) for k in keys]


def write(client: Client, pairs: dict[bytes, bytes]) -> None:
    """Commits ``pairs`` and checks a new transaction reads them."""
    with client.transaction() as txn:
        for key, value in pairs.items():
            txn.put(key, value)
    assert read(client, *pairs) == list(pairs.values())


def test_a_transfer_across_ranges_commits_atomically(txn_cluster: TxnCluster, client: Client) -> None:
    alice, zed = b"a-transfer", b"z-transfer"
    assert txn_cluster.range_id(alice) != txn_cluster.range_id(zed)
    write(client, {alice: b"100", zed: b"100"})

    def transfer(txn: kvdb.client.Transaction) -> None:
        a, z = int(txn.get(alice)), int(txn.get(zed))
        txn.put(alice, b"%d" % (a - 30))
        txn.put(zed, b"%d" % (z + 30))

    for async_commit in (True, False):  # async commit, then classic 2PC
        client.run_transaction(transfer, async_commit=async_commit)
    assert read(client, alice, zed) == [b"40", b"160"]
    with client.transaction() as txn:  # both keys in one range: 1PC
        txn.put(alice, b"0")
        txn.put(b"a-transfer-2", b"40")
    assert read(client, alice, b"a-transfer-2") == [b"0", b"40"]
    assert txn.commit_ts > txn.start_ts


def test_of_two_conflicting_transactions_exactly_one_commits(client: Client) -> None:
    keys = (b"a-conflict", b"z-conflict")
    t1, t2 = client.transaction().begin(), client.transaction().begin()
    for txn, value in ((t1, b"1"), (t2, b"2")):
        for key in keys:
            txn.get(key)
            txn.put(key, value)
    outcomes: list[BaseException | None] = [None, None]

    def commit(i: int, txn: kvdb.client.Transaction) -> None:
        try:
            txn.commit()
        except WriteConflictError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=commit, args=(i, t)) for i, t in enumerate((t1, t2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(isinstance(o, WriteConflictError) for o in outcomes) == 1, outcomes
    winner = b"1" if outcomes[0] is None else b"2"
    assert read(client, *keys) == [winner, winner]


@pytest.mark.parametrize("for_update", [False, True])
def test_write_skew_is_allowed_under_si_and_prevented_by_get_for_update(client: Client,
                                                                        for_update: bool) -> None:
    """Each of two doctors goes off call if the other is on call. Under SI both can (write skew:
    a state no serial order gives); reading with get_for_update makes one of them conflict."""
    alice, zed = b"a-oncall-%d" % for_update, b"z-oncall-%d" % for_update
    write(client, {alice: b"on", zed: b"on"})
    t1, t2 = client.transaction().begin(), client.transaction().begin()
    for txn, me, other in ((t1, alice, zed), (t2, zed, alice)):
        if (txn.get_for_update(other) if for_update else txn.get(other)) == b"on":
            txn.put(me, b"off")
    results = []
    for txn in (t1, t2):
        try:
            txn.commit()
            results.append("committed")
        except WriteConflictError:
            results.append("conflict")
    if for_update:
        assert results == ["committed", "conflict"] and read(client, alice, zed) == [b"off", b"on"]
    else:
        assert results == ["committed", "committed"] and read(client, alice, zed) == [b"off", b"off"]


CHILD = r"""
import asyncio, sys
import kvdb.aio

async def main(endpoints, mode, keys):
    client = await kvdb.aio.connect(endpoints, timeout=10)
    use_async = mode == "async"
    txn = await client.transaction(async_commit=use_async, one_pc=False).begin()
    for key in keys:
        await txn.put(key, b"new")
    await client._run("prewrite", 10, lambda op: txn._prewrite(op, keys, use_async))
    if mode == "primary":
        commit_ts = await client._pd.get_ts()
        await client._run("commit", 10, lambda op: txn._commit_primary(op, keys[0], commit_ts))
    print(txn.start_ts, flush=True)
    await asyncio.sleep(3600)  # killed with SIGKILL here: no rollback, no background commit

asyncio.run(main(sys.argv[1], sys.argv[2], [k.encode() for k in sys.argv[3:]]))
"""


def run_and_kill(endpoints: str, mode: str, keys: list[bytes], timeout: float = 30.0) -> int:
    """Runs a client that commits ``keys`` up to ``mode``'s step, SIGKILLs it there; its start_ts."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, endpoints, mode, *(k.decode() for k in keys)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        assert line.strip().isdigit(), f"the child did not get there: {line!r} {proc.poll()}"
        return int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("mode, outcome", [("prewritten", b"old"), ("async", b"new"), ("primary", b"new")])
def test_a_client_killed_mid_commit_leaves_locks_readers_resolve(txn_cluster: TxnCluster, client: Client,
                                                                 mode: str, outcome: bytes) -> None:
    """2PC killed after its prewrites: not committed, rolled back once its locks expired. Async
    commit killed after its prewrites: committed (every prewrite succeeded), rolled forward.
    2PC killed after the primary's commit: committed, its secondary rolled forward."""
    keys = [b"a-crash-" + mode.encode(), b"z-crash-" + mode.encode()]
    write(client, dict.fromkeys(keys, b"old"))
    start_ts = run_and_kill(txn_cluster.endpoints, mode, keys)
    started = time.monotonic()
    assert read(client, *keys[::-1]) == [outcome, outcome]  # the secondary first: it meets the lock
    assert client._client()._lock_resolver.resolved >= 1, "no lock was met: the test proves nothing"
    with client.transaction() as txn:  # the locks are gone for writers too
        for key in keys:
            txn.put(key, b"after")
    assert read(client, *keys) == [b"after", b"after"]
    assert start_ts > 0 and time.monotonic() - started < 15


def kvdb_txn(endpoints: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvdb", "txn", "--pd", endpoints, "--timeout", "15", *args],
                          capture_output=True, text=True, timeout=60)


def test_kvdb_txn_command(txn_cluster: TxnCluster) -> None:
    endpoints = txn_cluster.endpoints
    done = kvdb_txn(endpoints, "put", "a-cli", "1", "put", "z-cli", "2", "delete", "a-cli-gone")
    assert done.returncode == 0 and done.stdout == "", done
    got = kvdb_txn(endpoints, "get", "a-cli", "z-cli")
    assert got.returncode == 0 and got.stdout == "a-cli\t1\nz-cli\t2\n", got
    mixed = kvdb_txn(endpoints, "--json", "put", "a-cli", "3", "get", "a-cli", "a-cli-gone")
    assert mixed.returncode == 1 and "not found: a-cli-gone" in mixed.stderr, mixed
    body = json.loads(mixed.stdout)
    assert body["reads"] == {"a-cli": "3", "a-cli-gone": None} and body["commit_ts"] > body["start_ts"] > 0
    again = kvdb_txn(endpoints, "--hex", "get", b"a-cli".hex())
    assert again.stdout == f"{b'a-cli'.hex()}\t{b'3'.hex()}\n", again
