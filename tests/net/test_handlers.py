"""WrappedHandlers: an interceptor's wrapper is built once per method and handler object."""

from __future__ import annotations

import grpc

from kvdb.net.handlers import WrappedHandlers


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def test_a_wrapper_is_rebuilt_only_when_the_handler_object_changes() -> None:
    built: list[str] = []

    def build(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        built.append(method)
        return grpc.unary_unary_rpc_method_handler(handler.unary_unary)

    cache = WrappedHandlers(build)
    first, second = (grpc.unary_unary_rpc_method_handler(_echo) for _ in range(2))
    a = cache.get(first, "/x.S/A")
    assert cache.get(first, "/x.S/A") is a
    b = cache.get(first, "/x.S/B")
    assert b is not a and cache.get(first, "/x.S/B") is b
    assert cache.get(second, "/x.S/A") is not a  # a new handler for the method: wrapped again
    assert built == ["/x.S/A", "/x.S/B", "/x.S/A"]
