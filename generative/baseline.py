"""The rule-based background-traffic sampler: the baseline the learned model must beat.

Hand-written rules, no data: per lane, vehicles front to back (the same placement as the
learned model, :mod:`generative.model.placement`) with

- bumper gaps uniform in ``[GAP_MIN_M, 2 g_mean - GAP_MIN_M]``, ``g_mean = 1000 / density -
  CAR_LENGTH_M`` (so the mean spacing gives the asked density; per lane, ``density *
  lane_ratio`` when the caller gives per-lane densities);
- speeds uniform in ``SPEED_FRAC`` of the limit (the simulator's own random traffic,
  :class:`sim.scenario.TrafficSpec`, uses the same "around the limit" rule), the interval
  shifted up by ``DIFFICULTY_SPEED_FRAC * difficulty``: at a given density, faster traffic is
  shorter time headways;
- length ``CAR_LENGTH_M``, width uniform in ``WIDTH_M``;
- IDM/MOBIL: the simulator defaults (:class:`sim.scenario.BehaviorSpec`), desired speed
  uniform in ``V0_FRAC`` of the limit.

The same validity rules and repairs apply (:mod:`generative.model.validity`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from generative.model.placement import (
    PlacementState,
    Proposal,
    RoadContext,
    place,
    to_vehicles,
)
from generative.model.sampler import SceneSampler
from generative.model.validity import ValidityCounts, Vehicles, make_valid
from sim.scenario import BehaviorSpec

F64 = NDArray[np.float64]

GAP_MIN_M = 5.0  # [m] shortest gap: a little over the IDM jam distance (2 m)
CAR_LENGTH_M = 4.5  # [m] every car (the simulator's random-traffic length)
WIDTH_M = (1.8, 2.0)  # [m] the simulator's random-traffic widths
SPEED_FRAC = (0.6, 1.0)  # [-] of the limit: TrafficSpec's default
V0_FRAC = (0.8, 1.1)  # [-] of the limit: TrafficSpec's default
DEFAULT_DENSITY = 20.0  # [veh/km/lane] when none is asked for
DIFFICULTY_SPEED_FRAC = 0.2  # [-] of the limit added to both speed bounds at difficulty 1


class RuleBasedTrafficSampler(SceneSampler):
    """Uniform gaps and speeds around the limit (module docstring); a TrafficSampler."""

    name = "rule_based"

    @property
    def default_density(self) -> float:
        """[veh/km/lane] density used when none is asked for."""
        return DEFAULT_DENSITY

    def __init__(self) -> None:
        self._stats = ValidityCounts()

    @property
    def stats(self) -> ValidityCounts:
        """Validity counts accumulated over every call so far."""
        return self._stats

    def sample_vehicles(
        self,
        ctx: RoadContext,
        rng: np.random.Generator,
        density: F64,
        difficulty: F64,
        s_range: tuple[float, float] | None = None,
        zones: Sequence[Sequence[tuple[int, int, float, float]]] | None = None,
        lane_ratio: F64 | None = None,
    ) -> tuple[Vehicles, ValidityCounts]:
        """S scenes at once (same contract as the learned sampler's ``sample_vehicles``).

        ``lane_ratio`` ``(S, L)``: per-lane density / ``density`` (None: every lane at
        ``density``); each lane's mean spacing follows its own density.
        """
        density, difficulty, (lo, hi), zl, zh = self._scene_args(
            ctx, density, difficulty, s_range, zones
        )
        n_s = density.shape[0]
        ratio = (
            np.ones((n_s, ctx.num_lanes))
            if lane_ratio is None
            else self._lane_ratio(lane_ratio, n_s, ctx.num_lanes)
        )
        lane_dens = density[:, None] * ratio  # (S, L)
        mean_gap = np.maximum(1000.0 / lane_dens - CAR_LENGTH_M, GAP_MIN_M)
        faster = DIFFICULTY_SPEED_FRAC * np.clip(difficulty, 0.0, 1.0)

        def propose(st: PlacementState) -> Proposal:
            q = st.scene
            n = q.shape[0]
            g = rng.uniform(GAP_MIN_M, 2.0 * mean_gap[q, st.lane] - GAP_MIN_M)
            u = np.asarray(rng.uniform(SPEED_FRAC[0], SPEED_FRAC[1], n), np.float64)
            v: F64 = u + faster[q]
            w: F64 = np.asarray(rng.uniform(WIDTH_M[0], WIDTH_M[1], n), np.float64)
            return Proposal(gap=g, v=v, length=np.full(n, CAR_LENGTH_M), width=w)

        scene, lane, s_ref, _, v, length, width = place(
            ctx, propose, lane_dens, (lo, hi), zl, zh, rng
        )
        m = scene.shape[0]
        limit = ctx.limit
        d = BehaviorSpec()
        beh = np.tile(
            [0.0, d.headway, d.min_gap, d.a_max, d.b_comf, d.politeness, d.lc_threshold], (m, 1)
        )
        beh[:, 0] = rng.uniform(V0_FRAC[0], V0_FRAC[1], m) * limit
        veh = to_vehicles(ctx, scene, lane, s_ref, v * limit, length, width, beh)
        out, counts = make_valid(veh, limit, ctx.lane_length if ctx.closed else None)
        self._stats = self._stats + counts
        return out, counts


__all__ = ["RuleBasedTrafficSampler"]
