"""Replacing a PD member on real processes, under load: add a fourth member (it joins as a
learner, gets PD's metadata by snapshot and is promoted once caught up), then remove an old one,
a follower or the leader itself (which hands leadership on first).

Throughout, timestamps keep coming, strictly increasing in real time (the check of
test_pd_tso.py), from a client that was given only the address of the member that goes away:
it must have learned the others; and KV writes through a client routed by PD keep succeeding
and read back afterwards. Bad requests change nothing.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from kvdb import aio
from kvdb.pb import pdpb_pb2, pdpb_pb2_grpc
from kvdb.pdclient.client import PdClient, PdError
from tests.integration.cluster import Cluster, free_ports
from tests.integration.conftest import PD_TEST_ARGS, MakePdCluster
from tests.integration.test_pd_tso import Stamp, real_time_violations, until

TSO_CALLERS = 4
WRITERS = 2
VOTER_DEADLINE = 60.0
"""Seconds for the new member to start, receive the metadata and be promoted (a loaded machine)."""
MAX_TSO_GAP = 5.0
"""Most seconds without a stamp: a leadership transfer plus the new leader's lease."""
LOAD_AFTER = 1.0


def member_ids(members: list[pdpb_pb2.Member], voters_only: bool = False) -> set[int]:
    return {m.id for m in members if not (voters_only and m.learner)}


async def member_view(address: str) -> pdpb_pb2.GetMembersResponse:
    """What one member answers from its own replica of the metadata."""
    async with grpc.aio.insecure_channel(address) as channel:
        return await pdpb_pb2_grpc.PDStub(channel).GetMembers(pdpb_pb2.GetMembersRequest(), timeout=2)


async def restart_joined(cluster: Cluster, member_id: int, dead_address: str) -> None:
    """A joined member restarts from its data dir alone: its --join now names only a member that
    is gone, so it must not need to ask (the PD group's id is kept in the data dir)."""
    assert await asyncio.to_thread(cluster.stop_pd, member_id) == 0
    pp = cluster.pd[member_id]
    pp.args = ["--join", dead_address]
    await asyncio.to_thread(cluster.start_pd, member_id)
    deadline = time.monotonic() + VOTER_DEADLINE
    while True:
        view = await member_view(pp.address)
        if not view.header.HasField("error") and view.leader.id and member_id in member_ids(
                list(view.members), voters_only=True):
            return
        assert time.monotonic() < deadline, f"restarted member {member_id} did not rejoin: {view}"
        await asyncio.sleep(0.05)


