"""Per-step outcome, safety and comfort measures and reward terms, from world states only.

``evaluate(prev, actions, next, road, cfg)`` reads everything off the two states: collisions
(oriented boxes, :mod:`sim.collision`) by the other actor's type, road-edge contact, off-road
(ego centre outside the drivable area or past a lane end), time-to-collision and time headway to
the leader, jerk, hard braking, lane changes across markings, wrong-way driving, route
completion, route deviation, being blocked, and the time limit. The CARLA backend reads its world
back into a ``WorldState`` and calls the same function, so a score means the same on both.

The reward is ``sum_i weight_i * term_i`` with weights from config (:class:`RewardWeights`,
presets in ``configs/reward/``). Terms, one (B,) float32 array each, per step:

====================  ======  ================================================================
term                  unit    meaning
====================  ======  ================================================================
progress              m       route progress made this step
speed_tracking        -       1 - |v - v_limit| / v_limit, floored at 0
fuel                  ml      fuel burnt this step (:mod:`sim.fuel`, the default petrol car)
time                  s       the step's duration (a time penalty with a negative weight)
collision             0/1     the ego's box overlaps another actor's box
off_road              0/1     the ego's centre left the drivable area
red_light             0/1     crossed a stop line on red (CARLA's RunningRedLightTest;
                              sim.lights; 0 on roads without lights)
ttc_risk              -       max(0, 1 - TTC / ttc_risk_s): 0 when safe, 1 at contact
comfort               m/s^3   |jerk| of the ego's longitudinal acceleration
takeover              0/1     a human took over this step (set by the override module)
route_completed       0/1     the route was completed this step
carl                  -       CaRL's reward: route-completion gain (fraction of the route)
                              times multiplicative soft penalties (speeding, TTC risk)
speed                 m/s     ego speed (reported; weight 0 in the presets)
====================  ======  ================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from sim import pedestrians as P
from sim import road as R
from sim.collision import ego_collisions
from sim.fuel import FuelParams, Vehicle, energy_rate, fuel_rate_flat
from sim.scores import BLOCKED_TIME_S, ROUTE_COMPLETED_WITHIN_M, ROUTE_DEVIATION_M
from sim.state import ActorType, WorldState
from sim.traffic_rules import plan_offset, red_light_events, rules_of

F32 = NDArray[np.float32]
BoolArr = NDArray[np.bool_]

OFF_MAP_SLACK_M = 0.5  # [m] matched-lane distance beyond |d|: the ego is past a lane end
NO_LEADER = np.float32(np.inf)

# Typed 0-d constants for the per-step maths (as in sim.world): a Python float operand costs
# ~0.3 us of conversion per ufunc call, as much as the arithmetic at B=1; NEP 50 casts it to the
# float32 of the state arrays anyway, so these give the same bits.
_F0 = np.array(0.0, np.float32)
_F1 = np.array(1.0, np.float32)
_HALF = np.array(0.5, np.float32)
_INF = np.array(np.inf, np.float32)
_PI = np.array(np.pi, np.float32)
_TWO_PI = np.array(2 * np.pi, np.float32)
_DT_MIN = np.array(1e-6, np.float32)
_CLOSING_MIN = np.array(1e-3, np.float32)
_SPEED_MIN = np.array(0.1, np.float32)
_LIMIT_MIN = np.array(0.1, np.float32)
_ROUTE_MIN = np.array(1e-3, np.float32)
_SLACK = np.array(OFF_MAP_SLACK_M, np.float32)
_DONE_M = np.array(ROUTE_COMPLETED_WITHIN_M, np.float32)
_TIME_EPS = np.array(1e-4, np.float32)
_I1 = np.array(1, np.intp)


@lru_cache(maxsize=64)
def _row_offsets(B: int, n: int) -> NDArray[np.intp]:
    """(B,) flat offset of each row of a (B, n) array; read-only, shared across steps."""
    rows = np.arange(0, B * n, n)
    rows.flags.writeable = False
    return rows


@lru_cache(maxsize=64)
def _rows(B: int) -> NDArray[np.int64]:
    """``arange(B)``, read-only and shared across steps (row index of per-env gathers)."""
    rows = np.arange(B)
    rows.flags.writeable = False
    return rows


TERM_NAMES = (
    "progress",
    "speed_tracking",
    "fuel",
    "time",
    "collision",
    "off_road",
    "red_light",
    "ttc_risk",
    "comfort",
    "takeover",
    "route_completed",
    "carl",
    "speed",
)


@dataclass(frozen=True)
class RewardWeights:
    """Weight of each named term in the reward (module table). Default: the balanced preset."""

    progress: float = 0.1  # per metre: a 1 km route is worth 100
    speed_tracking: float = 0.0
    fuel: float = -0.02  # per ml: 1 l costs 20, a fifth of a 1 km route
    time: float = 0.0
    collision: float = -20.0
    off_road: float = -20.0
    red_light: float = -10.0
    ttc_risk: float = -0.1
    comfort: float = -0.001
    takeover: float = -1.0
    route_completed: float = 10.0
    carl: float = 0.0
    speed: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class MetricsConfig:
    """Thresholds of the safety and comfort measures."""

    ttc_risk_s: float = 3.0  # [s] TTC below this starts costing (the ttc_risk term)
    near_miss_ttc_s: float = 1.5  # [s] TTC below this without a collision is a near miss
    hard_brake_mps2: float = 4.0  # [m/s^2] ~0.4 g: the usual naturalistic-driving threshold
    wrong_way_rad: float = 0.5 * np.pi  # [rad] heading error beyond this is driving against
    terminate_on_collision: bool = True
    terminate_on_off_road: bool = True
    route_deviation_m: float = ROUTE_DEVIATION_M
    blocked_s: float = BLOCKED_TIME_S
    vehicle: Vehicle = field(default_factory=FuelParams)  # fuel/energy model (sim.fuel)


@dataclass(frozen=True)
class _CfgConstants:
    """A :class:`MetricsConfig`'s thresholds as 0-d float32 arrays (same bits: NEP 50 casts the
    Python floats to the states' float32 anyway, at ~0.3 us of conversion per comparison)."""

    route_deviation_m: F32
    blocked_s: F32
    neg_hard_brake: F32
    wrong_way_rad: F32
    ttc_risk_s: F32
    fuel_j_per_ml: F32 | None  # [J/ml] of the engine's fuel; None for an electric car


