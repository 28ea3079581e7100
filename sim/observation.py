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

With ``ObsConfig(urban=True)`` the urban fields of :mod:`sim.urban_obs` follow (next light's
state and distance, junction distance, a pedestrian flag per nearby actor: ``4 + K`` more). It
is off by default, so the default layout (and every checkpoint trained on it) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.state import WorldState

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]

ACTOR_FEATURES = 9  # per nearby actor, see the module table
TWO_PI = 2.0 * np.pi
OBS_BOUND = 10.0  # every field is clipped to +-this (scaled units): keeps outliers finite
MAX_SENSE_M = 100.0  # [m] actors further than this are not observed (beyond a mirror's range)


@dataclass(frozen=True)
class ObsConfig:
    """What the vector observation contains."""

    num_actors: int = 8
    curvature_ahead_m: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0, 100.0)
    urban: bool = False  # append sim.urban_obs's fields (lights, junctions, pedestrians)


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
    ] + (
        [
            ("light_red", 1),
            ("light_yellow", 1),
            ("light_distance", 1),
            ("junction_distance", 1),
            ("actor_pedestrian", cfg.num_actors),
        ]
        if cfg.urban
        else []
    )


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


# fields observe() assembles apart from the scaled scalars: the actors and the urban block
_BLOCKS = (
    "actors",
    "light_red",
    "light_yellow",
    "light_distance",
    "junction_distance",
    "actor_pedestrian",
)


@lru_cache(maxsize=16)
def _scalar_layout(cfg: ObsConfig) -> tuple[F32, F32, I32, tuple[str, ...]]:
    """Constants of :func:`observe` for ``cfg``: the divisor of each non-actor column (1 where
    the field is scaled before, by a product or a per-env value), the curvature look-ahead
    distances [m], a zero (C,) int32 row that broadcasts a lane index over them and the
    non-actor field names in layout order."""
    scale = {
        "speed": 30.0,
        "accel": 5.0,
        "steer": 0.6,
        "lane_offset": 2.0,
        "heading_error": np.pi,
        "curvature_ahead": 1.0,  # times 50 before
        "edge_left": 10.0,
        "edge_right": 10.0,
        "speed_limit": 30.0,
        "route_progress": 1.0,  # divided by the per-env route length before
        "route_remaining": 500.0,
    }
    cols = [scale[name] for name, n in obs_fields(cfg) if name not in _BLOCKS for _ in range(n)]
    ahead = np.asarray(cfg.curvature_ahead_m, np.float32)
    out = (np.array(cols, np.float32), ahead, np.zeros(ahead.size, np.int32))
    for arr in out:
        arr.flags.writeable = False
    names = tuple(name for name, _ in obs_fields(cfg) if name not in _BLOCKS)
    return (*out, names)


_PI = np.array(np.pi, np.float32)
_TWO_PI = np.array(TWO_PI, np.float32)
_F0 = np.array(0.0, np.float32)
_CURV = np.array(50.0, np.float32)
_MIN_ROUTE = np.array(1e-3, np.float32)
_MAX_REMAINING = np.array(500.0, np.float32)
_BOUND = np.array(OBS_BOUND, np.float32)
_NEG_BOUND = np.array(-OBS_BOUND, np.float32)


def observe(
    state: WorldState,
    road: R.LaneGraph,
    cfg: ObsConfig = ObsConfig(),
    road_at_ego: tuple[F32, F32, F32, F32] | None = None,
) -> F32:
    """Observation (B, obs_dim(cfg)) float32 of every environment's ego.

    ``road_at_ego``: the ego's edges, speed limit and heading error when the caller has them
    already (:attr:`sim.metrics.Outcome.road_at_ego` of the step that made ``state``).

    The non-actor fields are gathered as (B, size) numerators in :func:`obs_fields` order and
    scaled by one division: at B=1 each array op costs about a microsecond whatever its size,
    so one concatenate and one divide beat a slice assignment per field.
    """
    B, _N = state.x.shape
    lane, s, d = state.lane[:, 0], state.s[:, 0], state.d[:, 0]
    scale, ahead, zeros_c, names = _scalar_layout(cfg)
    if road_at_ego is None:
        left, right, limit, heading = R.edges_limit_heading(road, *R.segment_index(road, lane, s))
        head_err = state.yaw[:, 0] - heading
        head_err = head_err - _TWO_PI * np.floor((head_err + _PI) / _TWO_PI)
    else:
        left, right, limit, head_err = road_at_ego
    la = lane[:, None] + zeros_c
    sa = (s[:, None] + ahead[None, :]).astype(np.float32, copy=False)
    choice = state.route_choice[:, :1] + zeros_c
    la, sa, _ = R.advance(road, la, sa, choice, max_hops=4)
    sa = np.minimum(sa, road.lane_length.take(la))
    rl = np.maximum(state.route.length, _MIN_ROUTE)
    remaining = np.minimum(np.maximum(rl - state.progress, _F0), _MAX_REMAINING)
    numerators = {
        "speed": state.speed[:, :1],
        "accel": state.accel[:, :1],
        "steer": state.steer[:, :1],
        "lane_offset": d[:, None],
        "heading_error": head_err[:, None],
        "curvature_ahead": R.interp(road, road.curvature, la, sa) * _CURV,
        "edge_left": (left - d)[:, None],
        "edge_right": (right + d)[:, None],
        "speed_limit": limit[:, None],
        "route_progress": (state.progress / rl)[:, None],
        "route_remaining": remaining[:, None],
    }
    num = np.concatenate([numerators[name] for name in names], 1)
    parts: list[NDArray[np.generic]] = [num / scale, _nearby(state, cfg.num_actors).reshape(B, -1)]
    if cfg.urban:
        from sim.urban_obs import urban_fields

        parts.append(urban_fields(state, road, cfg.num_actors, MAX_SENSE_M))
    out: F32 = np.concatenate(parts, 1)
    np.minimum(out, _BOUND, out=out)
    np.maximum(out, _NEG_BOUND, out=out)
    return out


