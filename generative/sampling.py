"""The interface between scenario families and a background-traffic sampler.

A scenario family (:mod:`generative.families`) scripts the actors its situation is about (the
braking leader, the cutting-in car) and asks a :class:`TrafficSampler` for the traffic around
them. The learned generative traffic model implements this protocol; families fall back to the
simulator's own random traffic (:class:`sim.scenario.TrafficSpec`) when none is given.
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


__all__ = ["TrafficSampler"]