@lru_cache(maxsize=16)
def _cfg_constants(cfg: MetricsConfig) -> _CfgConstants:
    veh = cfg.vehicle
    f32 = np.float32
    return _CfgConstants(
        np.array(cfg.route_deviation_m, f32),
        np.array(cfg.blocked_s, f32),
        np.array(-cfg.hard_brake_mps2, f32),
        np.array(cfg.wrong_way_rad, f32),
        np.array(cfg.ttc_risk_s, f32),
        np.array(veh.fuel_energy_j_per_l / 1000.0, f32) if isinstance(veh, FuelParams) else None,
    )


@lru_cache(maxsize=64)
def _no_hit_type(B: int) -> NDArray[np.int8]:
    """(B,) int8 of -1 (no collision type), read-only: copied per step (np.full costs 5x more)."""
    out = np.full(B, -1, np.int8)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Outcome:
    """What happened in one step, per environment (B,) unless noted."""

    terms: dict[str, F32]
    collided_with: BoolArr  # (B, N): actors overlapping the ego (column 0: any)
    collision: BoolArr
    collision_type: NDArray[np.int8]  # ActorType of the first actor hit, -1 none
    road_edge: BoolArr  # the ego's box crosses a road edge (a "static" collision)
    off_road: BoolArr
    route_completed: BoolArr
    route_deviation: BoolArr
    blocked: BoolArr
    terminated: BoolArr
    truncated: BoolArr
    ttc: F32  # [s] to the leader, inf without one or when not closing
    headway: F32  # [s] gap / own speed, inf without a leader
    leader: NDArray[np.int64]  # actor index of the leader, -1 none
    jerk: F32  # [m/s^3]
    hard_brake: BoolArr
    lane_change: BoolArr  # the ego's centre crossed a lane marking
    wrong_way: BoolArr
    speed_limit: F32  # [m/s] at the ego
    fuel_rate: F32  # [ml/s] of the ego's engine (0 for an electric car)
    energy_rate: F32  # [W] drawn from the ego's energy store (negative while recuperating)
    # (left edge, right edge, speed limit, heading error wrapped to [-pi, pi)) at the ego of the
    # next state, from sim.road.edges_limit_heading: the observation of that state reuses them.
    road_at_ego: tuple[F32, F32, F32, F32] | None = None