def _nearby(state: WorldState, k: int) -> F32:
    """(B, K, ACTOR_FEATURES) features of the K nearest valid actors in the ego frame."""
    B, N = state.x.shape
    dx = state.x - state.x[:, :1]
    dy = state.y - state.y[:, :1]
    dist2 = dx * dx + dy * dy
    ok = (dist2 <= _MAX_SENSE2) & _others(N)  # never the ego itself
    ok &= state.valid
    dist2 = np.where(ok, dist2, _INF)
    m = min(k, N - 1)
    if m <= 0:
        return np.zeros((B, k, ACTOR_FEATURES), np.float32)
    # The m nearest (unordered, then ordered): argpartition unless every other actor is kept.
    near = dist2.argpartition(m, axis=1) if m < N - 1 else dist2.argsort(axis=1)
    idx = near[:, :m]
    # Gathers by flat index (row offset + column): 2-D fancy indexing costs ~3x more at B=1.
    rows = _row_offsets(B, N)
    idx = idx.take(dist2.take(rows + idx).argsort(axis=1) + _row_offsets(B, m))
    pick = rows + idx

    def g(a: F32) -> F32:
        return a.take(pick)

    valid = ok.take(pick)  # == isfinite of the picked distances: finite exactly where ok
    yaw0, v0 = state.yaw[:, :1], state.speed[:, :1]
    c, sn = np.cos(yaw0), np.sin(yaw0)
    yaw_k, v_k = g(state.yaw), g(state.speed)
    # Offset and relative velocity rotated into the ego frame together, as (2, B, m) stacks
    # [dx, dvx] and [dy, dvy]: the same elementwise maths in half the calls.
    fx = np.array([g(dx), v_k * np.cos(yaw_k) - v0 * c])
    fy = np.array([g(dy), v_k * np.sin(yaw_k) - v0 * sn])
    fwd = c * fx + sn * fy
    left = -sn * fx + c * fy
    dyaw = yaw_k - yaw0
    # (F, B, m) then a transposed view: np.array of a list is ~3x cheaper than np.stack(-1).
    # One division by the per-feature scale (1 where unscaled: x / 1 is exact).
    f = np.array(
        [
            fwd[0],
            left[0],
            fwd[1],
            left[1],
            np.cos(dyaw),
            np.sin(dyaw),
            g(state.length),
            g(state.width),
            valid,  # the valid flag: 1 (as float32) wherever the select below keeps the row
        ]
    )
    f = np.where(valid, f / _FEATURE_SCALE, _F0).transpose(1, 2, 0)
    if m == k:
        return f
    feats = np.zeros((B, k, ACTOR_FEATURES), np.float32)
    feats[:, :m] = f
    return feats


@lru_cache(maxsize=64)
def _others(N: int) -> NDArray[np.bool_]:
    """(1, N) mask of every actor but the ego; read-only, shared across steps."""
    mask = np.ones((1, N), np.bool_)
    mask[0, 0] = False
    mask.flags.writeable = False
    return mask


@lru_cache(maxsize=64)
def _row_offsets(B: int, n: int) -> NDArray[np.int64]:
    """(B, 1) flat offset of each row of a (B, n) array; read-only, shared across steps."""
    rows = np.arange(0, B * n, n)[:, None]
    rows.flags.writeable = False
    return rows


_INF = np.array(np.inf, np.float32)
_MAX_SENSE2 = np.array(MAX_SENSE_M**2, np.float32)
_S_DX = np.array(50.0, np.float32)
_S_DY = np.array(10.0, np.float32)
_S_V = np.array(30.0, np.float32)
_S_LEN = np.array(10.0, np.float32)
_S_WID = np.array(5.0, np.float32)
# (F, 1, 1) divisor of each actor feature, in the layout of the module table.
_FEATURE_SCALE = np.array(
    [_S_DX, _S_DY, _S_V, _S_V, 1.0, 1.0, _S_LEN, _S_WID, 1.0], np.float32
).reshape(-1, 1, 1)
_FEATURE_SCALE.flags.writeable = False
