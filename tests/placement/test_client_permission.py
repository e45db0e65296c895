"""The PD client on PERMISSION_DENIED: raised at once as ``PdPermissionDeniedError`` (which is a
``kvdb.errors.PermissionDeniedError``), never retried, from unary calls, the TSO stream and
discovery alike. A fake PD member refuses the methods it is told to (plaintext, loopback)."""

from __future__ import annotations

import collections
import time
from typing import Any

import grpc
import pytest

from kvdb.errors import PermissionDeniedError
from kvdb.pb import pdpb_pb2, pdpb_pb2_grpc
from kvdb.pdclient.client import PdClient, PdPermissionDeniedError
from tests.placement.test_client import CLUSTER_ID, async_test

TIMEOUT = 5.0


class RefusingMember(pdpb_pb2_grpc.PDServicer):
    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.calls: collections.Counter[str] = collections.Counter()
        self.server = grpc.aio.server()
        pdpb_pb2_grpc.add_PDServicer_to_server(self, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    async def _gate(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.calls[method] += 1
        if method in self.refuse:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"client 'x' (role readonly) may not call {method}: needs admin")

    async def GetMembers(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._gate("GetMembers", context)
        me = pdpb_pb2.Member(id=1, address=self.address)
        return pdpb_pb2.GetMembersResponse(header=pdpb_pb2.ResponseHeader(cluster_id=CLUSTER_ID),
                                           members=[me], leader=me)

    async def SplitRanges(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._gate("SplitRanges", context)
        return pdpb_pb2.SplitRangesResponse()

    async def Tso(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._gate("Tso", context)
        async for _ in request_iterator:
            yield pdpb_pb2.TsoResponse()


async def _refused_quickly(call: Any, match: str) -> None:
    began = time.monotonic()
    with pytest.raises(PdPermissionDeniedError, match=match) as refused:
        await call
    assert isinstance(refused.value, PermissionDeniedError)
    assert time.monotonic() - began < TIMEOUT / 2, "retried until the deadline"


@async_test
async def test_a_refused_call_is_raised_at_once_and_never_retried() -> None:
    member = RefusingMember({"SplitRanges", "Tso"})
    await member.server.start()
    try:
        async with PdClient([member.address], timeout=TIMEOUT) as pd:
            await _refused_quickly(pd.split_ranges([b"m"], timeout=1), "SplitRanges: needs admin")
            await _refused_quickly(pd.get_ts(), "permission denied: .*Tso: needs admin")
            assert member.calls["SplitRanges"] == 1 and member.calls["Tso"] == 1
    finally:
        await member.server.stop(None)


@async_test
async def test_a_refused_discovery_fails_connect_at_once() -> None:
    member = RefusingMember({"GetMembers"})
    await member.server.start()
    try:
        pd = PdClient([member.address], timeout=TIMEOUT)
        try:
            await _refused_quickly(pd.connect(), "GetMembers: needs admin")
        finally:
            await pd.close()
        assert member.calls["GetMembers"] == 1
    finally:
        await member.server.stop(None)
