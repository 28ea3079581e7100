"""The interface between scenario families and a background-traffic sampler.

A scenario family (:mod:`generative.families`) scripts the actors its situation is about (the
braking leader, the cutting-in car) and asks a :class:`TrafficSampler` for the traffic around
them. The learned generative traffic model implements this protocol
(:class:`generative.model.LearnedTrafficSampler`, the default of ``gendrive generate``);
families fall back to the simulator's own random traffic (:class:`sim.scenario.TrafficSpec`)
when none is given, which is what training suites want (redrawn at every reset).
:func:`make_background` picks one by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from sim.scenario import ActorSpec, RoadSpec


@runtime_checkable
class TrafficSampler(Protocol):
    """Draws background vehicles on a road.

    ``sample_traffic`` returns vehicles placed in lane coordinates on ``road``: none inside a
    ``keep_clear`` zone ``(road id, lane id, s_lo, s_hi)`` (reference s [m]), all within
    ``s_range`` (reference s [m]; None: the whole road), at about ``density_veh_per_km_lane``
    vehicles per km and driving lane (None: the sampler's own density), more aggressive as
    ``difficulty`` goes from 0 to 1. All randomness comes from ``rng``.
    """

    def sample_traffic(
        self,
        road: RoadSpec,
        rng: np.random.Generator,
        *,
        density_veh_per_km_lane: float | None = None,
        s_range: tuple[float, float] | None = None,
        keep_clear: Sequence[tuple[int, int, float, float]] = (),
        difficulty: float = 0.0,
    ) -> tuple[ActorSpec, ...]: ...


BACKGROUNDS: tuple[str, ...] = ("learned", "random", "rule_based")


def make_background(name: str) -> TrafficSampler | None:
    """The background sampler called ``name``: ``learned`` (the learned traffic model,
    :class:`generative.model.LearnedTrafficSampler`), ``rule_based`` (the realism baseline,
    :class:`generative.baseline.RuleBasedTrafficSampler`) or ``random`` (None: the simulator's
    own :class:`sim.scenario.TrafficSpec` random traffic, redrawn at every reset).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if name == "learned":
        from generative.model import LearnedTrafficSampler

        return LearnedTrafficSampler()
    if name == "rule_based":
        from generative.baseline import RuleBasedTrafficSampler

        return RuleBasedTrafficSampler()
    if name == "random":
        return None
    raise ValueError(f"background: unknown sampler {name!r}; known: {list(BACKGROUNDS)}")


__all__ = ["BACKGROUNDS", "TrafficSampler", "make_background"]
