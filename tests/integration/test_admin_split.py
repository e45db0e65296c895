"""``kvdb admin split`` on a real 3-store cluster: PD hands the range's leader a split operator,
the leader splits through Raft, and the command answers with the new ranges once heartbeats show
them. Every key written before stays readable through the client (its range cache follows the
split), and PD lists the ranges with the new bounds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import kvdb
from tests.integration.client import PdHandle
from tests.integration.cluster import wait_for
from tests.integration.conftest import MakePdCluster

KEYS = 300


def admin_split(pd: PdHandle, *args: str) -> subprocess.CompletedProcess:
    """Run the command (the last of repeated flags wins, so ``args`` may override the timeout)."""
    return subprocess.run([sys.executable, "-m", "kvdb", "admin", "split", "--pd", pd.cluster.pd_endpoints,
                           "--timeout", "30", *args], capture_output=True, text=True, timeout=90)


def bounds(pd: PdHandle) -> list[tuple[bytes, bytes]]:
    return [(r.descriptor.start_key, r.descriptor.end_key) for r in pd.run(pd.client.scan_ranges(b""))]


def test_admin_split_at_two_keys_keeps_every_key_readable(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster()
    first = pd.wait_voters(3)
    written = {b"key-%04d" % i: b"value-%04d" % i for i in range(KEYS)}
    with kvdb.connect(cluster.pd_endpoints, timeout=20) as client:
        client.batch_put(written)

        result = admin_split(pd, "key-0200", "key-0100", "--json")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert [(bytes.fromhex(r["start"]), bytes.fromhex(r["end"])) for r in rows] == [
            (b"key-0100", b"key-0200"), (b"key-0200", b"")]
        new_ids = {r["id"] for r in rows}
        assert len(new_ids) == 2 and first.descriptor.id not in new_ids
        assert all(len(r["replicas"]) == 3 for r in rows)
        assert bounds(pd) == [(b"", b"key-0100"), (b"key-0100", b"key-0200"), (b"key-0200", b"")]

        assert client.batch_get(list(written)) == written
        assert dict(client.scan(b"", b"", limit=KEYS + 1)) == written
        for key in (b"key-0000", b"key-0150", b"key-0250"):  # one write into each range
            client.put(key, b"after-split")
            assert client.get(key) == b"after-split"

    # Again: the keys start ranges already, so nothing splits and the same ranges come back.
    again = admin_split(pd, "key-0100", "key-0200")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "START", "END"] and len(lines) == 3
    assert [line.split()[0] for line in lines[1:]] == [str(r["id"]) for r in rows]
    assert len(bounds(pd)) == 3

    # What a split checker would ask for next: ids for two more ranges out of the last one.
    last = pd.run(pd.client.get_range(b"key-0250")).descriptor
    ids = pd.run(pd.client.ask_batch_split(last, 2))
    assert [len(i.new_peer_ids) for i in ids] == [3, 3]
    assert len({i.new_range_id for i in ids} | {p for i in ids for p in i.new_peer_ids}) == 8
    cluster.assert_all_running()


def test_admin_split_errors_are_one_line(make_pd_cluster: MakePdCluster) -> None:
    _, pd = make_pd_cluster(n_stores=0)  # PD answers; no store ever carries a split out
    for args, status, words in ((["", "--json"], 2, "empty KEY"), (["zz", "--hex"], 2, "not hex"),
                                (["k", "--timeout", "0"], 2, "--timeout")):
        result = admin_split(pd, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == status and len(lines) == 1 and words in lines[0], result.stderr
    result = admin_split(pd, "k", "--timeout", "2")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stderr
    assert lines[0].startswith("kvdb admin split: ") and "not_bootstrapped" in lines[0], result.stderr


def test_admin_split_survives_a_pd_leader_kill(make_pd_cluster: MakePdCluster) -> None:
    """The PD leader dies once the range's leader has been handed the split (or later): the
    command retries at the next leader, whose operator tracking starts empty and whose range tree
    comes from the records, and still answers with the ranges at the keys."""
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    written = {b"key-%04d" % i: b"v" for i in range(100)}
    with kvdb.connect(cluster.pd_endpoints, timeout=20) as client:
        client.batch_put(written)
    old_leader = pd.leader_member()
    command = subprocess.Popen([sys.executable, "-m", "kvdb", "admin", "split", "key-0050", "--json",
                                "--pd", cluster.pd_endpoints, "--timeout", "40"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def handed_out() -> bool:
            return any("carrying out split" in s.tail(200) for s in cluster.stores.values())

        wait_for(handed_out, 30, "a store to carry out the split operator", interval=0.02)
        cluster.kill_pd(old_leader)
        out, err = command.communicate(timeout=90)
    finally:
        command.kill()
    assert command.returncode == 0, err
    rows = json.loads(out)
    assert [(bytes.fromhex(r["start"]), r["end"]) for r in rows] == [(b"key-0050", "")]
    assert pd.leader_member() != old_leader
    assert bounds(pd) == [(b"", b"key-0050"), (b"key-0050", b"")]
    with kvdb.connect(cluster.pd_endpoints, timeout=20) as client:
        assert client.batch_get(list(written)) == written
