"""Command line: reproduce one seed, or soak many.

    .venv/bin/python -m tests.sim --seed 1234 --nodes 5 [--verbose]
    .venv/bin/python -m tests.sim --seeds 20000 [--start 0] [--nodes 3|5|both] [--jobs 2]
    .venv/bin/python -m tests.sim --seeds 500 --profile figure8

Each seed draws its swarm profile (which faults, how often, clock skew) from the seed itself, so
--seed N alone reproduces a failure; --profile forces one profile on every seed.

The soak exits non-zero if any seed fails, after printing every failure's repro command.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

from tests.sim.cluster import DEFAULT_LIVENESS_TICKS, DEFAULT_TICKS, SimFailure, SimOptions, Simulation, Stats
from tests.sim.faults import PROFILES
from tests.sim.swarm import profile_names

SUMMARY_FIELDS = (
    "proposals_acked",
    "reads_answered",
    "lease_read_checks",
    "leader_changes",
    "crashes",
    "conf_changes_applied",
    "transfers_completed",
    "snapshots_sent",
    "snapshots_applied",
    "aimed_faults",
)


def run_one(options: SimOptions) -> tuple[SimOptions, Stats | None, str | None]:
    """Run one seed in this process; returns its stats, or the failure report."""
    try:
        return options, Simulation(options).run(), None
    except SimFailure as failure:
        return options, None, str(failure)


def soak(args: argparse.Namespace) -> int:
    sizes = [3, 5] if args.nodes == "both" else [int(args.nodes)]
    runs = [
        SimOptions(seed=seed, nodes=n, ticks=args.ticks, liveness_ticks=args.liveness_ticks,
                   profile=args.profile)
        for seed in range(args.start, args.start + args.seeds)
        for n in sizes
    ]
    totals = Stats(runs=0)
    failures: list[str] = []
    started = time.monotonic()
    progress_every = max(1, len(runs) // 20)
    with multiprocessing.Pool(args.jobs) as pool:
        for done, (options, stats, failure) in enumerate(pool.imap_unordered(run_one, runs, chunksize=4), 1):
            if failure is not None:
                failures.append(failure)
                lines = failure.splitlines()
                print(f"FAIL {lines[0]}\n  repro: {options.repro()}\n{lines[2]}", flush=True)
            else:
                totals.add(stats)
            if done % progress_every == 0 or done == len(runs):
                elapsed = time.monotonic() - started
                print(f"[{done}/{len(runs)}] {elapsed:.0f}s, {len(failures)} failed", flush=True)
    elapsed = time.monotonic() - started
    print(f"\nseeds {args.start}..{args.start + args.seeds - 1}, nodes {args.nodes}: {len(runs)} runs "
          f"in {elapsed:.1f}s ({elapsed / len(runs) * 1000:.0f} ms/run wall, {args.jobs} jobs)")
    for name in SUMMARY_FIELDS:
        print(f"  {name:22} {getattr(totals, name)}")
    print(f"failures: {len(failures)}")
    for failure in failures:
        print("  " + failure.splitlines()[0] + "\n  " + failure.splitlines()[1].strip())
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run this one seed")
    which.add_argument("--seeds", type=int, help="soak: run this many seeds")
    parser.add_argument("--start", type=int, default=0, help="soak: first seed")
    parser.add_argument("--nodes", default="3", choices=["3", "5", "both"], help="initial voters")
    parser.add_argument("--ticks", type=int, default=DEFAULT_TICKS, help="length of the fault phase")
    parser.add_argument("--liveness-ticks", type=int, default=DEFAULT_LIVENESS_TICKS,
                        help="ticks the healed cluster has to commit a fresh proposal")
    parser.add_argument("--jobs", type=int, default=multiprocessing.cpu_count(), help="soak: processes")
    parser.add_argument("--profile", choices=profile_names(PROFILES),
                        help="force this swarm profile (default: each seed draws its own)")
    parser.add_argument("--verbose", action="store_true", help="print the event trace")
    args = parser.parse_args(argv)
    if args.seeds is not None:
        return soak(args)
    if args.nodes == "both":
        parser.error("--seed needs --nodes 3 or 5")
    options = SimOptions(args.seed, int(args.nodes), args.ticks, args.liveness_ticks, args.verbose,
                         args.profile)
    started = time.monotonic()
    sim = Simulation(options)
    try:
        stats = sim.run()
    except SimFailure as failure:
        print(failure, file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"seed {args.seed} ({args.nodes} nodes) passed in {elapsed:.2f}s; {sim.profile.describe()}")
    print(f"history {sim.fingerprint()}\n{stats.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