async def replace_member(cluster: Cluster, remove_leader: bool) -> dict[str, float]:
    admin = PdClient(cluster.pd_endpoints, timeout=30.0)
    await admin.connect()
    leader = cluster.pd_member_at(admin.leader_address)
    victim = leader if remove_leader else min(m for m in cluster.pd if m != leader)
    # Both load clients know only the member that goes away.
    tso = PdClient(cluster.pd[victim].address, timeout=20.0)
    kv = await aio.connect(cluster.pd[victim].address, timeout=20.0)
    stamps: list[Stamp] = []
    written: dict[bytes, bytes] = {}
    running = True

    async def caller() -> None:
        while running:
            issued = time.monotonic()
            ts = await tso.get_ts()
            stamps.append(Stamp(issued, time.monotonic(), ts))

    async def writer(n: int) -> None:
        i = 0
        while running:
            key, value = b"w%d-%06d" % (n, i), b"v%d" % i
            await kv.put(key, value)
            written[key] = value
            i += 1

    tasks = [asyncio.create_task(caller()) for _ in range(TSO_CALLERS)]
    tasks += [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    try:
        await until(lambda: len(stamps) > 100 and len(written) > 10, 30, "load to start")
        before = {m.id: m.address for m in (await admin.get_members()).members}

        # Bad input: clear errors, nothing changes.
        with pytest.raises(PdError, match="member 999 is unknown"):
            await admin.remove_member(999)
        with pytest.raises(PdError, match=f"belongs to member {leader} already"):
            await admin.add_member(cluster.pd[leader].address)
        with pytest.raises(PdError, match="wildcard"):
            await admin.add_member("0.0.0.0:4000")
        assert {m.id: m.address for m in (await admin.get_members()).members} == before

        port = free_ports(1)[0]
        phases = {"load": time.monotonic()}
        added = await admin.add_member(f"127.0.0.1:{port}")
        new_id = added.member.id
        assert added.member.learner and new_id not in before and new_id > max(before)
        assert new_id in member_ids(list(added.members))
        cluster.add_pd_member(new_id, port, join=",".join(before.values()))
        started = phases["start new member"] = time.monotonic()
        await asyncio.to_thread(cluster.start_pd, new_id)

        async def votes() -> bool:
            return new_id in member_ids(list((await admin.get_members()).members), voters_only=True)

        deadline = time.monotonic() + VOTER_DEADLINE
        while not await votes():
            assert time.monotonic() < deadline, f"{new_id} never became a voter:\n{cluster.log_tails()}"
            await asyncio.sleep(0.05)
        to_voter = time.monotonic() - started
        phases["voter"] = time.monotonic()
        # The TSO client learns the new member by itself (it never had to look for a leader).
        await until(lambda: new_id in member_ids(tso.members), 20, "the TSO client to learn the new member")

        removed_at = phases["remove"] = time.monotonic()
        left = await admin.remove_member(victim)
        remove_s = time.monotonic() - removed_at
        assert member_ids(left) == set(before) - {victim} | {new_id}
        # Its process stops cleanly (its data dir may go). In a thread: the load runs on this loop.
        assert await asyncio.to_thread(cluster.stop_pd, victim) == 0
        stopped_at = phases["stop removed"] = time.monotonic()
        await until(lambda: any(s.issued > stopped_at for s in stamps) and len(written) > 10, 30,
                    "stamps and writes after the removal")
        resumed = time.monotonic()
        await until(lambda: time.monotonic() - resumed >= LOAD_AFTER, 10, "load after the removal")
        if not remove_leader:  # the new member is a follower: restarting it disturbs nobody
            phases["restart new member"] = time.monotonic()
            await restart_joined(cluster, new_id, dead_address=cluster.pd[victim].address)
        new_leader = cluster.pd_member_at(admin.leader_address)
    finally:
        running = False
        results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"load failed: {errors[:3]}\n{cluster.log_tails()}"
    read = await kv.batch_get(written)  # one request, not one get per key (thousands of writes)
    assert read == written, sorted(k for k in written if read.get(k) != written[k])[:5]
    await kv.close()
    await tso.close()
    await admin.close()

    assert len({s.ts for s in stamps}) == len(stamps), "a timestamp was handed out twice"
    bad = real_time_violations(stamps)
    assert not bad, f"{len(bad)} stamps not above one received before they were asked for, e.g. {bad[:3]}"
    received = sorted(s.received for s in stamps)
    max_gap, gap_start = max((b - a, a) for a, b in zip(received, received[1:], strict=False))
    gap_phase = max((t, name) for name, t in phases.items() if t <= gap_start)[1]
    assert max_gap < MAX_TSO_GAP, f"no stamp for {max_gap:.1f}s"
    if remove_leader:
        assert new_leader != victim
    print(f"\nlargest TSO gap began in phase '{gap_phase}'", end="")
    return {"to_voter_s": to_voter, "remove_s": remove_s, "max_tso_gap_ms": max_gap * 1000,
            "stamps": len(stamps), "writes": len(written)}


@pytest.mark.parametrize("remove_leader", [False, True], ids=["follower", "leader"])
def test_replace_a_pd_member_under_load(make_pd_cluster: MakePdCluster, remove_leader: bool) -> None:
    cluster, _ = make_pd_cluster(n_stores=1, pd_args=[*PD_TEST_ARGS, "--replica-count", "1"])
    numbers = asyncio.run(asyncio.wait_for(replace_member(cluster, remove_leader), 150))
    print(f"\nreplace a PD member ({'the leader' if remove_leader else 'a follower'}): " +
          ", ".join(f"{k}={v:.0f}" if isinstance(v, int) else f"{k}={v:.2f}" for k, v in numbers.items()))



async def refused_requests(cluster: Cluster) -> None:
    async with PdClient(cluster.pd_endpoints, timeout=20.0) as pd:
        before = list((await pd.get_members()).members)
        for call, message in [(pd.remove_member(1), "member 1 is the last voter of PD"),
                              (pd.remove_member(42), "member 42 is unknown"),
                              (pd.add_member("pd-4.example"), "is not HOST:PORT"),
                              (pd.add_member("[::]:2379"), "wildcard"),
                              (pd.add_member(cluster.pd[1].address), "belongs to member 1 already")]:
            with pytest.raises(PdError, match=message):
                await call
        assert list((await pd.get_members()).members) == before


def test_bad_member_requests_are_refused_and_change_nothing(make_pd_cluster: MakePdCluster) -> None:
    cluster, _ = make_pd_cluster(n_stores=0, n_pd=1)
    asyncio.run(asyncio.wait_for(refused_requests(cluster), 60))
