"""``kvdb pd`` refuses a configuration it cannot run safely, before it touches the disk.

An even member count is the case that matters most: 2 of 4 members could not outvote a
partitioned pair, so the group would stall where 3 members would not. Each refusal must be a
one-line error with exit status 2 (bad usage), the convention the store command follows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

M1, M2, M3, M4 = (f"{i}=127.0.0.1:{20000 + i}" for i in range(1, 5))

BAD_FLAGS = {
    "two members": (["--initial-members", f"{M1},{M2}"], "odd number of members, got 2"),
    "four members": (["--initial-members", f"{M1},{M2},{M3},{M4}"], "odd number of members, got 4"),
    "member not listed": (["--member-id", "4", "--initial-members", f"{M1},{M2},{M3}"],
                          "member 4 is not among the initial members"),
    "member twice": (["--initial-members", f"{M1},1=127.0.0.1:20009,{M3}"], "appears twice"),
    "no port": (["--initial-members", "1=127.0.0.1"], "want ID=HOST:PORT"),
    "no members": (["--initial-members", ""], "names no"),
    "unsafe tick": (["--initial-members", M1, "--tick-interval", "0.001"], "election timeout"),
    "never up": (["--initial-members", M1, "--store-disconnect-ms", "0"], "disconnect time must be positive"),
    "no replicas": (["--initial-members", M1, "--replica-count", "0"], "replica count must be at least 1"),
    "negative replicas": (["--initial-members", M1, "--replica-count", "-1"], "cannot be negative"),
    "negative down time": (["--initial-members", M1, "--store-down-ms", "-5"], "cannot be negative"),
    # With the default disconnect time (5 s) a store would stay UP until then: 3 s would not apply.
    "down before disconnected": (["--initial-members", M1, "--store-down-ms", "3000"],
                                 "must not exceed the store down time"),
}


@pytest.mark.parametrize("name", list(BAD_FLAGS))
def test_pd_refuses_bad_flags_with_one_line(tmp_path: Path, name: str) -> None:
    args, message = BAD_FLAGS[name]
    data_dir = tmp_path / "data"
    base = ["--member-id", "1", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)]
    # argparse keeps the last --member-id, so a case may override the default one.
    result = subprocess.run([sys.executable, "-m", "kvdb", "pd", *base, *args],
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("kvdb pd: ") and message in lines[0], result.stderr
    assert not data_dir.exists(), "a refused member must not create its data dir"


def test_pd_without_initial_members_or_join_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kvdb", "pd", "--member-id", "1", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "give either --initial-members (a new PD) or --join" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
