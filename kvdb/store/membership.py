"""Whether a range's leader may propose a membership change without risking the range's quorum.

Raft keeps a change safe in the log-matching sense, but not in the availability sense: it will
happily commit a change after which the voters that are actually alive are no longer a quorum,
and the range then stops for good (until a dead voter returns). Two such changes are refused
here, before anything is proposed:

- removing or demoting the leader itself. After applying its own removal a leader steps down and
  is destroyed; a survivor that never received the commit still counts the old voters and may
  never win an election (reproduced with two voters). Transfer leadership first, as TiKV does.
- a change after which the voters the leader recently heard from are not a quorum of the new
  configuration (both halves of a joint one): {A, B, C} with C down, removing B leaves A alone in
  {A, C}. "Recently heard" means either the core's ``recent_active`` (an answer within the
  current CheckQuorum period, one election timeout) or an echo of the leader's current or
  previous round (rounds start at least every heartbeat, see ``kvdb.raft.raft``): the second
  covers the start of a period, when ``recent_active`` has just been cleared for everyone. A
  peer added by the change has not answered yet.

A new leader has heard from nobody but its voters yet, so early in a CheckQuorum period a
refusal is "busy, retry" rather than a verdict.

Leadership is handed only to a voter the leader heard from recently whose log is at most
``MAX_TRANSFER_LAG`` entries behind (TiKV's ``leader_transfer_max_log_lag``). A transfer stops
the leader's proposals until the transferee wins or an election timeout passes, and PD re-sends
its transfer operator with every heartbeat answer: a leader that accepted transfers to a store
that had just died (PD still counts it UP for seconds) took no writes for most of the time PD
kept asking (``kvdb bench failover`` saw a 1.6 s write stall that way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvdb.pb import adminpb_pb2
from kvdb.raft import ConfChangeSingle, ConfChangeType
from kvdb.store.errors import InvalidArgumentError, ServerBusyError

if TYPE_CHECKING:
    from kvdb.raft.progress import Progress
    from kvdb.raft.raft import Raft
    from kvdb.store.peer import Peer

MAX_TRANSFER_LAG = 128
"""Entries a transferee may lag the leader's log by: more takes longer to catch up than a transfer waits."""
REMOVES_LEADER = adminpb_pb2.UnsafeConfChange.REMOVES_LEADER
LOSES_QUORUM = adminpb_pb2.UnsafeConfChange.LOSES_QUORUM


class UnsafeConfChangeError(InvalidArgumentError):
    """A membership change refused before it was proposed; ``reason`` is one of the constants
    above and ``unreachable`` the voters the leader has not heard from recently."""

    def __init__(self, message: str, reason: int, unreachable: list[int]) -> None:
        super().__init__(message)
        self.reason = reason
        self.unreachable = unreachable

    def detail(self) -> adminpb_pb2.UnsafeConfChange:
        """The refusal for ``ChangePeerResponse.unsafe``, next to the invalid_argument error."""
        return adminpb_pb2.UnsafeConfChange(reason=self.reason, unreachable_peer_ids=self.unreachable)


def _answered_recently(raft: Raft, pr: Progress) -> bool:
    """Whether the leader heard from ``pr``'s peer recently (see the module docstring)."""
    return pr.recent_active or 0 < pr.acked_round >= raft.round - 1


def heard_recently(peer: Peer) -> set[int]:
    """The peers the leader ``peer`` heard from recently, itself included."""
    raft = peer.raw.raft
    return {peer.peer_id} | {i for i, pr in raft.trk.progress.items() if _answered_recently(raft, pr)}


def check_transfer(peer: Peer, to_peer_id: int) -> None:
    """Raise ``ServerBusyError`` unless the leader ``peer`` may hand its leadership to ``to_peer_id``
    now: a voter it heard from recently, not far behind (the caller checked it is a voter)."""
    raft = peer.raw.raft
    pr = raft.trk.progress.get(to_peer_id)
    if pr is None or not _answered_recently(raft, pr):
        raise ServerBusyError(f"range {peer.range_id}: peer {to_peer_id} has not answered the leader "
                              "recently (down or cut off); leadership goes only to a live voter",
                              peer.store.config.busy_backoff_ms * 5)
    lag = raft.raft_log.last_index() - pr.match
    if lag > MAX_TRANSFER_LAG:
        raise ServerBusyError(f"range {peer.range_id}: peer {to_peer_id} is {lag} entries behind the leader "
                              f"(at most {MAX_TRANSFER_LAG} for a leadership transfer)",
                              peer.store.config.busy_backoff_ms * 5)


def check_conf_change(peer: Peer, changes: list[ConfChangeSingle], joint: bool) -> None:
    """Raise unless ``changes`` (proposed by ``peer``, the leader) keeps a live quorum.

    ``joint``: the changes enter a joint configuration, in which the current voters must keep a
    live quorum too.
    """
    raft = peer.raw.raft
    voters = set(peer.conf_state.voters)
    for change in changes:
        demoted = change.type == ConfChangeType.REMOVE_NODE or (
            change.type == ConfChangeType.ADD_LEARNER and change.node_id in voters)
        if demoted and change.node_id == peer.peer_id:
            raise UnsafeConfChangeError(
                f"range {peer.range_id}: the change removes or demotes the leader (peer {peer.peer_id}); "
                "transfer leadership to another voter first", REMOVES_LEADER, [])
    incoming = set(voters)
    for change in changes:
        if change.type == ConfChangeType.ADD_NODE:
            incoming.add(change.node_id)
        else:
            incoming.discard(change.node_id)
    if incoming == voters and not joint:
        return  # only learners change: the quorum is what it was
    live = heard_recently(peer)
    for config in (incoming, voters) if joint else (incoming,):
        alive = config & live
        if len(alive) >= len(config) // 2 + 1:
            continue
        unreachable = sorted(config - live)
        if raft.election_elapsed <= 2 * raft.heartbeat_timeout:
            raise ServerBusyError(f"range {peer.range_id}: the leader is re-checking which voters are "
                                  "alive", peer.store.config.busy_backoff_ms * 5)
        raise UnsafeConfChangeError(
            f"range {peer.range_id}: after the change only {len(alive)} of the voters {sorted(config)} "
            f"would be live (not heard from recently: {unreachable}), short of a quorum; bring them "
            "back or replace them first", LOSES_QUORUM, unreachable)
