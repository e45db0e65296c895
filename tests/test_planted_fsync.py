"""A store that skips the fsync on the production path must fail the store simulator.

The simulator runs the production loop (``kvdb.store.loop.RaftLoop``) over a ``MemEngine`` whose
``crash()`` loses every write no synced write made durable, as a power cut does. Each case below
breaks durability the way a plausible patch might, and asserts that a handful of seeds of the
ordinary store simulator catch it; then the catching seed must pass on the real code (a seed that
fails for another reason proves nothing).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvdb.raft import Entry
from kvdb.storage.engine import Engine, WriteBatch
from kvdb.storage.raft_log import RaftLogStorage
from kvdb.store.loop import RaftLoop
from kvdb.store.store import Iteration, Store
from tests.storesim import SimFailure, SimOptions, StoreSimulation

SEEDS = 30
"""Seeds tried per store count; see each case for how many it took when written."""


def synced_write_without_fsync(mp: pytest.MonkeyPatch) -> None:
    """The loop's must-sync batch written with ``sync=False`` (an "optimisation": the WAL write
    is fast without the fsync). Caught by seed 0 with 3 stores when written."""
    mp.setattr(RaftLoop, "write", lambda self, it: self.store.engine.write(it.batch, sync=False))


def acks_before_the_synced_write(mp: pytest.MonkeyPatch) -> None:
    """A "pipelined" loop: the iteration is finished (acks sent, entries applied, clients
    answered) as soon as its batch is handed to the disk, before the fsync returns."""
    step = RaftLoop.step

    def early_step(self: RaftLoop) -> Iteration | None:
        it = step(self)
        if it is not None:
            self.store.finish(it)
        return it

    def written(self: RaftLoop, it: Iteration) -> None:
        self._in_flight = None  # finished already

    mp.setattr(RaftLoop, "step", early_step)
    mp.setattr(RaftLoop, "written", written)


def log_appends_in_the_apply_batch(mp: pytest.MonkeyPatch) -> None:
    """Raft log entries staged aside and written with the (unsynced) apply batch in ``finish``,
    after the acknowledgements went out, instead of in the iteration's synced batch."""
    late: dict[int, WriteBatch] = {}
    append = RaftLogStorage.append
    flush_apply = Store.flush_apply

    def append_late(self: RaftLogStorage, batch: WriteBatch, entries: list[Entry]) -> None:
        engine: Engine = self._engine
        append(self, late.setdefault(id(engine), engine.batch()), entries)

    def flush_with_log(self: Store, sync: bool = False) -> None:
        staged = late.pop(id(self.engine), None)
        if staged is not None and len(staged):
            self.engine.write(staged, sync=False)
        flush_apply(self, sync)

    mp.setattr(RaftLogStorage, "append", append_late)
    mp.setattr(Store, "flush_apply", flush_with_log)


def appends_not_counted_as_must_sync(mp: pytest.MonkeyPatch) -> None:
    """An iteration whose Readies only append entries counted as not needing the fsync (as if
    only a term or vote change had to be durable), so the loop writes it unsynced and acks."""
    init = Iteration.__init__

    def init_without_appends(self: Iteration, readies: list, batch: WriteBatch) -> None:
        init(self, readies, batch)
        self.must_sync = any(rd.must_sync and not rd.entries for _, rd in readies)

    mp.setattr(Iteration, "__init__", init_without_appends)


PLANTED: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "synced_write_without_fsync": synced_write_without_fsync,
    "acks_before_the_synced_write": acks_before_the_synced_write,
    "log_appends_in_the_apply_batch": log_appends_in_the_apply_batch,
    "appends_not_counted_as_must_sync": appends_not_counted_as_must_sync,
}


def _first_failure() -> tuple[SimOptions, str] | None:
    for seed in range(SEEDS):
        for stores in (3, 5):
            options = SimOptions(seed=seed, stores=stores)
            try:
                StoreSimulation(options).run()
            except SimFailure as failure:
                return options, str(failure)
    return None


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_fsync_bug_is_caught(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    PLANTED[name](monkeypatch)
    caught = _first_failure()
    assert caught is not None, f"planted bug {name!r} survived {SEEDS} seeds with 3 and 5 stores"
    options, report = caught
    print(f"{name}: caught by {options.repro()}: {report.splitlines()[0]}")
    monkeypatch.undo()
    StoreSimulation(options).run()  # the same seed passes on the real code
