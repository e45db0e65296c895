"""A node process serves with its interpreter tuned (``kvdb.server.raft_host.tune_interpreter``).

Run in a child process: the settings are process-wide and would leak into the test run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from kvdb.server.raft_host import GC_YOUNG_THRESHOLD, SWITCH_INTERVAL_S
from tests.integration.cluster import wait_for

CHILD = """
import asyncio, gc, sys
from pathlib import Path
from kvdb.server.raft_host import serve_until_signalled

class Idle:
    port = 1
    async def start(self): pass
    async def stop(self):
        print(gc.get_threshold()[0], gc.get_freeze_count(), sys.getswitchinterval(), flush=True)

asyncio.run(serve_until_signalled(Idle(), Path(sys.argv[1])))
"""


def test_a_served_process_runs_with_its_collector_and_switch_interval_tuned(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ready)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        wait_for(lambda: ready.exists() or child.poll() is not None, 30, "the child to be ready")
        assert child.poll() is None, "the child exited before it was ready"
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    threshold, frozen, switch = out.split()
    assert int(threshold) == GC_YOUNG_THRESHOLD
    assert int(frozen) > 0  # start-up's objects are out of the collector's way
    assert float(switch) == SWITCH_INTERVAL_S
