"""Known Raft bugs planted in the core must be caught.

A simulator (or a test) that never fails proves nothing: each case below breaks one rule of the
core, the way a plausible patch might, and asserts that the simulator (a handful of seeds) or a
scripted scenario exposes it. If a case stops failing, either the checks lost their teeth or the
rule moved; both need a look.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvdb.raft import log as log_module
from kvdb.raft import raft as raft_module
from kvdb.raft.types import MessageType
from tests.raft import test_interaction as interaction_tests
from tests.sim import SimFailure, SimOptions, Simulation

SEEDS = 40
TICKS = 600


def commit_counts_prior_terms(mp: pytest.MonkeyPatch) -> None:
    """Commit by counting replicas whatever the entry's term (Raft §5.4.2, Figure 8)."""

    def maybe_commit(self: log_module.RaftLog, index: int, term: int) -> bool:
        if index > self.committed:
            self.commit_to(index)
            return True
        return False

    mp.setattr(log_module.RaftLog, "maybe_commit", maybe_commit)


def vote_without_log_check(mp: pytest.MonkeyPatch) -> None:
    """Grant votes without checking that the candidate's log is up to date (§5.4.1)."""
    mp.setattr(log_module.RaftLog, "is_up_to_date", lambda self, index, term: True)


def ack_before_persist(mp: pytest.MonkeyPatch) -> None:
    """Send append acknowledgements before the entries are durable."""
    mp.setattr(raft_module, "_AFTER_PERSIST", frozenset({MessageType.VOTE, MessageType.VOTE_RESP}))


def read_index_without_quorum(mp: pytest.MonkeyPatch) -> None:
    """Answer ReadIndex at once, without a heartbeat round acknowledged by a quorum."""
    mp.setattr(
        raft_module.Raft, "_leader_read_index", lambda self, m: self._answer_read(m, self.raft_log.committed)
    )


def run_simulator(name: str) -> None:
    for seed in range(SEEDS):
        for nodes in (3, 5):
            try:
                Simulation(SimOptions(seed=seed, nodes=nodes, ticks=TICKS)).run()
            except SimFailure as failure:
                print(f"{name}: caught by seed {seed} ({nodes} nodes): {str(failure).splitlines()[0]}")
                return
    pytest.fail(f"planted bug {name!r} survived {SEEDS} seeds with 3 and 5 nodes")


def run_figure8(name: str) -> None:
    # The simulator does not reach Figure 8's schedule within a CI budget (600 runs did not, see
    # docs/raft.md); the scripted scenario does, every time.
    with pytest.raises(AssertionError):
        interaction_tests.test_interaction("figure8")


# Each planted bug, and what must catch it.
PLANTED: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], Callable[[str], None]]] = {
    "commit_counts_prior_terms": (commit_counts_prior_terms, run_figure8),
    "vote_without_log_check": (vote_without_log_check, run_simulator),
    "ack_before_persist": (ack_before_persist, run_simulator),
    "read_index_without_quorum": (read_index_without_quorum, run_simulator),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bug_is_caught(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plant, catch = PLANTED[name]
    plant(monkeypatch)
    catch(name)
