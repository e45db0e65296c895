"""The generated modules in kvdb/pb/ must match what proto/*.proto generates today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "kvdb" / "pb"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir()) if "_pb2" in p.name and p.is_file()}


def test_generated_protobuf_modules_are_fresh(tmp_path: Path) -> None:
    _load_generator().generate(tmp_path)
    fresh, committed = _generated(tmp_path), _generated(COMMITTED)
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, (
        f"kvdb/pb/ is stale with respect to proto/ ({', '.join(stale)}): "
        "run `python scripts/gen_proto.py` and commit the result"
    )
