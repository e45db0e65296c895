#!/usr/bin/env python3
"""Regenerate the Python modules in kvdb/pb/ from proto/*.proto.

protoc names a generated module after its .proto file and imports its siblings as top-level
modules (``import raft_pb2``); this script rewrites those imports to ``from kvdb.pb import
raft_pb2`` so the modules work as a package. A proto that declares no ``service`` gets no
``_pb2_grpc`` module (it would only hold a version check).

Usage: python scripts/gen_proto.py [OUT_DIR]   (default: kvdb/pb; the freshness test uses a temp dir)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGE = "kvdb.pb"
DEFAULT_OUT = ROOT / "kvdb" / "pb"

_SERVICE = re.compile(r"^\s*service\s+\w+", re.MULTILINE)


def _fix_imports(text: str, stems: set[str]) -> str:
    """Turn ``import raft_pb2 as x`` into ``from kvdb.pb import raft_pb2 as x`` for our own modules."""

    def repl(match: re.Match[str]) -> str:
        module = match.group(2)
        if module.removesuffix("_pb2") not in stems:
            return match.group(0)
        return f"{match.group(1)}from {PACKAGE} import {module} as "

    return re.sub(r"^(\s*)import (\w+_pb2) as ", repl, text, flags=re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Generate every proto into ``out_dir``; returns the files written."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_DIR.glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files in {PROTO_DIR}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = {p.stem for p in protos}
    written: list[Path] = []
    for proto in protos:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
        ]
        if _SERVICE.search(proto.read_text()):
            args.append(f"--grpc_python_out={out_dir}")
        if protoc.main([*args, str(proto)]) != 0:
            raise SystemExit(f"protoc failed on {proto.name}")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            path = out_dir / f"{proto.stem}{suffix}"
            if path.exists():
                path.write_text(_fix_imports(path.read_text(), stems))
                written.append(path)
    return written


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    for path in generate(out_dir):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