def ego_leader(state: WorldState, road: R.LaneGraph) -> tuple[F32, F32, NDArray[np.int64]]:
    """Bumper gap [m] and closing speed [m/s] to the nearest actor ahead in the ego's lane.

    Actors count when on the ego's lane, changing into it, or on its successor lane; O(B N).

    Returns:
        (gap (B,), closing speed (B,) positive when approaching, leader index (B,), -1 none).

    At B=1 the cost is the number of numpy calls, so the cases that dominate (a ring lane, whose
    successor is itself; every env with a leader) skip the selects that are no-ops there.
    """
    B, N = state.x.shape
    if N < 2:  # the ego alone
        return _no_leader(B)
    lane0 = state.lane[:, :1]
    s0 = state.s[:, :1]
    # Candidates are the other actors: columns 1.. (the ego never leads itself). A pedestrian
    # on the kerb or sidewalk beside the ego's lane is not in its path (as for traffic).
    valid = state.valid if state.walk_d_speed is None else P.listed(state, road)
    lane, s = state.lane[:, 1:], state.s[:, 1:]
    L = road.lane_length.take(lane0)
    same = valid[:, 1:] & ((lane == lane0) | (state.lc_target[:, 1:] == lane0))
    ds = s - s0
    succ = road.successors[:, 0].take(lane0)
    ring = succ == lane0
    n_ring = np.count_nonzero(ring)
    if n_ring:  # on a ring lane an actor behind is ahead by the lap remainder
        behind = same & (ds < _F0)
        if n_ring < B:
            behind &= ring
        ds = np.where(behind, ds + L, ds)
    if n_ring == B:  # a ring lane's successor is itself: nobody is on a distinct successor
        dist = np.where(same & (ds > _F0), ds, _INF)
    else:
        on_succ = valid[:, 1:] & (lane == succ) & (succ >= 0) & ~ring
        dist = np.where(same & (ds > _F0), ds, np.where(on_succ, L - s0 + s, _INF))
    # Gathers by flat index (row offset + column): 2-D fancy indexing costs ~3x more at B=1.
    j = dist.argmin(axis=1)
    best = dist.take(_row_offsets(B, N - 1) + j)
    j = j + _I1  # the actor's column
    at = _row_offsets(B, N) + j
    has = np.isfinite(best)
    n_has = np.count_nonzero(has)
    if n_has == 0:
        return _no_leader(B)
    gap = best - _HALF * (state.length.take(at) + state.length[:, 0])
    closing = state.speed[:, 0] - state.speed.take(at)
    if n_has == B:
        return gap, closing, j
    return np.where(has, gap, _INF), np.where(has, closing, _F0), np.where(has, j, -1)


def _no_leader(B: int) -> tuple[F32, F32, NDArray[np.int64]]:
    """What :func:`ego_leader` returns for envs without a leader: inf gap, no closing, -1."""
    return np.full(B, np.inf, np.float32), np.zeros(B, np.float32), np.full(B, -1, np.int64)


def off_road(state: WorldState, road: R.LaneGraph) -> BoolArr:
    """Ego centre outside the drivable area: beyond the left/right edge or past a lane end."""
    lane, s, d = state.lane[:, 0], state.s[:, 0], state.d[:, 0]
    left = R.interp(road, road.left_edge, lane, s)
    right = R.interp(road, road.right_edge, lane, s)
    beyond = state.lane_dist[:, 0] > np.abs(d) + OFF_MAP_SLACK_M
    out: BoolArr = (d > left) | (-d > right) | beyond
    return out


