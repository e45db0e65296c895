"""Per-range traffic rates, for PD's hot-range scheduling (sans-I/O; driven by the split worker).

The leader counts the bytes and keys each request it served wrote and read, per range, over a
window that the split worker closes every round; the rates of the last closed window go into
the range's heartbeat (``RangeStats.written_bytes_per_sec`` and the rest). A range that served
nothing in the window has no rates, so an idle range's report does not change and costs the
heartbeat nothing (``HeartbeatBatcher`` sends only changed reports).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Flow:
    written_bytes: float = 0
    written_keys: float = 0
    read_bytes: float = 0
    read_keys: float = 0


class FlowMeter:
    def __init__(self) -> None:
        self._window: dict[int, Flow] = {}
        self._rates: dict[int, Flow] = {}

    def record(self, range_id: int, written_bytes: int = 0, written_keys: int = 0,
               read_bytes: int = 0, read_keys: int = 0) -> None:
        flow = self._window.get(range_id)
        if flow is None:
            flow = self._window[range_id] = Flow()
        flow.written_bytes += written_bytes
        flow.written_keys += written_keys
        flow.read_bytes += read_bytes
        flow.read_keys += read_keys

    def close(self, elapsed: float) -> None:
        """End the window, ``elapsed`` seconds long: its totals become the per-second rates."""
        seconds = max(elapsed, 1e-3)
        self._rates = {rid: Flow(f.written_bytes / seconds, f.written_keys / seconds,
                                 f.read_bytes / seconds, f.read_keys / seconds)
                       for rid, f in self._window.items()}
        self._window = {}

    def rate(self, range_id: int) -> Flow | None:
        """The range's rates over the last closed window; None if it served nothing then."""
        return self._rates.get(range_id)
