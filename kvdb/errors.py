"""The errors the client library raises: one base class, a few kinds a caller can act on.

Routing trouble (a moved leader, a split range, a busy store) never surfaces: the client retries
it until the call's deadline. What remains tells the caller what to do next: retry later
(``UnavailableError``, ``DeadlineExceededError``), fix the request (``InvalidArgumentError``),
check the configuration (``ClusterMismatchError``, ``PermissionDeniedError``), or find out what happened
(``UncertainResultError``). Transactions add two outcomes that mean "nothing was written, run it
again with a new snapshot": ``WriteConflictError`` and ``TransactionAbortedError``
(``client.run_transaction`` does that for you).
"""

from __future__ import annotations


class KvdbError(Exception):
    """Base of every error the client raises."""


class UnavailableError(KvdbError):
    """No PD member or store could be reached before the deadline."""


class DeadlineExceededError(KvdbError):
    """The cluster was reachable but the call did not finish before its deadline (a write: none of
    its attempts can have applied; otherwise it is an ``UncertainResultError``)."""


class InvalidArgumentError(KvdbError, ValueError):
    """The request is malformed (checked by the client) or the store refused it (its message)."""


class ClusterMismatchError(KvdbError):
    """A store belongs to another cluster than the PD the client asked."""


class UncertainResultError(KvdbError):
    """A write was sent but its outcome is unknown: it may or may not have applied (the deadline
    passed without an answer, or a retry reached a range that had forgotten the client's session,
    see docs/client.md "Sessions"). The message names the session id, as store debug logs do."""


class PermissionDeniedError(KvdbError):
    """The cluster runs with TLS and the client's certificate does not carry a role that may do
    this (docs/security.md "Roles"); nothing was applied. Retrying will not help."""


class ClientClosedError(KvdbError):
    """The client was closed before or during the call."""


class WriteConflictError(KvdbError):
    """A transaction's key was written by another transaction that committed after this one
    started (or is being committed by it): this one was rolled back; run it again."""


class TransactionAbortedError(KvdbError):
    """The transaction was rolled back before it could commit: a lock resolver found its locks
    expired, or its primary lock was gone at commit. Nothing of it is visible; run it again."""
