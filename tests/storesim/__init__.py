"""Deterministic simulation of whole stores: the real ``kvdb.store`` and ``KvHandler`` over a
simulated network, disk and clocks, with client histories checked for linearizability.

Reproduce one seed with ``.venv/bin/python -m tests.storesim --seed N --stores 3``.
"""

from tests.storesim.cluster import SimFailure, SimOptions, Stats, StoreSimulation

__all__ = ["SimFailure", "SimOptions", "Stats", "StoreSimulation"]
