"""Client sessions of one range: each write request is applied at most once, however often it is
re-sent, and sessions expire by time carried in the log.

A client retries a write whose outcome it does not know (the leader changed, the answer was
lost); without this, a late copy could apply after another client's write and bring an old value
back. So every write carries a session header (``kvrpc.SessionHeader``: session id, seq, the
lowest seq the client still waits for, and whether an earlier attempt was ambiguous), and the
range's state machine keeps, per session, the results of the seqs the client may still ask about
(RIFL, and the Raft dissertation §6.3). Apply, for a command with a session:

* seq below the session's floor: a stale copy of a finished request: refused, nothing applied;
* seq with a stored result: answered from it, nothing applied;
* unknown session and ``retry_after_ambiguous``: the session may have expired after applying the
  first attempt, so the outcome is unknown: refused (``SessionExpiredError``), nothing applied;
* otherwise applied, and its result stored.

Every decision depends only on the log, so every replica makes the same one at the same index:
the leader stamps each command with its wall clock (``log_time_ms``), apply moves the range's log
time to ``max(log time, stamp)`` (it never goes back, even when a new leader's clock is behind),
and at each check point (every ``EXPIRY_CHECK_MS`` of log time) drops sessions idle for longer
than the TTL. No replica consults its own clock. The table is written in the apply batch, with the
data and the applied index it belongs to, and travels in snapshots: a session that changed is
staged once per apply state written (``stage``), not once per command, since one client's
session carries the results of all its writes in flight and serializing it per write cost
O(writes in flight) each.

A split copies the parent's sessions to every new range (``copy_to``), so a request re-sent to a
new range after the split is still recognised.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2
from kvdb.storage.engine import CF_META, EngineView, WriteBatch
from kvdb.storage.keys import session_bounds, session_clock_key, session_key
from kvdb.store.errors import DuplicateRequestError, SessionExpiredError, StoreError

log = logging.getLogger(__name__)

EXPIRY_CHECK_MS = 1000
"""Log time between two sweeps for expired sessions."""

Result = tuple[bool, bytes | None] | None
"""What a write answers: None (put, delete, batch, delete range) or (swapped, previous) for a CAS."""


class Replayed(NamedTuple):
    """A re-sent request's answer, given instead of applying it: a stored result or an error."""

    answer: Result | StoreError


