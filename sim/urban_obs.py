"""Urban observation fields (opt-in with ``ObsConfig(urban=True)``; :mod:`sim.observation`).

=====================  =====  ========  ===========================================================
field                  size   scale     meaning
=====================  =====  ========  ===========================================================
light_red              1      1         the next traffic light ahead (own lane, or the lane the
                                        ego's route takes next) shows red
light_yellow           1      1         ... shows yellow
light_distance         1      1/100     distance to its stop line [m], 100 when none within 100 m
junction_distance      1      1/100     distance to the next junction [m] (0 inside one), 100
                                        when none within 100 m or two lanes ahead
actor_pedestrian       K      1         1 where the k-th nearest actor (the same order as the
                                        ``actors`` block) is a pedestrian
=====================  =====  ========  ===========================================================

On a road without rules (a highway) the light and junction fields read "none".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.lights import LightState, next_stop_line, state_of
from sim.state import ActorType, WorldState
from sim.traffic_rules import plan_offset, rules_of, states_at

F32 = NDArray[np.float32]

URBAN_RANGE_M = 100.0  # [m] lights and junctions further than this read "none"
URBAN_SCALAR_FIELDS = ("light_red", "light_yellow", "light_distance", "junction_distance")


def urban_fields(state: WorldState, road: R.LaneGraph, k: int, sense_m: float) -> F32:
    """(B, 4 + K) scaled urban fields (module table) of every environment's ego.

    Args:
        k: nearby-actor slots of the observation; ``sense_m`` its sensing range [m].
    """
    B, N = state.x.shape
    out = np.zeros((B, len(URBAN_SCALAR_FIELDS) + k), np.float32)
    out[:, 2] = 1.0
    out[:, 3] = 1.0
    lane, s = state.lane[:, 0], state.s[:, 0]
    rules = rules_of(road)
    if rules is not None:
        choice = state.route_choice[:, 0]
        if rules.lights.num_lights:
            light, dist = next_stop_line(rules.lights, road, lane, s, choice)
            near = (light >= 0) & (dist <= URBAN_RANGE_M)
            st = state_of(states_at(rules, state.time, plan_offset(state)), light[:, None])[:, 0]
            out[:, 0] = near & (st == LightState.RED)
            out[:, 1] = near & (st == LightState.YELLOW)
            out[:, 2] = np.where(near, dist / URBAN_RANGE_M, 1.0)
        conn = rules.junctions.connector
        rest = road.lane_length.take(lane) - s
        nsucc, succ = R.chosen_successor(road, lane, choice)
        has1 = (nsucc > 0) & conn.take(np.maximum(succ, 0))
        succ_c = np.maximum(succ, 0)
        n2, succ2 = R.chosen_successor(road, succ_c, choice)
        has2 = (nsucc > 0) & (n2 > 0) & conn.take(np.maximum(succ2, 0))
        dist_j = np.where(
            conn.take(lane),
            0.0,
            np.where(has1, rest, np.where(has2, rest + road.lane_length.take(succ_c), np.inf)),
        )
        out[:, 3] = np.minimum(dist_j, URBAN_RANGE_M) / URBAN_RANGE_M
    if k and N > 1:
        out[:, len(URBAN_SCALAR_FIELDS) :] = _nearest_pedestrians(state, k, sense_m)
    return out


def _nearest_pedestrians(state: WorldState, k: int, sense_m: float) -> F32:
    """(B, K) pedestrian flags of the K nearest valid actors, in the order
    :func:`sim.observation._nearby` lists them (the same selection: distance, then index)."""
    B, N = state.x.shape
    dx = state.x - state.x[:, :1]
    dy = state.y - state.y[:, :1]
    dist2 = dx * dx + dy * dy
    ok = (dist2 <= np.float32(sense_m * sense_m)) & state.valid
    ok[:, 0] = False
    dist2 = np.where(ok, dist2, np.float32(np.inf))
    m = min(k, N - 1)
    near = dist2.argpartition(m, axis=1) if m < N - 1 else dist2.argsort(axis=1)
    idx = near[:, :m]
    rows = (np.arange(B) * N)[:, None]
    idx = idx.take(dist2.take(rows + idx).argsort(axis=1) + (np.arange(B) * m)[:, None])
    pick = rows + idx
    flags = (state.actor_type.take(pick) == ActorType.PEDESTRIAN) & np.isfinite(dist2.take(pick))
    out = np.zeros((B, k), np.float32)
    out[:, :m] = flags
    return out
