"""Real store and PD processes on loopback for integration tests: start, kill -9, restart, stop.

Each store is ``sys.executable -m kvdb store`` (each PD member ``... kvdb pd``) with its own data
dir and log file under the test's tmp dir, so a crash is a real crash (RocksDB reopens what was
fsynced, nothing more) and a failing test can show what every process logged (``log_tails``).

A cluster is either static (stores only, range 1 founded on every store) or PD-driven
(``create_with_pd``): stores join through the PD members and PD grows the first range. With
``tls=True`` every process runs with mutual TLS (certificates in ``root/certs``) and clients get
their files from ``client_tls``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kvdb.net import certs
from kvdb.net.tls import TlsFiles
from kvdb.playground import free_ports  # tests import it from here too

T = TypeVar("T")

START_TIMEOUT = 30.0
"""Seconds a store may take to serve; generous because the machine is shared."""

LOG_TAIL_LINES = 40
TEST_WAL_RECYCLE_SIZE = "1MiB"
"""The smallest pooled WAL file: filled in ~0.02 s at every start instead of ~0.16 s for the
default 32 MiB, and reused every few thousand writes, so the tests switch WAL files often."""


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


def make_node_tls(certs_dir: Path) -> TlsFiles:
    """A new CA in ``certs_dir`` and the node certificate every process of a test cluster presents."""
    certs.create_ca(certs_dir)
    node = certs.create_node(certs_dir, ["127.0.0.1", "localhost"])
    return TlsFiles(certs_dir / certs.CA_CERT, node.cert, node.key)


@dataclass
class ServerProcess:
    """One server process (a store or a PD member) with its own data dir, log and ready file."""

    label: str
    port: int
    data_dir: Path
    log_path: Path
    ready_file: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    starts: int = 0
    host: str = "127.0.0.1"
    """A loopback address of its own (127.0.0.X) stands for a host of its own."""
    any_port: bool = False
    """Listen on port 0 (the OS picks one at every start); ``port`` is then the last bound one."""
    tls: TlsFiles | None = None
    """Files this process presents instead of the cluster's (a rotated or a foreign certificate)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def listen(self) -> str:
        return f"{self.host}:{0 if self.any_port else self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, cmd: list[str]) -> None:
        assert not self.running, f"{self.label} is already running"
        self.ready_file.unlink(missing_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"{self.label} exited with {self.proc.returncode} while starting:\n"
                                     f"{self.tail()}")
            return self.ready_file.exists()

        wait_for(ready, START_TIMEOUT, f"{self.label} to serve", interval=0.05)
        bound = int(self.ready_file.read_text())
        if self.any_port:
            self.port = bound
        assert bound == self.port

    def kill(self) -> None:
        """kill -9: no shutdown path runs, only what was fsynced survives."""
        assert self.running, f"{self.label} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, the orderly shutdown; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its state and sockets but sends and answers nothing."""
        assert self.running, f"{self.label} is not running"
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class StoreProcess(ServerProcess):
    store_id: int = 0
    """The store's key in ``Cluster.stores``; its real id too unless PD allocates that."""
    pd_allocates_id: bool = False
    """Started without --store-id: PD allocates the id (the store's log and PD know it)."""


@dataclass
class PdProcess(ServerProcess):
    member_id: int = 0


