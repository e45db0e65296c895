"""The command language of the testdata files, on top of :class:`Env`.

A command line is a name, positional node ids and ``key=value`` options, where a value may be a
parenthesised id list: ``add-nodes 3 voters=(1,2,3) index=2``. Every command returns the lines
it printed, or ``ok`` when it printed nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kvdb.raft import (
    ConfChange,
    ConfChangeSingle,
    ConfState,
    ProposalDroppedError,
    Role,
)
from kvdb.raft.progress import Progress
from kvdb.raft.types import ConfChangeType

from . import fmt
from .env import Env, Node

_TOKEN = re.compile(r"\S+=\([^)]*\)|\S+")
_CHANGE = {"v": ConfChangeType.ADD_NODE, "l": ConfChangeType.ADD_LEARNER, "r": ConfChangeType.REMOVE_NODE}
_TRANSITION = {name: value for value, name in fmt.TRANSITION.items()}
# Config options add-nodes accepts, with their parsers.
_OPTIONS: dict[str, Callable[[str], object]] = {
    "election_tick": int,
    "heartbeat_tick": int,
    "max_size_per_msg": int,
    "max_inflight_msgs": int,
    "max_inflight_bytes": int,
    "pre_vote": lambda v: v == "true",
    "check_quorum": lambda v: v == "true",
}


@dataclass
class Args:
    """A parsed command line."""

    name: str
    positional: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    def ids(self) -> list[int]:
        return [int(p) for p in self.positional]

    def id_list(self, key: str) -> list[int]:
        """An option written ``key=(1,2,3)``; empty when absent."""
        value = self.options.get(key, "()").strip("()")
        return [int(v) for v in re.split(r"[,\s]+", value) if v]


def parse(line: str) -> Args:
    name, *tokens = _TOKEN.findall(line)
    args = Args(name)
    for token in tokens:
        key, eq, value = token.partition("=")
        if eq:
            args.options[key] = value
        else:
            args.positional.append(token)
    return args


class Interpreter:
    """Runs command lines against one :class:`Env`; ``__call__`` is the datadriven handler."""

    def __init__(self) -> None:
        self.env = Env()
        self.commands: dict[str, Callable[[Args], None]] = {
            "add-nodes": self.add_nodes,
            "campaign": self.campaign,
            "lose-contact": self.lose_contact,
            "tick": self.tick,
            "tick-heartbeat": self.tick_heartbeat,
            "tick-election": self.tick_election,
            "propose": self.propose,
            "propose-conf-change": self.propose_conf_change,
            "transfer-leader": self.transfer_leader,
            "report-unreachable": self.report_unreachable,
            "read-index": self.read_index,
            "stabilize": self.stabilize,
            "process-ready": self.process_ready,
            "deliver-msgs": self.deliver_msgs,
            "isolate": self.isolate,
            "partition": self.partition,
            "heal": self.heal,
            "compact": self.compact,
            "restart": self.restart,
            "status": self.status,
            "raft-log": self.raft_log,
            "raft-state": self.raft_state,
        }

    def __call__(self, line: str) -> str:
        args = parse(line)
        if args.name not in self.commands:
            raise ValueError(f"unknown command {args.name!r}")
        self.commands[args.name](args)
        return self.env.take_output() or "ok"

    def _node(self, args: Args) -> Node:
        """The node named by the first positional argument."""
        return self.env.nodes[int(args.positional[0])]

    def _targets(self, args: Args) -> list[int]:
        """The node ids a command names, or every node when it names none."""
        return args.ids() or sorted(self.env.nodes)

    # -- membership and setup ----------------------------------------------------------------

    def add_nodes(self, args: Args) -> None:
        """``add-nodes N [voters=(..) learners=(..)] [index=I] [config options]``.

        Without voters the nodes start empty (to be added to a running group later).
        """
        unknown = set(args.options) - {"voters", "learners", "index", *_OPTIONS}
        if unknown:
            raise ValueError(f"add-nodes: unknown options {sorted(unknown)}")
        voters, learners = args.id_list("voters"), args.id_list("learners")
        cs = ConfState(voters=voters, learners=learners) if voters or learners else None
        options = {k: _OPTIONS[k](v) for k, v in args.options.items() if k in _OPTIONS}
        for _ in range(int(args.positional[0])):
            self.env.add_node(cs, int(args.options.get("index", "0")), **options)

    # -- driving a node ----------------------------------------------------------------------

    def campaign(self, args: Args) -> None:
        node = self._node(args)
        with self.env.watch(node):
            node.raw.campaign()

    def lose_contact(self, args: Args) -> None:
        """``lose-contact 2``: node 2 has not heard from a leader for longer than its promise.

        Short for isolating it and ticking it past the election timeout, without the timer
        campaign those ticks would start: a scenario can then make it campaign by hand while the
        other nodes are still inside their promise.
        """
        node = self._node(args)
        node.raw.raft.leader_contact_elapsed = node.config.election_tick + 1

    def tick(self, args: Args) -> None:
        """``tick 1 count=K``: tick node 1 exactly K times."""
        node = self._node(args)
        with self.env.watch(node):
            for _ in range(int(args.options["count"])):
                node.raw.tick()

    def tick_heartbeat(self, args: Args) -> None:
        """Tick ``heartbeat_tick`` times: one heartbeat interval."""
        node = self._node(args)
        with self.env.watch(node):
            for _ in range(node.config.heartbeat_tick):
                node.raw.tick()

    def tick_election(self, args: Args) -> None:
        """``tick-election 2 [3 ...]``: let time pass until the first of these nodes times out.

        The nodes tick in lockstep (as real clocks would) until one reaches its timeout: a
        follower's randomized election timeout, upon which it campaigns, or a leader's
        ``election_tick``, upon which it runs CheckQuorum. Exactly one timeout fires; ticking a
        fixed ``2 * election_tick`` would sometimes fire twice and leaves the others' clocks alone.
        """
        nodes = [self.env.nodes[i] for i in args.ids()]
        ticks = min(_ticks_to_timeout(node) for node in nodes)
        for node in nodes:
            with self.env.watch(node):
                for _ in range(ticks):
                    node.raw.tick()

    def propose(self, args: Args) -> None:
        node = self._node(args)
        self._refusable(lambda: node.raw.propose(args.positional[1].encode()))

    def propose_conf_change(self, args: Args) -> None:
        """``propose-conf-change 1 v4 r1 l5 [transition=auto|implicit|explicit]``; no changes
        means "leave the joint configuration"."""
        node = self._node(args)
        changes = [ConfChangeSingle(_CHANGE[word[0]], int(word[1:])) for word in args.positional[1:]]
        cc = ConfChange(changes, _TRANSITION[args.options.get("transition", "auto")])
        self._refusable(lambda: node.raw.propose_conf_change(cc))

    def transfer_leader(self, args: Args) -> None:
        """``transfer-leader 1 to=2``: ask node 1 to hand leadership to node 2."""
        node = self._node(args)
        with self.env.watch(node):
            self._refusable(lambda: node.raw.transfer_leader(int(args.options["to"])))

    def report_unreachable(self, args: Args) -> None:
        """``report-unreachable 1 2``: node 1's transport could not reach node 2."""
        node, peer = self._node(args), int(args.positional[1])
        with self.env.watch(node):
            node.raw.report_unreachable(peer)

    def read_index(self, args: Args) -> None:
        """``read-index 1 ctx``: a linearizable read request tagged ``ctx``."""
        node = self._node(args)
        self._refusable(lambda: node.raw.read_index(args.positional[1].encode()))

    def _refusable(self, action: Callable[[], None]) -> None:
        try:
            action()
        except ProposalDroppedError as e:
            self.env.emit(f"error: ProposalDroppedError: {e}")

    # -- moving things along -----------------------------------------------------------------

    def stabilize(self, args: Args) -> None:
        self.env.stabilize(self._targets(args))

    def process_ready(self, args: Args) -> None:
        for i in self._targets(args):
            self.env.handle_ready(self.env.nodes[i])

    def deliver_msgs(self, args: Args) -> None:
        """``deliver-msgs [ids] [drop=(ids)]``: step the waiting messages, or discard them."""
        for i in args.id_list("drop"):
            self.env.drop(i)
        if args.ids() or "drop" not in args.options:
            for i in self._targets(args):
                self.env.deliver(i)

    # -- network faults ----------------------------------------------------------------------

    def isolate(self, args: Args) -> None:
        """``isolate 1``: cut node 1 off from every other node."""
        alone = args.ids()
        self.env.partition([alone, [i for i in self.env.nodes if i not in alone]])

    def partition(self, args: Args) -> None:
        """``partition (1) (2,3)``: cut the links between the groups."""
        groups = [[int(v) for v in re.split(r"[,\s]+", g.strip("()")) if v] for g in args.positional]
        self.env.partition(groups)

    def heal(self, args: Args) -> None:
        self.env.heal()

    def compact(self, args: Args) -> None:
        """``compact 1 index``: snapshot node 1's state machine at ``index`` and drop the log before it."""
        node, index = self._node(args), int(args.positional[1])
        node.storage.create_snapshot(index, node.conf_state_at(index), node.snapshot_data(index))
        node.storage.compact(index)

    def restart(self, args: Args) -> None:
        """``restart 5``: node 5 crashes and comes back; messages on their way to it are lost."""
        node_id = int(args.positional[0])
        self.env.drop(node_id)
        self.env.nodes[node_id].restart()

    # -- inspection --------------------------------------------------------------------------

    def status(self, args: Args) -> None:
        for i in self._targets(args):
            st = self.env.nodes[i].raw.status()
            self.env.emit(
                f"{i}: {fmt.ROLE[st.role]} term={st.term} vote={st.vote} lead={st.leader_id} "
                f"commit={st.commit} applied={st.applied}"
            )
            progress = self.env.nodes[i].raw.raft.trk.progress
            for peer, (match, next_index, state) in sorted(st.progress.items()):
                self.env.emit(f"  {peer}: {state} match={match} next={next_index}{_flow(progress[peer])}")

    def raft_log(self, args: Args) -> None:
        node = self._node(args)
        storage = node.storage
        entries = storage.entries(storage.first_index(), storage.last_index() + 1)
        snap = storage.snapshot().metadata
        committed = node.raw.raft.raft_log.committed
        self.env.emit(f"{node.id}: snapshot={snap.term}/{snap.index} committed={committed}")
        self.env.out += [fmt.entry(e) for e in entries]
        if not entries:
            self.env.emit("log is empty")

    def raft_state(self, args: Args) -> None:
        for i in sorted(self.env.nodes):
            r = self.env.nodes[i].raw.raft
            cs = self.env.nodes[i].raw.status().conf_state
            if i in cs.voters or i in cs.voters_outgoing:
                kind = "Voter"
            elif i in cs.learners:
                kind = "Learner"
            else:
                kind = "Removed"
            self.env.emit(f"{i}: {fmt.STATE[r.role]} ({kind}) Term:{r.term} Lead:{r.lead}")


def _flow(pr: Progress) -> str:
    """A peer's flow-control state as etcd prints it: paused, and the appends in flight."""
    text = " paused" if pr.is_paused() else ""
    inflights = pr.inflights
    if inflights.count():
        text += f" inflight={inflights.count()}/{inflights.bytes}B"
        if inflights.full():
            text += "[full]"
    return text


def _ticks_to_timeout(node: Node) -> int:
    r = node.raw.raft
    timeout = node.config.election_tick if r.role == Role.LEADER else r.randomized_election_timeout
    return max(1, timeout - r.election_elapsed)
