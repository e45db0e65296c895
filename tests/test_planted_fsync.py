"""A store that skips the fsync on the production path must fail the store simulator.

The simulator runs the production loop (``kvdb.store.loop.RaftLoop``) over a ``MemEngine`` whose
``crash()`` loses every write no synced write made durable, as a power cut does. Each case below
breaks durability the way a plausible patch might, and asserts that a handful of seeds of the
ordinary store simulator catch it; then the catching seed must pass on the real code (a seed that
fails for another reason proves nothing). The simulator does not run ``RaftHost`` (asyncio, the
writer thread), so a last test checks that the real host syncs before it answers, and that the
first planted bug fails it too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kvdb.pb import kvrpc_pb2
from kvdb.raft import Entry
from kvdb.server.kv_handler import KvHandler
from kvdb.server.node import static_first_range
from kvdb.server.raft_host import RaftHost
from kvdb.storage.engine import Engine, WriteBatch
from kvdb.storage.raft_log import RaftLogStorage
from kvdb.store.clock import MonotonicClock
from kvdb.store.config import StoreConfig
from kvdb.store.loop import RaftLoop
from kvdb.store.store import Iteration, Store
from tests.storesim import SimFailure, SimOptions, StoreSimulation

SEEDS = 30
"""Seeds tried per store count. When written, of seeds 0-9 with 3 and 5 stores (20 runs), these
caught: synced_write_without_fsync 14, acks_before_the_synced_write 9,
appends_not_counted_as_must_sync 9, log_appends_in_the_apply_batch 3 (first: seed 3, 3 stores);
the others were first caught by seed 0."""


def synced_write_without_fsync(mp: pytest.MonkeyPatch) -> None:
    """The loop's must-sync batch written with ``sync=False`` (an "optimisation": the WAL write
    is fast without the fsync)."""
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


async def _host_events(data_dir: Path) -> list[tuple[str, bool, str]]:
    """Run a one-store ``RaftHost``, put one key once it leads; return, in order, every engine
    write after the put was handed in as ("write", sync, thread name), and ("answer", ok, "")."""
    host = RaftHost(1, 1, data_dir, StoreConfig(), MonotonicClock(), resolve=lambda store_id: "")
    host.store.bootstrap_range(static_first_range({1: ""}))
    events: list[tuple[str, bool, str]] = []
    recording = False
    write = host.engine.write

    def recorded_write(batch: WriteBatch, sync: bool) -> None:
        if recording:
            events.append(("write", sync, threading.current_thread().name))
        write(batch, sync)

    host.engine.write = recorded_write  # type: ignore[method-assign]
    await host.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not host.store.peers[1].is_leader or host.store.peers[1].applied_term != host.store.peers[
                1].raw.raft.term:
            assert loop.time() < deadline, "the single store never became a serving leader"
            await asyncio.sleep(0.01)  # polling a condition, with a deadline
        answered = asyncio.Event()

        def respond(resp: kvrpc_pb2.Response) -> None:
            events.append(("answer", not resp.put.HasField("error"), ""))
            answered.set()

        desc = host.store.peers[1].desc
        ctx = kvrpc_pb2.Context(cluster_id=1, range_id=1, epoch=desc.epoch)
        recording = True
        KvHandler(host.store).handle(
            kvrpc_pb2.Request(put=kvrpc_pb2.RawPutRequest(context=ctx, key=b"k", value=b"v")), respond)
        await asyncio.wait_for(answered.wait(), 10)
        return events
    finally:
        await host.stop()


def _assert_synced_before_answer(events: list[tuple[str, bool, str]]) -> None:
    answer = events.index(("answer", True, ""))
    synced = [e for e in events[:answer] if e[0] == "write" and e[1]]
    assert synced, f"the put was answered with no synced write before it: {events}"
    # On the writer thread, or inline on the loop's thread while no reads come (kvdb.server.raft_host).
    loop_thread = threading.current_thread().name
    assert all(thread.startswith("raft-writer") or thread == loop_thread for _, _, thread in synced), events


def test_real_host_syncs_the_entry_before_answering(tmp_path: Path) -> None:
    _assert_synced_before_answer(asyncio.run(_host_events(tmp_path / "ok")))


def test_planted_synced_write_without_fsync_fails_the_real_host(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    synced_write_without_fsync(monkeypatch)
    events = asyncio.run(_host_events(tmp_path / "planted"))
    with pytest.raises(AssertionError, match="no synced write"):
        _assert_synced_before_answer(events)
