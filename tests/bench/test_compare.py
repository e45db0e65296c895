"""``kvdb bench compare`` and ``profile`` without any cluster: argument parsing, the ratio maths and
the table, the failover rounds side by side, the client processes and the profile summary. The
end-to-end sweeps need etcd and take minutes; they are the README's commands, not tests (the
failover workload's short end-to-end run is in test_etcd_failover.py)."""

from __future__ import annotations

import importlib.util
import socket
from typing import Any

import pytest

from bench.cli import _build_parser
from bench.compare import (
    client_processes,
    failover_row,
    format_failover,
    format_table,
    free_base_port,
    range_notes,
    ratio_rows,
    run_compare,
)
from bench.failover import Round
from bench.profile import run_profile, top_functions


def _result(target: str, workload: str, concurrency: int, throughput: float, p50: float, p99: float,
            errors: int = 0) -> dict[str, Any]:
    return {"target": target, "workload": workload, "concurrency": concurrency, "throughput": throughput,
            "latency_us": {"overall": {"p50": p50, "p99": p99}}, "error_count": errors}


def test_ratio_rows_pair_runs_by_workload_and_concurrency() -> None:
    rows = ratio_rows([
        _result("etcd", "write", 16, 4000.0, 2000.0, 8000.0),
        _result("kvdb", "write", 16, 10000.0, 1000.0, 4000.0, errors=2),
        _result("kvdb", "read", 1, 900.0, 500.0, 900.0),  # no etcd run to compare with: left out
        _result("etcd", "write", 1, 500.0, 1000.0, 3000.0),
        _result("kvdb", "write", 1, 0.0, 0.0, 0.0),
    ])
    assert [(r["workload"], r["concurrency"]) for r in rows] == [("write", 1), ("write", 16)]
    assert rows[1]["ratio"] == {"throughput": 2.5, "p50_us": 0.5, "p99_us": 0.5}
    assert rows[1]["kvdb"] == {"throughput": 10000.0, "p50_us": 1000.0, "p99_us": 4000.0, "errors": 2}
    assert rows[0]["ratio"]["throughput"] == 0.0


def test_a_kvdb_run_whose_ranges_changed_gets_a_note_under_the_table() -> None:
    one = {"count": 1, "leaders_by_store": {"1": 1}}
    two = {"count": 2, "leaders_by_store": {"1": 1, "3": 1}}
    steady, split = (_result("kvdb", "read", c, 1.0, 1.0, 1.0) for c in (16, 64))
    steady["ranges"] = {"before": one, "after": one}
    split["ranges"] = {"before": one, "after": two}
    rows = ratio_rows([steady, split] + [_result("etcd", "read", c, 1.0, 1.0, 1.0) for c in (16, 64)])
    assert range_notes(rows) == [
        "kvdb read 64: ranges changed during the run: 1 -> 2 (leaders by store {'1': 1} -> {'1': 1, '3': 1})"]


def test_ratio_rows_keep_the_order_of_the_sweep() -> None:
    results = [_result(t, w, c, 1.0, 1.0, 1.0)
               for t in ("etcd", "kvdb") for w in ("write", "read") for c in (16, 1)]
    assert [(r["workload"], r["concurrency"]) for r in ratio_rows(results)] == [
        ("write", 1), ("write", 16), ("read", 1), ("read", 16)]


def test_ratio_of_a_zero_etcd_figure_is_none_not_a_crash() -> None:
    rows = ratio_rows([_result("etcd", "read", 1, 0.0, 0.0, 0.0), _result("kvdb", "read", 1, 10.0, 5.0, 9.0)])
    assert rows[0]["ratio"] == {"throughput": None, "p50_us": None, "p99_us": None}
    assert "n/a" in format_table(rows)


def test_format_table() -> None:
    rows = ratio_rows([_result("etcd", "write", 64, 4123.4, 15000.0, 30000.0, errors=1),
                       _result("kvdb", "write", 64, 12370.2, 5000.0, 45000.0)])
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["workload", "clients", "kvdb", "ops/s", "etcd", "ops/s", "ops/s", "k/e",
                                "kvdb", "p50", "ms", "etcd", "p50", "ms", "p50", "k/e", "kvdb", "p99", "ms",
                                "etcd", "p99", "ms", "p99", "k/e", "errors", "k/e"]
    assert lines[1].split() == ["write", "64", "12,370", "4,123", "3.00x", "5.00", "15.00", "0.33x",
                                "45.00", "30.00", "1.50x", "0/1"]
    assert len({len(line) for line in lines}) == 1  # columns line up


@pytest.mark.parametrize(("total", "processes", "procs"), [(1, 4, 1), (16, 1, 1), (64, 4, 4), (10, 4, 4)])
def test_client_processes(total: int, processes: int, procs: int) -> None:
    assert client_processes(total, processes) == procs


def test_free_base_port_gives_consecutive_bindable_ports() -> None:
    base = free_base_port(6)
    socks = [socket.socket() for _ in range(6)]
    try:
        for offset, s in enumerate(socks):
            s.bind(("127.0.0.1", base + offset))
    finally:
        for s in socks:
            s.close()


