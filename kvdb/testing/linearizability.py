"""A linearizability checker for histories of a key-value store whose keys are registers.

A client-side test records, for every call, when it was issued and when (if ever) its answer
arrived; ``check_history`` then decides whether some total order of the calls, consistent with
real time, explains every answer. Linearizability is local (Herlihy & Wing), so each key's
sub-history is checked on its own: that keeps the search space per key, not per history.

The search is Wing & Gong's, with Lowe's just-in-time linearization and memoization (as in
Porcupine): walk the calls and returns in time order; at a return, the call must already have
taken effect, so back up and try another order. A configuration (which calls have taken effect,
register value) that was reached before is never explored again, which turns the exponential
search into one bounded by the number of distinct configurations, small when few calls overlap.

Three reductions on top keep that number small in practice (each explained where it is made):
values no operation compares with are merged into one, a read that fits is never a choice to
undo, and unanswered calls with the same effect are placed in the order they were issued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_KINDS = frozenset({"get", "put", "cas", "delete"})

# What applying an operation does to the register, decided once per operation instead of per try.
_GET, _WRITE, _CAS_OK, _CAS_FAILED, _CAS_MAYBE = range(5)
_INF = float("inf")
_UNOBSERVED = object()  # the register's state when it holds a value no operation compares it with
_SHOWN = 20  # operations listed per part of an explanation; histories run to thousands


class LinearizabilityError(AssertionError):
    """A history is not linearizable, or the search could not decide whether it is.

    An ``AssertionError`` so a test that raises it fails rather than errors, like a failed assert.
    """


@dataclass(frozen=True, slots=True)
class Operation:
    """One call on one key, as a client saw it.

    ``complete`` is None when no answer arrived (a timeout, a crash): the call may have taken
    effect at any time after ``invoke``, or never. Such a get tells nothing and is ignored; a
    cas of unknown outcome, if it took effect, succeeded exactly when the register held
    ``expected`` at that point.
    """

    client: int
    kind: str
    key: bytes
    invoke: float
    complete: float | None
    value: bytes | None = None
    expected: bytes | None = None
    ok: bool | None = None

    def __post_init__(self) -> None:
        # A malformed record would otherwise surface as a baffling verdict, far from its cause.
        if self.kind not in _KINDS:
            raise ValueError(f"unknown operation kind {self.kind!r} (expected one of {sorted(_KINDS)})")
        if self.complete is not None and self.complete < self.invoke:
            raise ValueError(f"operation completes before it is invoked: {self}")
        if self.kind == "cas" and (self.ok is None) != (self.complete is None):
            raise ValueError(f"a cas has a reported outcome exactly when it completed: {self}")

    def describe(self) -> str:
        """One line for an explanation: who, the call and its answer, and the interval (``?``: none)."""
        end = "?" if self.complete is None else self.complete
        return f"client {self.client}: {self._call()} [{self.invoke}, {end}]"

    def _call(self) -> str:
        if self.kind == "get":
            return "get -> ?" if self.complete is None else f"get -> {_show(self.value)}"
        if self.kind == "put":
            return f"put {_show(self.value)}"
        if self.kind == "delete":
            return "delete"
        outcome = "unknown" if self.ok is None else "ok" if self.ok else "failed"
        return f"cas {_show(self.expected)} -> {_show(self.value)} ({outcome})"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a history.

    ``key`` is the first key (in order of first appearance) whose sub-history is not
    linearizable; checking stops there, so ``checked_ops`` counts the operations of the keys
    checked up to and including it (indeterminate gets, which constrain nothing, not counted).
    """

    ok: bool
    key: bytes | None
    explanation: str
    checked_ops: int

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise LinearizabilityError(self.explanation)


def check_history(
    ops: Iterable[Operation],
    initial: dict[bytes, bytes | None] | None = None,
    *,
    max_states: int = 2_000_000,
) -> CheckResult:
    """Decide whether ``ops`` is linearizable, each key starting at ``initial`` (default: absent).

    Raises ``LinearizabilityError`` when a key needs more than ``max_states`` configurations: a
    verdict the search did not reach must not read as a pass.
    """
    by_key: dict[bytes, list[Operation]] = {}
    for op in ops:
        if op.kind == "get" and op.complete is None:
            continue
        by_key.setdefault(op.key, []).append(op)
    initial = initial or {}
    checked = 0
    for key, key_ops in by_key.items():
        checked += len(key_ops)
        failure = _check_key(key, key_ops, initial.get(key), max_states)
        if failure is not None:
            return CheckResult(False, key, failure, checked)
    return CheckResult(True, None, f"linearizable: {checked} operations on {len(by_key)} keys", checked)


