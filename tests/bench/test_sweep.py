"""``kvdb bench sweep``: saturation from result figures, the table and plot, and a short real sweep
of an etcd cluster (skipped where etcd is not installed; the playground's is in
test_on_a_playground.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.report import check_result
from bench.sweep import format_sweep, plot_sweep, point, saturation
from tests.bench.test_bench_cli import bench


def fake_result(target: str, rate: float, throughput: float, p50: int, p99: int) -> dict[str, Any]:
    return {"target": target, "rate": rate, "throughput": throughput, "missed": 0, "error_count": 0,
            "latency_us": {"overall": {"p50": p50, "p99": p99}}}


def test_it_saturates_where_every_higher_rate_falls_short_of_90_percent() -> None:
    def points(*runs: tuple[int, float]) -> list[dict[str, Any]]:
        return [point(fake_result("kvdb", rate, got, 2000, 5000)) for rate, got in runs]

    knee = saturation(points((4000, 2100.0), (1000, 1000.0), (2000, 1850.0)))
    assert knee is not None and knee["rate"] == 4000  # 1850 of 2000 is 92.5%: not yet
    assert saturation(points((1000, 1000.0), (2000, 1850.0))) is None
    # a stall at 500 below rates that kept up is not the limit
    knee = saturation(points((500, 300.0), (1000, 990.0), (2000, 1500.0), (4000, 1600.0)))
    assert knee is not None and knee["rate"] == 2000


def test_table_and_plot(tmp_path: Path) -> None:
    points = [point(fake_result(t, rate, min(rate, cap), 1500, 9000))
              for t, cap in (("kvdb", 3000.0), ("etcd", 1500.0)) for rate in (1000, 2000, 4000)]
    text = format_sweep(points)
    assert text.splitlines()[0].split()[:3] == ["target", "rate", "ops/s"]
    assert "etcd: saturated at 2,000 ops/s (achieved 1,500); highest achieved 1,500 ops/s" in text
    assert "kvdb: saturated at 4,000 ops/s (achieved 3,000); highest achieved 3,000 ops/s" in text
    pytest.importorskip("matplotlib")
    path = plot_sweep(points, tmp_path, "write")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_usage_errors_before_anything_starts() -> None:
    for args, words in ((["--rates", "0,100"], "--rates"), (["--rates", "x"], "--rates"),
                        (["--concurrency", "0"], "concurrency"), (["--processes", "0"], "processes")):
        result = bench("sweep", *args)
        assert result.returncode == 2, result
        assert words in result.stderr and "Traceback" not in result.stderr


def check_sweep(out: Path, target: str, rates: list[int]) -> None:
    summary = json.loads((out / "sweep.json").read_text())
    assert [p["rate"] for p in summary["points"]] == rates
    for rate in rates:
        result = check_result(json.loads((out / f"{target}-write-r{rate}.json").read_text()))
        assert result["rate"] == rate and result["processes"] == 1 and result["concurrency_total"] == 8
        assert result["ops"] > 0 and result["error_count"] == 0


@pytest.mark.skipif(shutil.which("etcd") is None or importlib.util.find_spec("etcd3aio") is None,
                    reason="etcd or etcd3aio is not installed (CI machines have neither)")
def test_sweep_of_an_etcd_cluster_it_starts(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = bench("sweep", "--target", "etcd", "--rates", "40", "--duration", "0.5", "--warmup", "0.2",
                   "--concurrency", "8", "--no-progress", "--output-dir", str(out))
    assert result.returncode == 0, result
    assert "etcd: " in result.stdout
    check_sweep(out, "etcd", [40])


def test_an_attached_tls_cluster_s_files_are_checked_once_for_all_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files are checked before the first run and the same TlsFiles goes to every run (each
    run's clients would otherwise read and check them again)."""
    import bench.compare
    import bench.sweep
    from bench.cli import _build_parser
    from kvdb.net import certs
    from kvdb.net.tls_options import tls_from_args

    certs.create_ca(tmp_path)
    pair = certs.create_client(tmp_path, "bench", "readwrite")
    checked: list[object] = []
    given: list[object] = []

    def check(args: object) -> object:
        checked.append(tls_from_args(args))
        return checked[-1]

    def run(config: Any) -> dict[str, Any]:
        given.append(config.tls)
        return fake_result("kvdb", config.rate, 1.0, 1, 2)

    monkeypatch.setattr(bench.compare, "tls_from_args", check)
    monkeypatch.setattr(bench.sweep, "run_bench", run)
    args = _build_parser().parse_args([
        "sweep", "--target", "kvdb", "--pd", "127.0.0.1:1", "--rates", "40,80,160", "--no-progress",
        "--output-dir", str(tmp_path / "out"), "--ca", str(tmp_path / certs.CA_CERT),
        "--cert", str(pair.cert), "--key", str(pair.key)])
    assert bench.sweep.run_sweep(args) == 0
    assert len(checked) == 1 and checked[0] is not None and given == [checked[0]] * 3
