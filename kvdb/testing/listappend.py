"""An Elle-style checker of list-append histories: which isolation anomalies a history shows.

Each key holds a list; a transaction is a sequence of micro-operations ``("append", key,
value)`` and ``("r", key, [values])`` with an outcome: ``ok`` (committed), ``fail`` (surely not
committed) or ``info`` (unknown). Appended values are unique per key, so a read's list names the
transactions that wrote every element and, being a prefix of the key's final list, the order in
which those writes happened: the key's *version order* is its longest read, and every other read
must be a prefix of it. That is what makes list-append histories checkable in polynomial time
(Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental Observations", 2020).

From the version orders the checker infers, between committed transactions (``ok``, and
``info`` ones whose appends somebody read), Adya's dependency edges:

- ww: T1 appended the version right before the one T2 appended;
- wr: T2 read (before any append of its own to the key) a list ending in T1's append;
- rw (anti-dependency): T1 read a list ending in version v and T2 appended the version after v.

A cycle of these edges is an anomaly, classified by its edges: G0 (ww only), G1c (ww and wr),
G-single (exactly one rw), G-nonadjacent (several rw, no two adjacent) and G2 (several rw, some
adjacent). Snapshot isolation forbids all but the last: every cycle an SI database can produce
has two adjacent rw edges (Fekete et al., "Making snapshot isolation serializable", 2005), write
skew being the smallest. Outside cycles the checker finds G1a (a committed read saw a value of a
failed transaction), G1b (a read saw a state its writer later appended over), lost updates (two
committed transactions read the same version of a key and both appended to it; impossible under
SI's first-committer-wins), incompatible orders (two reads, neither a prefix of the other),
duplicates (a value twice in one read) and garbage (a value nobody appended).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

OUTCOMES = frozenset({"ok", "fail", "info"})
APPEND, READ = "append", "r"
WW, WR, RW = "ww", "wr", "rw"

SI_ALLOWED = frozenset({"G2"})
"""Anomaly kinds snapshot isolation permits; every other kind is a bug in an SI database."""
CYCLE_KINDS = ("G0", "G1c", "G-single", "G-nonadjacent", "G2")

TxnId = Hashable


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction as its client saw it: its micro-ops in order and its outcome.

    A read's list is what the client got back; reads of ``fail`` transactions are ignored (the
    transaction may have read anything before it aborted), those of ``info`` ones count only when
    the transaction is known to have committed (somebody read one of its appends).
    """

    id: TxnId
    ops: tuple[tuple, ...]
    outcome: str = "ok"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"txn {self.id!r}: unknown outcome {self.outcome!r} (one of {sorted(OUTCOMES)})")
        for op in self.ops:
            if len(op) != 3 or op[0] not in (APPEND, READ):
                raise ValueError(f"txn {self.id!r}: bad micro-op {op!r} "
                                 "(('append', k, v) or ('r', k, [v...]))")
            if op[0] == READ and op[2] is not None and not isinstance(op[2], Sequence):
                raise ValueError(f"txn {self.id!r}: a read's result must be a list, got {op[2]!r}")


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency ``src -> dst`` of ``kind`` (ww, wr, rw), and why: the key and versions involved."""

    src: TxnId
    dst: TxnId
    kind: str
    key: Hashable
    why: str

    def describe(self) -> str:
        return f"{self.src!r} -{self.kind}-> {self.dst!r} ({self.why})"


@dataclass(frozen=True)
class Anomaly:
    """One finding: its ``kind``, the transactions involved, the cycle's edges (cycles only) and a
    sentence of evidence. ``si_forbidden``: whether a snapshot-isolation database may show it."""

    kind: str
    txns: tuple[TxnId, ...]
    detail: str
    edges: tuple[Edge, ...] = ()
    si_forbidden: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "si_forbidden", self.kind not in SI_ALLOWED)

    def explain(self) -> str:
        lines = [f"{self.kind}: {self.detail} (txns {', '.join(map(repr, self.txns))})"]
        lines += ["  " + e.describe() for e in self.edges]
        return "\n".join(lines)


class IsolationError(AssertionError):
    """A history shows anomalies the isolation level forbids; an AssertionError so tests fail on it."""


def check(history: Iterable[Txn]) -> list[Anomaly]:
    """Every anomaly the history shows (SI-allowed ones included: filter on ``si_forbidden``)."""
    return _Analysis(list(history)).run()


def assert_snapshot_isolation(history: Iterable[Txn]) -> list[Anomaly]:
    """Raises :class:`IsolationError` listing the SI-forbidden anomalies; returns the allowed ones
    (G2: write skew and its kin), which a test may want to count."""
    found = check(history)
    bad = [a for a in found if a.si_forbidden]
    if bad:
        shown = "\n".join(a.explain() for a in bad[:10])
        raise IsolationError(f"{len(bad)} anomalies snapshot isolation forbids:\n{shown}")
    return found


# ------------------------------------------------------------------------------------- analysis


class _Analysis:
    def __init__(self, history: list[Txn]) -> None:
        self.txns = {t.id: t for t in history}
        if len(self.txns) != len(history):
            raise ValueError("transaction ids must be unique")
        self.found: list[Anomaly] = []
        # Who appended each value, and each (txn, key)'s last append (what G1b compares with).
        self.writer: dict[tuple[Hashable, object], TxnId] = {}
        self.last_append: dict[tuple[TxnId, Hashable], object] = {}
        for t in history:
            for kind, key, value in t.ops:
                if kind != APPEND:
                    continue
                if (key, value) in self.writer:
                    raise ValueError(f"value {value!r} appended to {key!r} twice (txns "
                                     f"{self.writer[key, value]!r} and {t.id!r}): "
                                     "values must be unique per key")
                self.writer[key, value] = t.id
                self.last_append[t.id, key] = value
        observed = {self.writer.get((key, v)) for t in history if t.outcome == "ok"
                    for kind, key, vs in t.ops if kind == READ and vs for v in vs}
        # A list, in history order, so that findings come out in the same order on every run.
        self.committed = [t.id for t in history
                          if t.outcome == "ok" or (t.outcome == "info" and t.id in observed)]
        self._is_committed = set(self.committed)

    def run(self) -> list[Anomaly]:
        reads = self._reads()
        self._bad_values(reads)
        orders = self._version_orders(reads)
        self._intermediate_reads(reads)
        self._lost_updates()
        graph = self._graph(orders)
        self._cycles(graph)
        return self.found

    def _reads(self) -> list[tuple[TxnId, Hashable, tuple, bool]]:
        """(txn, key, list, external) for every read of a committed txn; external: before the txn's
        own first append to the key, so the list is somebody else's state."""
        out = []
        for tid in self.committed:
            appended: set[Hashable] = set()
            for kind, key, value in self.txns[tid].ops:
                if kind == APPEND:
                    appended.add(key)
                elif value is not None:
                    out.append((tid, key, tuple(value), key not in appended))
        return out

    def _bad_values(self, reads: list[tuple[TxnId, Hashable, tuple, bool]]) -> None:
        for tid, key, values, _ in reads:
            if len(set(values)) != len(values):
                dup = sorted({v for v in values if values.count(v) > 1}, key=repr)
                self._add("duplicates", (tid,),
                          f"read of {key!r} holds {dup!r} more than once: {list(values)!r}")
            for v in values:
                w = self.writer.get((key, v))
                if w is None:
                    self._add("garbage", (tid,), f"read of {key!r} saw {v!r}, which nobody appended")
                elif self.txns[w].outcome == "fail":
                    self._add("G1a", (tid, w), f"read of {key!r} saw {v!r}, appended by failed txn {w!r}")

    def _version_orders(self, reads: list[tuple[TxnId, Hashable, tuple, bool]]) -> dict[Hashable, tuple]:
        """Each key's longest read; a read that is not a prefix of it is an incompatible order."""
        by_key: dict[Hashable, list[tuple[TxnId, tuple]]] = {}
        for tid, key, values, _ in reads:
            by_key.setdefault(key, []).append((tid, values))
        orders = {}
        for key, seen in by_key.items():
            longest_tid, longest = max(seen, key=lambda s: len(s[1]))
            for tid, values in seen:
                if longest[:len(values)] != values:
                    self._add("incompatible-order", (tid, longest_tid),
                              f"reads of {key!r} disagree on the order: "
                              f"{list(values)!r} vs {list(longest)!r}")
            orders[key] = longest
        return orders

    def _intermediate_reads(self, reads: list[tuple[TxnId, Hashable, tuple, bool]]) -> None:
        for tid, key, values, _ in reads:
            if not values:
                continue
            w = self.writer.get((key, values[-1]))
            if w is not None and w != tid and self.last_append[w, key] != values[-1]:
                self._add("G1b", (tid, w),
                          f"read of {key!r} ended at {values[-1]!r}, which txn {w!r} later appended "
                          f"over (its last append is {self.last_append[w, key]!r})")

    def _lost_updates(self) -> None:
        """Committed txns that read the same state of a key and then appended to it."""
        groups: dict[tuple[Hashable, tuple], list[TxnId]] = {}
        for tid in self.committed:
            first_read: dict[Hashable, tuple] = {}
            appended: set[Hashable] = set()
            for kind, key, value in self.txns[tid].ops:
                if kind == READ and value is not None and key not in appended:
                    first_read.setdefault(key, tuple(value))
                elif kind == APPEND and key in first_read and key not in appended:
                    appended.add(key)
                    groups.setdefault((key, first_read[key]), []).append(tid)
        for (key, values), tids in groups.items():
            if len(tids) > 1:
                tids = sorted(tids, key=repr)
                self._add("lost-update", tuple(tids),
                          f"all read {key!r} = {list(values)!r} and appended to it")

    def _graph(self, orders: dict[Hashable, tuple]) -> dict[TxnId, dict[TxnId, list[Edge]]]:
        graph: dict[TxnId, dict[TxnId, list[Edge]]] = {t: {} for t in self.committed}

        def add(src: TxnId, dst: TxnId, kind: str, key: Hashable, why: str) -> None:
            if src != dst and src in self._is_committed and dst in self._is_committed:
                graph[src].setdefault(dst, []).append(Edge(src, dst, kind, key, why))

        for key, order in orders.items():
            writers = [self.writer.get((key, v)) for v in order]
            for i in range(1, len(order)):
                add(writers[i - 1], writers[i], WW, key, f"{key!r}: {order[i - 1]!r} then {order[i]!r}")
        position = {key: {v: i for i, v in enumerate(order)} for key, order in orders.items()}
        for tid in self.committed:
            appended: set[Hashable] = set()
            for kind, key, value in self.txns[tid].ops:
                if kind == APPEND:
                    appended.add(key)
                    continue
                if value is None or key in appended:
                    continue
                order = orders.get(key, ())
                if value:
                    add(self.writer.get((key, value[-1])), tid, WR, key,
                        f"read {key!r} ending in {value[-1]!r}")
                nxt = position[key].get(value[-1], len(order)) + 1 if value else 0
                if nxt < len(order):
                    seen = f"ending in {value[-1]!r}" if value else "empty"
                    add(tid, self.writer.get((key, order[nxt])), RW, key,
                        f"read {key!r} {seen}; {order[nxt]!r} came next")
        return graph

    def _cycles(self, graph: dict[TxnId, dict[TxnId, list[Edge]]]) -> None:
        """One cycle per strongly connected component, per class, searched from the narrowest edge
        set up: G0 among ww edges, G1c among ww+wr, then G-single, G-nonadjacent, G2 with rw."""
        for kinds, label in (({WW}, "G0"), ({WW, WR}, "G1c")):
            for scc in _sccs(graph, kinds):
                cycle = None
                for edge in _edges_within(graph, scc, kinds):
                    if label == "G0" or edge.kind == WR:
                        cycle = _close(graph, scc, edge, {WW, WR} if label == "G1c" else {WW})
                        if cycle:
                            break
                if cycle:
                    self._cycle(label, cycle)
        for scc in _sccs(graph, {WW, WR, RW}):
            rws = _edges_within(graph, scc, {RW})
            if not rws:
                continue  # a ww/wr cycle, reported above
            cycle = next((c for e in rws if (c := _close(graph, scc, e, {WW, WR}))), None)
            if cycle:
                self._cycle("G-single", cycle)
                continue
            cycle = next((c for e in rws if (c := _nonadjacent(graph, scc, e))), None)
            if cycle:
                self._cycle("G-nonadjacent", cycle)
                continue
            cycle = next((c for e in rws if (c := _close(graph, scc, e, {WW, WR, RW}))), None)
            if cycle:
                self._cycle("G2", cycle)

    def _cycle(self, kind: str, edges: list[Edge]) -> None:
        rw = sum(e.kind == RW for e in edges)
        self._add(kind, tuple(e.src for e in edges), f"a cycle of {len(edges)} edges, {rw} of them rw",
                  tuple(edges))

    def _add(self, kind: str, txns: tuple, detail: str, edges: tuple[Edge, ...] = ()) -> None:
        self.found.append(Anomaly(kind, txns, detail, edges))


