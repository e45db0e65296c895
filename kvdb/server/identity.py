"""Which store a data dir belongs to: its identity, and a store id PD allocates on first start.

The identity is the ``StoreIdent`` record (cluster id, store id) in the store's own RocksDB,
written with fsync by ``Store`` when it first opens the data dir. Kept in the database rather
than in a file beside it, it cannot be separated from the data it names (copying, restoring or
deleting the database takes it along) and needs no second durability scheme.

It is read here before the store opens for writing (a read-only open changes nothing), so a data
dir of another cluster, or of another store than ``--store-id`` says, is refused with nothing
changed. A store started without ``--store-id`` on an empty data dir asks PD for an id, which
the store then writes as its identity, so every restart keeps it. A crash between the two steps
only wastes an id: the next start asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from kvdb.pb import raft_serverpb_pb2
from kvdb.server.raft_host import db_path
from kvdb.storage.engine import CF_META
from kvdb.storage.keys import STORE_IDENT_KEY
from kvdb.storage.rocks import read_only_get

log = logging.getLogger(__name__)


class IdentityError(ValueError):
    """The data dir belongs to another cluster or store: refused, nothing written."""


def read_identity(data_dir: Path) -> raft_serverpb_pb2.StoreIdent | None:
    """The identity recorded in ``data_dir`` (None for a new data dir), read without writing."""
    db = db_path(data_dir)
    if not (db / "CURRENT").exists():  # no database yet; opening would create one
        return None
    raw = read_only_get(db, CF_META, STORE_IDENT_KEY)
    return None if raw is None else raft_serverpb_pb2.StoreIdent.FromString(raw)


def check_identity(ident: raft_serverpb_pb2.StoreIdent | None, data_dir: Path, cluster_id: int,
                   store_id: int) -> int:
    """The store id to run as given the data dir's identity (0: none yet, PD must allocate one);
    ``store_id`` is ``--store-id`` (0 when not given)."""
    if ident is None:
        return store_id
    if ident.cluster_id != cluster_id:
        raise IdentityError(f"data dir {data_dir} belongs to store {ident.store_id} of cluster "
                            f"{ident.cluster_id}, not to cluster {cluster_id}; give this store an empty "
                            "--data-dir (or point --pd / --cluster-id at its own cluster)")
    if store_id and ident.store_id != store_id:
        raise IdentityError(f"data dir {data_dir} belongs to store {ident.store_id}, not --store-id "
                            f"{store_id}; drop --store-id or give another --data-dir")
    return ident.store_id


async def claim_store_id(data_dir: Path, cluster_id: int, store_id: int,
                         alloc: Callable[[], Awaitable[int]] | None) -> int:
    """The id this store runs as: the data dir's, else ``store_id``, else one from ``alloc`` (PD's
    AllocID; None without PD, where ``--store-id`` is required)."""
    chosen = check_identity(read_identity(data_dir), data_dir, cluster_id, store_id)
    if chosen:
        return chosen
    if alloc is None:
        raise IdentityError("--store-id is required without --pd (only PD allocates store ids)")
    chosen = await alloc()
    log.info("PD allocated store id %d for the new data dir %s", chosen, data_dir)
    return chosen
