"""``kvdb playground``: a whole local cluster (PD members and stores) in one foreground command.

Every member and store is a real ``kvdb pd`` / ``kvdb store`` process, so what a user tries here
behaves as in production: kill one with ``kill -9`` and the others keep serving. The playground
only starts them, decides when the cluster really serves, and stops them all together.

Children run in their own session so that Ctrl-C reaches only the playground, which then stops
them in order (the stores, then the PD members; SIGTERM, wait) instead of racing their own
shutdowns. They also get SIGTERM from the kernel if the playground itself dies
(``PR_SET_PDEATHSIG``), so a killed playground does not leave processes holding the ports and
RocksDB locks that the next start needs.

A child that exits on its own is a failure the user must see: the playground reports it with
its exit status (a crashed background task has its own, see ``kvdb.server.supervisor``) and
stops everything (exit 1). A child killed with SIGKILL after the cluster is ready is taken as
deliberate (the quick-start tour does it to show failover): it is reported and the rest keeps
running until the playground is stopped; starting again brings it back.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc

from kvdb.labels import check_name, format_labels
from kvdb.net import certs, grpc_factory
from kvdb.net.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsFiles
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc, metapb_pb2
from kvdb.pdclient.client import PdClient, PdError
from kvdb.server.supervisor import CRASH_EXIT_STATUS

T = TypeVar("T")

DEFAULT_DATA_DIR = Path("kvdb-playground")
DEFAULT_BASE_PORT = 2379
DEFAULT_PD = 3
DEFAULT_STORES = 3
DEFAULT_READY_TIMEOUT = 120.0
"""Seconds the cluster may take to serve: generous, a cold start imports grpc in six processes."""
STOP_TIMEOUT = 20.0
"""Seconds a child may take to shut down after SIGTERM before it is killed."""
POLL_INTERVAL = 0.1
PROBE_TIMEOUT = 2.0
"""Seconds one readiness probe may wait for PD or a store (the overall deadline is separate)."""
PROBE_KEY = b"\x00"
"""The smallest non-empty key, so it is in the first range (an empty key is invalid)."""
CERTS_DIR = "certs"
CLIENT_NAME = "root"
"""The client certificate the playground makes (role admin) and prints the exports of."""
LAYOUT_FILE = "playground.json"
METRICS_FILE = "run/metrics.json"
"""Process label -> its /metrics URL, for this run (the ports are picked afresh at every start)."""
LOCK_FILE = "playground.lock"
PR_SET_PDEATHSIG = 1


class PlaygroundError(Exception):
    """The playground cannot start as asked; ``status`` is the exit status (2: bad arguments)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Exit(Exception):
    """Ends the foreground run: 0 when asked to stop, 1 when a child failed or the cluster never served."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Layout:
    """Which processes and ports a data dir's cluster has: PD members take the first ``pd`` ports
    from ``base_port``, stores the next ``stores`` (store ids 1..N). Saved in the data dir, because
    PD members know each other by address for good: a restart must reuse the same ports."""

    pd: int = DEFAULT_PD
    stores: int = DEFAULT_STORES
    base_port: int = DEFAULT_BASE_PORT
    labels: dict[str, list[str]] = field(default_factory=dict)
    """Label key -> values dealt to the stores round robin (``--labels zone=a,b,c``)."""
    tls: bool = False
    """Mutual TLS with the certificates in ``DATA_DIR/certs`` (``--tls``)."""

    def pd_address(self, member_id: int) -> str:
        return f"127.0.0.1:{self.base_port + member_id - 1}"

    def store_address(self, store_id: int) -> str:
        return f"127.0.0.1:{self.base_port + self.pd + store_id - 1}"

    def store_labels(self, store_id: int) -> dict[str, str]:
        """Store ``store_id``'s labels: for each key, the values in turn (store 1 the first)."""
        return {key: values[(store_id - 1) % len(values)] for key, values in self.labels.items()}

    @property
    def pd_endpoints(self) -> str:
        return ",".join(self.pd_address(i) for i in range(1, self.pd + 1))

    def validate(self) -> None:
        if self.pd < 1 or self.pd % 2 == 0:
            raise PlaygroundError(f"--pd must be an odd number of PD members (1, 3, 5...), got {self.pd}")
        if self.stores < 1:
            raise PlaygroundError(f"--stores must be at least 1, got {self.stores}")
        last = self.base_port + self.pd + self.stores - 1
        if self.base_port < 1 or last > 65535:
            n = self.pd + self.stores
            raise PlaygroundError(f"--base-port {self.base_port} leaves no room for {n} ports")


