"""The failover rounds of bench/failover.py against an etcd cluster started by scripts/etcd-cluster.

Each round kills -9 etcd's leader (the member whose Status says it leads) and restarts it after the
delay with the very command line it ran with (read from /proc before the kill), its log appended
and its pid file rewritten; being this process's child, it is stopped here before the cluster is.
Writes and reads go through the same driver ``kvdb bench`` uses for etcd, whose client round-robins
over the members, so a dead member costs what it costs etcd's own clients. etcd has no TSO: the
rounds have no TSO gap.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.failover import VALUE, FailoverError, Load, Ops, Round, Victim, run_rounds

STATUS_TIMEOUT = 2.0
"""Seconds a member may take to answer Status (a dead one does not answer)."""
GONE_TIMEOUT = 10.0
"""Seconds a killed member may take to disappear (its parent, init, reaps it)."""
VICTIM = "etcd-leader"


@asynccontextmanager
async def etcd_ops(endpoints: str) -> AsyncIterator[Ops]:
    from bench.etcd_driver import EtcdDriver

    driver = await EtcdDriver.open(endpoints)
    try:
        yield Ops(lambda k: driver.put(k, VALUE), driver.get, None)
    finally:
        await driver.close()


class EtcdMembers:
    """The members of the cluster in ``cluster_dir`` (member i at the i-th of ``endpoints``)."""

    def __init__(self, cluster_dir: Path, endpoints: str) -> None:
        self.cluster_dir = cluster_dir
        self.endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
        self.restarted: list[subprocess.Popen[bytes]] = []

    def pid_file(self, member: int) -> Path:
        return self.cluster_dir / "run" / f"etcd{member}.pid"

    async def leader(self) -> int:
        """The member (1-based) that says it is the leader."""
        from etcd3aio import Etcd3Client

        for member, endpoint in enumerate(self.endpoints, start=1):
            client = Etcd3Client([endpoint])
            try:
                await client.connect()
                status = await client.maintenance.status(timeout=STATUS_TIMEOUT, max_attempts=1)
            except Exception:  # a member still coming back: ask the next one
                continue
            finally:
                await client.close()
            if status.leader and status.leader == status.header.member_id:
                return member
        raise FailoverError("no etcd member says it is the leader")

    async def victim(self) -> Victim:
        member = await self.leader()
        pid = int(self.pid_file(member).read_text())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        return Victim(f"etcd member {member} (pid {pid})", lambda: self._kill(pid),
                      lambda: self._restart(member, cmd))

    @staticmethod
    def _kill(pid: int) -> None:
        """kill -9, then wait until the process is gone (its ports free for the restart)."""
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + GONE_TIMEOUT
        while _alive(pid):
            if time.monotonic() >= deadline:
                raise FailoverError(f"etcd pid {pid} still runs {GONE_TIMEOUT:g}s after kill -9")
            time.sleep(0.01)

    def _restart(self, member: int, cmd: list[bytes]) -> None:
        log = self.cluster_dir / "logs" / f"etcd{member}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.restarted.append(proc)
        self.pid_file(member).write_text(f"{proc.pid}\n")

    def stop_restarted(self, timeout: float) -> None:
        """Stops the members restarted here (SIGTERM, SIGKILL after ``timeout``) and reaps them: they
        are this process's children, and ``scripts/etcd-cluster stop`` would wait out its timeout on
        an exited child nobody reaped."""
        for proc in self.restarted:
            proc.terminate()
        for proc in self.restarted:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.restarted.clear()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def etcd_failover(members: EtcdMembers, rounds: int, restart_after: float, settle: float, concurrency: int,
                  name: str = "") -> list[Round]:
    """The rounds against the running cluster of ``members``; the members restarted are left running
    (:meth:`EtcdMembers.stop_restarted` stops them)."""
    load = Load(lambda: etcd_ops(",".join(members.endpoints)), concurrency)
    return asyncio.run(run_rounds(load, members.victim, VICTIM, rounds, restart_after, settle, name))
