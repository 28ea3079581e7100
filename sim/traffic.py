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
with no leader ahead continues into its successor lane (one hop), which also closes ring roads,
and on through further successors while they start within ``LOOKAHEAD_M`` (towns' short lane
sections would otherwise hide a car a few metres on).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from sim.road import LaneGraph, chosen_successor

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

IDM_DELTA = 4.0  # [-] acceleration exponent (Treiber's standard value)
MAX_DECEL = 9.0  # [m/s^2] traffic emergency braking; IDM's raw output is unbounded below
FREE_GAP = 1e4  # [m] gap reported when nothing is ahead
STOP_V0 = 0.1  # [m/s] desired speeds below this mean "stand still"

# Typed 0-d constants: a Python scalar operand costs ~0.3 us of conversion per ufunc call, which
# at B=1 is as much as the arithmetic. Same values as the Python scalars they replace (NEP 50
# casts those to the array's dtype).
_F0 = np.array(0.0, np.float32)
_F1 = np.array(1.0, np.float32)
_F2 = np.array(2.0, np.float32)
_MIN_GAP = np.array(0.01, np.float32)
_STOP_V0 = np.array(STOP_V0, np.float32)
_DELTA = np.array(IDM_DELTA, np.float32)
_NEG_MAX_DECEL = np.array(-MAX_DECEL, np.float32)
_FREE_GAP = np.array(FREE_GAP, np.float32)
_F64_1 = np.array(1.0, np.float64)
_I0 = np.array(0, np.int32)
_I1 = np.array(1, np.int32)
_NONE = np.array(-1, np.int64)
_S_PAD = np.zeros(2, np.float32)


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
    s_star = min_gap + np.maximum(_F0, v * headway + v * dv / (_F2 * np.sqrt(a_max * b_comf)))
    g = np.maximum(gap, _MIN_GAP)  # [m] touching bumpers: maximal interaction, no division by 0
    stopping = v0 < _STOP_V0
    ratio = v / np.where(stopping, _F1, v0)
    # Above the desired speed, plain IDM brakes with a (v / v0)^4 that explodes (a vehicle 4x
    # too fast brakes at 255 a); like the improved IDM we cap free-road braking at b_comf.
    floor = -b_comf / a_max
    free_road = np.maximum(_F1 - ratio**_DELTA, floor)
    if np.count_nonzero(stopping):
        free = np.where(stopping, np.where(v > _F0, floor, _F0), free_road)
    else:  # nobody wants to stand still (the usual case): skip two selects
        free = free_road
    acc = a_max * (free - np.square(s_star / g))
    out: F32 = np.maximum(acc, _NEG_MAX_DECEL).astype(np.float32, copy=False)
    return out


@dataclass(frozen=True)
class SortedEntries:
    """Actor entries sorted by (env, lane, s). Arrays (M,), M = 2 B N + 2.

    The last two entries are sentinels in a group past every environment's (key larger than
    any real key, ``group == B * groups_per_env``, ``actor == -1``): a search lands on at most
    the first of them and may step one further, so lookups need no bounds checks.
    """

    keys: F64
    actor: I64  # flat actor index b * N + j
    group: I64
    s: F32
    span: float
    groups_per_env: int


@lru_cache(maxsize=64)
def _entry_layout(B: int, N: int, groups_per_env: int) -> tuple[I64, I64, I32, NDArray[np.bool_]]:
    """Constant parts of the entry arrays for (B, N): (group base per entry, actor per entry,
    lane and validity padding of the two sentinels). Read-only: they are shared across steps."""
    env = np.repeat(np.arange(B, dtype=np.int64), N) * groups_per_env
    sentinel = np.full(2, B * groups_per_env, np.int64)
    base = np.concatenate([env, env, sentinel])
    flat = np.arange(B * N, dtype=np.int64)
    actor = np.concatenate([flat, flat, np.full(2, -1, np.int64)])
    pad_lane = np.zeros(2, np.int32)
    pad_valid = np.ones(2, np.bool_)
    for a in (base, actor, pad_lane, pad_valid):
        a.flags.writeable = False
    return base, actor, pad_lane, pad_valid


def sort_entries(
    g: LaneGraph,
    lane: I32,
    s: F32,
    valid: NDArray[np.bool_],
    lane2: I32,
    s2: F32,
    positions: bool = True,
) -> tuple[SortedEntries, I64 | None]:
    """Build and sort entries. ``lane2 < 0`` marks no secondary entry.

    Returns:
        (entries, position of each actor's primary entry in sorted order (B * N,); None with
        ``positions=False``, for callers that only search the entries).
    """
    B, N = lane.shape
    L = g.num_lanes
    base, actor, pad_lane, pad_valid = _entry_layout(B, N, L + 1)
    lanes = np.concatenate([lane.reshape(-1), lane2.reshape(-1), pad_lane])
    used = np.concatenate([valid.reshape(-1), (valid & (lane2 >= _I0)).reshape(-1), pad_valid])
    # Invalid actors and absent secondaries go to the per-env dummy lane L, never queried.
    group = base + np.where(used, lanes, L)
    sv = np.concatenate([s.reshape(-1), s2.reshape(-1), _S_PAD]).astype(np.float32, copy=False)
    keys = group * g.entry_span + sv  # int64 * float64: the group converts exactly
    order = keys.argsort(kind="stable")
    span = float(g.entry_span)
    ent = SortedEntries(
        keys.take(order), actor.take(order), group.take(order), sv.take(order), span, L + 1
    )
    if not positions:
        return ent, None
    pos = np.empty(order.size, np.int64)
    pos[order] = np.arange(order.size)
    return ent, pos[: B * N]


