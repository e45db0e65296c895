"""The Engine contract, checked on RocksEngine and MemEngine alike (the simulator trusts that
MemEngine behaves as the real engine does)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvdb.storage import ALL_CFS, CF_DEFAULT, CF_META, CF_RAFT, Engine, MemEngine, RocksEngine
from kvdb.storage.engine import ITER_CHUNK


@pytest.fixture(params=["rocks", "mem"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng: Engine = RocksEngine(tmp_path / "db") if request.param == "rocks" else MemEngine()
    yield eng
    eng.close()


def k(i: int) -> bytes:
    return b"k%03d" % i


def fill(engine: Engine, cf: str, indexes: range | list[int]) -> None:
    batch = engine.batch()
    for i in indexes:
        batch.put(cf, k(i), b"v%d" % i)
    engine.write(batch, sync=False)


def keys_of(pairs: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [key for key, _ in pairs]


def test_put_get_delete(engine: Engine) -> None:
    batch = engine.batch()
    batch.put(CF_DEFAULT, b"a", b"1")
    batch.put(CF_DEFAULT, b"b", b"2")
    batch.put(CF_DEFAULT, b"", b"empty key")
    batch.put(CF_DEFAULT, b"e", b"")
    engine.write(batch, sync=True)
    assert engine.get(CF_DEFAULT, b"a") == b"1"
    assert engine.get(CF_DEFAULT, b"") == b"empty key"
    assert engine.get(CF_DEFAULT, b"e") == b""
    assert engine.get(CF_DEFAULT, b"zz") is None

    batch = engine.batch()
    batch.put(CF_DEFAULT, b"a", b"1'")
    batch.delete(CF_DEFAULT, b"b")
    batch.delete(CF_DEFAULT, b"never there")
    engine.write(batch, sync=False)
    assert engine.get(CF_DEFAULT, b"a") == b"1'"
    assert engine.get(CF_DEFAULT, b"b") is None
    assert keys_of(engine.scan(CF_DEFAULT, b"", None, 0)) == [b"", b"a", b"e"]


def test_column_families_are_isolated(engine: Engine) -> None:
    batch = engine.batch()
    for n, cf in enumerate(ALL_CFS):
        batch.put(cf, b"same", cf.encode())
        batch.put(cf, b"only-%d" % n, b"x")
    engine.write(batch, sync=False)
    for n, cf in enumerate(ALL_CFS):
        assert engine.get(cf, b"same") == cf.encode()
        assert keys_of(engine.scan(cf, b"", None, 0)) == [b"only-%d" % n, b"same"]

    batch = engine.batch()
    batch.delete(CF_RAFT, b"same")
    batch.delete_range(CF_META, b"", b"\xff")
    engine.write(batch, sync=False)
    assert engine.get(CF_RAFT, b"same") is None
    assert engine.scan(CF_META, b"", None, 0) == []
    assert engine.get(CF_DEFAULT, b"same") == CF_DEFAULT.encode()


def test_unknown_column_family_fails_when_staged(engine: Engine) -> None:
    batch = engine.batch()
    with pytest.raises(KeyError):
        batch.put("nope", b"a", b"1")
    with pytest.raises(KeyError):
        engine.get("nope", b"a")


def test_delete_range_is_half_open(engine: Engine) -> None:
    fill(engine, CF_RAFT, range(10))
    batch = engine.batch()
    batch.delete_range(CF_RAFT, k(3), k(6))
    engine.write(batch, sync=False)
    assert keys_of(engine.scan(CF_RAFT, b"", None, 0)) == [k(i) for i in (0, 1, 2, 6, 7, 8, 9)]


def test_empty_or_inverted_delete_range_is_not_staged(engine: Engine) -> None:
    """RocksDB fails a batch with an inverted range and then every later write: never stage one."""
    fill(engine, CF_RAFT, range(10))
    batch = engine.batch()
    batch.delete_range(CF_RAFT, k(6), k(3))
    batch.delete_range(CF_RAFT, k(4), k(4))
    assert len(batch) == 0 and batch.size == 0
    batch.put(CF_RAFT, k(20), b"x")
    engine.write(batch, sync=True)
    fill(engine, CF_RAFT, [21])
    assert len(engine.scan(CF_RAFT, b"", None, 0)) == 12


def test_batch_counts_operations_and_bytes(engine: Engine) -> None:
    batch = engine.batch()
    assert len(batch) == 0 and batch.size == 0
    batch.put(CF_DEFAULT, b"key", b"value")
    batch.delete(CF_DEFAULT, b"ab")
    batch.delete_range(CF_DEFAULT, b"a", b"b")
    assert len(batch) == 3
    assert batch.size == 8 + 2 + 2


def test_batch_is_atomic_and_applied_in_order(engine: Engine) -> None:
    fill(engine, CF_RAFT, range(5))
    batch = engine.batch()
    batch.put(CF_RAFT, k(2), b"overwritten then deleted")
    batch.delete_range(CF_RAFT, k(0), k(3))
    batch.put(CF_RAFT, k(1), b"back")
    batch.put(CF_META, b"m", b"1")
    assert engine.get(CF_META, b"m") is None  # nothing is visible before write()
    engine.write(batch, sync=True)
    assert engine.scan(CF_RAFT, b"", None, 0) == [(k(1), b"back"), (k(3), b"v3"), (k(4), b"v4")]
    assert engine.get(CF_META, b"m") == b"1"


def test_batch_of_the_other_engine_is_refused(engine: Engine, tmp_path: Path) -> None:
    other: Engine = MemEngine() if isinstance(engine, RocksEngine) else RocksEngine(tmp_path / "other")
    try:
        batch = other.batch()
        batch.put(CF_DEFAULT, b"a", b"1")
        with pytest.raises(TypeError):
            engine.write(batch, sync=False)
    finally:
        other.close()


def test_scan_forward_bounds_and_limit(engine: Engine) -> None:
    fill(engine, CF_DEFAULT, range(0, 20, 2))  # even keys 0..18
    scan = engine.scan
    assert keys_of(scan(CF_DEFAULT, k(4), k(10), 0)) == [k(4), k(6), k(8)]
    assert keys_of(scan(CF_DEFAULT, k(3), k(9), 0)) == [k(4), k(6), k(8)]
    assert keys_of(scan(CF_DEFAULT, k(4), k(10), 2)) == [k(4), k(6)]
    assert keys_of(scan(CF_DEFAULT, k(4), k(10), -1)) == [k(4), k(6), k(8)]
    assert keys_of(scan(CF_DEFAULT, k(15), None, 0)) == [k(16), k(18)]
    assert keys_of(scan(CF_DEFAULT, b"", None, 3)) == [k(0), k(2), k(4)]
    assert scan(CF_DEFAULT, k(5), k(5), 0) == []
    assert scan(CF_DEFAULT, k(4), k(4), 0) == []
    assert scan(CF_DEFAULT, k(9), k(3), 0) == []
    assert scan(CF_DEFAULT, k(5), k(6), 0) == []
    assert scan(CF_DEFAULT, k(19), None, 0) == []
    assert scan(CF_DEFAULT, k(4), k(10), 0)[0] == (k(4), b"v4")


def test_scan_reverse_bounds_and_limit(engine: Engine) -> None:
    fill(engine, CF_DEFAULT, range(0, 20, 2))
    scan = engine.scan
    assert keys_of(scan(CF_DEFAULT, k(4), k(10), 0, reverse=True)) == [k(8), k(6), k(4)]
    assert keys_of(scan(CF_DEFAULT, k(3), k(9), 0, reverse=True)) == [k(8), k(6), k(4)]
    assert keys_of(scan(CF_DEFAULT, k(4), k(10), 2, reverse=True)) == [k(8), k(6)]
    assert keys_of(scan(CF_DEFAULT, k(0), k(1), 0, reverse=True)) == [k(0)]
    assert keys_of(scan(CF_DEFAULT, k(15), None, 0, reverse=True)) == [k(18), k(16)]
    assert keys_of(scan(CF_DEFAULT, b"", None, 1, reverse=True)) == [k(18)]
    assert keys_of(scan(CF_DEFAULT, b"", k(99), 1, reverse=True)) == [k(18)]
    assert scan(CF_DEFAULT, k(4), k(4), 0, reverse=True) == []
    assert scan(CF_DEFAULT, k(5), k(6), 0, reverse=True) == []
    assert scan(CF_DEFAULT, b"", k(0), 0, reverse=True) == []
    assert scan(CF_DEFAULT, k(9), k(3), 0, reverse=True) == []
    assert scan(CF_DEFAULT, b"", b"", 0, reverse=True) == []
    assert scan(CF_DEFAULT, k(4), k(10), 1, reverse=True) == [(k(8), b"v8")]


def test_scan_of_an_empty_family(engine: Engine) -> None:
    fill(engine, CF_DEFAULT, range(3))
    for reverse in (False, True):
        assert engine.scan(CF_META, b"", None, 0, reverse=reverse) == []
        assert engine.scan(CF_META, b"a", b"z", 5, reverse=reverse) == []


def test_iter_range_is_lazy_and_crosses_chunks(engine: Engine) -> None:
    n = ITER_CHUNK * 2 + 7
    fill(engine, CF_RAFT, range(n))
    it = engine.iter_range(CF_RAFT, k(1), k(n - 1))
    assert next(it) == (k(1), b"v1")
    assert keys_of(list(it)) == [k(i) for i in range(2, n - 1)]
    assert len(list(engine.iter_range(CF_RAFT, b"", None))) == n
    assert list(engine.iter_range(CF_RAFT, k(5), k(5))) == []
    exact = [k(i) for i in range(ITER_CHUNK)]
    assert keys_of(list(engine.iter_range(CF_RAFT, b"", k(ITER_CHUNK)))) == exact


def test_abandoned_iterator_does_not_block_close(engine: Engine, tmp_path: Path) -> None:
    fill(engine, CF_DEFAULT, range(10))
    it = engine.iter_range(CF_DEFAULT, b"", None)
    next(it)
    engine.close()
    if isinstance(engine, RocksEngine):
        RocksEngine(tmp_path / "db").close()  # the lock file was released


def test_close_is_idempotent(engine: Engine) -> None:
    engine.close()
    engine.close()


def test_rocks_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "db"
    eng = RocksEngine(path)
    batch = eng.batch()
    for cf in ALL_CFS:
        batch.put(cf, b"k", cf.encode())
    eng.write(batch, sync=True)
    eng.scan(CF_DEFAULT, b"", None, 0, reverse=True)
    eng.close()
    for _ in range(2):  # a store restarting twice in one process (tests, the CLI's restart)
        eng = RocksEngine(str(path))
        assert [eng.get(cf, b"k") for cf in ALL_CFS] == [cf.encode() for cf in ALL_CFS]
        eng.close()


def test_rocks_refuses_use_after_close(tmp_path: Path) -> None:
    eng = RocksEngine(tmp_path / "db")
    batch = eng.batch()
    eng.close()
    with pytest.raises(RuntimeError, match="closed"):
        eng.get(CF_DEFAULT, b"a")
    with pytest.raises(RuntimeError, match="closed"):
        batch.put(CF_DEFAULT, b"a", b"1")
    with pytest.raises(RuntimeError, match="closed"):
        eng.write(batch, sync=False)


def test_mem_engine_survives_close_for_a_restarted_store() -> None:
    eng = MemEngine()
    fill(eng, CF_RAFT, range(3))
    eng.close()
    fill(eng, CF_RAFT, [3])
    assert len(eng.scan(CF_RAFT, b"", None, 0)) == 4


def _state(eng: MemEngine) -> dict[str, list[tuple[bytes, bytes]]]:
    return {cf: eng.scan(cf, b"", None, 0) for cf in ALL_CFS}


def test_mem_crash_loses_unsynced_writes_of_every_kind() -> None:
    eng = MemEngine()
    fill(eng, CF_DEFAULT, range(6))
    batch = eng.batch()
    batch.put(CF_META, b"m", b"synced")
    eng.write(batch, sync=True)  # makes the unsynced fill durable too (the WAL is sequential)
    durable = _state(eng)
    batch = eng.batch()
    batch.put(CF_DEFAULT, k(0), b"overwritten")
    batch.put(CF_DEFAULT, k(9), b"new")
    batch.delete(CF_DEFAULT, k(1))
    batch.delete_range(CF_DEFAULT, k(3), k(5))
    batch.delete(CF_META, b"m")
    eng.write(batch, sync=False)
    fill(eng, CF_RAFT, range(2))
    assert eng.get(CF_DEFAULT, k(0)) == b"overwritten"  # visible at once
    assert eng.crash() == 2
    assert _state(eng) == durable
    assert eng.crash() == 0  # what survived one crash is durable


def test_mem_synced_write_makes_earlier_unsynced_writes_durable() -> None:
    eng = MemEngine()
    fill(eng, CF_DEFAULT, range(3))
    eng.write(eng.batch(), sync=True)  # even an empty synced write syncs the WAL
    fill(eng, CF_DEFAULT, [3])
    eng.crash()
    assert keys_of(eng.scan(CF_DEFAULT, b"", None, 0)) == [k(0), k(1), k(2)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_mem_crash_leaves_the_state_after_one_write_since_the_last_sync(seed: int) -> None:
    """After a crash the engine holds exactly what it held after some write: the last synced
    one (no rng) or a later one the OS may have written back (with rng), never a torn batch."""
    rng = random.Random(seed)
    eng = MemEngine()
    since_sync = [_state(eng)]  # the state after the last synced write, then after each later one
    crashes_that_lost = 0
    for op in _random_ops(rng, 600):
        if op[0] != "write":
            continue
        _run(eng, op)
        if op[2]:
            since_sync = []
        since_sync.append(_state(eng))
        if rng.random() < 0.05:
            with_rng = rng.random() < 0.5
            eng.crash(rng if with_rng else None)
            after = _state(eng)
            assert after in since_sync if with_rng else after == since_sync[0], f"seed {seed}"
            crashes_that_lost += after != since_sync[-1]
            since_sync = [after]
    assert crashes_that_lost > 0


def _random_ops(rng: random.Random, n: int) -> list[tuple]:
    """Batches of puts/deletes/range deletes and reads over a small key space, so they collide."""

    def key() -> bytes:
        return bytes([rng.randrange(4)]) + b"%02d" % rng.randrange(12)

    ops: list[tuple] = []
    while len(ops) < n:
        if rng.random() < 0.5:
            staged = []
            for _ in range(rng.randint(0, 6)):
                cf = rng.choice(ALL_CFS)
                r = rng.random()
                if r < 0.6:
                    staged.append(("put", cf, key(), rng.randbytes(rng.randrange(8))))
                elif r < 0.85:
                    staged.append(("delete", cf, key()))
                else:
                    staged.append(("delete_range", cf, key(), key()))
            ops.append(("write", staged, rng.random() < 0.3))
        else:
            cf = rng.choice(ALL_CFS)
            end = rng.choice([None, key(), key()])
            ops.append(("scan", cf, key(), end, rng.randrange(-1, 6), rng.random() < 0.5))
            ops.append(("get", cf, key()))
            ops.append(("iter", cf, key(), end))
    return ops


def _run(eng: Engine, op: tuple) -> object:
    kind = op[0]
    if kind == "write":
        batch = eng.batch()
        for staged in op[1]:
            getattr(batch, staged[0])(*staged[1:])
        eng.write(batch, sync=op[2])
        return (len(batch), batch.size)
    if kind == "scan":
        return eng.scan(*op[1:5], reverse=op[5])
    if kind == "get":
        return eng.get(*op[1:])
    return list(eng.iter_range(*op[1:]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mem_and_rocks_agree_on_random_ops(tmp_path: Path, seed: int) -> None:
    rocks, mem = RocksEngine(tmp_path / "db"), MemEngine()
    try:
        for n, op in enumerate(_random_ops(random.Random(seed), 300)):
            assert _run(rocks, op) == _run(mem, op), f"seed {seed}, op {n}: {op}"
        for cf in ALL_CFS:
            assert rocks.scan(cf, b"", None, 0) == mem.scan(cf, b"", None, 0)
    finally:
        rocks.close()


def test_a_checkpoint_never_sees_later_writes(engine: Engine) -> None:
    fill(engine, CF_DEFAULT, range(10))
    view = engine.checkpoint("ck")
    fill(engine, CF_DEFAULT, range(10, 20))
    batch = engine.batch()
    batch.delete(CF_DEFAULT, k(3))
    engine.write(batch, sync=False)
    assert keys_of(list(view.iter_range(CF_DEFAULT, b"", None))) == [k(i) for i in range(10)]
    assert view.get(CF_DEFAULT, k(3)) == b"v3"
    view.close()
    assert "ck" not in engine.files.names()


def test_an_ingested_file_wins_over_earlier_writes_and_outlives_a_crash(engine: Engine) -> None:
    assert engine.write_sst("empty", iter(())) == 0
    assert not engine.files.exists("empty")
    assert engine.write_sst("f", [(k(i), b"new%d" % i) for i in range(5)]) == 5
    fill(engine, CF_DEFAULT, range(3, 8))  # unsynced, before the ingestion
    engine.ingest(CF_DEFAULT, "f")
    assert engine.files.exists("f")  # kept, so that it can be ingested again after a crash
    assert [v for _, v in engine.scan(CF_DEFAULT, b"", None, 0)] == [
        b"new0", b"new1", b"new2", b"new3", b"new4", b"v5", b"v6", b"v7"]
    if isinstance(engine, MemEngine):
        engine.crash()  # the unsynced fill is lost, the ingested pairs are not
        assert [v for _, v in engine.scan(CF_DEFAULT, b"", None, 0)] == [
            b"new0", b"new1", b"new2", b"new3", b"new4"]
