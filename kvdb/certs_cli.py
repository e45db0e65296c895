"""``kvdb certs``: make the cluster CA and the node and client certificates (``kvdb.net.certs``).

Arguments argparse can check (a role, a number of days) are usage errors (exit 2); what the
certificates directory refuses (a key that exists, no CA yet) is one line and exit 1. Every
command prints the files it wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kvdb.net import certs
from kvdb.net.tls import ENV_CA, ENV_CERT, ENV_KEY

FAILED = 1


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 0 < days <= certs.MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be 1..{certs.MAX_DAYS}, got {days}")
    return days


def _hosts(text: str) -> list[str]:
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    if not hosts:
        raise argparse.ArgumentTypeError("names no host")
    return hosts


def add_certs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certs", help="make the cluster CA, node and client certificates (TLS)",
                       description="Make the certificates of a TLS cluster in --certs-dir: one CA, one node "
                                   "certificate every store and PD member presents, and a certificate per "
                                   "client carrying its role (docs/security.md). Private keys are written "
                                   "mode 0600 and never overwritten.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, helptext: str, days: int) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        a.add_argument("--certs-dir", type=Path, default=Path("certs"),
                       help="where the certificates and keys live (default ./certs)")
        a.add_argument("--days", type=_days, default=days, help=f"validity in days (default {days})")
        return a

    action("create-ca", "make the cluster CA: ca.crt (give it to every node and client) and ca.key",
           certs.DEFAULT_CA_DAYS)
    a = action("create-node", "make node.crt/node.key, signed by the CA, for every store and PD member",
               certs.DEFAULT_CERT_DAYS)
    a.add_argument("--hosts", type=_hosts, required=True, metavar="HOST,...",
                   help="every name and IP address nodes are dialled by "
                        "(e.g. 10.0.0.5,db1.example,localhost)")
    a = action("create-client", "make client.NAME.crt/.key, signed by the CA, with a role",
               certs.DEFAULT_CERT_DAYS)
    a.add_argument("name", metavar="NAME", help="the client's identity (letters, digits, '-', '_', '.')")
    a.add_argument("--role", choices=certs.CLIENT_ROLES, default="readonly",
                   help="what it may do: readonly (reads), readwrite (and writes), admin (and "
                        "administration); default readonly")


def run_certs(args: argparse.Namespace) -> int:
    name = f"kvdb certs {args.action}"
    directory: Path = args.certs_dir
    try:
        if args.action == "create-ca":
            pair = certs.create_ca(directory, args.days)
            note = f"copy {pair.cert} to every node and client; keep {pair.key} private (offline if you can)"
        elif args.action == "create-node":
            pair = certs.create_node(directory, args.hosts, args.days)
            note = (f"start every store and PD member with --ca {directory / certs.CA_CERT} "
                    f"--cert {pair.cert} --key {pair.key}")
        else:
            pair = certs.create_client(directory, args.name, args.role, args.days)
            note = (f"client '{args.name}' with role {args.role}; use it with\n  export "
                    f"{ENV_CA}={directory / certs.CA_CERT} {ENV_CERT}={pair.cert} {ENV_KEY}={pair.key}")
    except (ValueError, OSError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return FAILED
    print(f"wrote {pair.cert} and {pair.key}\n{note}")
    return 0
