"""The ``kvdb`` command line.

Sub-commands arrive with the issues that build what they run; until then the CLI only reports
its version and says what is coming, so that scripts fail loudly instead of doing nothing.
"""

from __future__ import annotations

import argparse
import sys

from kvdb import __version__

PLANNED_COMMANDS = {
    "playground": "start a local cluster (PD + stores) in one command",
    "store": "run a store server",
    "pd": "run a placement driver member",
    "admin": "inspect and operate a cluster",
    "bench": "run throughput benchmarks against kvdb and etcd",
}


def _build_parser() -> argparse.ArgumentParser:
    planned = "\n".join(f"  {name:<12} {text}" for name, text in PLANNED_COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="kvdb",
        description="kvdb: a sharded, multi-Raft, transactional key-value database.",
        epilog=f"commands arriving in later issues:\n{planned}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kvdb {__version__}")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (2 for a command that does not exist yet)."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None and not extra:
        parser.print_help()
        return 0
    if args.command is None:
        print(f"kvdb: unknown option '{extra[0]}' (see kvdb --help)", file=sys.stderr)
        return 2
    if args.command in PLANNED_COMMANDS:
        print(f"kvdb: '{args.command}' is not implemented yet (arrives in a later issue)", file=sys.stderr)
    else:
        known = ", ".join(PLANNED_COMMANDS)
        print(f"kvdb: unknown command '{args.command}' (planned: {known}; see kvdb --help)", file=sys.stderr)
    return 2
