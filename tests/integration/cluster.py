"""Real store processes on loopback for integration tests: start, kill -9, restart, stop.

Each store is ``sys.executable -m kvdb store`` with its own data dir and log file under the
test's tmp dir, so a crash is a real crash (RocksDB reopens what was fsynced, nothing more) and
a failing test can show what every store logged (``log_tails``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

START_TIMEOUT = 30.0
"""Seconds a store may take to serve; generous because the machine is shared."""

LOG_TAIL_LINES = 40


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns something truthy; that value, or AssertionError naming ``what``.

    The only way tests wait: a condition with a deadline, never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (held together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class StoreProcess:
    store_id: int
    port: int
    data_dir: Path
    log_path: Path
    ready_file: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    """Stores of one cluster; the first ``len(store_ids)`` are the static founders of range 1."""

    root: Path
    tick_interval: float = 0.02
    max_clock_drift: float = 0.05
    extra_args: list[str] = field(default_factory=list)
    cluster_id: int = 1
    stores: dict[int, StoreProcess] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, n: int = 3, **kwargs: object) -> Cluster:
        """A cluster of ``n`` static stores (ids 1..n), not started yet."""
        cluster = cls(root, **kwargs)
        ports = free_ports(n)
        static = ",".join(f"{sid}=127.0.0.1:{port}" for sid, port in zip(range(1, n + 1), ports, strict=True))
        for sid, port in zip(range(1, n + 1), ports, strict=True):
            cluster.add_store(sid, port, ["--static-cluster", static])
        return cluster

    def add_store(self, store_id: int, port: int, args: list[str]) -> StoreProcess:
        d = self.root / f"store{store_id}"
        d.mkdir(parents=True, exist_ok=True)
        sp = StoreProcess(store_id, port, d / "data", d / "store.log", d / "ready", args)
        self.stores[store_id] = sp
        return sp

    def start(self, *store_ids: int) -> None:
        """Launch the stores (all when none are named) and wait until each serves."""
        ids = store_ids or tuple(self.stores)
        for sid in ids:
            self._launch(self.stores[sid])
        for sid in ids:
            self._wait_ready(self.stores[sid])

    def _launch(self, sp: StoreProcess) -> None:
        assert not sp.running, f"store {sp.store_id} is already running"
        sp.ready_file.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "kvdb", "store",
            "--store-id", str(sp.store_id),
            "--listen", sp.address,
            "--data-dir", str(sp.data_dir),
            "--cluster-id", str(self.cluster_id),
            "--ready-file", str(sp.ready_file),
            "--test-failpoints",
            "--tick-interval", str(self.tick_interval),
            "--max-clock-drift", str(self.max_clock_drift),
            *sp.args,
            *self.extra_args,
        ]
        sp.starts += 1
        with sp.log_path.open("ab") as log:
            log.write(f"===== start #{sp.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            sp.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env)

    def _wait_ready(self, sp: StoreProcess) -> None:
        def ready() -> bool:
            if not sp.running:
                raise AssertionError(f"store {sp.store_id} exited with {sp.proc.returncode} while starting:\n"
                                     f"{self.log_tail(sp.store_id)}")
            return sp.ready_file.exists()

        wait_for(ready, START_TIMEOUT, f"store {sp.store_id} to serve", interval=0.05)
        assert int(sp.ready_file.read_text()) == sp.port

    def kill(self, store_id: int) -> None:
        """kill -9: no shutdown path runs, only what was fsynced survives."""
        sp = self.stores[store_id]
        assert sp.running, f"store {store_id} is not running"
        sp.proc.send_signal(signal.SIGKILL)
        sp.proc.wait(timeout=10)

    def stop(self, store_id: int) -> int:
        """SIGTERM, the orderly shutdown; returns the exit status."""
        sp = self.stores[store_id]
        sp.proc.send_signal(signal.SIGTERM)
        return sp.proc.wait(timeout=15)

    def restart(self, store_id: int) -> None:
        self.start(store_id)

    def address(self, store_id: int) -> str:
        return self.stores[store_id].address

    def running_ids(self) -> list[int]:
        return [sid for sid, sp in self.stores.items() if sp.running]

    def assert_all_running(self) -> None:
        dead = {sid: sp.proc.returncode for sid, sp in self.stores.items() if sp.proc and not sp.running}
        assert not dead, f"stores died (id: exit status): {dead}"

    def log_tail(self, store_id: int, lines: int = LOG_TAIL_LINES) -> str:
        path = self.stores[store_id].log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_tails(self) -> str:
        return "\n".join(f"----- store {sid} ({sp.log_path})\n{self.log_tail(sid)}"
                         for sid, sp in self.stores.items())

    def shutdown(self) -> None:
        """Kill whatever still runs; tests end with kill -9 because nothing is kept."""
        for sp in self.stores.values():
            if sp.running:
                sp.proc.send_signal(signal.SIGKILL)
        for sp in self.stores.values():
            if sp.proc is not None:
                sp.proc.wait(timeout=10)
