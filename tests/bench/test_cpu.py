"""CPU accounting per process (``bench.cpu``) and what ``kvdb bench profile`` watches with it."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu import CLOCK_TICKS, CpuSampler, Sample, machine_idle, process_cpu, usage_table
from bench.profile import watched_processes
from tests.bench.test_bench_cli import bench
from tests.integration.cluster import wait_for


def _fake_proc(tmp_path: Path, pid: int, comm: str, utime: int, stime: int, ppid: int = 1) -> Path:
    (tmp_path / str(pid)).mkdir(parents=True, exist_ok=True)
    fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 20
    (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")
    return tmp_path


def test_reads_user_and_system_time_whatever_the_command_name_holds(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 42, "a (weird) name", utime=3 * CLOCK_TICKS, stime=CLOCK_TICKS)
    assert process_cpu(42, proc) == (3.0, 1.0)
    assert process_cpu(43, proc) is None  # gone


def test_machine_idle_counts_idle_and_io_wait(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  10 0 10 60 20 0 0 0 0 0\ncpu0 5 0 5 30 10 0 0 0 0 0\n")
    assert machine_idle(tmp_path) == (80, 100)


def test_usage_is_the_rate_over_the_window_and_the_table_divides_it_by_throughput() -> None:
    sampler = CpuSampler(dict)
    sampler.samples = [
        Sample(0.0, {"leader": (0.0, 0.0)}, (0, 0)),
        Sample(1.0, {"leader": (1.0, 0.0), "client": (5.0, 1.0)}, (10, 100)),  # the window's start
        Sample(3.0, {"leader": (2.0, 0.2), "client": (5.5, 1.1)}, (60, 500)),  # and end
        Sample(4.0, {"leader": (9.0, 9.0), "client": (9.0, 9.0)}, (60, 600)),
    ]
    rows, idle, span = sampler.usage(0.5, 3.5)
    assert span == 2.0
    assert {r.label: (round(r.user, 3), round(r.system, 3)) for r in rows} == {
        "leader": (0.5, 0.1), "client": (0.25, 0.05)}
    assert idle == pytest.approx(50 / 400)
    table = usage_table(rows, 1000.0, idle, span)
    assert "leader" in table and "600.0" in table  # 0.6 cores at 1000 ops/s: 600 us per op
    assert "all" in table and "900.0" in table
    with pytest.raises(ValueError):
        sampler.usage(3.5, 3.9)  # one sample: no rate


def test_a_busy_process_shows_its_cores_and_an_idle_one_none() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sampler = CpuSampler(lambda: {"busy": [busy.pid], "idle": [idle.pid]})
        sampler.start()
        start = time.monotonic()
        wait_for(lambda: len(sampler.samples) >= 8, 30, "eight CPU samples")
        sampler.stop()
        rows, _, span = sampler.usage(start, time.monotonic())
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    cores = {r.label: r.cores for r in rows}
    assert span > 1.0
    assert cores["busy"] > 0.3  # a spinning process, even sharing two cores with the test
    assert cores["idle"] < 0.1 < cores["busy"]


def test_profile_watches_the_playgrounds_stores_and_pd_and_its_client_processes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name, pid in (("store1", 101), ("store2", 102), ("pd1", 201)):
        (run / f"{name}.pid").write_text(str(pid))
    (run / "store1.ready").write_text("1")  # not a pid file
    client = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(30,), daemon=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    client.start()
    try:
        watched = watched_processes(run, leader=2, parent=os.getpid())
    finally:
        client.kill()
        other.kill()
        client.join()
        other.wait()
    assert watched["store 1"] == [101] and watched["store 2 (leader)"] == [102]
    assert watched["PD member 1"] == [201]
    assert watched["client"] == [client.pid]  # a child multiprocessing started, not any child


def test_kvdb_bench_profile_reports_the_cpu_of_every_process_per_operation(tmp_path: Path) -> None:
    """The command end to end: its own playground, py-spy on the leader's store, the workload, and
    a CPU table naming every store (the leader marked), every PD member and the client."""
    out = tmp_path / "profile"
    run = bench("profile", "--duration", "3", "--concurrency", "8", "--output-dir", str(out))
    assert run.returncode == 0, run.stderr
    assert (out / "top.txt").exists() and (out / "store.speedscope.json").exists()
    rows = {}
    for line in (out / "cpu.txt").read_text().splitlines()[2:]:
        if line.startswith("machine idle"):
            continue
        *label, cores, user, system, per_op = line.split()
        rows[" ".join(label)] = (float(cores), float(per_op))
    stores = [label for label in rows if label.startswith("store ")]
    assert len(stores) == 3 and sum(label.endswith("(leader)") for label in stores) == 1
    assert {f"PD member {n}" for n in (1, 2, 3)} <= rows.keys()
    assert rows["client"][0] > 0 and all(rows[label][1] > 0 for label in stores)  # they all worked
    assert rows["all"][1] == pytest.approx(sum(per_op for label, (_, per_op) in rows.items()
                                               if label != "all"), abs=0.5)
