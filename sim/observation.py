"""Vector observation of the ego's situation, batched: ``observe(state, road) -> (B, D)``.

Every field is scaled to roughly unit range by the constant in :data:`FIELDS`. Layout (in
order; ``K = ObsConfig.num_actors`` nearest actors, ``C = len(ObsConfig.curvature_ahead_m)``):

=====================  =====  ========  ===========================================================
field                  size   scale     meaning
=====================  =====  ========  ===========================================================
speed                  1      1/30      ego speed [m/s]
accel                  1      1/5       ego longitudinal acceleration [m/s^2]
steer                  1      1/0.6     ego front-wheel angle [rad]
lane_offset            1      1/2       lateral offset from the lane centre [m], + left
heading_error          1      1/pi      ego yaw minus lane heading [rad]
curvature_ahead        C      50        lane curvature [1/m] at the given distances ahead
edge_left              1      1/10      distance from the ego centre to the left road edge [m]
edge_right             1      1/10      distance to the right road edge [m]
speed_limit            1      1/30      speed limit here [m/s]
route_progress         1      1         fraction of the route done
route_remaining        1      1/500     route distance left [m], capped at 500 m
actors                 9 K    below     K nearest valid actors by centre distance, in the ego
                                        frame (x forward, y left): dx/50, dy/10, dvx/30, dvy/30,
                                        cos(dyaw), sin(dyaw), length/10, width/5, valid (0/1);
                                        empty slots are all zero
=====================  =====  ========  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.state import WorldState

F32 = NDArray[np.float32]

ACTOR_FEATURES = 9  # per nearby actor, see the module table
TWO_PI = 2.0 * np.pi
OBS_BOUND = 10.0  # every field is clipped to +-this (scaled units): keeps outliers finite
MAX_SENSE_M = 100.0  # [m] actors further than this are not observed (beyond a mirror's range)


@dataclass(frozen=True)
class ObsConfig:
    """What the vector observation contains."""

    num_actors: int = 8
    curvature_ahead_m: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0, 100.0)


def obs_fields(cfg: ObsConfig) -> list[tuple[str, int]]:
    """(name, size) of each field in order."""
    return [
        ("speed", 1),
        ("accel", 1),
        ("steer", 1),
        ("lane_offset", 1),
        ("heading_error", 1),
        ("curvature_ahead", len(cfg.curvature_ahead_m)),
        ("edge_left", 1),
        ("edge_right", 1),
        ("speed_limit", 1),
        ("route_progress", 1),
        ("route_remaining", 1),
        ("actors", ACTOR_FEATURES * cfg.num_actors),
    ]


@lru_cache(maxsize=16)
def obs_dim(cfg: ObsConfig) -> int:
    return sum(n for _, n in obs_fields(cfg))


@lru_cache(maxsize=16)
def obs_slices(cfg: ObsConfig) -> dict[str, slice]:
    """Where each field sits in the observation vector."""
    out, i = {}, 0
    for name, n in obs_fields(cfg):
        out[name] = slice(i, i + n)
        i += n
    return out


def observe(state: WorldState, road: R.LaneGraph, cfg: ObsConfig = ObsConfig()) -> F32:
    """Observation (B, obs_dim(cfg)) float32 of every environment's ego."""
    B, _N = state.x.shape
    lane, s, d = state.lane[:, 0], state.s[:, 0], state.d[:, 0]
    out = np.empty((B, obs_dim(cfg)), np.float32)
    sl = obs_slices(cfg)
    i, f = R.segment_index(road, lane, s)  # one lookup serves every per-sample field here

    def at(values: F32) -> F32:
        v0 = values[i]
        return v0 + (values[i + 1] - v0) * f

    out[:, sl["speed"]] = state.speed[:, :1] / 30.0
    out[:, sl["accel"]] = state.accel[:, :1] / 5.0
    out[:, sl["steer"]] = state.steer[:, :1] / 0.6
    out[:, sl["lane_offset"]] = d[:, None] / 2.0
    head_err = state.yaw[:, 0] - (road.heading[i] + road.dheading[i] * f)
    head_err -= TWO_PI * np.floor((head_err + np.pi) / TWO_PI)
    out[:, sl["heading_error"]] = head_err[:, None] / np.pi
    ahead = np.asarray(cfg.curvature_ahead_m, np.float32)
    la = np.repeat(lane[:, None], ahead.size, 1)
    sa = (s[:, None] + ahead[None, :]).astype(np.float32)
    choice = np.repeat(state.route_choice[:, :1], ahead.size, 1)
    la, sa, _ = R.advance(road, la, sa, choice, max_hops=4)
    sa = np.minimum(sa, road.lane_length[la])
    out[:, sl["curvature_ahead"]] = R.interp(road, road.curvature, la, sa) * 50.0
    out[:, sl["edge_left"]] = ((at(road.left_edge) - d) / 10.0)[:, None]
    out[:, sl["edge_right"]] = ((at(road.right_edge) + d) / 10.0)[:, None]
    out[:, sl["speed_limit"]] = (at(road.speed_limit) / 30.0)[:, None]
    rl = np.maximum(state.route.length, 1e-3)
    out[:, sl["route_progress"]] = (state.progress / rl)[:, None]
    remaining = np.minimum(np.maximum(rl - state.progress, 0.0), 500.0)
    out[:, sl["route_remaining"]] = (remaining / 500.0)[:, None]
    out[:, sl["actors"]] = _nearby(state, cfg.num_actors).reshape(B, -1)
    np.minimum(out, OBS_BOUND, out=out)
    return np.maximum(out, -OBS_BOUND, out=out)


def _nearby(state: WorldState, k: int) -> F32:
    """(B, K, ACTOR_FEATURES) features of the K nearest valid actors in the ego frame."""
    B, N = state.x.shape
    dx = state.x - state.x[:, :1]
    dy = state.y - state.y[:, :1]
    dist2 = dx * dx + dy * dy
    ok = state.valid.copy()
    ok[:, 0] = False
    ok &= dist2 <= MAX_SENSE_M**2
    dist2 = np.where(ok, dist2, np.inf)
    m = min(k, N - 1)
    feats = np.zeros((B, k, ACTOR_FEATURES), np.float32)
    if m <= 0:
        return feats
    if m < N - 1:
        idx = np.argpartition(dist2, m, axis=1)[:, :m]
    else:
        idx = np.argsort(dist2, axis=1)[:, :m]
    rows = np.arange(B)[:, None]
    order = np.argsort(dist2[rows, idx], axis=1)
    idx = idx[rows, order]

    def g(a: F32) -> F32:
        return a[rows, idx]

    valid = np.isfinite(g(dist2))
    c, sn = np.cos(state.yaw[:, :1]), np.sin(state.yaw[:, :1])
    rx, ry = g(dx), g(dy)
    yaw_k, v_k = g(state.yaw), g(state.speed)
    vx = v_k * np.cos(yaw_k) - state.speed[:, :1] * c
    vy = v_k * np.sin(yaw_k) - state.speed[:, :1] * sn
    dyaw = yaw_k - state.yaw[:, :1]
    f = np.stack(
        [
            (c * rx + sn * ry) / 50.0,
            (-sn * rx + c * ry) / 10.0,
            (c * vx + sn * vy) / 30.0,
            (-sn * vx + c * vy) / 30.0,
            np.cos(dyaw),
            np.sin(dyaw),
            g(state.length) / 10.0,
            g(state.width) / 5.0,
            np.ones_like(rx),
        ],
        -1,
    )
    feats[:, :m] = np.where(valid[..., None], f, 0.0)
    return feats
