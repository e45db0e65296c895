"""Swarm testing: every seed draws its own fault profile, so seeds differ in kind, not only in luck.

One fixed mix of every fault at one intensity explores the middle of the space well and its
corners badly: a bug that needs many partitions and no crashes (or a quiet network around one
precise fault) is rare under a mix that always has a bit of everything. So each seed first picks a
*profile* (a named emphasis such as "partitions" or "skew"), then switches each fault of the
simulator on or off at random (the profile's own faults stay on) and draws how often faults come.
Some seeds are thereby almost fault-free, others hammer one kind of fault.

The profile is a pure function of the seed (drawn from the world's generator before anything
else), so ``--seed N`` alone reproduces it; ``--profile NAME`` forces one for exploring.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProfileSpec:
    """A named emphasis: the faults it boosts (weight multipliers) and how often faults come."""

    name: str
    boost: dict[str, float]
    """Fault name -> weight multiplier; these faults are always on."""
    gap: tuple[int, int]
    """Range of the mean number of ticks between two faults; the seed draws the mean from it."""
    skew: bool = False
    """Clocks run at the edge of what the lease's drift allowance covers."""
    keep: float = 0.5
    """Chance that each fault outside ``boost`` stays on."""


@dataclass
class Profile:
    """What one seed drew: its spec, the weight of every fault, and the ticks between faults."""

    spec: ProfileSpec
    weights: dict[str, float]
    gap: tuple[int, int]
    knobs: dict[str, object] = field(default_factory=dict)
    """Per-simulator extras (e.g. message size limits) the profile asked for."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def skew(self) -> bool:
        return self.spec.skew

    def describe(self) -> str:
        on = ", ".join(f"{name}x{w:g}" for name, w in sorted(self.weights.items()) if w)
        extras = "".join(f", {k}={v}" for k, v in sorted(self.knobs.items()))
        return f"profile {self.name}: gap {self.gap[0]}-{self.gap[1]} ticks, faults [{on}]{extras}"


def draw_profile(
    rng: random.Random, specs: list[ProfileSpec], base: dict[str, float], forced: str | None = None
) -> Profile:
    """Pick a spec (or the ``forced`` one), then a random subset of ``base``'s faults and a gap.

    ``base`` holds every fault's ordinary weight. Each fault outside the spec's boost survives
    with the spec's ``keep`` probability (swarm testing's feature omission); boosted faults are multiplied.
    """
    by_name = {s.name: s for s in specs}
    if forced is not None and forced not in by_name:
        raise ValueError(f"unknown profile {forced!r}; known: {', '.join(sorted(by_name))}")
    spec = rng.choice(specs)
    if forced is not None:
        spec = by_name[forced]
    weights = {}
    for name, weight in base.items():
        if name in spec.boost:
            weights[name] = weight * spec.boost[name]
        else:
            weights[name] = weight if rng.random() < spec.keep else 0.0
    mean = rng.randint(*spec.gap)
    return Profile(spec, weights, (max(1, mean // 2), mean * 3 // 2 + 1))


def profile_names(specs: list[ProfileSpec]) -> list[str]:
    return [s.name for s in specs]