def parse_label_choices(specs: list[str]) -> dict[str, list[str]]:
    """``["zone=a,b,c", "rack=r1,r2"]`` -> {"zone": ["a", "b", "c"], "rack": ["r1", "r2"]}."""
    choices: dict[str, list[str]] = {}
    for spec in filter(None, (s.strip() for s in specs)):
        key, sep, values = spec.partition("=")
        names = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not names or "=" in values:
            raise PlaygroundError(f"--labels: '{spec}' is not KEY=VALUE,VALUE,... (one key per --labels, "
                                  "e.g. --labels zone=a,b,c)")
        try:
            key = check_name(key.strip(), "key", "--labels")
            if key in choices:
                raise ValueError(f"--labels: label '{key}' is given twice")
            choices[key] = [check_name(v, "value", "--labels") for v in names]
        except ValueError as exc:
            raise PlaygroundError(str(exc)) from None
    return choices


def resolve_layout(data_dir: Path, pd: int | None, stores: int | None, base_port: int | None,
                   labels: list[str] | None = None, tls: bool | None = None) -> Layout:
    """The layout to run: the saved one with any flags applied, or the defaults for a new data dir.

    The PD count and base port cannot change once PD members exist (they know each other's
    addresses); the store count can, and a bigger one adds stores. Labels can change too (each
    store registers its labels anew when it starts); ``--labels ''`` drops them. TLS stays as it
    was unless ``--tls`` / ``--no-tls`` say otherwise (the clients' exports still work after a
    plain restart).
    """
    choices = None if labels is None else parse_label_choices(labels)
    saved_path = data_dir / LAYOUT_FILE
    if saved_path.exists():
        try:
            saved = Layout(**json.loads(saved_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise PlaygroundError(f"{saved_path} is damaged ({exc}); use another --data-dir") from None
        for flag, value, was in (("--pd", pd, saved.pd), ("--base-port", base_port, saved.base_port)):
            if value is not None and value != was:
                raise PlaygroundError(f"{data_dir} was created with {flag} {was}; "
                                      "use that or another --data-dir")
        layout = Layout(saved.pd, saved.stores if stores is None else stores, saved.base_port,
                        saved.labels if choices is None else choices, saved.tls if tls is None else tls)
    else:
        layout = Layout(DEFAULT_PD if pd is None else pd, DEFAULT_STORES if stores is None else stores,
                        DEFAULT_BASE_PORT if base_port is None else base_port, choices or {}, bool(tls))
    layout.validate()
    return layout


@dataclass
class Child:
    """One ``kvdb pd`` or ``kvdb store`` process and its files in the data dir."""

    label: str
    cmd: list[str]
    log_path: Path
    ready_path: Path
    pid_path: Path
    metrics_url: str
    proc: subprocess.Popen | None = None
    reported: bool = False

    def describe(self) -> str:
        pid = self.proc.pid if self.proc else "?"
        return f"{self.label} (pid {pid}, log {self.log_path})"


@dataclass(frozen=True)
class PlaygroundTls:
    """The files of a ``--tls`` playground: every node presents ``node``, the playground's own
    probes and the user's commands present ``client`` (``root``, role admin)."""

    node: TlsFiles
    client: TlsFiles

    def node_flags(self) -> list[str]:
        return ["--ca", str(self.node.ca), "--cert", str(self.node.cert), "--key", str(self.node.key)]

    def exports(self) -> list[str]:
        return [f"export {name}={path}" for name, path in
                ((ENV_CA, self.client.ca), (ENV_CERT, self.client.cert), (ENV_KEY, self.client.key))]


def ensure_certs(data_dir: Path) -> PlaygroundTls:
    """``DATA_DIR/certs``: a CA, a node certificate for 127.0.0.1 and localhost, a client ``root``
    with role admin; what is already there is kept (a restart reuses the files, the running
    cluster's data does not depend on them)."""
    d = data_dir.resolve() / CERTS_DIR
    client = certs.client_files(d, CLIENT_NAME)
    try:
        if not (d / certs.CA_CERT).exists():
            certs.create_ca(d)
        if not (d / certs.NODE_CERT).exists():
            certs.create_node(d, ["127.0.0.1", "localhost"])
        if not client.cert.exists():
            certs.create_client(d, CLIENT_NAME, "admin")
        tls = PlaygroundTls(TlsFiles(d / certs.CA_CERT, d / certs.NODE_CERT, d / certs.NODE_KEY),
                            TlsFiles(d / certs.CA_CERT, client.cert, client.key))
        tls.node.check()
        tls.client.check()
    except ValueError as exc:
        raise PlaygroundError(f"{d}: {exc} (remove {d} to make new certificates)") from None
    return tls


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the playground dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Playground:
    """The children of one data dir; ``run`` is the whole foreground life of the playground."""

    def __init__(self, data_dir: Path, layout: Layout, ready_timeout: float = DEFAULT_READY_TIMEOUT,
                 tls: PlaygroundTls | None = None) -> None:
        self.data_dir = data_dir
        self.layout = layout
        self.tls = tls
        self.ready_timeout = ready_timeout
        self.ready = False
        logs, run = data_dir / "logs", data_dir / "run"
        python = [sys.executable, "-m", "kvdb"]
        tls_flags = tls.node_flags() if tls else []
        self.children: list[Child] = []
        metrics = iter(free_ports(layout.pd + layout.stores))
        for i in range(1, layout.pd + 1):
            members = ",".join(f"{m}={layout.pd_address(m)}" for m in range(1, layout.pd + 1))
            metrics_at = f"127.0.0.1:{next(metrics)}"
            cmd = [*python, "pd", "--member-id", str(i), "--listen", layout.pd_address(i),
                   "--data-dir", str(data_dir / f"pd{i}"), "--initial-members", members,
                   "--ready-file", str(run / f"pd{i}.ready"), "--metrics-listen", metrics_at, *tls_flags]
            self.children.append(Child(f"PD member {i}", cmd, logs / f"pd{i}.log",
                                       run / f"pd{i}.ready", run / f"pd{i}.pid", f"http://{metrics_at}/metrics"))
        for i in range(1, layout.stores + 1):
            metrics_at = f"127.0.0.1:{next(metrics)}"
            cmd = [*python, "store", "--store-id", str(i), "--listen", layout.store_address(i),
                   "--data-dir", str(data_dir / f"store{i}"), "--pd", layout.pd_endpoints,
                   "--ready-file", str(run / f"store{i}.ready"), "--metrics-listen", metrics_at, *tls_flags]
            if layout.labels:
                cmd += ["--labels", format_labels(layout.store_labels(i))]
            self.children.append(Child(f"store {i}", cmd, logs / f"store{i}.log",
                                       run / f"store{i}.ready", run / f"store{i}.pid",
                                       f"http://{metrics_at}/metrics"))

    def say(self, line: str) -> None:
        print(f"kvdb playground: {line}", file=sys.stderr, flush=True)

    def run(self) -> int:
        """Start, announce readiness, serve until SIGINT/SIGTERM or a child's failure; the exit status."""
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True)
        pd, stores = self.layout.pd, self.layout.stores
        self.say(f"starting {pd} PD member{'s' * (pd > 1)} and {stores} store{'s' * (stores > 1)} in "
                 f"{self.data_dir} (logs: {self.data_dir / 'logs'}/*.log)")
        try:
            return asyncio.run(self._run())
        finally:
            self._stop_children()

    async def _run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            self._launch()
            await self._watch(self._until_ready(), stop)
            self.ready = True
            if self.layout.labels:
                labels = (f"store {i} {format_labels(self.layout.store_labels(i))}"
                          for i in range(1, self.layout.stores + 1))
                self.say(f"store labels: {', '.join(labels)}")
            self.say(f"metrics (also in {self.data_dir / METRICS_FILE}): "
                     + ", ".join(f"{c.label} {c.metrics_url}" for c in self.children))
            if self.tls:
                self.say(f"mutual TLS on, certificates in {self.tls.node.ca.parent}; connect with the "
                         "exports after the ready line")
            # One write: a reader of the ready line finds the exports with it.
            exports = self.tls.exports() if self.tls else []
            print("\n".join([f"kvdb playground ready: pd={self.layout.pd_endpoints}", *exports]), flush=True)
            await self._watch(stop.wait(), stop)
        except _Exit as exc:
            self.say(exc.message)
            return exc.status
        return 0

    def _launch(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        preexec = _die_with_parent if sys.platform == "linux" else None
        for child in self.children:
            child.ready_path.unlink(missing_ok=True)
            with child.log_path.open("ab") as log:
                log.write(f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(child.cmd)}\n".encode())
                log.flush()
                child.proc = subprocess.Popen(child.cmd, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                              preexec_fn=preexec)
            child.pid_path.write_text(f"{child.proc.pid}\n")
        urls = {child.label: child.metrics_url for child in self.children}
        (self.data_dir / METRICS_FILE).write_text(json.dumps(urls, indent=1) + "\n")

    async def _watch(self, work: Awaitable[T], stop: asyncio.Event) -> T:
        """Runs ``work`` while checking, every poll, for a stop request and for children that died."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=POLL_INTERVAL)
                if stop.is_set():
                    raise _Exit(0, "stopping")
                self._check_children()
                if done:
                    return task.result()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _check_children(self) -> None:
        for child in self.children:
            status = child.proc.poll() if child.proc else None
            if status is None or child.reported:
                continue
            child.reported = True
            if status == -signal.SIGKILL and self.ready:
                self.say(f"{child.describe()} was killed with SIGKILL; the others keep serving "
                         "(restart the playground to bring it back)")
                continue
            raise _Exit(1, f"{child.describe()} {_how_it_ended(status)}; stopping everything")

    async def _until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        want_voters = min(3, self.layout.stores)
        client_tls = self.tls.client if self.tls else None
        pd = PdClient(self.layout.pd_endpoints, timeout=PROBE_TIMEOUT, tls=client_tls)
        try:
            while not (all(c.ready_path.exists() for c in self.children)
                       and await _serves(pd, want_voters, client_tls)):
                if time.monotonic() >= deadline:
                    raise _Exit(1, f"the cluster did not serve within {self.ready_timeout:g}s "
                                   f"(logs: {self.data_dir / 'logs'}); stopping everything")
                await asyncio.sleep(POLL_INTERVAL)
        finally:
            await pd.close()

    def _stop_children(self) -> None:
        """Stores first, then the PD members: a store's shutdown closes its PD client and streams, and
        with PD already gone those would wait out PD timeouts (issue 14 saw Ctrl-C take ~20 s)."""
        pd_members, stores = self.children[:self.layout.pd], self.children[self.layout.pd:]
        self._stop_group(stores)
        self._stop_group(pd_members)
        for child in self.children:
            child.pid_path.unlink(missing_ok=True)
            child.ready_path.unlink(missing_ok=True)
        (self.data_dir / METRICS_FILE).unlink(missing_ok=True)

    def _stop_group(self, children: list[Child]) -> None:
        """SIGTERM to every running child of ``children``, then wait; SIGKILL after STOP_TIMEOUT."""
        running = [c for c in children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in running:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.describe()} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
                child.proc.kill()
                child.proc.wait()


FREE_PORT_FLOOR = 10000
"""The lowest port ``free_ports`` hands out (below it live well-known services)."""

_next_free_port: int | None = None
"""Where ``free_ports`` looks next in this process: it walks its range instead of asking the
kernel again, so one process never hands out a port twice."""


def free_ports(n: int, host: str = "127.0.0.1", consecutive: bool = False) -> list[int]:
    """``n`` distinct ports of loopback ``host`` free right now, for children to listen on later;
    ``consecutive``: P..P+n-1 (a playground takes its ports from a base port).

    They come from below the kernel's ephemeral range, never from it: a port the kernel picked
    for ``bind(port 0)`` and then got back can be handed straight to an outgoing connection
    (from any process) before the child binds it, and the child then fails to start. Each is
    checked by binding it (all at once, released before returning). The walk starts at a
    pid-derived place, so concurrent test runs on one machine rarely look at the same ports.
    The test harness and the benchmarks use it too."""
    global _next_free_port
    low, high = FREE_PORT_FLOOR, _ephemeral_low()
    span = high - low
    if span < n:
        raise OSError(f"the ephemeral port range starts at {high}: no room below it for {n} ports")
    if _next_free_port is None:
        _next_free_port = low + (os.getpid() * 7919) % span
    chosen: list[socket.socket] = []
    try:
        for _ in range(span):
            if len(chosen) == n:
                break
            port, _next_free_port = _next_free_port, low + (_next_free_port + 1 - low) % span
            if consecutive and chosen and port != chosen[-1].getsockname()[1] + 1:
                _release(chosen)  # the walk wrapped around: start the run afresh
            sock = socket.socket()
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                if consecutive:
                    _release(chosen)
                continue
            chosen.append(sock)
        if len(chosen) < n:
            raise OSError(f"no {n} free ports on {host} between {low} and {high}")
        return [sock.getsockname()[1] for sock in chosen]
    finally:
        _release(chosen)


def _release(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
    sockets.clear()


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux's default if unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _how_it_ended(status: int) -> str:
    """A child's exit status in words; a crashed background task points at the traceback."""
    if status < 0:
        return f"was killed by signal {-status}"
    if status == CRASH_EXIT_STATUS:
        return f"crashed (exit status {status}: a background task failed, the traceback is in its log)"
    return f"exited with status {status}"


async def _serves(pd: PdClient, want_voters: int, tls: TlsFiles | None) -> bool:
    """Whether PD answers, the first range has ``want_voters`` voters and a leader, and that leader
    answers a read. The last step matters after a restart: PD remembers the leader of the previous
    run, which is not serving yet."""
    try:
        if not pd.leader_address:
            await pd.connect()
        ranges = await pd.scan_ranges(b"", b"", 1)
        if not ranges or not ranges[0].leader.id:
            return False
        info = ranges[0]
        voters = [p for p in info.descriptor.peers if p.role == metapb_pb2.VOTER]
        store = await pd.get_store(info.leader.store_id) if len(voters) >= want_voters else None
    except PdError:
        return False
    if store is None:
        return False
    context = kvrpc_pb2.Context(cluster_id=pd.cluster_id, range_id=info.descriptor.id,
                                epoch=info.descriptor.epoch)
    async with grpc_factory.channel(store.address, tls) as channel:
        try:
            response = await kvrpc_pb2_grpc.KvStub(channel).RawGet(
                kvrpc_pb2.RawGetRequest(context=context, key=PROBE_KEY), timeout=PROBE_TIMEOUT)
        except grpc.aio.AioRpcError:
            return False
    return not response.HasField("error")


def run_playground(data_dir: Path, pd: int | None, stores: int | None, base_port: int | None,
                   ready_timeout: float = DEFAULT_READY_TIMEOUT, labels: list[str] | None = None,
                   tls: bool | None = None) -> int:
    """The ``kvdb playground`` command: one playground per data dir at a time (a lock file says so)."""
    try:
        if pd is not None:
            Layout(pd=pd).validate()  # before anything is created for a count that cannot work
        if labels is not None:
            parse_label_choices(labels)  # likewise for a typo
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = (data_dir / LOCK_FILE).open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PlaygroundError(f"another playground is running on {data_dir}") from None
        layout = resolve_layout(data_dir, pd, stores, base_port, labels, tls)
        files = ensure_certs(data_dir) if layout.tls else None
    except (PlaygroundError, OSError) as exc:
        print(f"kvdb playground: {exc}", file=sys.stderr)
        return exc.status if isinstance(exc, PlaygroundError) else 1
    with lock:
        (data_dir / LAYOUT_FILE).write_text(json.dumps(asdict(layout)) + "\n")
        return Playground(data_dir, layout, ready_timeout=ready_timeout, tls=files).run()
