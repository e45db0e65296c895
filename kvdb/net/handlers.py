"""Rebuilding a gRPC method handler around a new behaviour (for server interceptors)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import grpc

Wrap = Callable[[Callable, bool], Callable]
"""(the handler's behaviour, whether it is an async generator) -> the behaviour to run instead."""


def wrap_behavior(handler: grpc.RpcMethodHandler, wrap: Wrap) -> grpc.RpcMethodHandler:
    """The same kind of handler, same (de)serializers, running ``wrap``'s behaviour."""
    for behavior, make in ((handler.unary_unary, grpc.unary_unary_rpc_method_handler),
                           (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
                           (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
                           (handler.stream_stream, grpc.stream_stream_rpc_method_handler)):
        if behavior is not None:
            return make(wrap(behavior, inspect.isasyncgenfunction(behavior)),
                        handler.request_deserializer, handler.response_serializer)
    raise ValueError("a method handler without a behaviour")


Build = Callable[[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler]
"""(the handler gRPC found, its full method name) -> the handler an interceptor answers with."""


class WrappedHandlers:
    """An interceptor's wrapped handlers, built once per method instead of on every call.

    gRPC hands an interceptor the same handler object for a method on each call (the one its
    servicer registered, or the cached one of the next interceptor), so the wrapper built for it
    is reused; a different object (the start-up gate opening, a servicer registered anew) is
    wrapped afresh."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``build(handler, method)``, or the handler built for this very ``handler`` before."""
        built = self._built.get(method)
        if built is None or built[0] is not handler:
            built = self._built[method] = (handler, self._build(handler, method))
        return built[1]