def find_leader(
    ent: SortedEntries,
    g: LaneGraph,
    env: I64,
    lane: I32,
    s: F32,
    self_actor: I64,
    choice: I32,
) -> tuple[I64, F32]:
    """Nearest entry ahead on ``lane`` (continuing into the successor ``choice`` picks, and on
    through successors while within ``LOOKAHEAD_M``).

    Returns:
        (flat actor index or -1, centre distance ahead [m]; FREE_GAP where none).
    """
    grp = env * ent.groups_per_env + lane
    # g.entry_span is ent.span as a 0-d float64: the same keys without a scalar conversion.
    idx = ent.keys.searchsorted(grp * g.entry_span + s, side="right")
    # Skip our own secondary/primary entry at the same s (equal key sorts next to us). The
    # sentinels make idx and idx + 1 valid indices.
    idx += (ent.group.take(idx) == grp) & (ent.actor.take(idx) == self_actor)
    hit = ent.group.take(idx) == grp
    leader = np.where(hit, ent.actor.take(idx), _NONE)
    dist = np.where(hit, ent.s.take(idx) - s, _FREE_GAP).astype(np.float32, copy=False)
    # Nothing ahead on this lane: first entry of the successor lane.
    if np.count_nonzero(hit) < hit.size:
        miss = (~hit).nonzero()[0]
        ln = lane.take(miss)
        nsucc, succ = chosen_successor(g, ln, choice.take(miss))
        sg = env.take(miss) * ent.groups_per_env + succ
        j = ent.keys.searchsorted(sg * g.entry_span - _F64_1, side="left")
        hit2 = (
            (nsucc > _I0) & (ent.group.take(j) == sg) & (ent.actor.take(j) != self_actor.take(miss))
        )
        leader[miss] = np.where(hit2, ent.actor.take(j), _NONE)
        rest = g.lane_length.take(ln) - s.take(miss)
        d2 = rest + ent.s.take(j)
        dist[miss] = np.where(hit2, d2, _FREE_GAP)
        if np.count_nonzero(nsucc):
            _beyond_short_lanes(
                ent, g, env, miss, succ, rest, self_actor, choice, hit2, leader, dist
            )
    return leader, dist


LOOKAHEAD_M = 60.0  # [m] a lane this close ahead is searched even when lanes in between are short
LOOKAHEAD_HOPS = 6  # further lanes searched (CARLA towns have runs of sections a few metres long)


def _beyond_short_lanes(
    ent: SortedEntries,
    g: LaneGraph,
    env: I64,
    miss: I64,
    succ: I32,
    rest: F32,
    self_actor: I64,
    choice: I32,
    hit2: NDArray[np.bool_],
    leader: I64,
    dist: F32,
) -> None:
    """Continue :func:`find_leader`'s search past a successor lane that ends within
    ``LOOKAHEAD_M`` (up to ``LOOKAHEAD_HOPS`` more lanes, by the same choice); writes found
    leaders into ``leader``/``dist`` at ``miss``. Highways never get here with work to do:
    their lanes end without successors or loop onto themselves (longer than the lookahead)."""
    covered = rest + g.lane_length.take(np.maximum(succ, 0))
    open_ = ~hit2 & (succ >= 0) & (covered < LOOKAHEAD_M)
    cur = np.maximum(succ, 0).astype(np.int32, copy=False)
    ch = choice.take(miss)
    me = self_actor.take(miss)
    base = env.take(miss) * ent.groups_per_env
    for _ in range(LOOKAHEAD_HOPS):
        if not np.count_nonzero(open_):
            return
        n, nxt = chosen_successor(g, cur, ch)
        ok = open_ & (n > _I0)
        nxt = np.where(ok, nxt, 0).astype(np.int32, copy=False)
        sg = base + nxt
        j = ent.keys.searchsorted(sg * g.entry_span - _F64_1, side="left")
        h = ok & (ent.group.take(j) == sg) & (ent.actor.take(j) != me)
        if np.count_nonzero(h):
            at = miss[h]
            leader[at] = ent.actor.take(j[h])
            dist[at] = (covered + ent.s.take(j))[h]
        covered = covered + g.lane_length.take(nxt)
        open_ = ok & ~h & (covered < LOOKAHEAD_M)
        cur = nxt


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
    idx = np.searchsorted(ent.keys, grp * ent.span + s, side="left") - 1
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
