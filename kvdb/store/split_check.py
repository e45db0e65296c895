"""When a range should split, and where: by size and by load (sans-I/O; driven by
``kvdb.server.split_worker``).

**Size.** A leader keeps an estimate of each range's bytes and keys: the last measure plus the
bytes written since (a put counts its key and value; an overwrite or a delete is only corrected by
the next measure). A measure is a resumable scan of the range that reads a bounded number of keys
per step, so a big range never blocks the store for long; while it passes over the keys it notes
a checkpoint key every 1/32 of ``max_range_size`` bytes, and once it is over, the checkpoint
nearest half the bytes is the split key. RocksDB's per-key-range size estimates are not exposed by
rocksdict (only whole-file metadata and store-wide properties), hence the scan. As in TiKV, a
range is measured again only after a sixteenth of ``max_range_size`` was written to it (or while
its estimate is above the limit), so an idle range costs nothing.

**Load.** TiKV's load-base-split: the leader counts the requests of each range and samples their
key spans (reservoir sampling, so memory is bounded whatever the rate). A range whose QPS stays at
or above the threshold for a whole detect window splits at the sampled key that best balances the
requests left and right of it, among keys that few requests cross (scans). A range whose load is a
single hot key has no such key, and does not split: that would only move the hot key elsewhere.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from kvdb.mvcc import keys as mvcc_keys
from kvdb.pb import metapb_pb2
from kvdb.storage.engine import CF_WRITE
from kvdb.store import keyspace

Span = tuple[bytes, bytes]
"""Keys a request touched: [start, end). A point request on key k is (k, k + b"\\x00")."""

ScanFn = Callable[[str, bytes, bytes, int], list[tuple[bytes, bytes]]]
"""``scan(cf, start, end, limit)``: up to ``limit`` pairs of column family ``cf`` in [start, end),
in key order."""

CHECKPOINTS_PER_LIMIT = 32
"""A measure notes a candidate split key every ``max_range_size / CHECKPOINTS_PER_LIMIT`` bytes."""
MAX_CHECKPOINTS = 256
"""Beyond this many checkpoints (a range far above the limit) every other one is dropped."""


def point(key: bytes) -> Span:
    return key, key + b"\x00"


# ------------------------------------------------------------------------------------- size
class SizeMeasure:
    """One pass over a range's keys in every data column family (raw pairs, locks, MVCC
    versions: ``keyspace.data_bounds``), one family after the other, ``step`` by ``step``;
    ``done`` once the last family's end is reached.

    Writes during the pass may or may not be seen: the result is approximate, like the estimate it
    corrects. ``checkpoints`` are (bytes before the key, user key), the key always strictly after
    the range's start, so a split there leaves data on both sides and never straddles a key (a
    version key is noted as its user key: a split moves all of a key's versions together). With
    data in several families the bytes "before" a key count whole earlier families, so the
    middle is only approximate then; a range holding one kind of data is split at its middle.
    """

    def __init__(self, desc: metapb_pb2.RangeDescriptor, checkpoint_bytes: int) -> None:
        self.start_key = desc.start_key
        self._families = keyspace.data_bounds(desc)
        self.cf, self.cursor, self.end = self._families.pop(0)
        self.bytes = 0
        self.keys = 0
        self.done = False
        self.checkpoint_bytes = max(1, checkpoint_bytes)
        self._next_checkpoint = self.checkpoint_bytes
        self.checkpoints: list[tuple[int, bytes]] = []

    def step(self, scan: ScanFn, max_keys: int) -> int:
        """Read at most ``max_keys`` more keys (going on into the next family when one ends);
        returns how many were read."""
        read = 0
        while not self.done and read < max_keys:
            limit = max_keys - read
            pairs = scan(self.cf, self.cursor, self.end, limit)
            self._count(pairs)
            read += len(pairs)
            if len(pairs) == limit:
                self.cursor = pairs[-1][0] + b"\x00"
            elif self._families:
                self.cf, self.cursor, self.end = self._families.pop(0)
            else:
                self.done = True
        return read

    def _count(self, pairs: list[tuple[bytes, bytes]]) -> None:
        for key, value in pairs:
            # Never at the first key (no bytes before it yet): a checkpoint has data on its left.
            if self.bytes >= self._next_checkpoint and (user_key := self._user_key(key)) > self.start_key:
                self.checkpoints.append((self.bytes, user_key))
                self._next_checkpoint = self.bytes + self.checkpoint_bytes
                if len(self.checkpoints) > MAX_CHECKPOINTS:
                    self.checkpoints = self.checkpoints[1::2]
                    self.checkpoint_bytes *= 2
            self.bytes += len(key) + len(value)
            self.keys += 1

    def _user_key(self, key: bytes) -> bytes:
        return mvcc_keys.split_version_key(key)[0] if self.cf == CF_WRITE else key

    def middle_key(self) -> bytes | None:
        """The checkpoint nearest half the measured bytes (None: too few keys to split)."""
        if not self.checkpoints:
            return None
        half = self.bytes / 2
        return min(self.checkpoints, key=lambda c: abs(c[0] - half))[1]


@dataclass
class SizeState:
    """A leader's knowledge of one range's size (for one epoch version: a split starts afresh)."""

    version: int
    measured_bytes: int = 0
    measured_keys: int = 0
    measured: bool = False
    written_bytes: int = 0
    """Bytes written since the last measure began."""
    written_keys: int = 0
    measure: SizeMeasure | None = None

    @property
    def approximate_bytes(self) -> int:
        return self.measured_bytes + self.written_bytes

    @property
    def approximate_keys(self) -> int:
        return self.measured_keys + self.written_keys


class MeasureStep(NamedTuple):
    read: int
    """Keys read by this step."""
    done: bool
    """The measure is over (and the estimate corrected)."""
    split_key: bytes | None
    """Once done: where to split a range found above ``max_range_size``, if it has such a key."""


class SizeChecker:
    """Size estimates of the ranges this store leads, and the measures that correct them."""

    def __init__(self, max_range_size: int) -> None:
        self.max_range_size = max_range_size
        self.ranges: dict[int, SizeState] = {}

    def _state(self, desc: metapb_pb2.RangeDescriptor) -> SizeState:
        state = self.ranges.get(desc.id)
        if state is None or state.version != desc.epoch.version:
            state = self.ranges[desc.id] = SizeState(desc.epoch.version)
        return state

    def on_write(self, desc: metapb_pb2.RangeDescriptor, bytes_: int, keys: int) -> None:
        state = self._state(desc)
        state.written_bytes += bytes_
        state.written_keys += keys

    def forget(self, keep: set[int]) -> None:
        """Drop what is known of ranges no longer led here (another leader measures them)."""
        for range_id in list(self.ranges):
            if range_id not in keep:
                del self.ranges[range_id]

    def due(self, desc: metapb_pb2.RangeDescriptor) -> bool:
        """Whether ``desc`` needs a measure: never measured, written a sixteenth of the limit since
        the last one, or estimated above the limit."""
        state = self._state(desc)
        if state.measure is not None:
            return True
        return (not state.measured or state.written_bytes >= self.max_range_size // 16
                or state.approximate_bytes >= self.max_range_size)

    def measure(self, desc: metapb_pb2.RangeDescriptor, scan: ScanFn, max_keys: int) -> MeasureStep:
        """Advance ``desc``'s measure by at most ``max_keys`` keys."""
        state = self._state(desc)
        if state.measure is None:
            state.measure = SizeMeasure(desc, self.max_range_size // CHECKPOINTS_PER_LIMIT)
            state.written_bytes = state.written_keys = 0
        m = state.measure
        read = m.step(scan, max_keys)
        if not m.done:
            return MeasureStep(read, False, None)
        state.measure = None
        state.measured, state.measured_bytes, state.measured_keys = True, m.bytes, m.keys
        return MeasureStep(read, True, m.middle_key() if m.bytes > self.max_range_size else None)

    def stats(self, desc: metapb_pb2.RangeDescriptor) -> tuple[int, int] | None:
        """(approximate bytes, approximate keys) once measured at ``desc``'s version, else None."""
        state = self.ranges.get(desc.id)
        if state is None or state.version != desc.epoch.version or not state.measured:
            return None
        return state.approximate_bytes, state.approximate_keys


# ------------------------------------------------------------------------------------- load
@dataclass
class LoadConfig:
    """TiKV's load-base-split defaults."""

    qps_threshold: float = 3000.0
    detect_seconds: float = 10.0
    """The QPS must stay at or above the threshold this long."""
    sample_size: int = 1000
    """Request spans kept per range per window (a reservoir)."""
    candidates: int = 20
    """Split keys considered: quantiles of the sampled request keys."""
    min_samples: int = 100
    balance_score: float = 0.25
    """Most |left - right| / (left + right) a split key may leave."""
    contained_score: float = 0.5
    """Most share of the sampled requests that may cross a split key."""


@dataclass
class LoadWindow:
    """One range's requests since the last check, and its run of hot checks."""

    version: int
    count: int = 0
    seen: int = 0
    """Requests offered to the reservoir since the window began."""
    samples: list[Span] = field(default_factory=list)
    hot_for: float = 0.0


class LoadChecker:
    def __init__(self, config: LoadConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.ranges: dict[int, LoadWindow] = {}

    def record(self, desc: metapb_pb2.RangeDescriptor, spans: list[Span]) -> None:
        """One request on ``desc`` that touched ``spans``."""
        w = self.ranges.get(desc.id)
        if w is None or w.version != desc.epoch.version:
            w = self.ranges[desc.id] = LoadWindow(desc.epoch.version)
        w.count += 1
        size = self.config.sample_size
        for span in spans:
            w.seen += 1
            if len(w.samples) < size:
                w.samples.append(span)
            else:
                i = self.rng.randrange(w.seen)
                if i < size:
                    w.samples[i] = span

    def check(self, desc: metapb_pb2.RangeDescriptor, elapsed: float) -> bytes | None:
        """Close a check interval of ``elapsed`` seconds for ``desc``; a split key once the range
        was hot for the whole detect window and its samples have a good key."""
        w = self.ranges.get(desc.id)
        if w is None or w.version != desc.epoch.version or elapsed <= 0:
            return None
        qps, w.count = w.count / elapsed, 0
        if qps < self.config.qps_threshold:
            del self.ranges[desc.id]
            return None
        w.hot_for += elapsed
        if w.hot_for < self.config.detect_seconds:
            return None
        del self.ranges[desc.id]  # a fresh window either way: a new range, or no good key yet
        return choose_load_split_key(w.samples, desc, self.config)

    def forget(self, keep: set[int]) -> None:
        for range_id in list(self.ranges):
            if range_id not in keep:
                del self.ranges[range_id]


def choose_load_split_key(spans: list[Span], desc: metapb_pb2.RangeDescriptor,
                          config: LoadConfig) -> bytes | None:
    """The candidate key that best balances ``spans`` left and right of it, or None.

    A span is left of key c if it ends at or before c, right if it starts at or after c, and
    crosses c otherwise. Candidates are quantiles of the spans' start keys and of their end keys
    (where a run of scans ends is often the best boundary), strictly inside the range. A key
    qualifies if the balance score |left - right| / (left + right) is at most ``balance_score``
    and at most ``contained_score`` of the spans cross it; of those, the best balanced wins
    (fewer crossings breaks ties).
    """
    if len(spans) < max(1, config.min_samples):
        return None
    starts = sorted(s for s, _ in spans)
    ends = sorted(e for _, e in spans)
    n = len(starts)
    quantiles = [n * i // (config.candidates + 1) for i in range(1, config.candidates + 1)]
    candidates = sorted({keys[q] for keys in (starts, ends) for q in quantiles})
    best: tuple[float, float, bytes] | None = None
    for c in candidates:
        if c <= desc.start_key or not keyspace.contains(desc, c):
            continue
        left = bisect_right(ends, c)
        right = n - bisect_left(starts, c)
        if left == 0 or right == 0:
            continue
        balance = abs(left - right) / (left + right)
        contained = (n - left - right) / n
        if balance > config.balance_score or contained > config.contained_score:
            continue
        score = (balance, contained, c)
        if best is None or score < best:
            best = score
    return None if best is None else best[2]
