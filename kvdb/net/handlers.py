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
