"""Membership changes, computed on copies and validated before they take effect.

A change never mutates the live tracker: ``Changer`` returns a new ``(TrackerConfig, progress)``
pair, or raises ``ConfChangeError`` and leaves everything as it was.
"""

from __future__ import annotations

import copy

from kvdb.raft.errors import ConfChangeError
from kvdb.raft.progress import Progress, ProgressTracker, TrackerConfig
from kvdb.raft.types import ConfChangeSingle, ConfChangeType, ConfState

Result = tuple[TrackerConfig, dict[int, Progress]]


class Changer:
    def __init__(self, tracker: ProgressTracker, last_index: int) -> None:
        self.tracker = tracker
        self.last_index = last_index

    def enter_joint(self, auto_leave: bool, changes: list[ConfChangeSingle]) -> Result:
        cfg, prs = self._copy()
        if cfg.voters.is_joint():
            raise ConfChangeError("config is already joint")
        if not cfg.voters.incoming:
            raise ConfChangeError("can't make a zero-voter config joint")
        cfg.voters.outgoing = set(cfg.voters.incoming)
        self._apply(cfg, prs, changes)
        cfg.auto_leave = auto_leave
        return self._checked(cfg, prs)

    def leave_joint(self) -> Result:
        cfg, prs = self._copy()
        if not cfg.voters.is_joint():
            raise ConfChangeError("can't leave a non-joint config")
        for node_id in cfg.learners_next:
            cfg.learners.add(node_id)
            prs[node_id].is_learner = True
        cfg.learners_next = set()
        for node_id in cfg.voters.outgoing:
            if node_id not in cfg.voters.incoming and node_id not in cfg.learners:
                del prs[node_id]
        cfg.voters.outgoing = set()
        cfg.auto_leave = False
        return self._checked(cfg, prs)

    def simple(self, changes: list[ConfChangeSingle]) -> Result:
        cfg, prs = self._copy()
        if cfg.voters.is_joint():
            raise ConfChangeError("can't apply simple config change in joint config")
        self._apply(cfg, prs, changes)
        if len(self.tracker.config.voters.incoming ^ cfg.voters.incoming) > 1:
            raise ConfChangeError("more than one voter changed without entering joint config")
        return self._checked(cfg, prs)

    def _copy(self) -> Result:
        # Progress objects are copied so that flipping is_learner on a rejected change is harmless.
        return self.tracker.config.copy(), {i: copy.copy(pr) for i, pr in self.tracker.progress.items()}

    def _apply(self, cfg: TrackerConfig, prs: dict[int, Progress], changes: list[ConfChangeSingle]) -> None:
        for change in changes:
            if change.node_id == 0:
                continue
            if change.type == ConfChangeType.ADD_NODE:
                self._make_voter(cfg, prs, change.node_id)
            elif change.type == ConfChangeType.ADD_LEARNER:
                self._make_learner(cfg, prs, change.node_id)
            elif change.type == ConfChangeType.REMOVE_NODE:
                self._remove(cfg, prs, change.node_id)
            else:
                raise ConfChangeError(f"unknown conf change type {change.type}")
        if not cfg.voters.incoming:
            raise ConfChangeError("removed all voters")

    def _init_progress(
        self, cfg: TrackerConfig, prs: dict[int, Progress], node_id: int, learner: bool
    ) -> None:
        if learner:
            cfg.learners.add(node_id)
        else:
            cfg.voters.incoming.add(node_id)
        pr = self.tracker.new_progress(max(self.last_index, 1), learner)
        # A new member counts as active so CheckQuorum does not depose the leader before it answers.
        pr.recent_active = True
        prs[node_id] = pr

    def _make_voter(self, cfg: TrackerConfig, prs: dict[int, Progress], node_id: int) -> None:
        pr = prs.get(node_id)
        if pr is None:
            self._init_progress(cfg, prs, node_id, learner=False)
            return
        pr.is_learner = False
        cfg.learners.discard(node_id)
        cfg.learners_next.discard(node_id)
        cfg.voters.incoming.add(node_id)

    def _make_learner(self, cfg: TrackerConfig, prs: dict[int, Progress], node_id: int) -> None:
        pr = prs.get(node_id)
        if pr is None:
            self._init_progress(cfg, prs, node_id, learner=True)
            return
        if pr.is_learner:
            return
        self._remove(cfg, prs, node_id)
        prs[node_id] = pr
        # A voter of the outgoing config may only become a learner once the joint config is left.
        if node_id in cfg.voters.outgoing:
            cfg.learners_next.add(node_id)
        else:
            pr.is_learner = True
            cfg.learners.add(node_id)

    def _remove(self, cfg: TrackerConfig, prs: dict[int, Progress], node_id: int) -> None:
        if node_id not in prs:
            return
        cfg.voters.incoming.discard(node_id)
        cfg.learners.discard(node_id)
        cfg.learners_next.discard(node_id)
        if node_id not in cfg.voters.outgoing:
            del prs[node_id]

    def _checked(self, cfg: TrackerConfig, prs: dict[int, Progress]) -> Result:
        for node_id in cfg.voters.ids() | cfg.learners | cfg.learners_next:
            if node_id not in prs:
                raise ConfChangeError(f"no progress for {node_id}")
        for node_id in cfg.learners_next:
            if node_id not in cfg.voters.outgoing:
                raise ConfChangeError(f"{node_id} is in learners_next but not in the outgoing voters")
            if prs[node_id].is_learner:
                raise ConfChangeError(f"{node_id} is in learners_next but already a learner")
        for node_id in cfg.learners:
            if node_id in cfg.voters.ids():
                raise ConfChangeError(f"{node_id} is both a learner and a voter")
            if not prs[node_id].is_learner:
                raise ConfChangeError(f"{node_id} is a learner whose progress says voter")
        if not cfg.voters.is_joint() and (cfg.learners_next or cfg.auto_leave):
            raise ConfChangeError("learners_next or auto_leave set outside a joint config")
        return cfg, prs


def restore(tracker: ProgressTracker, conf_state: ConfState, last_index: int) -> Result:
    """Build the configuration ``conf_state`` describes, as a sequence of validated changes."""
    outgoing = [ConfChangeSingle(ConfChangeType.ADD_NODE, i) for i in conf_state.voters_outgoing]
    incoming = [ConfChangeSingle(ConfChangeType.REMOVE_NODE, i) for i in conf_state.voters_outgoing]
    incoming += [ConfChangeSingle(ConfChangeType.ADD_NODE, i) for i in conf_state.voters]
    incoming += [ConfChangeSingle(ConfChangeType.ADD_LEARNER, i) for i in conf_state.learners]
    incoming += [ConfChangeSingle(ConfChangeType.ADD_LEARNER, i) for i in conf_state.learners_next]

    scratch = ProgressTracker(tracker.max_inflight, tracker.max_inflight_bytes)
    if not outgoing:
        for change in incoming:
            scratch.config, scratch.progress = Changer(scratch, last_index).simple([change])
    else:
        for change in outgoing:
            scratch.config, scratch.progress = Changer(scratch, last_index).simple([change])
        scratch.config, scratch.progress = Changer(scratch, last_index).enter_joint(
            conf_state.auto_leave, incoming
        )
    return scratch.config, scratch.progress