class Sessions:
    """The session table of one range, in memory and (through the apply batch) in CF_META."""

    def __init__(self, range_id: int, ttl_ms: int) -> None:
        self.range_id = range_id
        self.ttl_ms = ttl_ms
        self.clock = raft_serverpb_pb2.SessionClock()
        self._clock_moved = False  # since the clock was last staged (``stage``)
        self.table: dict[int, raft_serverpb_pb2.SessionState] = {}
        self._changed: set[int] = set()
        """Sessions whose state changed since the last ``stage``."""
        self._top: dict[int, int] = {}
        """Session id -> a seq at or above every result it stores: a new write (seq above it, the
        common case) needs no scan of the results. In memory only, rebuilt from the table."""

    def _add(self, state: raft_serverpb_pb2.SessionState) -> None:
        self.table[state.session_id] = state
        self._top[state.session_id] = max((r.seq for r in state.results), default=0)

    @classmethod
    def load(cls, engine: EngineView, range_id: int, ttl_ms: int) -> Sessions:
        sessions = cls(range_id, ttl_ms)
        raw = engine.get(CF_META, session_clock_key(range_id))
        if raw is not None:
            sessions.clock = raft_serverpb_pb2.SessionClock.FromString(raw)
        start, end = session_bounds(range_id)
        for _, value in engine.iter_range(CF_META, start, end):
            sessions._add(raft_serverpb_pb2.SessionState.FromString(value))
        return sessions

    @property
    def log_time_ms(self) -> int:
        return self.clock.log_time_ms

    # ------------------------------------------------------------------------------- apply
    def advance(self, stamp_ms: int, batch: WriteBatch) -> None:
        """A command stamped ``stamp_ms`` applies: move log time, and expire at a check point."""
        clock = self.clock
        if stamp_ms <= clock.log_time_ms:
            return
        clock.log_time_ms = stamp_ms
        if stamp_ms >= clock.next_expiry_check_ms:
            cutoff = stamp_ms - self.ttl_ms
            expired = [sid for sid, st in self.table.items() if st.last_active_ms < cutoff]
            for sid in expired:
                del self.table[sid]
                del self._top[sid]
                batch.delete(CF_META, session_key(self.range_id, sid))
            if expired:
                log.debug("range %d: %d sessions expired at log time %d", self.range_id, len(expired),
                          stamp_ms)
            clock.next_expiry_check_ms = stamp_ms + EXPIRY_CHECK_MS
        self._clock_moved = True

    def stage(self, batch: WriteBatch) -> None:
        """Stage the log time if it moved and every session that changed: once per apply state
        written (``Peer.write_apply_state``), not once per command, and always in the batch that
        holds the applied index they belong to."""
        if self._clock_moved:
            batch.put(CF_META, session_clock_key(self.range_id), self.clock.SerializeToString())
            self._clock_moved = False
        for sid in self._changed:
            state = self.table.get(sid)
            if state is not None:  # else it expired after it changed: its delete is staged already
                batch.put(CF_META, session_key(self.range_id, sid), state.SerializeToString())
        self._changed.clear()

    def replay(self, header: kvrpc_pb2.SessionHeader) -> Replayed | None:
        """Before applying: the answer a re-sent request gets instead (its stored result or an
        error), or None when the command must be applied (then ``record`` its result)."""
        sid, seq = header.session_id, header.seq
        state = self.table.get(sid)
        if state is None:
            if header.retry_after_ambiguous:
                log.debug("range %d: session %016x unknown for a retry of seq %d", self.range_id, sid, seq)
                return Replayed(SessionExpiredError(self.range_id, sid))
            return None
        if seq < state.floor:
            log.debug("range %d: session %016x seq %d is below its floor %d: refused", self.range_id, sid,
                      seq, state.floor)
            return Replayed(DuplicateRequestError(self.range_id, sid, seq))
        if seq > self._top[sid]:
            return None
        for stored in state.results:
            if stored.seq == seq:
                log.debug("range %d: session %016x seq %d answered from its stored result", self.range_id,
                          sid, seq)
                self._touch(state, header.first_incomplete_seq)
                if not stored.is_cas:
                    return Replayed(None)
                previous = None if stored.previous_not_exist else stored.previous_value
                return Replayed((stored.succeed, previous))
        return None

    def record(self, header: kvrpc_pb2.SessionHeader, result: Result) -> None:
        """The command applied with ``result``: remember it for re-sent copies."""
        sid = header.session_id
        state = self.table.get(sid)
        if state is None:
            state = raft_serverpb_pb2.SessionState(session_id=sid)
            self._add(state)
        stored = state.results.add(seq=header.seq)
        self._top[sid] = max(self._top[sid], header.seq)
        if result is not None:
            succeed, previous = result
            stored.is_cas, stored.succeed = True, succeed
            if previous is None:
                stored.previous_not_exist = True
            else:
                stored.previous_value = previous
        self._touch(state, header.first_incomplete_seq)

    def _touch(self, state: raft_serverpb_pb2.SessionState, first_incomplete: int) -> None:
        """The session is active now; forget the results the client acknowledged."""
        state.last_active_ms = self.clock.log_time_ms
        if first_incomplete > state.floor:
            state.floor = first_incomplete
            # Results are recorded in apply order, which is seq order but for retries: drop the
            # leading ones below the floor. One left behind a higher seq goes on a later call; till
            # then nothing reads it, since a seq below the floor is refused before results are.
            results = state.results
            n = 0
            while n < len(results) and results[n].seq < first_incomplete:
                n += 1
            if n:
                del results[:n]
        self._changed.add(state.session_id)

    # --------------------------------------------------------------------------- snapshots
    def to_pb(self) -> raft_serverpb_pb2.RangeSessions:
        out = raft_serverpb_pb2.RangeSessions()
        out.clock.CopyFrom(self.clock)
        out.sessions.extend(self.table[sid] for sid in sorted(self.table))
        return out

    def replace(self, snap: raft_serverpb_pb2.RangeSessions, batch: WriteBatch) -> None:
        """Install a snapshot's sessions, in the batch that installs its data."""
        start, end = session_bounds(self.range_id)
        batch.delete_range(CF_META, start, end)
        self.clock = raft_serverpb_pb2.SessionClock()
        self.clock.CopyFrom(snap.clock)
        self._clock_moved = True  # staged with the snapshot's apply state
        self.table, self._top = {}, {}
        self._changed.clear()  # every session is written below
        for state in snap.sessions:
            copy = raft_serverpb_pb2.SessionState()
            copy.CopyFrom(state)
            self._add(copy)
            batch.put(CF_META, session_key(self.range_id, state.session_id), state.SerializeToString())

    def copy_to(self, range_id: int, batch: WriteBatch) -> Sessions:
        """The table of a range split off this one, staged in ``batch``: a request re-sent to the
        new range after the split is still recognised there."""
        copy = Sessions(range_id, self.ttl_ms)
        copy.replace(self.to_pb(), batch)
        copy.stage(batch)  # with the new range's first apply state, staged by the caller
        return copy

    def delete(self, batch: WriteBatch) -> None:
        """The replica is going away: its sessions go with its data, in the same batch."""
        batch.delete_range(CF_META, *session_bounds(self.range_id))
        batch.delete(CF_META, session_clock_key(self.range_id))
        self.table, self._top = {}, {}
        self._changed.clear()