@dataclass
class Cluster:
    """Stores of one cluster, static founders of range 1 or joined through ``pd`` members.

    In a PD cluster ``cluster_id`` is PD's, learned after start (``tests.integration.client.PdHandle``).
    """

    root: Path
    tick_interval: float = 0.02
    max_clock_drift: float = 0.05
    extra_args: list[str] = field(default_factory=list)
    cluster_id: int = 1
    stores: dict[int, StoreProcess] = field(default_factory=dict)
    pd: dict[int, PdProcess] = field(default_factory=dict)
    pd_args: list[str] = field(default_factory=list)
    """Extra ``kvdb pd`` flags of every member (schedule knobs)."""
    node_tls: TlsFiles | None = None
    """What every store and PD member presents (``--ca --cert --key``); None: plaintext."""

    @classmethod
    def create(cls, root: Path, n: int = 3, **kwargs: object) -> Cluster:
        """A cluster of ``n`` static stores (ids 1..n), not started yet."""
        cluster = cls(root, **kwargs)
        ports = free_ports(n)
        static = ",".join(f"{sid}=127.0.0.1:{port}" for sid, port in zip(range(1, n + 1), ports, strict=True))
        for sid, port in zip(range(1, n + 1), ports, strict=True):
            cluster.add_store(sid, port, ["--static-cluster", static])
        return cluster

    @classmethod
    def create_with_pd(cls, root: Path, n_stores: int = 3, n_pd: int = 3, pd_args: list[str] = (),
                       heartbeat_interval: float = 0.2, tls: bool = False, **kwargs: object) -> Cluster:
        """``n_pd`` PD members and ``n_stores`` stores that join through them; nothing started yet.
        ``tls``: a CA and a node certificate for 127.0.0.1 and localhost in ``root/certs``, which
        every member and store presents."""
        cluster = cls(root, pd_args=list(pd_args), **kwargs)
        if tls:
            cluster.node_tls = make_node_tls(root / "certs")
        ports = free_ports(n_pd + n_stores)
        members = ",".join(f"{mid}=127.0.0.1:{port}" for mid, port in enumerate(ports[:n_pd], start=1))
        for mid, port in enumerate(ports[:n_pd], start=1):
            cluster.add_pd_member(mid, port, members)
        for sid, port in enumerate(ports[n_pd:], start=1):
            cluster.add_store(sid, port, cluster.pd_store_args(heartbeat_interval))
        return cluster

    @property
    def certs_dir(self) -> Path:
        assert self.node_tls is not None, "not a TLS cluster (create_with_pd(..., tls=True))"
        return self.node_tls.ca.parent

    def client_tls(self, name: str = "root", role: str = "admin") -> TlsFiles:
        """A client certificate of this cluster's CA called ``name`` with ``role`` (made once)."""
        files = certs.client_files(self.certs_dir, name)
        if not files.cert.exists():
            certs.create_client(self.certs_dir, name, role)
        return TlsFiles(self.node_tls.ca, files.cert, files.key)

    def tls_args(self, process: ServerProcess) -> list[str]:
        """The ``--ca --cert --key`` flags of ``process``: its own files, else the cluster's (none
        without TLS)."""
        tls = process.tls or self.node_tls
        return [] if tls is None else ["--ca", str(tls.ca), "--cert", str(tls.cert), "--key", str(tls.key)]

    def pd_store_args(self, heartbeat_interval: float = 0.2) -> list[str]:
        """The flags that make a store join this cluster's PD."""
        return ["--pd", self.pd_endpoints, "--pd-heartbeat-interval", str(heartbeat_interval)]

    def add_store(self, store_id: int, port: int, args: list[str]) -> StoreProcess:
        d = self.root / f"store{store_id}"
        d.mkdir(parents=True, exist_ok=True)
        sp = StoreProcess(f"store {store_id}", port, d / "data", d / "store.log", d / "ready", args,
                          store_id=store_id)
        self.stores[store_id] = sp
        return sp

    def add_pd_member(self, member_id: int, port: int, initial_members: str = "",
                      join: str = "") -> PdProcess:
        """A founding member (``initial_members``) or one joining a running PD (``join``)."""
        d = self.root / f"pd{member_id}"
        d.mkdir(parents=True, exist_ok=True)
        args = ["--initial-members", initial_members] if initial_members else ["--join", join]
        pp = PdProcess(f"PD member {member_id}", port, d / "data", d / "pd.log", d / "ready", args,
                       member_id=member_id)
        self.pd[member_id] = pp
        return pp

    @property
    def pd_endpoints(self) -> str:
        return ",".join(pp.address for pp in self.pd.values())

    def start_pd(self, *member_ids: int) -> None:
        """Launch the PD members (all when none are named) and wait until each listens."""
        ids = member_ids or tuple(self.pd)
        for mid in ids:
            pp = self.pd[mid]
            pp.launch([
                sys.executable, "-m", "kvdb", "pd",
                "--member-id", str(mid),
                "--listen", pp.listen,
                "--data-dir", str(pp.data_dir),
                "--ready-file", str(pp.ready_file),
                "--tick-interval", str(self.tick_interval),
                "--wal-recycle-size", TEST_WAL_RECYCLE_SIZE,
                *self.tls_args(pp),
                *pp.args,
                *self.pd_args,
            ])
        for mid in ids:
            self.pd[mid].wait_ready()

    def kill_pd(self, member_id: int) -> None:
        self.pd[member_id].kill()

    def stop_pd(self, member_id: int) -> int:
        return self.pd[member_id].stop()

    def pd_member_at(self, address: str) -> int:
        """The member id serving ``address`` (as a PD client names its leader)."""
        return next(mid for mid, pp in self.pd.items() if pp.address == address)

    def start(self, *store_ids: int) -> None:
        """Launch the stores (all when none are named) and wait until each serves."""
        ids = store_ids or tuple(self.stores)
        for sid in ids:
            self._launch(self.stores[sid])
        for sid in ids:
            self.stores[sid].wait_ready()

    def _launch(self, sp: StoreProcess) -> None:
        sp.launch([
            sys.executable, "-m", "kvdb", "store",
            *([] if sp.pd_allocates_id else ["--store-id", str(sp.store_id)]),
            "--listen", sp.listen,
            "--data-dir", str(sp.data_dir),
            "--cluster-id", str(self.cluster_id),
            "--ready-file", str(sp.ready_file),
            "--test-failpoints",
            "--tick-interval", str(self.tick_interval),
            "--max-clock-drift", str(self.max_clock_drift),
            "--wal-recycle-size", TEST_WAL_RECYCLE_SIZE,
            *self.tls_args(sp),
            *sp.args,
            *self.extra_args,
        ])

    def kill(self, store_id: int) -> None:
        """kill -9: no shutdown path runs, only what was fsynced survives."""
        self.stores[store_id].kill()

    def stop(self, store_id: int) -> int:
        return self.stores[store_id].stop()

    def restart(self, store_id: int) -> None:
        self.start(store_id)

    def restart_elsewhere(self, store_id: int) -> None:
        """Restart a stopped store on a fresh port, as a rescheduled server comes back; a PD store
        registers its new address when it joins, and its peers must learn it from PD."""
        self.stores[store_id].port = free_ports(1)[0]
        self.start(store_id)

    def address(self, store_id: int) -> str:
        return self.stores[store_id].address

    def running_ids(self) -> list[int]:
        return [sid for sid, sp in self.stores.items() if sp.running]

    def assert_all_running(self) -> None:
        """No store or PD member died on its own (a test's kill -9 leaves ``running`` False too:
        call this only when every process should be up)."""
        dead = {p.label: p.proc.returncode for p in [*self.pd.values(), *self.stores.values()]
                if p.proc and not p.running}
        assert not dead, f"processes died (exit status): {dead}"

    def log_tail(self, store_id: int, lines: int = LOG_TAIL_LINES) -> str:
        return self.stores[store_id].tail(lines)

    def log_tails(self) -> str:
        return "\n".join(f"----- {p.label} ({p.log_path})\n{p.tail()}"
                         for p in [*self.pd.values(), *self.stores.values()])

    def shutdown(self) -> None:
        """Kill whatever still runs; tests end with kill -9 because nothing is kept."""
        processes = [*self.stores.values(), *self.pd.values()]
        for p in processes:
            if p.running:
                p.proc.send_signal(signal.SIGKILL)
        for p in processes:
            if p.proc is not None:
                p.proc.wait(timeout=10)
