"""Tunables of a store, with the defaults a real deployment starts from."""

from __future__ import annotations

from dataclasses import dataclass

from kvdb.raft.config import promise_intervals

DEFAULT_MAX_RANGE_SIZE = 96 * 1024 * 1024
WAL_RECYCLE_MIN = 1 << 20
"""The smallest reused WAL file: below it, RocksDB would switch files (and flush memtables) every
few hundred writes."""


@dataclass
class StoreConfig:
    tick_interval: float = 0.05
    """Seconds per Raft tick."""
    election_tick: int = 10
    """Ticks without a leader before a follower campaigns: 0.5 s by default."""
    heartbeat_tick: int = 2
    max_clock_drift: float = 0.1
    """Seconds by which one store's clock may run ahead of another's over an election timeout.
    The lease is shorter than the minimum election timeout by this much."""
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 8 * 1024 * 1024
    """Per follower and range: entry bytes a leader keeps sent but unacknowledged (with
    ``max_inflight_msgs`` appends, the flow-control window; docs/raft.md). 8 appends of
    ``max_size_per_msg``: at the ~100 MB/s a synced log takes and a few ms per round trip a follower
    needs under 1 MiB in flight to keep up, so this binds only when one falls behind (slow disk,
    catching up), and then caps what the leader buffers for it and what it must hold unwritten."""
    max_uncommitted_entries_size: int = 32 * 1024 * 1024
    """Per range: entry bytes a leader accepts beyond its commit index before it refuses proposals
    (they are answered stale_command, which the client retries). Bounds a leader's memory when a
    quorum stops acknowledging (slow disks, or a partition until CheckQuorum deposes it). Four
    in-flight windows, several values of ``max_value_size``: far above what a healthy range holds
    uncommitted. One proposal is always accepted when nothing is uncommitted, however large."""
    max_key_size: int = 8 * 1024
    max_value_size: int = 8 * 1024 * 1024
    max_batch_keys: int = 10_000
    """Most keys (or pairs) one request may carry."""
    max_request_bytes: int = 64 * 1024 * 1024
    max_scan_limit: int = 10_000
    max_pending_proposals: int = 20_000
    """Per range: beyond this many proposals waiting to apply, writes answer server busy."""
    max_pending_reads: int = 50_000
    busy_backoff_ms: int = 20
    raft_log_gc_count_limit: int = 10_000
    """Truncate a range's log once it holds more entries than this ..."""
    raft_log_gc_size_limit: int = 64 * 1024 * 1024
    """... or more bytes than this; the newest ``raft_log_gc_keep`` entries are kept."""
    raft_log_gc_keep: int = 1_000
    wal_recycle_bytes: int = 32 * 1024 * 1024
    """Size of the RocksDB WAL files the engine fills as it opens and reuses for synced writes, so
    an fsync overwrites blocks instead of growing a file (``kvdb.storage.rocks``); 0: RocksDB's
    default, new files. Opening costs ~0.15 s per 32 MiB, and the data dir holds twice this."""
    entry_cache_entries: int = 4096
    snapshot_chunk_bytes: int = 1 << 20
    hibernate: bool = True
    """Idle ranges stop ticking and heartbeating (``kvdb.store.hibernate``)."""
    hibernate_idle_ticks: int = 20
    """Ticks a leader must be idle (nothing proposed, read or pending; every replica's log
    matching) before its range hibernates: 1 s by default."""
    session_ttl: float = 600.0
    """Seconds of log time (the leaders' wall clocks) after its last write that a client session is
    forgotten; a retry after that raises UncertainResultError in the client (docs/client.md)."""
    max_range_size: int = 0
    """A range led here splits near its middle once its data exceeds this many bytes; 0: the
    cluster's setting from PD, or ``DEFAULT_MAX_RANGE_SIZE`` without one. PD always reports a
    setting (96 MiB unless configured), so a store's own setting wins, else it would never apply."""
    split_check_interval: float = 1.0
    """Seconds between two rounds of the split checker (size measures and load windows)."""
    split_check_keys_per_round: int = 20_000
    """Most keys the size measures read per round, over all ranges (a round yields to the event
    loop every ``split_check_keys_per_scan`` keys)."""
    split_check_keys_per_scan: int = 1_000
    load_split_qps: float = 3000.0
    """A range whose requests per second stay at least this high for ``load_split_seconds``
    splits where it balances the load (0: no load splits)."""
    load_split_seconds: float = 10.0
    load_split_cpu: float = 0.8
    """... and only while this store's process used at least this fraction of one core over each
    check interval (0: by requests per second alone). A store's event loop runs on one core, so
    a range whose store has CPU to spare gains nothing from a split and pays for a second range
    (on 2 cores, a fresh playground: 64 readers ~26-31k reads/s after load splits against
    33-35k without, 16 writers 2.5-3.6k against 3.8-3.9k writes/s; the leader store used ~40-55 %
    of a core). TiKV likewise splits hot ranges by load only when its read pool is CPU-bound."""

    @property
    def election_timeout(self) -> float:
        """The minimum election timeout in seconds."""
        return self.election_tick * self.tick_interval

    @property
    def session_ttl_ms(self) -> int:
        return round(self.session_ttl * 1000)

    @property
    def lease_span(self) -> float:
        """How long a lease runs from the send time of the round a quorum acknowledged."""
        return self.election_timeout - self.max_clock_drift

    @property
    def promise_span(self) -> float:
        """How long (by its own clock) a node that acknowledged a round neither votes for another
        leader nor campaigns, counted from when it received the round: whole tick intervals."""
        return promise_intervals(self.election_tick) * self.tick_interval

    def validate(self) -> None:
        if self.tick_interval <= 0 or self.election_tick < 1:
            raise ValueError("tick_interval and election_tick must be positive")
        if self.heartbeat_tick >= self.election_tick:
            raise ValueError("heartbeat_tick must be smaller than election_tick")
        if self.max_clock_drift < 0:
            # A negative drift would make the lease outlast the followers' vote refusal.
            raise ValueError("max_clock_drift must not be negative")
        if self.lease_span <= 0:
            raise ValueError("max_clock_drift must be shorter than the election timeout")
        # The whole safety margin of a lease read: the promise outlasts the lease by this much,
        # and clock drift may eat no more. A combination of tick interval, election ticks and
        # drift whose margin falls below the drift bound would allow stale lease reads.
        margin = self.promise_span - self.lease_span
        if margin < self.max_clock_drift - 1e-9:
            raise ValueError(
                f"the lease ({self.lease_span:.3f} s) leaves {margin:.3f} s before the followers' "
                f"promise ends ({self.promise_span:.3f} s), less than max_clock_drift "
                f"({self.max_clock_drift:.3f} s)"
            )
        if self.max_inflight_bytes and self.max_inflight_bytes < self.max_size_per_msg:
            raise ValueError("max_inflight_bytes must be 0 (no limit) or at least max_size_per_msg")
        if self.max_uncommitted_entries_size < 0:
            raise ValueError("max_uncommitted_entries_size must be 0 (no limit) or positive")
        if self.wal_recycle_bytes and self.wal_recycle_bytes < WAL_RECYCLE_MIN:
            raise ValueError(f"wal_recycle_bytes must be 0 (off) or at least {WAL_RECYCLE_MIN} bytes, "
                             f"got {self.wal_recycle_bytes}")
        if self.hibernate_idle_ticks < 1:
            raise ValueError("hibernate_idle_ticks must be positive")
        if self.session_ttl <= 0:
            raise ValueError("session_ttl must be positive")
        if self.max_range_size and self.max_range_size < 1024:
            raise ValueError(f"max_range_size must be at least 1024 bytes, got {self.max_range_size}")
        if self.split_check_interval <= 0 or self.load_split_seconds <= 0:
            raise ValueError("split_check_interval and load_split_seconds must be positive")
        if self.split_check_keys_per_round < 1 or self.split_check_keys_per_scan < 1:
            raise ValueError("split_check_keys_per_round and split_check_keys_per_scan must be positive")
        if self.load_split_qps < 0 or self.load_split_cpu < 0:
            raise ValueError("load_split_qps and load_split_cpu cannot be negative")
        if self.raft_log_gc_keep >= self.raft_log_gc_count_limit:
            raise ValueError("raft_log_gc_keep must be smaller than raft_log_gc_count_limit")
