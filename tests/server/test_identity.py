"""A data dir's identity (cluster id, store id): read without changing a file, checked against
the cluster and ``--store-id``, and an id from PD only for a new data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvdb.server.identity import IdentityError, claim_store_id, read_identity
from kvdb.server.raft_host import db_path
from kvdb.storage.rocks import RocksEngine
from kvdb.store.clock import MonotonicClock
from kvdb.store.store import Store


def make_data_dir(data_dir: Path, cluster_id: int, store_id: int) -> None:
    """A data dir as a store leaves it: the store writes its identity when it first opens."""
    engine = RocksEngine(db_path(data_dir), data_dir / "snap")
    Store(cluster_id, store_id, engine, transport=None, clock=MonotonicClock())
    engine.close()


def contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def claim(data_dir: Path, cluster_id: int, store_id: int, allocated: list[int] | None) -> int:
    async def alloc() -> int:
        allocated.append(100 + len(allocated))
        return allocated[-1]

    return asyncio.run(claim_store_id(data_dir, cluster_id, store_id, None if allocated is None else alloc))


def test_a_new_data_dir_gets_an_id_from_pd_and_nothing_is_created(tmp_path: Path) -> None:
    allocated: list[int] = []
    assert read_identity(tmp_path / "new") is None and not (tmp_path / "new").exists()
    assert claim(tmp_path / "new", 7, 0, allocated) == 100 and allocated == [100]
    assert claim(tmp_path / "new", 7, 3, allocated) == 3 and allocated == [100]  # --store-id given
    with pytest.raises(IdentityError, match="--store-id is required without --pd"):
        claim(tmp_path / "new", 7, 0, None)
    assert not (tmp_path / "new").exists()


def test_a_used_data_dir_keeps_its_id_and_refuses_another_cluster_or_store(tmp_path: Path) -> None:
    make_data_dir(tmp_path, cluster_id=7, store_id=4)
    before = contents(tmp_path)
    ident = read_identity(tmp_path)
    assert (ident.cluster_id, ident.store_id) == (7, 4)
    allocated: list[int] = []
    assert claim(tmp_path, 7, 0, allocated) == 4 and allocated == []  # a restart: PD is not asked
    assert claim(tmp_path, 7, 4, allocated) == 4
    with pytest.raises(IdentityError, match="belongs to store 4 of cluster 7, not to cluster 8"):
        claim(tmp_path, 8, 0, allocated)
    with pytest.raises(IdentityError, match="belongs to store 4, not --store-id 5"):
        claim(tmp_path, 7, 5, allocated)
    assert allocated == [] and contents(tmp_path) == before
