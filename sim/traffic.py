"""Traffic: IDM car following, MOBIL lane changes and a batched leader/follower search.

IDM (Treiber, Hennecke, Helbing 2000), for a vehicle at speed ``v`` behind a leader at bumper
gap ``g`` closing at ``dv = v - v_leader``::

    s*(v, dv) = s0 + max(0, v T + v dv / (2 sqrt(a b)))
    a_IDM     = a [1 - (v / v0)^delta - (s* / g)^2]

with desired speed ``v0``, time headway ``T``, jam distance ``s0``, maximum acceleration ``a``,
comfortable deceleration ``b``, ``delta = 4``. On a free road the acceleration falls to 0 at
``v = v0``; in a platoon at speed ``v`` the equilibrium gap is
``s*(v, 0) / sqrt(1 - (v / v0)^delta)``.

MOBIL (Kesting, Treiber, Helbing 2007): a vehicle ``c`` changes to the neighbouring lane when it
is *safe*, the new follower ``n`` would brake no harder than ``b_safe``::

    a~_n >= -b_safe

and *worth it*, its own gain plus ``p`` times its followers' (new ``n``, old ``o``) exceeds the
threshold::

    (a~_c - a_c) + p [(a~_n - a_n) + (a~_o - a_o)] > Delta a_th

Neighbour search. Every actor contributes a *primary* entry (its lane, s) and possibly a
*secondary* one (the lane it is changing into, or for the ego the lane it overlaps). Entries are
sorted once per step by the float64 key ``group * KEY_SPAN + s`` with ``group = env * (L + 1) +
lane``, so an entry's leader is the next entry in sorted order when it shares the group, and any
(env, lane, s) query is one ``searchsorted``: O(B N log(B N)) per step, no all-pairs scan. A lane
with no leader ahead continues into its successor lane (one hop), which also closes ring roads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.road import LaneGraph

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

IDM_DELTA = 4.0  # [-] acceleration exponent (Treiber's standard value)
MAX_DECEL = 9.0  # [m/s^2] traffic emergency braking; IDM's raw output is unbounded below
FREE_GAP = 1e4  # [m] gap reported when nothing is ahead
STOP_V0 = 0.1  # [m/s] desired speeds below this mean "stand still"


def idm_accel(
    v: F32,
    v0: F32,
    gap: F32,
    dv: F32,
    headway: F32,
    min_gap: F32,
    a_max: F32,
    b_comf: F32,
) -> F32:
    """IDM acceleration [m/s^2], elementwise (see module docstring).

    A desired speed below ``STOP_V0`` brakes to a standstill at ``b_comf`` instead of dividing
    by zero; free-road braking above ``v0`` is capped at ``b_comf``; the result is bounded
    below by ``-MAX_DECEL``.
    """
    s_star = min_gap + np.maximum(0.0, v * headway + v * dv / (2.0 * np.sqrt(a_max * b_comf)))
    g = np.maximum(gap, 0.01)  # [m] touching bumpers: maximal interaction, no division by 0
    stopping = v0 < STOP_V0
    ratio = v / np.where(stopping, 1.0, v0)
    # Above the desired speed, plain IDM brakes with a (v / v0)^4 that explodes (a vehicle 4x
    # too fast brakes at 255 a); like the improved IDM we cap free-road braking at b_comf.
    free_road = np.maximum(1.0 - ratio**IDM_DELTA, -b_comf / a_max)
    free = np.where(stopping, np.where(v > 0, -b_comf / a_max, 0.0), free_road)
    acc = a_max * (free - (s_star / g) ** 2)
    out: F32 = np.maximum(acc, -MAX_DECEL).astype(np.float32, copy=False)
    return out


@dataclass(frozen=True)
class SortedEntries:
    """Actor entries sorted by (env, lane, s). Arrays (M,), M = 2 B N."""

    keys: F64
    actor: I64  # flat actor index b * N + j
    group: I64
    s: F32
    span: float
    groups_per_env: int


def sort_entries(
    g: LaneGraph,
    lane: I32,
    s: F32,
    valid: NDArray[np.bool_],
    lane2: I32,
    s2: F32,
) -> tuple[SortedEntries, I64]:
    """Build and sort entries. ``lane2 < 0`` marks no secondary entry.

    Returns:
        (entries, position of each actor's primary entry in sorted order (B * N,)).
    """
    B, N = lane.shape
    L = g.num_lanes
    span = float(2.0 * g.lane_length.max() + 10.0)  # [m] s range inside one group, with margin
    env = np.repeat(np.arange(B, dtype=np.int64), N)
    lane_a = np.where(valid, lane, L).reshape(-1).astype(np.int64)
    lane_b = np.where(valid & (lane2 >= 0), lane2, L).reshape(-1).astype(np.int64)
    group = np.concatenate([env * (L + 1) + lane_a, env * (L + 1) + lane_b])
    sv = np.concatenate([s.reshape(-1), s2.reshape(-1)]).astype(np.float32, copy=False)
    keys = group.astype(np.float64) * span + sv
    order = np.argsort(keys, kind="stable")
    actor = np.concatenate([np.arange(B * N), np.arange(B * N)]).astype(np.int64)
    pos = np.empty(order.size, np.int64)
    pos[order] = np.arange(order.size)
    ent = SortedEntries(keys[order], actor[order], group[order], sv[order], span, L + 1)
    return ent, pos[: B * N]


def _key(ent: SortedEntries, env: I64, lane: I64, s: F32 | F64) -> F64:
    return (env * ent.groups_per_env + lane).astype(np.float64) * ent.span + s


def find_leader(
    ent: SortedEntries,
    g: LaneGraph,
    env: I64,
    lane: I32,
    s: F32,
    self_actor: I64,
    choice: I32,
) -> tuple[I64, F32]:
    """Nearest entry ahead on ``lane`` (continuing one lane into the successor).

    Returns:
        (flat actor index or -1, centre distance ahead [m]; FREE_GAP where none).
    """
    lane64 = lane.astype(np.int64)
    grp = env * ent.groups_per_env + lane64
    idx = np.searchsorted(ent.keys, _key(ent, env, lane64, s), side="right")
    M = ent.keys.size
    ok = idx < M
    ic = np.minimum(idx, M - 1)
    # Skip our own secondary/primary entry at the same s (equal key sorts next to us).
    same = ok & (ent.group[ic] == grp) & (ent.actor[ic] == self_actor)
    idx = np.where(same, idx + 1, idx)
    ok = idx < M
    ic = np.minimum(idx, M - 1)
    hit = ok & (ent.group[ic] == grp)
    leader = np.where(hit, ent.actor[ic], -1)
    dist = np.where(hit, ent.s[ic] - s, FREE_GAP).astype(np.float32, copy=False)
    # Nothing ahead on this lane: first entry of the successor lane.
    miss = np.nonzero(~hit)[0]
    if miss.size:
        ln = lane[miss]
        nsucc = g.num_successors[ln]
        succ = g.successors[ln, choice[miss] % np.maximum(nsucc, 1)].astype(np.int64)
        has = nsucc > 0
        sg = env[miss] * ent.groups_per_env + succ
        j = np.searchsorted(ent.keys, sg.astype(np.float64) * ent.span - 1.0, side="left")
        jc = np.minimum(j, M - 1)
        hit2 = has & (j < M) & (ent.group[jc] == sg) & (ent.actor[jc] != self_actor[miss])
        leader[miss] = np.where(hit2, ent.actor[jc], -1)
        d2 = g.lane_length[ln] - s[miss] + ent.s[jc]
        dist[miss] = np.where(hit2, d2, FREE_GAP)
    return leader, dist


def find_follower(
    ent: SortedEntries,
    g: LaneGraph,
    env: I64,
    lane: I32,
    s: F32,
    self_actor: I64,
) -> tuple[I64, F32]:
    """Nearest entry behind on ``lane`` (continuing one lane into the first predecessor).

    Returns:
        (flat actor index or -1, centre distance behind [m] >= 0; FREE_GAP where none).
    """
    lane64 = lane.astype(np.int64)
    grp = env * ent.groups_per_env + lane64
    idx = np.searchsorted(ent.keys, _key(ent, env, lane64, s), side="left") - 1
    ic = np.maximum(idx, 0)
    same = (idx >= 0) & (ent.group[ic] == grp) & (ent.actor[ic] == self_actor)
    idx = np.where(same, idx - 1, idx)
    ic = np.maximum(idx, 0)
    hit = (idx >= 0) & (ent.group[ic] == grp)
    follower = np.where(hit, ent.actor[ic], -1)
    dist = np.where(hit, s - ent.s[ic], FREE_GAP).astype(np.float32, copy=False)
    miss = np.nonzero(~hit)[0]
    if miss.size:
        ln = lane[miss]
        pred = g.predecessors[ln, 0].astype(np.int64)
        has = pred >= 0
        pg = env[miss] * ent.groups_per_env + np.maximum(pred, 0)
        j = np.searchsorted(ent.keys, (pg + 1).astype(np.float64) * ent.span - 1.0, side="left") - 1
        jc = np.maximum(j, 0)
        hit2 = has & (j >= 0) & (ent.group[jc] == pg) & (ent.actor[jc] != self_actor[miss])
        follower[miss] = np.where(hit2, ent.actor[jc], -1)
        d2 = s[miss] + g.lane_length[np.maximum(pred, 0)] - ent.s[jc]
        dist[miss] = np.where(hit2, d2, FREE_GAP)
    return follower, dist
