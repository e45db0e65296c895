"""A minimal reader/runner for datadriven test files (the format of cockroachdb/datadriven).

A file is a sequence of cases separated by blank lines::

    # comment lines and blank lines between cases are kept verbatim
    command arg key=(1,2)
    ----
    expected output, one or more lines, ending at a blank line or the end of the file

The expected outputs are the specification of the scenario, so they are compared exactly. With
``KVDB_REWRITE=1`` in the environment the outputs are replaced by what the run produced instead
(the file is written back only once every case ran, so an aborted run never half-rewrites it).
Outputs must not contain blank lines: that keeps the format free of datadriven's double-separator
escape, which nobody reads comfortably.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SEPARATOR = "----"


@dataclass
class Case:
    """One command and its expected output. ``line`` is 1-based, for error messages."""

    line: int
    command: str
    expected: str


def rewrite_requested() -> bool:
    """Whether expected outputs should be replaced by actual ones (``KVDB_REWRITE=1``)."""
    return os.environ.get("KVDB_REWRITE", "") not in ("", "0")


def parse(text: str) -> list[str | Case]:
    """Split a file into verbatim chunks (comments, blank lines) and cases, in file order."""
    lines = text.splitlines()
    chunks: list[str | Case] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            chunks.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != SEPARATOR:
            raise ValueError(f"line {i + 1}: expected {SEPARATOR!r} after command {line!r}")
        start = i
        i += 2
        output: list[str] = []
        while i < len(lines) and lines[i].strip():
            output.append(lines[i])
            i += 1
        chunks.append(Case(line=start + 1, command=line, expected="\n".join(output)))
    return chunks


def render(chunks: list[str | Case]) -> str:
    """The inverse of :func:`parse`."""
    out: list[str] = []
    for chunk in chunks:
        if isinstance(chunk, Case):
            out += [chunk.command, SEPARATOR, chunk.expected]
        else:
            out.append(chunk)
    return "\n".join(out) + "\n"


class Script:
    """Runs a datadriven file case by case, so a test can inspect state between cases.

    ``run_to`` lets a test stop before a given command and assert facts in Python; ``finish``
    runs the rest and, in rewrite mode, writes the file back.
    """

    def __init__(self, path: Path, handler: Callable[[str], str]) -> None:
        self.path = path
        self.handler = handler
        self.chunks = parse(path.read_text())
        self.cases = [c for c in self.chunks if isinstance(c, Case)]
        self.next = 0
        self.rewrite = rewrite_requested()

    def step(self) -> Case:
        """Run the next case and check (or record) its output."""
        case = self.cases[self.next]
        self.next += 1
        actual = self.handler(case.command).rstrip("\n")
        if any(not line.strip() for line in actual.splitlines()):
            raise AssertionError(f"{self.path.name}:{case.line}: output of {case.command!r} has a blank line")
        if self.rewrite:
            case.expected = actual
        elif actual != case.expected:
            diff = "\n".join(
                difflib.unified_diff(
                    case.expected.splitlines(),
                    actual.splitlines(),
                    "expected",
                    "actual",
                    lineterm="",
                )
            )
            raise AssertionError(
                f"{self.path.name}:{case.line}: output of {case.command!r} differs "
                f"(KVDB_REWRITE=1 rewrites it; then read it):\n{diff}"
            )
        return case

    def run_to(self, command: str) -> None:
        """Run every case before the next one whose command line starts with ``command``."""
        for i in range(self.next, len(self.cases)):
            if self.cases[i].command.startswith(command):
                while self.next < i:
                    self.step()
                return
        raise AssertionError(f"{self.path.name}: no command {command!r} after case {self.next}")

    def run_through(self, command: str) -> None:
        """Like :meth:`run_to`, and then run that case too."""
        self.run_to(command)
        self.step()

    def finish(self) -> None:
        """Run the remaining cases; in rewrite mode, write the file back."""
        while self.next < len(self.cases):
            self.step()
        if self.rewrite:
            self.path.write_text(render(self.chunks))
