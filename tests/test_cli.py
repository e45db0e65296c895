"""The ``kvdb`` command line as installed: version, help, and clear errors for what is not there."""

from __future__ import annotations

import subprocess
import sys

from kvdb import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvdb", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kvdb {__version__}"


def test_help_lists_planned_commands() -> None:
    result = run()
    assert result.returncode == 0 and "playground" in result.stdout


def test_unknown_and_planned_commands_fail_with_one_line() -> None:
    for command in ("nonsense", "playground"):
        result = run(command)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and command in result.stderr
