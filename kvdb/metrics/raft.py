"""Raft and store metrics of a process that hosts replicas (a store, or a PD member's metadata
range), read at scrape time from counters the store keeps anyway (``Peer.counters``,
``Store.stats``, ``LoopTimings``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric

from kvdb.metrics.families import counter, gauge, histograms, labelled
from kvdb.store.loop import LoopTimings
from kvdb.store.store import Store


def dir_size(path: Path) -> int:
    """Bytes of the files under ``path`` (RocksDB's SSTs, WAL and manifest); 0 if it is gone."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # compaction removed it meanwhile
                pass
    return total


def raft_families(store: Store, timings: LoopTimings) -> list[Metric]:
    """Run on the store's event loop (``kvdb.metrics.endpoint``): nothing moves meanwhile."""
    totals: Counter[str] = Counter(store.stats.retired)
    ranges = leaders = hibernated = lag = pending = 0
    for peer in store.peers.values():
        totals.update(peer.counters)
        ranges += 1
        leaders += peer.is_leader
        hibernated += store.hibernation.is_asleep(peer)
        lag += peer.raw.raft.raft_log.committed - peer.applied
        pending += len(peer.proposals) + len(peer.to_propose)
    stats = store.stats
    naps = store.hibernation.counters
    return [
        counter("kvdb_raft_proposals", "Commands proposed by leaders on this node", totals["proposals"]),
        counter("kvdb_raft_committed_entries", "Log entries committed and applied on this node",
                stats.committed_entries),
        counter("kvdb_raft_elections", "Elections started by replicas on this node (became candidate)",
                stats.elections),
        counter("kvdb_raft_leader_changes", "Times a replica on this node became its range's leader",
                stats.leader_changes),
        labelled(CounterMetricFamily, "kvdb_raft_reads", "Reads served by leaders on this node, by path "
                 "(lease: local read under the leader lease; read_index: a ReadIndex round)", ["path"],
                 [(("lease",), totals["lease_reads"]), (("read_index",), totals["read_index_reads"])]),
        labelled(CounterMetricFamily, "kvdb_raft_snapshots", "Raft snapshots sent and applied on this node",
                 ["direction"], [(("sent",), totals["snapshots_sent"]),
                                 (("applied",), totals["snapshots_applied"])]),
        labelled(CounterMetricFamily, "kvdb_store_duplicate_writes", "Re-sent writes caught by their "
                 "session (answered: from the stored result; rejected: below the session's floor; "
                 "expired: the session was forgotten)", ["result"],
                 [(("answered",), totals["duplicates_answered"]),
                  (("rejected",), totals["duplicates_rejected"]),
                  (("expired",), totals["sessions_expired"])]),
        histograms("kvdb_raft_append_seconds", "Time to collect one iteration's Readies and stage its log "
                   "append", None, {"": timings.append}),
        histograms("kvdb_raft_fsync_seconds", "Time of one iteration's synced (fsync) write", None,
                   {"": timings.fsync}),
        counter("kvdb_raft_inline_writes", "Synced writes run on the event loop's thread, no read having "
                "come since the last one (kvdb_raft_fsync_seconds counts every synced write)",
                timings.inline_writes),
        histograms("kvdb_raft_apply_seconds", "Time to apply one iteration's committed entries and answer",
                   None, {"": timings.apply}),
        gauge("kvdb_raft_apply_lag_entries", "Entries committed but not yet applied, summed over replicas",
              lag),
        gauge("kvdb_raft_pending_proposals", "Proposals waiting to be committed and applied", pending),
        gauge("kvdb_store_ranges", "Replicas hosted on this node", ranges),
        gauge("kvdb_store_leaders", "Replicas on this node that lead their range", leaders),
        gauge("kvdb_store_hibernated_ranges", "Replicas on this node that are hibernated", hibernated),
        labelled(CounterMetricFamily, "kvdb_store_hibernation_events", "Hibernation events on this node",
                 ["event"], sorted(((k,), v) for k, v in naps.items())),
    ]


def engine_families(db_dir: Path) -> list[Metric]:
    """Read off the event loop (it walks a directory)."""
    size = dir_size(db_dir)
    return [gauge("kvdb_store_engine_size_bytes", "Bytes of the RocksDB files of this node", size)]
