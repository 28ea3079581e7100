"""CARLA Leaderboard driving scores, both published versions, computed exactly.

Driving score per route: ``DS = RC x IP``, route completion ``RC`` in percent times the
infraction penalty ``IP`` in [0, 1].

Route completion (both versions): the percentage of the route driven; a route counts as
completed, ``RC = 100``, at >= 99 % or within 10 m of the end.

Leaderboard 2.0 (``leaderboard-2.0`` / ``master`` branch of carla-simulator/leaderboard,
``statistics_manager.py``), multiplicative::

    IP = prod_i p_i ^ n_i                         p: pedestrian 0.50, vehicle 0.60, static 0.65,
                                                     red light 0.70, stop sign 0.80,
                                                     scenario timeout 0.70, yield to emergency 0.70
         x prod_c (1 - (1 - 0.7) (1 - m_c / 100)) per minimum-speed infraction at checkpoint c,
                                                   m_c = ego speed as % of the surrounding traffic
         x (1 - o / 100)                           o = share of the route driven off-road [%]

Leaderboard 2.1 (``leaderboard-2.1`` branch, the live leaderboard since 2025), additive::

    IP = 1 / (1 + sum_i w_i n_i + sum_c 0.4 (1 - m_c / 100))
                                                  w: pedestrian 1.0, vehicle 0.7, static 0.6,
                                                     red light 0.4, stop sign 0.25,
                                                     scenario timeout 0.4, yield 0.4
         x (1 - o / 100)

In both, the off-road share of the route is removed from the score (the ``(1 - o/100)``
factor). Route deviation (more than 30 m off the route) and being blocked (below 0.1 m/s for
180 s) end the route; they carry no penalty of their own, only the completion lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ROUTE_COMPLETED_PCT = 99.0  # [%] Leaderboard: at or above this the route counts as completed
ROUTE_COMPLETED_WITHIN_M = 10.0  # [m] ... or within this distance of the route's end
ROUTE_DEVIATION_M = 30.0  # [m] further off the route than this ends it
BLOCKED_SPEED_MPS = 0.1  # [m/s] slower than this counts as stopped ...
BLOCKED_TIME_S = 180.0  # [s] ... and stopped this long ends the route

INFRACTIONS = (
    "collisions_pedestrian",
    "collisions_vehicle",
    "collisions_layout",
    "red_light",
    "stop_infraction",
    "scenario_timeouts",
    "yield_emergency_vehicle_infractions",
)

PENALTY_LB20 = {
    "collisions_pedestrian": 0.50,
    "collisions_vehicle": 0.60,
    "collisions_layout": 0.65,
    "red_light": 0.70,
    "stop_infraction": 0.80,
    "scenario_timeouts": 0.70,
    "yield_emergency_vehicle_infractions": 0.70,
}
MIN_SPEED_LB20 = 0.7  # per-checkpoint factor at 0 % of the traffic speed ('decreases' type)

WEIGHT_LB21 = {
    "collisions_pedestrian": 1.0,
    "collisions_vehicle": 0.7,
    "collisions_layout": 0.6,
    "red_light": 0.4,
    "stop_infraction": 0.25,
    "scenario_timeouts": 0.4,
    "yield_emergency_vehicle_infractions": 0.4,
}
MIN_SPEED_LB21 = 0.4  # weight of a min-speed infraction at 0 % of the traffic speed


@dataclass(frozen=True)
class RouteRecord:
    """What happened on one route, the inputs to both scores.

    Attributes:
        route_length_m: the route's length [m].
        progress_m: distance driven along it [m].
        infractions: counts per name in :data:`INFRACTIONS` (missing names count 0).
        min_speed_pcts: for each minimum-speed infraction, the ego speed as a percentage of
            the surrounding traffic's at that checkpoint (0..100).
        off_road_pct: share of the route driven off-road [%].
    """

    route_length_m: float
    progress_m: float
    infractions: Mapping[str, int] = field(default_factory=dict)
    min_speed_pcts: Sequence[float] = ()
    off_road_pct: float = 0.0

    def __post_init__(self) -> None:
        unknown = set(self.infractions) - set(INFRACTIONS)
        if unknown:
            raise ValueError(f"unknown infraction(s) {sorted(unknown)}; expected {INFRACTIONS}")
        if self.route_length_m <= 0:
            raise ValueError(f"route_length_m: expected > 0, got {self.route_length_m}")


def route_completion(progress_m: float, route_length_m: float) -> float:
    """Route completion [%] with the Leaderboard's completion rule (>= 99 % or <= 10 m left)."""
    pct = 100.0 * max(0.0, min(progress_m, route_length_m)) / route_length_m
    if pct >= ROUTE_COMPLETED_PCT or route_length_m - progress_m <= ROUTE_COMPLETED_WITHIN_M:
        return 100.0
    return pct


def _offroad_factor(off_road_pct: float) -> float:
    return 1.0 - min(max(off_road_pct, 0.0), 100.0) / 100.0


def penalty_lb20(r: RouteRecord) -> float:
    """Leaderboard 2.0 infraction penalty (multiplicative)."""
    ip = 1.0
    for name, n in r.infractions.items():
        ip *= PENALTY_LB20[name] ** n
    for m in r.min_speed_pcts:
        ip *= 1.0 - (1.0 - MIN_SPEED_LB20) * (1.0 - min(max(m, 0.0), 100.0) / 100.0)
    return ip * _offroad_factor(r.off_road_pct)


def penalty_lb21(r: RouteRecord) -> float:
    """Leaderboard 2.1 infraction penalty (additive: 1 / (1 + sum of weights))."""
    total = sum(WEIGHT_LB21[name] * n for name, n in r.infractions.items())
    total += sum(MIN_SPEED_LB21 * (1.0 - min(max(m, 0.0), 100.0) / 100.0) for m in r.min_speed_pcts)
    return _offroad_factor(r.off_road_pct) / (1.0 + total)


def driving_scores(r: RouteRecord) -> dict[str, float]:
    """Route completion, both penalties and both driving scores of one route."""
    rc = route_completion(r.progress_m, r.route_length_m)
    ip20, ip21 = penalty_lb20(r), penalty_lb21(r)
    return {
        "route_completion_pct": rc,
        "infraction_penalty_lb20": ip20,
        "driving_score_lb20": rc * ip20,
        "infraction_penalty_lb21": ip21,
        "driving_score_lb21": rc * ip21,
    }
