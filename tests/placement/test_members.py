"""The pure rules of PD membership change (placement/members.py): table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdb.pb import metapb_pb2
from kvdb.raft.progress import Inflights, Progress, ProgressState
from placement.members import (
    PROMOTE_MAX_LAG,
    MembershipError,
    check_address,
    learners_to_promote,
    members_of,
    transfer_target,
)
from placement.server import PdConfig


def progress(state: int, match: int) -> Progress:
    pr = Progress(match + 1, Inflights(16))
    pr.state, pr.match = state, match
    return pr


R, P, S = ProgressState.REPLICATE, ProgressState.PROBE, ProgressState.SNAPSHOT


@pytest.mark.parametrize(("address", "error"), [
    ("127.0.0.1:2379", None),
    ("pd-4.example:2379", None),
    ("[::1]:2379", None),
    ("", "is not HOST:PORT"),
    ("127.0.0.1", "is not HOST:PORT"),
    (":2379", "is not HOST:PORT"),
    ("127.0.0.1:0", "is not HOST:PORT"),
    ("127.0.0.1:65536", "is not HOST:PORT"),
    ("127.0.0.1:port", "is not HOST:PORT"),
    ("0.0.0.0:2379", "wildcard"),
    ("[::]:2379", "wildcard"),
])
def test_check_address(address: str, error: str | None) -> None:
    if error is None:
        assert check_address(address) == address
    else:
        with pytest.raises(MembershipError, match=error):
            check_address(address)


def test_members_of_follows_the_descriptor_roles() -> None:
    desc = metapb_pb2.RangeDescriptor(id=1)
    desc.peers.add(id=7, store_id=7, role=metapb_pb2.LEARNER)
    desc.peers.add(id=1, store_id=1, role=metapb_pb2.VOTER)
    got = members_of(desc, {1: "a:1", 7: "b:2", 9: "removed:3"})
    assert [(m.id, m.address, m.learner) for m in got] == [(1, "a:1", False), (7, "b:2", True)]


@pytest.mark.parametrize(("learners", "progress_of", "last", "promoted"), [
    ({4}, {4: (R, 100)}, 100, [4]),                        # caught up
    ({4}, {4: (R, 100 - PROMOTE_MAX_LAG)}, 100, [4]),      # just within the lag
    ({4}, {4: (R, 99 - PROMOTE_MAX_LAG)}, 100, []),        # too far behind
    ({4}, {4: (S, 100)}, 100, []),                         # waiting for its snapshot
    ({4}, {4: (P, 100)}, 100, []),                         # probing: where it is is not known
    ({4}, {}, 100, []),                                    # no progress yet
    ({4, 5}, {4: (R, 90), 5: (R, 100)}, 100, [4, 5]),
])
def test_learners_to_promote(learners: set[int], progress_of: dict[int, tuple[int, int]], last: int,
                             promoted: list[int]) -> None:
    prs = {i: progress(*sm) for i, sm in progress_of.items()}
    assert learners_to_promote(learners, prs, last) == promoted


@pytest.mark.parametrize(("voters", "progress_of", "target"), [
    ({1, 2, 3}, {1: (R, 50), 2: (R, 40), 3: (R, 45)}, 3),   # the most caught-up other voter
    ({1, 2, 3}, {1: (R, 50), 2: (S, 50), 3: (P, 50)}, None),  # nobody replicating: wait
    ({1}, {1: (R, 50)}, None),                              # nobody else
    ({1, 2}, {1: (R, 50), 2: (R, 50), 4: (R, 60)}, 2),      # a learner (4) is no target
])
def test_transfer_target(voters: set[int], progress_of: dict[int, tuple[int, int]],
                         target: int | None) -> None:
    prs = {i: progress(*sm) for i, sm in progress_of.items()}
    assert transfer_target(voters, prs, leader_id=1) == target


@pytest.mark.parametrize(("initial", "join", "error"), [
    ({}, ["127.0.0.1:1"], None),
    ({4: "127.0.0.1:1"}, ["127.0.0.1:2"], "either --join or --initial-members"),
    ({}, [], "odd number"),
])
def test_pd_config_join(initial: dict[int, str], join: list[str], error: str | None, tmp_path: Path) -> None:
    config = PdConfig(member_id=4, listen="127.0.0.1:0", data_dir=tmp_path, initial_members=initial,
                      join=join)
    if error is None:
        config.validate()
    else:
        with pytest.raises(ValueError, match=error):
            config.validate()
