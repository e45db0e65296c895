"""The bank and txn workloads against in-memory fakes of the two targets' transaction APIs.

``FakeSiClient`` stands in for kvdb's client (``transaction()``/``run_transaction``): snapshot
reads at a start timestamp, buffered writes, first-committer-wins at commit, and an ``await`` in
every read so that the runner's workers interleave and really conflict. With the conflict check
left out (``lost_updates=True``) it is the bug the bank's audit exists to catch. ``FakeEtcdKv``
evaluates etcd Txn requests (the real protobuf messages) over a dict with revisions.
"""

from __future__ import annotations

import asyncio
import queue
from typing import Any

import pytest

from bench.bank import TooManyConflicts, audit
from bench.drivers import KvdbDriver
from bench.etcd_driver import EtcdDriver
from bench.report import summary_line
from bench.runner import BenchConfig, BenchError, _measure, _preload, _Tally, build_result
from bench.workloads import BANK_BALANCE, key_of
from kvdb.testing.bank import account_key

ACCOUNTS = 16


class Conflict(Exception):
    pass


class FakeTxn:
    def __init__(self, client: FakeSiClient) -> None:
        self._client = client
        self.start_ts = client.clock
        self._writes: dict[bytes, bytes] = {}

    def _read(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        versions = [v for ts, v in self._client.versions.get(key, []) if ts <= self.start_ts]
        return versions[-1] if versions else None

    async def get(self, key: bytes) -> bytes | None:
        await asyncio.sleep(0)
        return self._read(key)

    async def batch_get(self, keys: list[bytes]) -> dict[bytes, bytes]:
        await asyncio.sleep(0)
        return {k: v for k in keys if (v := self._read(k)) is not None}

    async def scan(self, start: bytes, end: bytes, limit: int = 100) -> list[tuple[bytes, bytes]]:
        await asyncio.sleep(0)
        keys = sorted(k for k in {*self._client.versions, *self._writes} if start <= k < end)
        pairs = [(k, v) for k in keys if (v := self._read(k)) is not None]
        return pairs[:limit]

    async def put(self, key: bytes, value: bytes) -> None:
        self._writes[key] = value

    async def commit(self) -> None:
        client = self._client
        if not client.lost_updates and any(client.versions.get(k, [(0, b"")])[-1][0] > self.start_ts
                                           for k in self._writes):
            raise Conflict("write conflict")
        client.clock += 1
        for k, v in self._writes.items():
            client.versions.setdefault(k, []).append((client.clock, v))

    async def __aenter__(self) -> FakeTxn:
        return self

    async def __aexit__(self, exc_type: Any, *rest: object) -> None:
        if exc_type is None:
            await self.commit()


class FakeSiClient:
    def __init__(self, lost_updates: bool = False) -> None:
        self.versions: dict[bytes, list[tuple[int, bytes]]] = {}
        self.clock = 0
        self.lost_updates = lost_updates
        self.retried = 0

    def transaction(self) -> FakeTxn:
        return FakeTxn(self)

    async def run_transaction(self, fn: Any, max_retries: int = 10) -> Any:
        for attempt in range(max_retries + 1):
            try:
                async with self.transaction() as txn:
                    return await fn(txn)
            except Conflict:
                self.retried += 1
                if attempt == max_retries:
                    raise

    def latest(self, key: bytes) -> bytes | None:
        return self.versions[key][-1][1] if key in self.versions else None

    async def close(self) -> None:
        pass


def run_workload(driver: Any, workload: str, key_count: int, ops: int, **extra: Any) -> _Tally:
    config = BenchConfig(workload=workload, target="kvdb", addresses="-", ops=ops, warmup=0,
                         concurrency=8, key_count=key_count, **extra)
    config.validate()

    async def run() -> _Tally:
        await _preload(driver, config, 0, b"v")
        return (await _measure(driver, config, 0, b"v", queue.Queue()))[0]

    return asyncio.run(run())


def test_bank_on_an_si_store_conserves_the_total_and_counts_aborts() -> None:
    client = FakeSiClient()
    driver = KvdbDriver(client)  # type: ignore[arg-type]
    tally = run_workload(driver, "bank", ACCOUNTS, 400)
    assert tally.done + tally.failed == 400 and tally.done > 350
    assert tally.aborts > 0 and tally.aborts == client.retried - tally.failed * 11
    assert set(tally.histograms) == {"transfer"}
    checked = asyncio.run(audit(driver, ACCOUNTS))
    assert checked["ok"], checked["violation"]
    assert checked["seen_total"] == ACCOUNTS * BANK_BALANCE
    balances = [int(client.latest(account_key(i))) for i in range(ACCOUNTS)]
    assert balances != [BANK_BALANCE] * ACCOUNTS  # money did move


def test_bank_audit_catches_lost_updates() -> None:
    """The planted bug: commits without the first-committer-wins check lose transfers' writes."""
    driver = KvdbDriver(FakeSiClient(lost_updates=True))  # type: ignore[arg-type]
    run_workload(driver, "bank", ACCOUNTS, 400)
    checked = asyncio.run(audit(driver, ACCOUNTS))
    assert not checked["ok"] and "wrong-total" in checked["violation"]


def test_audit_reports_missing_accounts() -> None:
    driver = KvdbDriver(FakeSiClient())  # type: ignore[arg-type]
    checked = asyncio.run(audit(driver, ACCOUNTS))  # never preloaded
    assert not checked["ok"] and "missing accounts" in checked["violation"]


def test_single_range_groups_reach_the_generator() -> None:
    client = FakeSiClient()
    run_workload(KvdbDriver(client), "bank", ACCOUNTS, 200, groups=4)  # type: ignore[arg-type]
    writes = [k for k, vs in client.versions.items() if len(vs) > 1]
    assert writes and all(k.startswith(b"acct") for k in writes)
    with pytest.raises(BenchError, match="2 accounts per range"):
        BenchConfig(workload="bank", target="kvdb", addresses="-", key_count=ACCOUNTS, groups=9).validate()


def test_txn_workload_writes_1_to_4_keys_in_the_transactional_space() -> None:
    client = FakeSiClient()
    tally = run_workload(KvdbDriver(client), "txn", 50, 300)  # type: ignore[arg-type]
    assert tally.done + tally.failed == 300 and set(tally.histograms) == {"txn"}
    assert set(client.versions) == {key_of(i) for i in range(50)}  # preloaded, then rewritten
    assert sum(len(vs) - 1 for vs in client.versions.values()) >= tally.done


def test_result_and_summary_carry_the_abort_rate_and_the_audit() -> None:
    config = BenchConfig(workload="bank", target="kvdb", addresses="-")
    tally = run_workload(KvdbDriver(FakeSiClient()), "bank", ACCOUNTS, 200)  # type: ignore[arg-type]
    result = build_result(config, [tally], 1.0, "now")
    assert result["aborts"] == tally.aborts
    assert result["abort_rate"] == round(tally.aborts / (tally.done + tally.aborts), 4) > 0
    result["bank"] = {"ok": True, "total": 16_000, "accounts": 16}
    line = summary_line(result)
    assert "aborted attempts" in line and "16,000 over 16 accounts conserved" in line
    result["bank"] = {"ok": False, "violation": "wrong-total: balances sum to 3"}
    assert "BANK INVARIANT BROKEN: wrong-total" in summary_line(result)
    plain = build_result(BenchConfig(workload="write", target="kvdb", addresses="-"), [tally], 1.0, "now")
    assert "abort_rate" not in plain and "aborted" not in summary_line(plain)


# ------------------------------------------------------------------------------------ etcd


class FakeEtcdKv:
    """etcd's Txn semantics over a dict: compares on mod_revision (0 when absent), puts and gets."""

    def __init__(self) -> None:
        from etcd3aio.kv import KVService

        self.txn_op_get = KVService.txn_op_get
        self.txn_op_put = KVService.txn_op_put
        self.data: dict[bytes, tuple[bytes, int]] = {}
        self.revision = 0
        self.before_write: Any = None

    async def txn(self, compare: list, success: list, failure: list = (), timeout: float | None = None
                  ) -> Any:
        from etcd3aio._protobuf import TxnResponse

        await asyncio.sleep(0)
        if compare and self.before_write is not None:
            self.before_write()
        ok = all(self.data.get(c.key, (b"", 0))[1] == c.mod_revision for c in compare)
        resp = TxnResponse(succeeded=ok)
        if ok and any(op.HasField("request_put") for op in success):
            self.revision += 1
        for op in success if ok else failure:
            r = resp.responses.add()
            if op.HasField("request_put"):
                self.data[op.request_put.key] = (op.request_put.value, self.revision)
                r.response_put.SetInParent()
            else:
                r.response_range.SetInParent()
                if op.request_range.key in self.data:
                    value, rev = self.data[op.request_range.key]
                    r.response_range.kvs.add(key=op.request_range.key, value=value, mod_revision=rev)
        return resp

    async def get(self, start: bytes, end: bytes, **_: Any) -> Any:
        from etcd3aio._protobuf import RangeResponse

        resp = RangeResponse()
        for k in sorted(k for k in self.data if start <= k < end):
            resp.kvs.add(key=k, value=self.data[k][0], mod_revision=self.data[k][1])
        return resp


class FakeEtcdClient:
    def __init__(self) -> None:
        self.kv = FakeEtcdKv()

    async def close(self) -> None:
        pass


def test_etcd_bank_transfers_are_compare_and_swap_on_mod_revision() -> None:
    client = FakeEtcdClient()
    driver = EtcdDriver(client)
    tally = run_workload(driver, "bank", ACCOUNTS, 400)
    assert tally.done + tally.failed == 400 and tally.done > 350
    assert tally.aborts > 0  # interleaved workers did fail comparisons, and retried
    checked = asyncio.run(audit(driver, ACCOUNTS))
    assert checked["ok"], checked["violation"]


def test_etcd_transfer_gives_up_after_max_retries() -> None:
    client = FakeEtcdClient()
    driver = EtcdDriver(client)
    asyncio.run(driver.txn_put([(account_key(0), b"5"), (account_key(1), b"5")]))

    def meddle() -> None:  # somebody writes account 0 between every read and write
        client.kv.revision += 1
        client.kv.data[account_key(0)] = (b"5", client.kv.revision)

    client.kv.before_write = meddle
    with pytest.raises(TooManyConflicts):
        asyncio.run(driver.transfer(account_key(0), account_key(1), 3))
    client.kv.before_write = None
    assert asyncio.run(driver.transfer(account_key(0), account_key(1), 3)) == 0
    assert client.kv.data[account_key(0)][0] == b"2" and client.kv.data[account_key(1)][0] == b"8"