# ---------------------------------------------------------------------------------- graph search


def _sccs(graph: dict[TxnId, dict[TxnId, list[Edge]]], kinds: set[str]) -> list[set[TxnId]]:
    """Tarjan's strongly connected components of the ``kinds`` edges (iterative: histories have
    thousands of transactions, more than Python's recursion limit); only those with a cycle."""
    index: dict[TxnId, int] = {}
    low: dict[TxnId, int] = {}
    on_stack: set[TxnId] = set()
    stack: list[TxnId] = []
    out: list[set[TxnId]] = []
    counter = 0

    def succ(n: TxnId) -> list[TxnId]:
        return [m for m, es in graph[n].items() if any(e.kind in kinds for e in es)]

    for root in graph:
        if root in index:
            continue
        work = [(root, iter(succ(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for m in it:
                if m not in index:
                    index[m] = low[m] = counter
                    counter += 1
                    stack.append(m)
                    on_stack.add(m)
                    work.append((m, iter(succ(m))))
                    advanced = True
                    break
                if m in on_stack:
                    low[node] = min(low[node], index[m])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                if len(comp) > 1:  # no self-edges: a single transaction is never a cycle
                    out.append(comp)
    return out


def _edges_within(graph: dict[TxnId, dict[TxnId, list[Edge]]], scc: set[TxnId], kinds: set[str]
                  ) -> list[Edge]:
    return [e for n in scc for m, es in graph[n].items() if m in scc for e in es if e.kind in kinds]


def _close(graph: dict[TxnId, dict[TxnId, list[Edge]]], scc: set[TxnId], first: Edge, kinds: set[str]
           ) -> list[Edge] | None:
    """``first`` plus a shortest path back from its destination to its source over ``kinds`` edges
    (breadth first, inside the component), or None."""
    prev: dict[TxnId, Edge] = {}
    queue = deque([first.dst])
    seen = {first.dst}
    while queue:
        n = queue.popleft()
        if n == first.src:
            path = []
            while n != first.dst:
                path.append(prev[n])
                n = prev[n].src
            return [first, *reversed(path)]
        for m, es in graph[n].items():
            if m in scc and m not in seen:
                edge = next((e for e in es if e.kind in kinds), None)
                if edge is not None:
                    seen.add(m)
                    prev[m] = edge
                    queue.append(m)
    return None


def _nonadjacent(graph: dict[TxnId, dict[TxnId, list[Edge]]], scc: set[TxnId], first: Edge
                 ) -> list[Edge] | None:
    """A cycle starting with the rw edge ``first`` in which no two rw edges are adjacent (the
    closing edge included), by breadth-first search over (transaction, last edge was rw) states;
    None if there is none with distinct transactions."""
    start = (first.dst, True)
    prev: dict[tuple[TxnId, bool], tuple[tuple[TxnId, bool], Edge]] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        state = queue.popleft()
        n, after_rw = state
        for m, es in graph[n].items():
            if m not in scc:
                continue
            options = [e for e in es if e.kind != RW][:1]
            if not after_rw and m != first.src:
                options += [e for e in es if e.kind == RW][:1]
            for e in options:
                nxt = (m, e.kind == RW)
                if nxt in seen:
                    continue
                seen.add(nxt)
                prev[nxt] = (state, e)
                if m == first.src:  # reached by a non-rw edge (rw into first.src is not offered)
                    path = []
                    s = nxt
                    while s != start:
                        s, edge = prev[s]
                        path.append(edge)
                    cycle = [first, *reversed(path)]
                    if len({e.src for e in cycle}) == len(cycle):
                        return cycle
                    continue
                queue.append(nxt)
    return None