def evaluate(
    prev: WorldState,
    actions: NDArray[np.floating],
    nxt: WorldState,
    road: R.LaneGraph,
    cfg: MetricsConfig | None = None,
) -> Outcome:
    """Terms, events and episode ends of the step ``prev -> nxt``.

    Args:
        prev, nxt: states before and after the step (B, N).
        actions: the executed ego actions (B, 2).
        road: the lane graph.
        cfg: thresholds; default :class:`MetricsConfig`.
    """
    del actions  # every term here is read off the states
    cfg = cfg or MetricsConfig()
    k = _cfg_constants(cfg)
    B = nxt.x.shape[0]
    dt = np.maximum(nxt.time - prev.time, _DT_MIN)
    hit = ego_collisions(nxt.x, nxt.y, nxt.yaw, nxt.length, nxt.width, nxt.valid)
    collision = hit[:, 0]
    if hit.shape[1] > 1 and np.count_nonzero(collision):
        first = np.argmax(hit[:, 1:], axis=1) + 1
        ctype = np.where(collision, nxt.actor_type[_rows(B), first], -1).astype(np.int8)
    else:  # the ego alone, or nobody hit: what the select gives there
        ctype = _no_hit_type(B).copy()

    lane, d = nxt.lane[:, 0], nxt.d[:, 0]
    i, f = R.segment_index(road, lane, nxt.s[:, 0])
    left, right, limit, heading = R.edges_limit_heading(road, i, f)
    he = nxt.yaw[:, 0] - heading
    he -= _TWO_PI * np.floor((he + _PI) / _TWO_PI)
    # Lateral half-extent of the ego's box across the lane.
    ext = _HALF * (nxt.width[:, 0] * np.abs(np.cos(he)) + nxt.length[:, 0] * np.abs(np.sin(he)))
    edge = (d + ext > left) | (d - ext < -right)
    rules = rules_of(road)
    if rules is not None and np.count_nonzero(edge):
        # Inside a junction a connector's lane edges are not kerbs: the junction area is open
        # between its lanes (CARLA counts kerbs and props there, not lane lines).
        edge &= ~rules.junctions.connector.take(lane)
    beyond = nxt.lane_dist[:, 0] > np.abs(d) + _SLACK
    offr = (d > left) | (-d > right) | beyond

    done = nxt.route.length - nxt.progress <= _DONE_M
    was_done = prev.route.length - prev.progress <= _DONE_M
    completed = done & ~was_done
    deviation = nxt.off_route_m > k.route_deviation_m
    blocked = nxt.stopped_s >= k.blocked_s

    gap, closing, leader = ego_leader(nxt, road)
    v = nxt.speed[:, 0]
    ttc = np.where(
        gap <= _F0,
        _F0,
        np.where(closing > _CLOSING_MIN, gap / np.maximum(closing, _CLOSING_MIN), _INF),
    )
    headway = np.where(
        np.isfinite(gap) & (v > _SPEED_MIN),
        np.maximum(gap, _F0) / np.maximum(v, _SPEED_MIN),
        _INF,
    )
    jerk = (nxt.accel[:, 0] - prev.accel[:, 0]) / dt
    hard = nxt.accel[:, 0] <= k.neg_hard_brake
    prev_lane = prev.lane[:, 0]
    lane_change = lane != prev_lane
    if np.count_nonzero(lane_change):  # only then can it have crossed a marking
        lane_change &= (road.left[prev_lane] == lane) | (road.right[prev_lane] == lane)
    wrong_way = np.abs(he) > k.wrong_way_rad

    progress = nxt.progress - prev.progress
    veh = cfg.vehicle
    if k.fuel_j_per_ml is not None:  # one engine evaluation serves both (the model is costly)
        assert isinstance(veh, FuelParams)
        rate_ml = fuel_rate_flat(v, nxt.accel[:, 0], veh).astype(np.float32)
        power_w = rate_ml * k.fuel_j_per_ml
    else:
        flat = np.zeros_like(v)  # [-] grade: procedural roads are flat until maps bring elevation
        rate_ml = np.zeros(B, np.float32)
        power_w = energy_rate(v, nxt.accel[:, 0], flat, veh).astype(np.float32)
    fuel_ml = rate_ml * dt
    risk = np.maximum(_F0, _F1 - ttc / k.ttc_risk_s)
    limit_floor = np.maximum(limit, _LIMIT_MIN)
    speed_track = np.maximum(_F0, _F1 - np.abs(v - limit) / limit_floor)
    overspeed = np.maximum(_F0, v / limit_floor - _F1)
    carl = (
        (progress / np.maximum(nxt.route.length, _ROUTE_MIN))
        * np.maximum(_F0, _F1 - overspeed)
        * (_F1 - _HALF * risk)
    )
    # The 0/1 terms and the two always-zero ones, each a row of one float32 array.
    flags = np.array([collision, offr, completed], np.float32)
    zeros = np.zeros((2, B), np.float32)
    terms = {
        "progress": progress,
        "speed_tracking": speed_track,
        "fuel": fuel_ml,
        "time": dt,
        "collision": flags[0],
        "off_road": flags[1],
        "red_light": _red_light(prev, nxt, road, zeros[0]),
        "ttc_risk": risk,
        "comfort": np.abs(jerk),
        "takeover": zeros[1],
        "route_completed": flags[2],
        "carl": carl,
        "speed": v.copy(),  # not a view of the state
    }
    terminated = done | deviation | blocked
    if cfg.terminate_on_collision:
        terminated |= collision
    if cfg.terminate_on_off_road:
        terminated |= offr
    truncated = ~terminated & (nxt.time >= nxt.time_limit - _TIME_EPS)
    return Outcome(
        terms=terms,
        collided_with=hit,
        collision=collision,
        collision_type=ctype,
        road_edge=edge,
        off_road=offr,
        route_completed=completed,
        route_deviation=deviation,
        blocked=blocked,
        terminated=terminated,
        truncated=truncated,
        ttc=ttc,
        headway=headway,
        leader=leader,
        jerk=jerk,
        hard_brake=hard,
        lane_change=lane_change,
        wrong_way=wrong_way,
        speed_limit=limit,
        fuel_rate=rate_ml,
        energy_rate=power_w,
        road_at_ego=(left, right, limit, he),
    )


