"""Range splits: checking a split command and deriving the descriptors it produces.

A split is a Raft command (``BatchSplitRequest``) so every replica applies it at the same index,
atomically with its applied index: the parent keeps [start, first key) and each new range takes
[its key, the next key or the parent's end). Pure functions over descriptors; the store stages the
new ranges' state (``Store._apply_split``). Every range's ``epoch.version`` becomes the parent's
plus the number of new ranges, so a command routed before the split is refused at apply, and a
client that routed with either epoch learns the new bounds from the error.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.store import keyspace
from kvdb.store.errors import InvalidArgumentError

MAX_SPLIT_KEYS = 1024
"""Most new ranges one command may create (it is applied in one write batch)."""


def check(desc: metapb_pb2.RangeDescriptor, requests: Sequence[raft_serverpb_pb2.SplitRequest]) -> None:
    """Raise ``InvalidArgumentError`` unless ``requests`` can split ``desc``.

    Deterministic in the descriptor alone, so a proposal that passed on the leader but finds the
    range changed at apply is refused identically on every replica.
    """
    if not requests:
        raise InvalidArgumentError("a split needs at least one split key")
    if len(requests) > MAX_SPLIT_KEYS:
        raise InvalidArgumentError(f"{len(requests)} split keys, at most {MAX_SPLIT_KEYS} at once")
    previous = desc.start_key
    new_ids: set[int] = {desc.id}
    peer_ids = {p.id for p in desc.peers}
    for req in requests:
        key = req.split_key
        if key <= previous or not keyspace.contains(desc, key):
            raise InvalidArgumentError(
                f"split key {key[:64].hex()} is not strictly inside range {desc.id} above the previous "
                "key (keys must ascend and differ from the range's start)")
        previous = key
        if not req.new_range_id or req.new_range_id in new_ids:
            raise InvalidArgumentError(f"new range id {req.new_range_id} is missing or not unique")
        new_ids.add(req.new_range_id)
        if len(req.new_peer_ids) != len(desc.peers):
            raise InvalidArgumentError(
                f"range {desc.id} has {len(desc.peers)} replicas, the split names {len(req.new_peer_ids)} "
                "new peer ids")
        for peer_id in req.new_peer_ids:
            if not peer_id or peer_id in peer_ids:
                raise InvalidArgumentError(f"new peer id {peer_id} is missing or not unique")
            peer_ids.add(peer_id)


def derive(desc: metapb_pb2.RangeDescriptor, requests: Sequence[raft_serverpb_pb2.SplitRequest],
           ) -> list[metapb_pb2.RangeDescriptor]:
    """The shrunk parent, then the new ranges in key order (``requests`` passed ``check``)."""
    version = desc.epoch.version + len(requests)
    parent = metapb_pb2.RangeDescriptor()
    parent.CopyFrom(desc)
    parent.end_key = requests[0].split_key
    parent.epoch.version = version
    out = [parent]
    for i, req in enumerate(requests):
        child = metapb_pb2.RangeDescriptor(id=req.new_range_id, start_key=req.split_key)
        child.end_key = requests[i + 1].split_key if i + 1 < len(requests) else desc.end_key
        child.epoch.conf_ver = desc.epoch.conf_ver
        child.epoch.version = version
        for old, new_id in zip(desc.peers, req.new_peer_ids, strict=True):
            child.peers.add(id=new_id, store_id=old.store_id, role=old.role)
        out.append(child)
    return out
