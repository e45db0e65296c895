"""Command line: reproduce one seed, or soak many.

    .venv/bin/python -m tests.storesim --seed 1234 [--stores 3|5] [--pd] [--verbose]
    .venv/bin/python -m tests.storesim --seeds 300 [--start 0] [--stores 3|5|both] [--pd]
    .venv/bin/python -m tests.storesim --seeds 50 --workload bank|append   (transactions too)

With --pd the range starts with one replica and a simulated PD grows and repairs it (5 stores
unless --stores says otherwise).

Each seed draws its swarm profile (which faults, how often, clock skew at the drift bound) from
the seed itself, so --seed N alone reproduces a failure; --profile forces one on every seed.

A soak runs its seeds one after another in this process, prints a repro command for every
failure as it happens, and exits non-zero if any seed failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from tests.sim.swarm import profile_names
from tests.storesim.cluster import (
    DEFAULT_LIVENESS_TICKS,
    DEFAULT_PD_TICKS,
    DEFAULT_TICKS,
    SimFailure,
    SimOptions,
    Stats,
    StoreSimulation,
)
from tests.storesim.faults import ALL_PROFILES
from tests.storesim.txn_workloads import WORKLOADS


def _options(args: argparse.Namespace, seed: int, stores: int) -> SimOptions:
    return SimOptions(seed=seed, stores=stores, ticks=args.ticks, liveness_ticks=args.liveness_ticks,
                      clients=args.clients, readers=args.readers, keys=args.keys,
                      client_timeout_ticks=args.client_timeout_ticks, churn=not args.no_churn,
                      faults=not args.no_faults, check_leases=not args.no_check_leases, pd=args.pd,
                      verbose=args.verbose, profile=args.profile, ranges=args.ranges, workload=args.workload,
                      txn_clients=args.txn_clients)


def _stores(args: argparse.Namespace) -> int:
    return int(args.stores) if args.stores is not None else 5 if args.pd else 3


def soak(args: argparse.Namespace) -> int:
    sizes = [3, 5] if args.stores == "both" else [_stores(args)]
    runs = [(seed, n) for seed in range(args.start, args.start + args.seeds) for n in sizes]
    totals = Stats()
    failures: list[str] = []
    started = time.monotonic()
    progress_every = max(1, len(runs) // 20)
    for done, (seed, n) in enumerate(runs, 1):
        options = _options(args, seed, n)
        try:
            totals.add(StoreSimulation(options).run())
        except SimFailure as failure:
            first = str(failure).splitlines()[0]
            profile = str(failure).splitlines()[2]
            failures.append(f"{first}\n  repro: {options.repro()}\n{profile}")
            print(f"FAIL {first}\n  repro: {options.repro()}\n{profile}", flush=True)
        if done % progress_every == 0 or done == len(runs):
            elapsed = time.monotonic() - started
            print(f"[{done}/{len(runs)}] {elapsed:.0f}s, {len(failures)} failed", flush=True)
    elapsed = time.monotonic() - started
    mode = " with PD" if args.pd else ""
    print(f"\nseeds {args.start}..{args.start + args.seeds - 1}, stores {sizes}{mode}: {len(runs)} runs in "
          f"{elapsed:.1f}s ({elapsed / len(runs):.2f} s/run)")
    print(totals.summary().replace(", ", "\n  ").join(["  ", ""]))
    print(f"failures: {len(failures)}")
    for failure in failures:
        print("  " + failure)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.storesim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run this one seed")
    which.add_argument("--seeds", type=int, help="soak: run this many seeds")
    parser.add_argument("--start", type=int, default=0, help="soak: first seed")
    parser.add_argument("--stores", default=None, choices=["3", "5", "both"],
                        help="stores (default 3, each starts with a replica of the range; with --pd 5, "
                             "store 1 starts with the only one)")
    parser.add_argument("--pd", action="store_true",
                        help="PD mode: a simulated PD grows the range from one replica and repairs it")
    parser.add_argument("--ticks", type=int, default=None,
                        help=f"length of the fault phase (default {DEFAULT_TICKS}, "
                             f"with --pd {DEFAULT_PD_TICKS})")
    parser.add_argument("--liveness-ticks", type=int, default=DEFAULT_LIVENESS_TICKS,
                        help="ticks the healed cluster has to acknowledge a fresh write")
    parser.add_argument("--clients", type=int, default=5, help="clients that follow the leader")
    parser.add_argument("--readers", type=int, default=None,
                        help="read-only clients bound to one store each (default: drawn per seed)")
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--ranges", type=int, default=None,
                        help="founding ranges, over the keys evenly (default: 1-4 per seed; 1 with --pd)")
    parser.add_argument("--client-timeout-ticks", type=int, default=None,
                        help="how long a client waits for an answer (default: drawn per seed)")
    parser.add_argument("--no-churn", action="store_true", help="no replica replacement (none with --pd)")
    parser.add_argument("--no-check-leases", action="store_true",
                        help="do not check every tick that at most one store holds a valid lease")
    parser.add_argument("--no-faults", action="store_true", help="a healthy run: no nemesis at all")
    parser.add_argument("--profile", choices=profile_names(ALL_PROFILES),
                        help="force this swarm profile (default: each seed draws its own)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS),
                        help="also run transactions: bank transfers or list appends, over 8 founding ranges "
                             "(tests/storesim/txn_workloads.py)")
    parser.add_argument("--txn-clients", type=int, default=4, help="transactional clients (with --workload)")
    parser.add_argument("--verbose", action="store_true", help="print the event trace and the store's logs")
    args = parser.parse_args(argv)
    if args.workload is not None and args.pd:
        parser.error("--workload needs many ranges; PD mode schedules one (drop --pd)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    if args.seeds is not None:
        return soak(args)
    if args.stores == "both":
        parser.error("--seed needs --stores 3 or 5")
    options = _options(args, args.seed, _stores(args))
    started = time.monotonic()
    sim = StoreSimulation(options)
    try:
        stats = sim.run()
    except SimFailure as failure:
        print(failure, file=sys.stderr)
        return 1
    print(f"seed {args.seed} ({options.stores} stores{', PD' if args.pd else ''}) passed in "
          f"{time.monotonic() - started:.2f}s; {sim.profile.describe()}")
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
