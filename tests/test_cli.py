"""The ``kvdb`` command line as installed: version, help, and one-line errors for every bad usage.

Paths that need a running cluster are in ``tests/playground/``; here only what fails before or
without one (an unreachable PD must fail within the timeout given, with one line).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import grpc
import pytest

from kvdb import __version__
from kvdb.admin import gc_text, imbalance, show_key, status_text, table
from kvdb.cli import _build_parser, _subparser
from kvdb.client.gc import parse_duration_ms
from kvdb.config_file import apply_config_file
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc, raft_serverpb_pb2, raft_serverpb_pb2_grpc
from kvdb.playground import Layout, PlaygroundError, resolve_layout
from tests.integration.cluster import free_ports


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvdb", *args], capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert result.returncode == status, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kvdb {__version__}"


def test_help_lists_commands() -> None:
    result = run()
    assert result.returncode == 0
    for command in ("playground", "put", "get", "delete", "scan", "admin", "bench"):
        assert command in result.stdout


def test_unknown_command_fails_with_one_line() -> None:
    for command in ("nonsense", "bench-nonsense"):
        assert_one_line_error(run(command), 2, command)


@pytest.mark.parametrize("args, words", [
    (["playground", "--pd", "2"], ["odd"]),
    (["playground", "--pd", "0"], ["odd"]),
    (["put", "k"], ["VALUE"]),
    (["get", "--hex", "zz"], ["not hex"]),
    (["put", "--hex", "00", "xyz"], ["VALUE", "not hex"]),
    (["get", "k", "--pd", "nonsense"], ["HOST:PORT"]),
    (["get", "k", "--pd", ","], ["--pd"]),
    (["scan", "--limit", "0"], ["--limit"]),
    (["get", "k", "--timeout", "0"], ["--timeout"]),
    (["txn"], ["OP"]),
    (["txn", "put", "k"], ["put k", "VALUE"]),
    (["txn", "get"], ["'get' needs KEY"]),
    (["txn", "k", "v"], ["'k' is not an operation"]),
    (["txn", "put", "k", "v", "v2"], ["'v2' is not an operation"]),
    (["txn", "--hex", "get", "zz"], ["not hex"]),
    (["txn", "--hex", "delete", "01", ""], ["KEY is empty"]),
    (["txn", "get", "k", "--timeout", "-1"], ["--timeout"]),
    (["admin"], ["WHAT"]),
    (["admin", "nodes"], ["invalid choice"]),
    (["admin", "stores", "--bogus"], ["--bogus"]),
    (["admin", "move-replica", "7", "--from", "1"], ["--to"]),
    (["admin", "move-replica", "7", "--from", "1", "--to", "1"], ["same store"]),
    (["admin", "move-replica", "x", "--from", "1", "--to", "2"], ["RANGE", "not a whole number"]),
    (["admin", "move-replica", "0", "--from", "1", "--to", "2"], ["RANGE", "positive"]),
    (["admin", "transfer-leader", "7"], ["STORE"]),
    (["admin", "decommission", "-3"], ["STORE"]),
    (["admin", "operators", "--cancel", "x"], ["--cancel"]),
    (["admin", "operators", "--cancel", "3", "--all"], ["--cancel and --all"]),
    (["admin", "schedulers", "pause"], ["needs NAME"]),
    (["admin", "schedulers", "evict-leader"], ["needs STORE"]),
    (["admin", "schedulers", "evict-leader", "s1"], ["STORE", "not a whole number"]),
    (["admin", "schedulers", "pause", "balance-region", "--cancel"], ["--cancel goes with evict-leader"]),
    (["admin", "schedulers", "stop", "x"], ["invalid choice"]),
    (["admin", "config", "set", "replica_count"], ["KEY VALUE"]),
    (["admin", "config", "show", "replica_count"], ["no arguments"]),
    (["admin", "members", "add"], ["needs ADDRESS"]),
    (["admin", "members", "add", "pd4"], ["HOST:PORT"]),
    (["admin", "members", "remove", "two"], ["ID", "not a whole number"]),
    (["admin", "members", "2"], ["invalid choice"]),
    (["admin", "store-labels", "3"], ["KEY=VALUE"]),
    (["admin", "store-labels", "3", "zone"], ["'zone' is not KEY=VALUE"]),
    (["admin", "store-labels", "3", "zone=a", "zone=b"], ["given twice"]),
    (["admin", "status", "--timeout", "-1"], ["--timeout"]),
    (["admin", "gc", "--keep", "10x"], ["not a duration", "'10x'"]),
    (["admin", "gc", "--keep=-5m"], ["not a duration"]),
    (["admin", "gc", "--keep", "1m", "--safe-point", "5"], ["not allowed with"]),
    (["admin", "gc", "--safe-point", "0"], ["--safe-point", "positive"]),
    (["store", "--store-id", "1", "--listen", "127.0.0.1:1", "--data-dir", "/nonexistent/kvdb",
      "--metrics-listen", "9100"], ["--metrics-listen: '9100' is not HOST:PORT"]),
    (["pd", "--member-id", "1", "--listen", "127.0.0.1:1", "--data-dir", "/nonexistent/kvdb",
      "--initial-members", "1=127.0.0.1:1", "--metrics-listen", "x:y"], ["--metrics-listen"]),
])
def test_usage_errors_are_one_line(args: list[str], words: list[str], tmp_path: Path) -> None:
    result = run(*args, "--data-dir", str(tmp_path / "pg")) if args[0] == "playground" else run(*args)
    assert_one_line_error(result, 2, *words)
    assert not (tmp_path / "pg").exists()


@pytest.mark.parametrize("args", [["get", "k"], ["put", "k", "v"], ["scan"], ["txn", "put", "k", "v"],
                                  ["admin", "members"], ["admin", "status"], ["admin", "decommission", "3"]])
def test_unreachable_pd_fails_within_the_timeout(args: list[str]) -> None:
    port = free_ports(1)[0]
    started = time.monotonic()
    result = run(*args, "--pd", f"127.0.0.1:{port}", "--timeout", "1", timeout=30)
    assert_one_line_error(result, 3, "Unavailable")
    assert time.monotonic() - started < 15


def test_kvdb_pd_environment_variable_names_the_cluster() -> None:
    port = free_ports(1)[0]
    result = subprocess.run([sys.executable, "-m", "kvdb", "get", "k", "--timeout", "1"], capture_output=True,
                            text=True, timeout=30, env={"KVDB_PD": f"127.0.0.1:{port}", "PATH": ""})
    assert_one_line_error(result, 3, f"127.0.0.1:{port}")


def test_layout_is_saved_and_only_stores_may_change(tmp_path: Path) -> None:
    assert resolve_layout(tmp_path, None, None, None) == Layout(3, 3, 2379)
    (tmp_path / "playground.json").write_text(json.dumps({"pd": 1, "stores": 2, "base_port": 30000}))
    layout = resolve_layout(tmp_path, None, 4, None)
    assert layout == Layout(1, 4, 30000)
    assert layout.pd_endpoints == "127.0.0.1:30000" and layout.store_address(4) == "127.0.0.1:30004"
    for pd, base in ((3, None), (None, 2379)):
        with pytest.raises(PlaygroundError, match="was created with"):
            resolve_layout(tmp_path, pd, None, base)
    with pytest.raises(PlaygroundError, match="no room"):
        resolve_layout(tmp_path / "new", None, None, 65534)


def test_keys_are_shown_unambiguously() -> None:
    assert show_key("héllo".encode()) == "héllo"
    assert show_key(b"a\\b\tc\nd\re\x00\x7f\xff") == "a\\\\b\\tc\\nd\\re\\x00\\x7f\\xff"


def test_ranges_table_marks_the_leader() -> None:
    rows = [{"id": 1, "start": "", "end": "6d", "epoch": {"conf_ver": 5, "version": 1}, "leader": {
        "peer_id": 2, "store_id": 2}, "replicas": [{"peer_id": 2, "store_id": 2, "role": "VOTER"},
                                                   {"peer_id": 7, "store_id": 3, "role": "LEARNER"}]}]
    lines = table("ranges", rows).splitlines()
    assert lines[0].split()[:4] == ["ID", "START", "END", "EPOCH"]
    assert lines[1].split() == ["1", "(start)", '"m"', "5/1", "*2@s2,7@s3(learner)", "store", "2"]
    rows[0]["joint"] = True  # mid-way through a joint membership change
    assert table("ranges", rows).splitlines()[1].split()[3] == "5/1(joint)"
    rows[0]["replicas"][1]["pending"] = True
    rows[0]["replicas"].append({"peer_id": 9, "store_id": 4, "role": "VOTER", "down": True, "pending": False})
    assert table("ranges", rows).splitlines()[1].split()[4] == "*2@s2,7@s3(learner,pending),9@s4(down)"


def test_store_reads_a_toml_config_and_flags_win(tmp_path: Path) -> None:
    """Also the fixed Raft and KV ports a firewall needs: the listeners bind them, and the gRPC
    calls that tell peers and clients where to connect answer them."""
    port, other, metrics, raft_port, kv_port = free_ports(5)
    config = tmp_path / "store.toml"
    config.write_text(
        f'store-id = 1\nlisten = "127.0.0.1:{other}"\ndata-dir = "{tmp_path / "data"}"\n'
        f'static-cluster = "1=127.0.0.1:{port}"\nready-file = "{tmp_path / "ready"}"\n'
        f'tick-interval = 0.02\nlog-level = "WARNING"\nmetrics-listen = "127.0.0.1:{metrics}"\n'
        f'raft-port = {raft_port}\nkv-port = {kv_port}\n'
    )
    proc = subprocess.Popen([sys.executable, "-m", "kvdb", "store", "--config", str(config),
                             "--listen", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the store did not start from its config file"
            time.sleep(0.05)
        assert (tmp_path / "ready").read_text() == str(port)  # --listen on the command line won
        assert (tmp_path / "data" / "db").is_dir()
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as resp:
            assert b"kvdb_store_ranges 1.0" in resp.read()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            raft = raft_serverpb_pb2_grpc.RaftTransportStub(channel).RaftPort(
                raft_serverpb_pb2.RaftPortRequest(cluster_id=1), timeout=10)
            kv = kvrpc_pb2_grpc.KvStub(channel).KvPort(kvrpc_pb2.KvPortRequest(cluster_id=1), timeout=10)
        assert (raft.port, kv.port) == (raft_port, kv_port)
        for listener in (raft_port, kv_port):
            socket.create_connection(("127.0.0.1", listener), timeout=10).close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_a_store_whose_raft_port_is_taken_fails_at_start_naming_it(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run("store", "--store-id", "1", "--listen", f"127.0.0.1:{port}", "--static-cluster",
                     f"1=127.0.0.1:{port}", "--raft-port", str(busy), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1, result
    assert str(busy) in result.stderr and "in use" in result.stderr, result.stderr


@pytest.mark.parametrize(("content", "words"), [
    ("store-id = 1\nnonsense = 3\n", ["unknown key 'nonsense'"]),
    ("store-id = 'x'\n", ["store-id"]),
    ("store-id = [\n", ["not valid TOML"]),
    ("store-id = 1\n", ["missing --listen, --data-dir"]),
    ("max-range-size = '12 parsecs'\n", ["max-range-size", "not a size"]),
])
def test_bad_config_files_fail_with_one_line(content: str, words: list[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    assert_one_line_error(run("store", "--config", str(config)), 2, *words)


def test_store_refuses_a_tiny_max_range_size(tmp_path: Path) -> None:
    args = ["store", "--store-id", "1", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path),
            "--static-cluster", "1=127.0.0.1:1"]
    assert_one_line_error(run(*args, "--max-range-size", "1KB"), 2, "max_range_size must be at least 1024")
    assert_one_line_error(run(*args, "--max-range-size", "lots"), 2, "--max-range-size")


@pytest.mark.parametrize("process", ["store", "pd"])
def test_a_tiny_wal_recycle_size_is_refused(process: str, tmp_path: Path) -> None:
    args = ([process, "--store-id", "1", "--static-cluster", "1=127.0.0.1:1"] if process == "store"
            else [process, "--member-id", "1", "--initial-members", "1=127.0.0.1:1"])
    args += ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")]
    assert_one_line_error(run(*args, "--wal-recycle-size", "64KiB"), 2, "wal_recycle_bytes", "at least")
    assert_one_line_error(run(*args, "--wal-recycle-size", "big"), 2, "--wal-recycle-size")
    assert not (tmp_path / "d").exists()


def test_pd_without_required_flags_fails_with_one_line() -> None:
    assert_one_line_error(run("pd", "--member-id", "1"), 2, "missing --listen, --data-dir")


@pytest.mark.parametrize(("extra", "words"), [
    ([], ["either --initial-members", "or --join"]),
    (["--initial-members", "1=127.0.0.1:1", "--join", "127.0.0.1:2"], ["either --initial-members"]),
    (["--join", "127.0.0.1"], ["--join: '127.0.0.1' is not HOST:PORT"]),
])
def test_pd_needs_initial_members_or_join(extra: list[str], words: list[str], tmp_path: Path) -> None:
    args = ["pd", "--member-id", "4", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *extra]
    assert_one_line_error(run(*args), 2, *words)


@pytest.mark.parametrize(("toml", "argv", "expected"), [
    ("", [], None),
    ("hibernate = false\nhibernate-idle-ticks = 7\n", [], (False, 7)),
    ("hibernate = false\n", ["--hibernate"], (True, None)),
    ("hibernate = true\n", ["--no-hibernate"], (False, None)),
])
def test_hibernation_settings_come_from_flags_or_the_config_file(
        toml: str, argv: list[str], expected: tuple[bool, int | None] | None, tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text(toml)
    argv = ["store", "--config", str(config), *argv]
    parser = _build_parser()
    args = parser.parse_args(argv)
    apply_config_file(_subparser(parser, "store"), args, argv)
    got = None if args.hibernate is None else (args.hibernate, args.hibernate_idle_ticks)
    assert got == expected


def test_a_hibernate_key_that_is_not_a_boolean_fails_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("store-id = 1\nhibernate = 'yes'\n")
    assert_one_line_error(run("store", "--config", str(config)), 2, "hibernate", "true or false")


STATUS_STORES = [
    {"id": 1, "address": "127.0.0.1:1", "state": "UP", "ranges": 12, "leaders": 6, "labels": {"zone": "a"}},
    {"id": 2, "address": "127.0.0.1:2", "state": "UP", "ranges": 8, "leaders": 2, "labels": {}},
    {"id": 3, "address": "127.0.0.1:3", "state": "DISCONNECTED", "ranges": 10, "leaders": 4, "labels": {}},
    {"id": 4, "address": "127.0.0.1:4", "state": "OFFLINE", "ranges": 30, "leaders": 0, "labels": {}},
]


def test_imbalance_counts_only_stores_that_should_hold_ranges() -> None:
    spread = imbalance(STATUS_STORES)  # the OFFLINE store is being emptied: not part of the balance
    assert spread["stores"] == 3
    assert spread["ranges"] == {"max": 12, "min": 8, "mean": 10.0, "max_over_mean_percent": 20.0,
                                "min_under_mean_percent": 20.0}
    leaders = spread["leaders"]
    assert (leaders["max"], leaders["min"], leaders["mean"]) == (6, 2, 4.0)
    assert imbalance([])["ranges"]["mean"] == 0.0  # no store yet: no division by zero


def test_status_fits_one_screen_and_names_what_matters() -> None:
    row = {"members": [{"id": 1, "address": "a:1", "leader": True, "learner": False},
                       {"id": 4, "address": "a:4", "leader": False, "learner": True}],
           "leader": {"id": 1, "address": "a:1"}, "stores": STATUS_STORES, "range_count": 30,
           "operators": [{"origin": "admin"}, {"origin": "replica-checker"}, {"origin": "replica-checker"}],
           "schedulers": [{"name": "balance-region", "paused": True},
                          {"name": "hot-region", "paused": False}],
           "config": {"evict_leader_stores": [2]}, "imbalance": imbalance(STATUS_STORES)}
    text = status_text(row)
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 100
    assert lines[0] == "PD members: 2, leader 1 at a:1"
    assert "learner" in text and "Stores: 4 (1 DISCONNECTED, 1 OFFLINE, 2 UP)" in text
    assert "Ranges: 30" in text and "Operators in flight: 3 (1 by admin, 2 by replica-checker)" in text
    assert "Schedulers paused: balance-region; evicting leaders from stores: 2" in text
    assert "ranges   max 12 (+20.0%), min 8 (-20.0%), mean 10.0" in text
    assert "zone=a" in text  # labels column of the stores table


def test_operator_and_config_tables() -> None:
    op = {"id": 9, "range_id": 7, "kind": "move-replica", "origin": "admin", "step": 1, "steps": 3,
          "status": "running", "description": "move range 7's replica from store 1 to store 4"}
    lines = table("operators", [op, {**op, "id": 10, "status": "success"}]).splitlines()
    assert lines[0].split() == ["ID", "RANGE", "KIND", "ORIGIN", "STEP", "STATUS", "DESCRIPTION"]
    assert lines[1].split()[:6] == ["9", "7", "move-replica", "admin", "2/3", "running"]
    assert lines[2].split()[4:6] == ["3/3", "success"]
    lines = table("config", [{"replica_count": 3, "evict_leader_stores": [1, 4]}]).splitlines()
    assert [line.split() for line in lines[1:]] == [["replica_count", "3"], ["evict_leader_stores", "1,4"]]


@pytest.mark.parametrize(("args", "words"), [
    (["store", "--listen", "0.0.0.0:0", "--pd", "127.0.0.1:1"], ["wildcard", "--advertise-address"]),
    (["store", "--listen", "[::]:20160", "--pd", "127.0.0.1:1"], ["wildcard", "--advertise-address"]),
    (["store", "--listen", "127.0.0.1:0", "--advertise-address", "0.0.0.0:1", "--pd", "127.0.0.1:1"],
     ["--advertise-address", "not a wildcard"]),
    (["store", "--listen", "127.0.0.1:0", "--advertise-address", "host:port", "--pd", "127.0.0.1:1"],
     ["--advertise-address", "HOST:PORT"]),
    (["store", "--listen", "127.0.0.1:0", "--advertise-address", "[::]", "--pd", "127.0.0.1:1"],
     ["--advertise-address", "not a wildcard"]),
    (["store", "--listen", "127.0.0.1:0"], ["--store-id is required without --pd"]),
    (["store", "--listen", "127.0.0.1:0", "--pd", "127.0.0.1:1", "--labels", "zone"],
     ["--labels", "KEY=VALUE"]),
    (["store", "--listen", "127.0.0.1:0", "--pd", "127.0.0.1:1", "--labels", "zone=a,zone=b"], ["twice"]),
    (["store", "--listen", "127.0.0.1:0", "--pd", "127.0.0.1:1", "--labels", "zone=a b"], ["value 'a b'"]),
    (["store", "--store-id", "1", "--listen", "127.0.0.1:0", "--static-cluster", "1=127.0.0.1:1",
      "--labels", "zone=a"], ["--labels needs --pd"]),
    (["store", "--store-id", "1", "--listen", "127.0.0.1:2400", "--static-cluster", "1=127.0.0.1:2400",
      "--kv-port", "2400"], ["--kv-port 2400", "--listen"]),
    (["store", "--store-id", "1", "--listen", "127.0.0.1:0", "--static-cluster", "1=127.0.0.1:1",
      "--raft-port", "2401", "--kv-port", "2401"], ["--kv-port 2401", "--raft-port"]),
    (["store", "--store-id", "1", "--listen", "127.0.0.1:0", "--static-cluster", "1=127.0.0.1:1",
      "--raft-port", "70000"], ["--raft-port 70000", "not a TCP port"]),
    (["pd", "--member-id", "1", "--listen", "127.0.0.1:2379", "--initial-members", "1=127.0.0.1:2379",
      "--raft-port", "2379"], ["--raft-port 2379", "--listen"]),
    (["pd", "--member-id", "1", "--listen", "0.0.0.0:2379", "--initial-members", "1=10.0.0.1:2379"],
     ["wildcard"]),
    (["pd", "--member-id", "4", "--listen", "0.0.0.0:2379", "--join", "127.0.0.1:1"], ["wildcard"]),
    (["pd", "--member-id", "1", "--listen", "127.0.0.1:2379", "--initial-members", "1=127.0.0.1:2380"],
     ["advertises 127.0.0.1:2379", "127.0.0.1:2380", "must match"]),
    (["pd", "--member-id", "1", "--listen", "0.0.0.0:2379", "--advertise-address", "10.0.0.2:2379",
      "--initial-members", "1=10.0.0.1:2379"], ["advertises 10.0.0.2:2379", "must match"]),
])
def test_address_and_label_flags_are_checked_before_anything_starts(
        args: list[str], words: list[str], tmp_path: Path) -> None:
    assert_one_line_error(run(*args, "--data-dir", str(tmp_path / "data")), 2, *words)
    assert not (tmp_path / "data").exists()


def test_advertised_address_defaults_to_listen_and_port_0_means_the_bound_port() -> None:
    from kvdb.server.addresses import advertised, check_member_address

    assert advertised("127.0.0.2:0", "", 4321) == "127.0.0.2:4321"
    assert advertised("0.0.0.0:0", "10.0.0.5:0", 4321) == "10.0.0.5:4321"
    assert advertised("0.0.0.0:0", "10.0.0.5", 4321) == "10.0.0.5:4321"  # a bare host: the bound port
    assert advertised("[::]:0", "[fd00::5]", 4321) == "[fd00::5]:4321"
    assert advertised("0.0.0.0:20160", "10.0.0.5:30160", 20160) == "10.0.0.5:30160"  # behind a NAT
    # A PD member's advertised port 0 is its --listen port: the entry in --initial-members matches.
    check_member_address(1, {1: "10.0.0.1:2379"}, "0.0.0.0:2379", "10.0.0.1:0")


def test_store_address_and_label_keys_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text('listen = "0.0.0.0:20160"\nadvertise-address = "10.0.0.5:20160"\n'
                      'labels = "zone=a,rack=r1"\n')
    argv = ["store", "--config", str(config), "--labels", "zone=b"]
    parser = _build_parser()
    args = parser.parse_args(argv)
    apply_config_file(_subparser(parser, "store"), args, argv)
    assert (args.listen, args.advertise_address, args.labels) == ("0.0.0.0:20160", "10.0.0.5:20160", "zone=b")
    assert args.store_id is None  # PD allocates it


def test_playground_labels_are_dealt_round_robin_and_kept(tmp_path: Path) -> None:
    layout = resolve_layout(tmp_path, None, 4, None, ["zone=a,b,c", "rack=r1,r2"])
    assert [layout.store_labels(i) for i in range(1, 5)] == [
        {"zone": "a", "rack": "r1"}, {"zone": "b", "rack": "r2"}, {"zone": "c", "rack": "r1"},
        {"zone": "a", "rack": "r2"}]
    (tmp_path / "playground.json").write_text(json.dumps(asdict(layout)))
    saved = resolve_layout(tmp_path, None, None, None)
    assert saved.labels == {"zone": ["a", "b", "c"], "rack": ["r1", "r2"]}
    assert resolve_layout(tmp_path, None, None, None, [""]).labels == {}  # --labels '' drops them
    for bad, words in ((["zone"], "KEY=VALUE"), (["zone=a,rack=b"], "one key per --labels"),
                       (["zone=a", "zone=b"], "twice")):
        with pytest.raises(PlaygroundError, match=words):
            resolve_layout(tmp_path / "new", None, None, None, bad)
    assert_one_line_error(run("playground", "--labels", "zone", "--data-dir", str(tmp_path / "pg")), 2,
                          "--labels")
    assert not (tmp_path / "pg").exists()


def test_stores_table_shows_labels() -> None:
    rows = [{"id": 4, "address": "10.0.0.5:20160", "state": "UP", "ranges": 3, "leaders": 1,
             "last_heartbeat_ms": 0, "labels": {"zone": "a", "rack": "r1"}}]
    lines = table("stores", rows).splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "STATE", "RANGES", "LEADERS", "LABELS"]
    assert lines[1].split() == ["4", "10.0.0.5:20160", "UP", "3", "1", "zone=a,rack=r1"]


def test_config_rows_show_lists_as_lists() -> None:
    from kvdb.admin import config_row
    from kvdb.pb import pdpb_pb2

    row = config_row(pdpb_pb2.ScheduleConfig(replica_count=3, evict_leader_stores=[2, 5]))
    assert row["replica_count"] == 3 and row["evict_leader_stores"] == [2, 5] and row["location_labels"] == []
    json.dumps(row)  # plain values only


@pytest.mark.parametrize(("text", "ms"), [("10m", 600_000), ("90s", 90_000), ("1h", 3_600_000),
                                          ("500ms", 500), ("2d", 172_800_000), (" 0s ", 0)])
def test_gc_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_gc_text_names_the_safe_point_and_a_lower_ask() -> None:
    row = {"safe_point": (1_700_000_000_000 << 18) | 3, "safe_point_ms": 1_700_000_000_000, "asked": 5,
           "locks_resolved": 2, "transactions": 1, "ranges_scanned": 4}
    text = gc_text(row)
    assert "2023-11-14 22:13:20.000 UTC" in text and "resolved 2 locks of 1 transactions in 4 ranges" in text
    assert "asked for 5: the safe point was already higher" in text
    assert "asked for" not in gc_text({**row, "asked": row["safe_point"]})
