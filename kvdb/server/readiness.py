"""Whether a node serves: gRPC health (``grpc.health.v1``), reflection, and the start-up gate.

The life cycle every node follows (docs/operations.md, "Health checks"): its server answers
health checks NOT_SERVING (overall, "", and each of its services) until it has loaded its
ranges and started, SERVING then, and NOT_SERVING again as soon as it begins to stop, so a
load balancer or Kubernetes probe takes it out before it goes. A store starts its gRPC server
before it loads (it may wait for PD), so probes can tell "starting" from "dead"; meanwhile
``StartupGate`` answers every other call UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from kvdb.net.handlers import WrappedHandlers, wrap_behavior

_ALWAYS_ANSWERED = (f"/{health.SERVICE_NAME}/", f"/{reflection.SERVICE_NAME}/")
_Status = health_pb2.HealthCheckResponse


class Health:
    """Add with ``await Health.add(server, services)`` before the server starts."""

    def __init__(self, services: list[str]) -> None:
        self.servicer = health_aio.HealthServicer()
        self.names = ["", *services]

    @classmethod
    async def add(cls, server: grpc.aio.Server, services: list[str]) -> Health:
        """Health and reflection for ``services`` (full names, ``kvdb.kv.Kv``), all NOT_SERVING."""
        self = cls(services)
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)
        reflection.enable_server_reflection([*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        await self._set(_Status.NOT_SERVING)
        return self

    async def serving(self) -> None:
        await self._set(_Status.SERVING)

    async def stopping(self) -> None:
        """NOT_SERVING for good (later ``serving`` calls are ignored); watchers hear it at once."""
        await self.servicer.enter_graceful_shutdown()

    async def _set(self, status: int) -> None:
        for name in self.names:
            await self.servicer.set(name, status)


class StartupGate(grpc.aio.ServerInterceptor):
    """Until ``open``, every call but health and reflection fails UNAVAILABLE with ``reason``
    (clients and peers retry UNAVAILABLE)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.is_open = False
        self._refusing = WrappedHandlers(self._refuse)

    def open(self) -> None:
        self.is_open = True

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if self.is_open or handler is None or details.method.startswith(_ALWAYS_ANSWERED):
            return handler
        return self._refusing.get(handler, details.method)

    def _refuse(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        reason = self.reason

        async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, reason)

        return wrap_behavior(handler, lambda behavior, is_generator: refuse)
