"""The MVCC and command code decides from data alone: every replica applies the same entries and
must reach the same answers, so no clock, I/O loop or storage backend of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kvdb

ROOT = Path(kvdb.__file__).parent
PURE = [
    "mvcc/keys.py",
    "mvcc/reader.py",
    "mvcc/writer.py",
    "mvcc/records.py",
    "txn/actions.py",
    "txn/reads.py",
]
FORBIDDEN = {"asyncio", "grpc", "rocksdict", "time", "random", "kvdb.store.store", "kvdb.storage.rocks"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_clock_io_or_backend(module):
    imported = _imports(ROOT / module)
    bad = {name for name in imported if name in FORBIDDEN or name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{module} imports {sorted(bad)}"