def _red_light(prev: WorldState, nxt: WorldState, road: R.LaneGraph, none: F32) -> F32:
    """(B,) 1.0 where the ego ran a red light this step (:func:`sim.lights.ran_red_light`)."""
    rules = rules_of(road)
    if rules is None or not rules.lights.num_lights:
        return none
    ran = red_light_events(
        rules,
        road,
        prev.lane[:, 0],
        prev.s[:, 0],
        nxt.lane[:, 0],
        nxt.s[:, 0],
        prev.time,
        plan_offset(prev),
    )
    return ran.astype(np.float32)


def reward(terms: dict[str, F32], weights: RewardWeights) -> F32:
    """Weighted sum of the named terms (B,)."""
    w32 = _nonzero_weights(weights)
    total = np.zeros(next(iter(terms.values())).shape, np.float32)
    for name, value in terms.items():
        w = w32.get(name)
        if w is not None:
            total += w * value
    return total


@lru_cache(maxsize=16)
def _nonzero_weights(weights: RewardWeights) -> dict[str, F32]:
    """The nonzero weights as 0-d float32 arrays, by term name (terms without a weight count 0).
    0-d arrays rather than float32 scalars: a scalar operand costs a conversion per multiply."""
    return {name: np.array(w, np.float32) for name, w in weights.as_dict().items() if w}


__all__ = [
    "TERM_NAMES",
    "ActorType",
    "MetricsConfig",
    "Outcome",
    "RewardWeights",
    "ego_leader",
    "evaluate",
    "off_road",
    "reward",
]