def _check_key(key: bytes, ops: list[Operation], initial: bytes | None, max_states: int) -> str | None:
    """Search for a linearization of one key's operations; return why there is none, or None.

    Calls and returns are entries of a doubly linked list in time order (a return at equal time
    after a call, so touching intervals count as concurrent, never as ordered). Linearizing an
    operation unlinks its entries; backtracking links them back in reverse order (dancing
    links), so each step costs O(1) besides the scan for the next candidate.
    """
    n = len(ops)
    events = sorted(
        (t, is_return, i)
        for i, op in enumerate(ops)
        for t, is_return in ((op.invoke, 0), (_INF if op.complete is None else op.complete, 1))
    )
    # Entry 0 is the head sentinel and entry 2n + 1 the tail; entry e (1..2n) is events[e - 1].
    op_of = [0] * (2 * n + 2)
    is_call = [False] * (2 * n + 2)
    return_of = [0] * (2 * n + 2)
    call_of_op = [0] * n
    for e, (_, is_return, i) in enumerate(events, 1):
        op_of[e] = i
        if is_return:
            return_of[call_of_op[i]] = e
        else:
            is_call[e] = True
            call_of_op[i] = e
    nxt = list(range(1, 2 * n + 3))
    prv = list(range(-1, 2 * n + 1))

    # Only values that some operation compares the register with can be told apart; all others
    # (absent included) behave alike, so they share one state, which keeps the memo small.
    observed = {op.value for op in ops if op.kind == "get"} | {op.expected for op in ops if op.kind == "cas"}
    effect = [_effect(op) for op in ops]
    arg = [_canonical(None if op.kind == "delete" else op.value, observed) for op in ops]
    expected = [op.expected if op.kind == "cas" else None for op in ops]
    bit = [1 << i for i in range(n)]
    finite = [op.complete is not None for op in ops]
    # An operation that never changes the register can be placed as soon as it fits: in any
    # linearization from here it could be moved to the front. So that choice is never undone
    # on its own: if it leads nowhere, neither does the configuration it was made in.
    readonly = [
        effect[i] in (_GET, _CAS_FAILED) or (effect[i] == _CAS_OK and arg[i] == expected[i]) for i in range(n)
    ]
    # Unanswered operations with the same effect are interchangeable (the one issued first can
    # stand in for a later one), so they are placed in the order issued: each waits for its
    # ``blocker``. That cuts the subsets of them the search may try from exponential to linear.
    blocker = [-1] * n
    last_of_class: dict[tuple[int, object, bytes | None], int] = {}
    for e in range(1, 2 * n + 1):
        i = op_of[e]
        if is_call[e] and not finite[i]:
            signature = (effect[i], arg[i], expected[i])
            blocker[i] = last_of_class.get(signature, -1)
            last_of_class[signature] = i
    placed = [False] * n

    cache: set[tuple[int, object]] = set()
    path: list[int] = []  # call entries of the linearized operations, in order
    saved: list[object] = []  # the register before each of them
    state = _canonical(initial, observed)
    linearized = 0
    # An operation that never answered can always go last, where it affects nothing observed,
    # so the search is done once every answered one is placed.
    remaining = sum(finite)
    # The deepest dead end, for the explanation. ``best`` agrees with ``path`` below ``low``, so
    # recording a new deepest one copies only what changed since the last.
    best: list[int] = []
    best_stuck = 0
    best_pending: list[int] = []
    low = 0
    entry = nxt[0]
    while remaining:
        if is_call[entry]:
            i = op_of[entry]
            b = blocker[i]
            if b >= 0 and not placed[b]:
                entry = nxt[entry]
                continue
            kind = effect[i]
            if kind == _GET:
                if state != arg[i]:
                    entry = nxt[entry]
                    continue
                new = state
            elif kind == _WRITE:
                new = arg[i]
            elif kind == _CAS_OK:
                if state != expected[i]:
                    entry = nxt[entry]
                    continue
                new = arg[i]
            elif kind == _CAS_FAILED:
                if state == expected[i]:
                    entry = nxt[entry]
                    continue
                new = state
            else:
                new = arg[i] if state == expected[i] else state
            config = (linearized | bit[i], new)
            if config not in cache:
                cache.add(config)
                if len(cache) > max_states:
                    raise LinearizabilityError(
                        f"key {key!r}: search inconclusive, more than max_states={max_states} configurations "
                        f"explored for {n} operations (too many overlap); raise max_states or shorten the "
                        "history"
                    )
                path.append(entry)
                saved.append(state)
                linearized, state = config
                placed[i] = True
                remaining -= finite[i]
                r = return_of[entry]
                p, q = prv[entry], nxt[entry]
                nxt[p], prv[q] = q, p
                p, q = prv[r], nxt[r]
                nxt[p], prv[q] = q, p
                entry = nxt[0]
                continue
            if not readonly[i]:
                entry = nxt[entry]
                continue
            # A read-only operation fits but its configuration already failed: so does this one.
        elif len(path) > len(best) or not best_stuck:
            # ``entry`` is the return of an operation not yet placed, the deepest dead end so far.
            best[low:] = path[low:]
            low = len(path)
            best_stuck = entry
            best_pending = []
            e = nxt[0]
            while e != entry:
                best_pending.append(op_of[e])
                e = nxt[e]
        # Nothing pending extends this prefix: undo steps up to the last real choice, and try
        # the next candidate there.
        while True:
            if not path:
                return _explain(
                    key,
                    len(ops),
                    initial,
                    [ops[op_of[e]] for e in best],
                    ops[op_of[best_stuck]],
                    [ops[i] for i in best_pending],
                )
            entry = path.pop()
            state = saved.pop()
            i = op_of[entry]
            linearized ^= bit[i]
            placed[i] = False
            remaining += finite[i]
            r = return_of[entry]
            nxt[prv[r]] = r
            prv[nxt[r]] = r
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            if not readonly[i]:
                break
        low = min(low, len(path))
        entry = nxt[entry]
    return None


