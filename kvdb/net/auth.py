"""Who may call what: roles carried by client certificates, enforced on every TLS server.

A certificate's subject names its holder (common name) and its role (organizational unit, see
``kvdb.net.certs``). Roles are ordered, each allowing everything a weaker one does:
``readonly < readwrite < admin < node`` (``kvdb.net.roles``); ``node`` is the cluster itself.
``REQUIRED`` gives the least role of every gRPC method a kvdb node serves; a method missing from
it is refused (default deny, so a new RPC cannot slip out unguarded: a test walks every service).

``AuthInterceptor`` checks each call once, when it opens. The store's ``Kv.Batch`` stream (and
its raw TCP twin, ``kvdb.server.kv_listener``) only needs ``readonly`` to open; it carries
requests of every kind, so ``KvSession`` checks each request inside with ``kv_request_role``
(one dict lookup) and answers a refused one with a ``permission_denied`` error while the stream
goes on. Lock resolution (check_txn_status, check_secondary_locks, resolve_lock) is
``readwrite``: the store takes the caller's word for commit timestamps and the current time, so
these requests can decide a transaction's outcome (docs/security.md). Without TLS there is no
identity and nothing is checked.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from kvdb.net.handlers import WrappedHandlers, wrap_behavior
from kvdb.net.roles import KVDB_ORGANIZATION, Role
from kvdb.pb import adminpb_pb2, kvrpc_pb2, pdpb_pb2, raft_serverpb_pb2


@dataclass(frozen=True)
class Identity:
    name: str
    """The certificate's common name."""
    role: Role | None
    """None: the certificate's organizational unit names no role; such a caller may do nothing."""


NO_ROLE = "certificate carries no kvdb role"


def identity_of(context: grpc.aio.ServicerContext) -> Identity | None:
    """The caller's identity from its TLS certificate; None on a plaintext server."""
    pems = context.auth_context().get("x509_pem_cert")
    return _parse(pems[0]) if pems else None


@functools.lru_cache(maxsize=1024)
def _parse(pem: bytes) -> Identity:
    """Parsing costs ~50 µs; every call of one client presents the same bytes, so it is done once."""
    return _identity(x509.load_pem_x509_certificate(pem))


@functools.lru_cache(maxsize=1024)
def identity_from_der(der: bytes) -> Identity:
    """The identity in a DER certificate: what ``ssl`` gives for a raw TLS connection's peer
    (``kvdb.net.wire``); the same rules as a gRPC caller's."""
    return _identity(x509.load_der_x509_certificate(der))


def _identity(cert: x509.Certificate) -> Identity:
    subject = cert.subject
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    role = None
    if len(units) == 1 and [o.value for o in orgs] == [KVDB_ORGANIZATION]:
        with contextlib.suppress(ValueError):
            role = Role.parse(str(units[0].value))
    return Identity(str(names[0].value) if names else "", role)


def refusal(identity: Identity | None, what: str, needed: Role | None) -> str | None:
    """Why ``identity`` may not do ``what`` ("call /kvdb.pd.PD/SplitRanges", "send put requests"),
    or None if it may. ``needed`` None: ``what`` is in no table, so nobody may."""
    if identity is None:
        return "no client certificate"
    if identity.role is None:
        return f"client '{identity.name}': {NO_ROLE}"
    if needed is None:
        return (f"client '{identity.name}' (role {identity.role.label}) may not {what}: "
                "it is not in kvdb's role table")
    if identity.role < needed:
        return (f"client '{identity.name}' (role {identity.role.label}) may not {what}: "
                f"needs {needed.label}")
    return None


# ------------------------------------------------------------------------------- the tables

KV_UNARY_KINDS = {
    "RawGet": "get",
    "RawBatchGet": "batch_get",
    "RawPut": "put",
    "RawBatchPut": "batch_put",
    "RawDelete": "delete",
    "RawDeleteRange": "delete_range",
    "RawScan": "scan",
    "RawCompareAndSwap": "cas",
}
"""The ``kvrpc.Request`` kind each unary ``Kv`` method carries (the store runs it as that kind)."""