def test_compare_arguments() -> None:
    args = _build_parser().parse_args(["compare"])
    assert (args.workloads, args.concurrency) == (["write", "read"], [1, 16, 64])
    assert (args.duration, args.processes) == (5.0, 1)
    assert args.func is run_compare and args.etcd_endpoints is None and args.pd is None
    args = _build_parser().parse_args(["compare", "--workloads", "ycsb-a, read", "--concurrency", "4,32",
                                       "--etcd-endpoints", "127.0.0.1:1", "--pd", "127.0.0.1:2"])
    assert (args.workloads, args.concurrency) == (["ycsb-a", "read"], [4, 32])
    assert (args.etcd_endpoints, args.pd) == ("127.0.0.1:1", "127.0.0.1:2")


@pytest.mark.parametrize("argv", [["compare", "--workloads", "nope"], ["compare", "--concurrency", "0"],
                                  ["compare", "--concurrency", "a,b"], ["compare", "--workloads", ","]])
def test_compare_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "kvdb bench compare" in capsys.readouterr().err


def test_compare_refuses_a_negative_rate_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    args = _build_parser().parse_args(["compare", "--rate", "-5"])
    assert run_compare(args) == 2
    assert "--rate" in capsys.readouterr().err


def test_profile_arguments() -> None:
    args = _build_parser().parse_args(["profile", "--duration", "3", "--top", "5"])
    assert (args.profiled_workload, args.duration, args.concurrency, args.top) == ("write", 3.0, 64, 5)
    assert args.workload == "profile"  # bench/cli.py dispatches on it
    assert args.func is run_profile


def test_top_functions_counts_total_and_self_time_by_function() -> None:
    profile = {
        "shared": {"frames": [{"name": "main", "file": "/x/node.py", "line": 1},
                              {"name": "step", "file": "/x/raft.py", "line": 10},
                              {"name": "fsync", "file": "/x/log.py", "line": 5},
                              {"name": "fsync", "file": "/x/log.py", "line": 7}]},
        "profiles": [{"unit": "seconds", "samples": [[0, 1, 2], [0, 1], [0, 1, 3]],
                      "weights": [1.0, 1.0, 2.0]},
                     {"unit": "seconds", "samples": [[0]], "weights": [4.0]}],
    }
    sections = top_functions(profile, 2).split("\n\n")
    assert sections[0] == "8.00 seconds of samples (threads not idle)"
    total, own = sections[1].splitlines(), sections[2].splitlines()
    assert total[2:] == ["100.0%      8.00  main (node.py)", " 50.0%      4.00  step (raft.py)"]
    assert own[2:] == [" 50.0%      4.00  main (node.py)", " 37.5%      3.00  fsync (log.py)"]


def test_compare_refuses_to_start_without_the_etcd_client(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "etcd3aio" else find_spec(name, *rest))
    assert run_compare(_build_parser().parse_args(["compare"])) == 2
    assert "pip install etcd3aio" in capsys.readouterr().err


def test_failover_rounds_side_by_side() -> None:
    def rounds(victim: str, gaps: list[tuple[float, float]]) -> list[Round]:
        return [Round(victim, f"member {n}", w, r, None) for n, (w, r) in enumerate(gaps)]

    row = failover_row({"etcd": rounds("etcd-leader", [(3.0, 1.1), (2.5, 1.7)]),
                        "kvdb": rounds("leader", [(0.9, 0.7), (1.2, 0.4)])})
    assert row["workload"] == "failover"
    assert (row["kvdb"]["max_write_gap"], row["kvdb"]["max_read_gap"]) == (1.2, 0.7)
    assert (row["etcd"]["max_write_gap"], row["etcd"]["max_read_gap"]) == (3.0, 1.7)
    assert row["etcd"]["rounds"][1] == {"victim": "etcd-leader", "killed": "member 1", "write_gap": 2.5,
                                        "read_gap": 1.7, "tso_gap": None}
    lines = format_failover(row).splitlines()
    assert lines[0].split() == ["failover", "round", "kvdb", "write", "gap", "s", "kvdb", "read", "gap", "s",
                                "etcd", "write", "gap", "s", "etcd", "read", "gap", "s"]
    assert lines[2].split() == ["2", "1.200", "0.400", "2.500", "1.700"]
    assert lines[3].split() == ["longest", "1.200", "0.700", "3.000", "1.700"]


@pytest.mark.parametrize("extra, words", [(["--etcd-endpoints", "127.0.0.1:1"], "--etcd-endpoints"),
                                          (["--failover-rounds", "0"], "--failover-rounds"),
                                          (["--failover-concurrency", "1"], "--failover-concurrency")])
def test_failover_usage_errors_before_anything_starts(extra: list[str], words: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = _build_parser().parse_args(["compare", "--workloads", "write,failover", *extra])
    assert run_compare(args) == 2
    assert words in capsys.readouterr().err
