"""A FoundationDB-style deterministic simulator for the Raft core (``kvdb.raft``).

One integer seed determines a whole run: a cluster of RawNodes over simulated disks, a faulty
network, crashes, a random workload and membership changes, with Raft's safety invariants checked
after every event and liveness checked once the faults stop. See ``python -m tests.sim --help``.
"""

from tests.sim.cluster import SimFailure, SimOptions, Simulation, Stats


def run_seed(seed: int, nodes: int = 3, **options: object) -> Stats:
    """Run one seed; raises ``SimFailure`` (with a repro command) if anything goes wrong."""
    return Simulation(SimOptions(seed=seed, nodes=nodes, **options)).run()


__all__ = ["SimFailure", "SimOptions", "Simulation", "Stats", "run_seed"]