def _effect(op: Operation) -> int:
    if op.kind == "get":
        return _GET
    if op.kind in ("put", "delete"):
        return _WRITE
    if op.ok is None:
        return _CAS_MAYBE
    return _CAS_OK if op.ok else _CAS_FAILED


def _canonical(value: bytes | None, observed: set[bytes | None]) -> object:
    return value if value in observed else _UNOBSERVED


def _explain(
    key: bytes,
    total: int,
    initial: bytes | None,
    prefix: list[Operation],
    stuck: Operation,
    pending: list[Operation],
) -> str:
    """Describe the deepest dead end: where the search got furthest is where a reader should look."""
    state = initial  # replayed, as the search itself only knew the values it could tell apart
    for op in prefix:
        if op.kind == "put" or (op.kind == "cas" and op.ok is not False and state == op.expected):
            state = op.value
        elif op.kind == "delete":
            state = None
    lines = [
        f"key {key!r} is not linearizable ({total} operations).",
        f"Longest linearizable prefix: {len(prefix)} operations, leaving the register at {_show(state)}:",
    ]
    if len(prefix) > _SHOWN:
        lines.append(f"  ... {len(prefix) - _SHOWN} earlier operations")
    start = max(0, len(prefix) - _SHOWN)
    lines += [f"  {n}. {op.describe()}" for n, op in enumerate(prefix[start:], start + 1)]
    lines.append(
        "None of the operations pending there can be placed next (the register contradicts them, or every "
        f"order continuing with them dead-ends) before this one must have taken effect: {stuck.describe()}"
    )
    lines.append("Pending operations:")
    lines += [f"  {op.describe()}" for op in pending[:_SHOWN]]
    if len(pending) > _SHOWN:
        lines.append(f"  ... {len(pending) - _SHOWN} more")
    return "\n".join(lines)


def _show(value: bytes | None) -> str:
    if value is None:
        return "absent"
    if len(value) > 40:
        return f"{value[:32]!r}... ({len(value)} bytes)"
    return repr(value)
