"""AuthInterceptor on a real TLS server (loopback): services kvdb does not write itself (health,
reflection) pass through it, and a method missing from the role table is refused to everyone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from kvdb.net import certs, grpc_factory
from kvdb.net.tls import TlsFiles
from tests.net import raw_certs


def _tls(d: Path, pair: certs.Pair) -> TlsFiles:
    return TlsFiles(d / certs.CA_CERT, pair.cert, pair.key)


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def test_health_reflection_and_an_unlisted_method(tmp_path: Path) -> None:
    certs.create_ca(tmp_path)
    node = _tls(tmp_path, certs.create_node(tmp_path, ["127.0.0.1"]))
    reader = _tls(tmp_path, certs.create_client(tmp_path, "grafana", "readonly"))
    nobody = _tls(tmp_path, raw_certs.issue(tmp_path, "mallory", ["root"]))

    async def main() -> None:
        server = grpc_factory.server(node)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        reflection.enable_server_reflection([reflection.SERVICE_NAME, "x.Unlisted"], server)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "x.Unlisted", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})])
        port = grpc_factory.listen(server, "127.0.0.1:0", node)
        await server.start()
        address = f"127.0.0.1:{port}"
        try:
            async with grpc_factory.channel(address, reader) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                with pytest.raises(grpc.aio.AioRpcError) as listed:  # the asyncio servicer lacks List
                    await stub.List(health_pb2.HealthListRequest(), timeout=5)
                assert listed.value.code() == grpc.StatusCode.UNIMPLEMENTED
                call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
                names = [s.name async for r in call for s in r.list_services_response.service]
                assert reflection.SERVICE_NAME in names
            for who, message in [(node, "may not call /x.Unlisted/Echo: it is not in kvdb's role table"),
                                 (reader, "it is not in kvdb's role table")]:
                async with grpc_factory.channel(address, who) as channel:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await channel.unary_unary("/x.Unlisted/Echo")(b"hi", timeout=5)
                    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                    assert message in refused.value.details()
            async with grpc_factory.channel(address, nobody) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                    timeout=5)
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert refused.value.details() == "client 'mallory': certificate carries no kvdb role"
        finally:
            await server.stop(None)

    asyncio.run(main())
