"""Deterministic simulation of whole stores: the real ``kvdb.store`` and ``KvHandler`` over a
simulated network, disk and clocks, with client histories checked for linearizability.

Reproduce one seed with ``.venv/bin/python -m tests.storesim --seed N --stores 3``; add ``--pd``
for PD mode (``tests/storesim/pd.py``), where a simulated PD grows and repairs the range.
"""

from tests.storesim.cluster import SimFailure, SimOptions, Stats, StoreSimulation

__all__ = ["SimFailure", "SimOptions", "Stats", "StoreSimulation"]