KV_KIND_ROLES: dict[str | None, Role] = {
    # reads
    "get": Role.READONLY, "batch_get": Role.READONLY, "scan": Role.READONLY,
    "txn_get": Role.READONLY, "txn_batch_get": Role.READONLY, "txn_scan": Role.READONLY,
    # lock resolution: can decide a transaction's outcome (see the module docstring)
    "check_txn_status": Role.READWRITE, "check_secondary_locks": Role.READWRITE,
    "resolve_lock": Role.READWRITE,
    # writes
    "put": Role.READWRITE, "batch_put": Role.READWRITE, "delete": Role.READWRITE,
    "delete_range": Role.READWRITE, "cas": Role.READWRITE, "prewrite": Role.READWRITE,
    "commit": Role.READWRITE, "rollback": Role.READWRITE, "txn_heart_beat": Role.READWRITE,
    # garbage collection (kvdb admin gc scans every range for locks)
    "scan_lock": Role.ADMIN,
    # no kind: the store answers invalid_argument, whoever asks
    None: Role.READONLY,
}


def kv_request_role(req: kvrpc_pb2.Request) -> Role:
    """The least role that may send ``req`` on a ``Kv.Batch`` stream (a kind missing from the
    table is for the cluster only: a test keeps the table complete)."""
    return KV_KIND_ROLES.get(req.WhichOneof("cmd"), Role.NODE)


@functools.cache
def allowed_kinds(role: Role | None) -> frozenset[str | None]:
    """The request kinds ``role`` may send on a ``Kv.Batch`` stream: a set, so the check of each
    request is one lookup (comparing IntEnums per request costs several times more)."""
    return frozenset(kind for kind, needed in KV_KIND_ROLES.items() if role is not None and role >= needed)


def _methods(module: Any, service: str, role: Role, names: Iterable[str] | None = None) -> dict[str, Role]:
    """``names`` of ``service`` in a generated ``module`` (None: all of them, new ones included),
    by full method name; a name the service lacks is a KeyError at import."""
    desc = module.DESCRIPTOR.services_by_name[service]
    names = [m.name for m in desc.methods] if names is None else names
    return {f"/{desc.full_name}/{desc.methods_by_name[name].name}": role for name in names}


REQUIRED: dict[str, Role] = {
    **_methods(raft_serverpb_pb2, "RaftTransport", Role.NODE),
    **_methods(adminpb_pb2, "Admin", Role.ADMIN),
    **_methods(health_pb2, "Health", Role.READONLY),
    **_methods(reflection_pb2, "ServerReflection", Role.READONLY),
    **{name: role for method, kind in KV_UNARY_KINDS.items()
       for name, role in _methods(kvrpc_pb2, "Kv", KV_KIND_ROLES[kind], [method]).items()},
    **_methods(kvrpc_pb2, "Kv", Role.READONLY, ["Batch"]),  # then each request by its kind (KvSession)
    **_methods(kvrpc_pb2, "Kv", Role.READONLY, ["KvPort"]),  # the raw stream checks the same way
    **_methods(pdpb_pb2, "PD", Role.NODE, [
        "Bootstrap", "PutStore", "StoreHeartbeat", "RangeHeartbeat", "AllocID", "AskBatchSplit"]),
    **_methods(pdpb_pb2, "PD", Role.ADMIN, [
        "SplitRanges", "AddOperator", "CancelOperator", "SetStoreState", "SetStoreLabels", "SetConfig",
        "PauseScheduler", "AddMember", "RemoveMember", "UpdateGcSafePoint"]),
    **_methods(pdpb_pb2, "PD", Role.READONLY, [
        "GetMembers", "IsBootstrapped", "GetStore", "GetAllStores", "GetRange", "GetRangeByID",
        "ScanRanges", "Tso", "ListOperators", "GetConfig", "ListSchedulers", "GetClusterStatus",
        "GetGcSafePoint"]),
}
"""Full method name (``/package.Service/Method``) -> the least role that may call it."""


# ------------------------------------------------------------------------------ enforcement

Behavior = Callable[..., Any]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses a call whose certificate's role is below ``REQUIRED[method]`` with
    PERMISSION_DENIED before the servicer sees it (so nothing is applied)."""

    def __init__(self) -> None:
        self._guarded = WrappedHandlers(_guard)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return handler
        return self._guarded.get(handler, details.method)


def _guard(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """``handler`` with a check of the caller in front of its behaviour (built once per method)."""
    needed = REQUIRED.get(method)

    async def check(context: grpc.aio.ServicerContext) -> None:
        why = refusal(identity_of(context), f"call {method}", needed)
        if why is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)

    def wrap(inner: Behavior, is_generator: bool) -> Behavior:
        if is_generator:
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(context)
                async for response in inner(request, context):
                    yield response

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            result = inner(request, context)
            # Generated base classes' stubs (e.g. Health/List, which the asyncio health servicer
            # does not implement) are plain functions that answer UNIMPLEMENTED.
            return await result if isawaitable(result) else result

        return call

    return wrap_behavior(handler, wrap)
