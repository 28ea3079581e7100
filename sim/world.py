"""The embedded simulator: pure ``reset`` and ``step`` over :class:`sim.state.WorldState`.

``reset(specs, road, rngs, num_actors)`` instantiates one spec per environment (B of them) on a
shared lane graph; ``step(state, actions, params, road)`` advances every environment by ``dt``:

1. scripted events fire (time or ego-gap triggers);
2. traffic decides: IDM acceleration behind the leader found by the batched sorted search,
   MOBIL lane changes (each vehicle reconsiders once per ``mobil_interval_s``, staggered);
3. traffic moves along its lanes (ballistic update, successor lanes at lane ends, smooth
   lateral lane-change profile), the ego moves by the kinematic bicycle model;
4. the ego is projected back to lane coordinates and its route progress updated.

On maps with traffic rules (urban layouts, OpenDRIVE towns: :mod:`sim.traffic_rules`) step 2
also caps every vehicle's IDM acceleration by virtual standing leaders at red/yellow stop lines
(:mod:`sim.lights`), at junction give-way points and before lanes that taper out
(:mod:`sim.junctions`), and by the speed limit of the lane ahead; vehicles draw a new branch
choice whenever they enter a lane, nobody spawns inside a junction, and the ego's projection
follows its chosen branch at forks and through lane sections shorter than a step. Pedestrians
(:mod:`sim.pedestrians`) start their scripted crossings before other events fire, walk across
laterally, and are listed in the neighbour search only while on (or about to step onto) a lane.
With a planned route (``ego.waypoints``) the ego's route choice takes the route's branch.

Collisions, off-road and route completion are read off the new state by :mod:`sim.metrics`,
so the CARLA backend scores with the same code. No randomness in ``step``: the same state and
actions give bit-identical results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from sim import pedestrians as P
from sim import road as R
from sim.dynamics import VehicleParams, bicycle_step, sanitize_action
from sim.road_union import lane_components
from sim.routes import plan_through, route_lanes, section_chain, successor_slot
from sim.scenario import (
    ActorSpec,
    BehaviorSpec,
    EgoSpec,
    ScenarioSpec,
    SpecError,
    check_on_road,
    ego_route_points,
    road_length,
)
from sim.state import (
    ActorType,
    Behavior,
    EventKind,
    Events,
    Route,
    TriggerKind,
    WorldState,
)
from sim.traffic import (
    FREE_GAP,
    find_follower,
    find_leader,
    idm_accel,
    sort_entries,
)
from sim.traffic_rules import next_choice, plan_offset, rule_accel, rules_of, spawn_speed_cap

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
_S = TypeVar("_S", bound=np.generic)

PHASE_RANGE = 2520  # decision phases drawn at reset; divisible by every period up to 10 steps
BLOCKED_SPEED = 0.1  # [m/s] below this the ego counts as stopped (Leaderboard's blocked test)
STOPPED_EPS = 0.05  # [m/s] a scripted brake ends once speed is within this of its target


@dataclass(frozen=True)
class SimParams:
    """Step parameters shared by all environments."""

    dt: float = 0.1  # [s] 0.05 for CARLA parity
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    mobil_interval_s: float = 1.0  # [s] how often each vehicle reconsiders its lane


# ---------------------------------------------------------------------------------------------
# reset
# ---------------------------------------------------------------------------------------------

_BEHAVIOR_FIELDS = (
    "v0",
    "headway",
    "min_gap",
    "a_max",
    "b_comf",
    "politeness",
    "b_safe",
    "lc_threshold",
    "lc_duration",
)
_EVENT_KIND = {
    "set_speed": EventKind.SET_SPEED,
    "stop": EventKind.STOP,
    "lane_change": EventKind.LANE_CHANGE,
    "cross": EventKind.CROSS,
}


def _behavior_row(b: BehaviorSpec, limit: float) -> list[float]:
    v0 = b.v0 if b.v0 is not None else limit * b.speed_factor
    thr = b.lc_threshold if b.lane_change else np.inf
    return [v0, b.headway, b.min_gap, b.a_max, b.b_comf, b.politeness, b.b_safe, thr, b.lc_duration]


def _route_chain(
    g: R.LaneGraph, lane: int, s_ref0: float, length: float
) -> tuple[list[int], list[float], list[int]]:
    """Sections from the start lane following first successors until ``length`` is covered,
    and the lane taken through each."""
    secs, cum, lanes = [int(g.section[lane])], [-s_ref0], [lane]
    cur = lane
    total = float(g.section_length[g.section[lane]]) - s_ref0
    while total < length + 1e-3:
        nxt = int(g.successors[cur, 0])
        if nxt < 0 or len(secs) > 10_000:
            break
        cum.append(cum[-1] + float(g.section_length[g.section[cur]]))
        secs.append(int(g.section[nxt]))
        lanes.append(nxt)
        total += float(g.section_length[g.section[nxt]])
        cur = nxt
    cum.append(cum[-1] + float(g.section_length[g.section[cur]]))
    return secs, cum, lanes


@dataclass
class _Actors:
    """Actors of one environment as columns (n,); ``beh`` is (n, 9) in _BEHAVIOR_FIELDS order."""

    lane: NDArray[np.int32]
    s: NDArray[np.float32]
    d: NDArray[np.float32]
    speed: NDArray[np.float32]
    length: NDArray[np.float32]
    width: NDArray[np.float32]
    atype: NDArray[np.int8]
    beh: NDArray[np.float32]

    @staticmethod
    def empty() -> _Actors:
        f = np.zeros(0, np.float32)
        return _Actors(
            np.zeros(0, np.int32),
            f,
            f,
            f,
            f,
            f,
            np.zeros(0, np.int8),
            np.zeros((0, len(_BEHAVIOR_FIELDS)), np.float32),
        )

    def __len__(self) -> int:
        return int(self.lane.shape[0])

    def cat(self, other: _Actors) -> _Actors:
        return _Actors(
            *(
                np.concatenate([getattr(self, k), getattr(other, k)])
                for k in ("lane", "s", "d", "speed", "length", "width", "atype", "beh")
            )
        )


@dataclass
class _EnvDraft:
    actors: _Actors
    events: list[list[tuple[int, int, float, float, float, int, float]]]  # ego + scripted only
    route: tuple[list[int], list[float], list[int]]
    route_length: float
    time_limit: float
    phase: int
    planned: bool = False  # the route came from ego.waypoints (the ego follows its lanes)
    ignore_lights: tuple[bool, ...] = ()  # per ego + scripted actor (BehaviorSpec.ignore_lights)


def _place(g: R.LaneGraph, a: ActorSpec | EgoSpec) -> tuple[int, float]:
    return g.lane_index(a.road, a.lane, a.s)


TRAFFIC_LENGTH_M = 4.5  # [m] background passenger car length
TRAFFIC_WIDTH_M = (1.8, 2.0)  # [m] range of background car widths


def _sample_traffic(
    spec: ScenarioSpec,
    g: R.LaneGraph,
    rng: np.random.Generator,
    fixed: _Actors,
) -> _Actors:
    """Random background vehicles: a spacing-respecting uniform layout per driving lane.

    Per lane, ``k`` vehicles at pitch ``length + min_spacing`` with the free room spread
    uniformly between them (sorted uniform offsets), then any vehicle too close to the ego or a
    scripted actor is dropped. All in array code: resets are on the training hot path.
    """
    t = spec.traffic
    if t.count == 0:
        return _Actors.empty()
    # Only the ego's connected part of the network: a union of roads (sim.road_union) holds
    # other scenarios' roads, which this episode never reaches.
    comp = lane_components(g)
    ego_part = comp[int(fixed.lane[0])]
    drivable = (g.lane_type == R.LaneType.DRIVING) & (comp == ego_part)
    rules = rules_of(g)
    if rules is not None:  # nobody starts inside a junction (on crossing paths at t = 0)
        drivable &= ~rules.junctions.connector
    if t.radius > 0:
        return _sample_around(spec, g, rng, fixed, drivable)
    lanes = np.nonzero(drivable)[0].astype(np.int32, copy=False)
    total = road_length(g, spec.ego.road)
    lo, hi = (t.s_range[0], t.s_range[1]) if t.s_range else (0.0, total)
    span = max(hi - lo, 0.0)
    pitch = TRAFFIC_LENGTH_M + t.min_spacing
    k = rng.multinomial(t.count, np.full(lanes.size, 1.0 / lanes.size))
    k = np.minimum(k, int(span // pitch))
    if k.sum() == 0:
        return _Actors.empty()
    lane = np.repeat(lanes, k)
    room = span - k * pitch
    u = rng.uniform(0.0, 1.0, lane.size) * np.repeat(room, k)
    order = np.lexsort((u, lane))
    lane, u = lane[order], u[order]
    first = np.repeat(np.cumsum(k) - k, k)
    rank = np.arange(lane.size) - first
    s_ref = (lo + u + rank * pitch + TRAFFIC_LENGTH_M / 2).astype(np.float32, copy=False)
    s = R.s_ref_to_s(g, lane, s_ref)
    keep = s + TRAFFIC_LENGTH_M / 2 <= g.lane_length[lane]
    if t.keep_clear:
        # (n, Z): a vehicle's extent [s_ref -+ L/2] overlaps a zone on its own road and lane.
        z = np.asarray(t.keep_clear, np.float64)
        same = (g.odr_road[lane][:, None] == z[None, :, 0]) & (
            g.odr_lane[lane][:, None] == z[None, :, 1]
        )
        hl = TRAFFIC_LENGTH_M / 2
        inside = (s_ref[:, None] + hl > z[None, :, 2]) & (s_ref[:, None] - hl < z[None, :, 3])
        keep &= ~(same & inside).any(1)
    if len(fixed):
        # Keep clear of the ego and scripted actors: min_spacing behind them, and ahead of them
        # the larger of min_spacing and their speed times the time headway, so no scenario
        # starts with a crash nobody could avoid.
        rel = s[:, None] - fixed.s[None, :]
        half = 0.5 * (fixed.length[None, :] + TRAFFIC_LENGTH_M)
        ahead = np.maximum(t.min_spacing, fixed.speed * t.behavior.headway)[None, :]
        near = (rel > -(half + t.min_spacing)) & (rel < half + ahead)
        keep &= ~((lane[:, None] == fixed.lane[None, :]) & near).any(1)
    return _traffic_actors(spec, g, rng, lane[keep], s[keep])


TRAFFIC_OVERSAMPLE = 4  # candidate positions drawn per requested vehicle around the ego


def _sample_around(
    spec: ScenarioSpec,
    g: R.LaneGraph,
    rng: np.random.Generator,
    fixed: _Actors,
    drivable: NDArray[np.bool_],
) -> _Actors:
    """Background vehicles on the driving lanes within ``traffic.radius`` of the ego: candidate
    positions uniform over lane length, those near the ego kept, then greedily thinned to
    ``min_spacing`` per lane (a town's lanes are short and many; the per-lane layout of
    :func:`_sample_traffic` would crowd their starts)."""
    t = spec.traffic
    ex, ey, _ = R.lane_pose(g, fixed.lane[:1], fixed.s[:1], fixed.d[:1])
    lanes = np.nonzero(drivable)[0]
    mid = g.lane_start[lanes] + g.lane_npoints[lanes] // 2
    reach = np.hypot(g.x[mid] - ex[0], g.y[mid] - ey[0]) - 0.5 * g.lane_length[lanes]
    lanes = lanes[reach <= t.radius]
    if lanes.size == 0:
        return _Actors.empty()
    w = g.lane_length[lanes].astype(np.float64)
    n = TRAFFIC_OVERSAMPLE * t.count
    lane = rng.choice(lanes, size=n, p=w / w.sum()).astype(np.int32)
    s = (rng.uniform(0.0, 1.0, n) * g.lane_length[lane]).astype(np.float32)
    x, y, _ = R.lane_pose(g, lane, s, np.zeros(n, np.float32))
    near = np.hypot(x - ex[0], y - ey[0]) <= t.radius
    half = 0.5 * TRAFFIC_LENGTH_M
    near &= (s >= half) & (s + half <= g.lane_length[lane])
    lane, s = lane[near], s[near]
    pitch = TRAFFIC_LENGTH_M + t.min_spacing
    keep: list[int] = []
    taken: dict[int, list[float]] = {}
    for j, (ln, sj) in enumerate(zip(lane.tolist(), s.tolist(), strict=True)):
        if len(keep) == t.count:
            break
        others = taken.setdefault(ln, [])
        if all(abs(sj - o) >= pitch for o in others):
            others.append(sj)
            keep.append(j)
    lane, s = lane[keep], s[keep]
    if len(fixed):
        rel = s[:, None] - fixed.s[None, :]
        halfl = 0.5 * (fixed.length[None, :] + TRAFFIC_LENGTH_M)
        ahead = np.maximum(t.min_spacing, fixed.speed * t.behavior.headway)[None, :]
        close = (rel > -(halfl + t.min_spacing)) & (rel < halfl + ahead)
        ok = ~((lane[:, None] == fixed.lane[None, :]) & close).any(1)
        lane, s = lane[ok], s[ok]
    return _traffic_actors(spec, g, rng, lane, s)


def _traffic_actors(
    spec: ScenarioSpec, g: R.LaneGraph, rng: np.random.Generator, lane: I32, s: F32
) -> _Actors:
    t = spec.traffic
    n = lane.size
    limit = R.interp(g, g.speed_limit, lane, s)
    speed = rng.uniform(t.speed_frac[0], t.speed_frac[1], n) * limit
    beh = np.tile(np.array(_behavior_row(t.behavior, 1.0), np.float32), (n, 1))
    beh[:, 0] = rng.uniform(t.v0_frac[0], t.v0_frac[1], n) * limit
    jit = 1.0 + rng.uniform(-t.jitter, t.jitter, (n, len(_BEHAVIOR_FIELDS) - 1))
    finite = np.isfinite(beh[:, 1:])
    beh[:, 1:] = np.where(finite, beh[:, 1:] * jit, beh[:, 1:])
    width = rng.uniform(TRAFFIC_WIDTH_M[0], TRAFFIC_WIDTH_M[1], n)
    f32 = np.float32
    return _Actors(
        lane,
        s.astype(f32, copy=False),
        np.zeros(n, f32),
        speed.astype(f32, copy=False),
        np.full(n, TRAFFIC_LENGTH_M, f32),
        width.astype(f32, copy=False),
        np.full(n, int(ActorType.VEHICLE), np.int8),
        beh.astype(f32, copy=False),
    )


WALKER_BEHAVIOR = BehaviorSpec(
    headway=1.0, min_gap=0.5, a_max=1.0, b_comf=1.5, lane_change=False
)  # pedestrians keep ~1 s and half a metre to the one ahead


def _sample_walkers(spec: ScenarioSpec, g: R.LaneGraph, rng: np.random.Generator) -> _Actors:
    """``traffic.pedestrians`` walkers on the sidewalks (:func:`sim.pedestrians.sample_walkers`)."""
    lane, s, v0 = P.sample_walkers(g, rng, spec.traffic.pedestrians)
    n = lane.size
    f32 = np.float32
    beh = np.tile(np.array(_behavior_row(WALKER_BEHAVIOR, 1.0), f32), (n, 1))
    beh[:, 0] = v0
    return _Actors(
        lane,
        s,
        np.zeros(n, f32),
        v0,
        np.full(n, P.PEDESTRIAN_LENGTH_M, f32),
        np.full(n, P.PEDESTRIAN_WIDTH_M, f32),
        np.full(n, int(ActorType.PEDESTRIAN), np.int8),
        beh,
    )


def _cap_start_speeds(fixed: _Actors, traffic: _Actors, g: R.LaneGraph) -> _Actors:
    """Slow random vehicles that would start inside their leader's safe headway.

    A vehicle spawned at 30 m/s 10 m behind a slower car needs more than emergency braking;
    capping the start speed at ``(gap - s0) / T`` starts every vehicle in a state IDM can hold.
    """
    a = fixed.cat(traffic)
    order = np.lexsort((a.s, a.lane))
    nxt = np.roll(order, -1)
    same = a.lane[nxt] == a.lane[order]
    same[-1] = False  # the last sorted vehicle has no successor in the list
    gap = np.where(same, a.s[nxt] - a.s[order] - 0.5 * (a.length[nxt] + a.length[order]), np.inf)
    # On a loop the last vehicle of a lane follows the first one around the ring.
    ln = a.lane[order]
    closed = g.successors[ln, 0] == ln
    last = ~same & closed
    if np.count_nonzero(last):
        starts = np.concatenate([[True], ln[1:] != ln[:-1]])
        first_idx = np.maximum.accumulate(np.where(starts, np.arange(ln.size), 0))
        j = order[first_idx]
        i = order
        wrap_gap = g.lane_length[ln] - a.s[i] + a.s[j] - 0.5 * (a.length[i] + a.length[j])
        gap = np.where(last & (i != j), wrap_gap, gap)
    # The last vehicle of a lane that continues into another follows that lane's first one
    # (towns, junctions; highways' lanes end or loop, and keep what the lines above give).
    succ = g.successors[ln, 0]
    onward = ~same & (succ >= 0) & ~closed
    if np.count_nonzero(onward):
        first_s = np.full(g.num_lanes, np.inf)
        first_len = np.zeros(g.num_lanes)
        starts = np.concatenate([[True], ln[1:] != ln[:-1]])
        first_s[ln[starts]] = a.s[order][starts]
        first_len[ln[starts]] = a.length[order][starts]
        sc = np.maximum(succ, 0)
        i = order
        link_gap = g.lane_length[ln] - a.s[i] + first_s[sc] - 0.5 * (a.length[i] + first_len[sc])
        gap = np.where(onward, link_gap, gap)
    cap = np.empty(len(a), np.float64)
    cap[order] = gap
    ct = cap[len(fixed) :]
    v_max = np.maximum(0.0, (ct - traffic.beh[:, 2]) / traffic.beh[:, 1])  # (gap - s0) / T
    return _Actors(
        traffic.lane,
        traffic.s,
        traffic.d,
        np.minimum(traffic.speed, v_max).astype(np.float32, copy=False),
        traffic.length,
        traffic.width,
        traffic.atype,
        traffic.beh,
    )


def _draft(spec: ScenarioSpec, g: R.LaneGraph, rng: np.random.Generator) -> _EnvDraft:
    placed = [(spec.ego, BehaviorSpec())] + [(a, a.behavior) for a in spec.actors]
    lanes, ss = zip(*(_place(g, a) for a, _ in placed), strict=True)
    lane = np.array(lanes, np.int32)
    s = np.array(ss, np.float32)
    limit = R.interp(g, g.speed_limit, lane, s)
    f32 = np.float32
    fixed = _Actors(
        lane,
        s,
        np.array([a.d for a, _ in placed], f32),
        np.array([a.speed for a, _ in placed], f32),
        np.array([a.length for a, _ in placed], f32),
        np.array([a.width for a, _ in placed], f32),
        np.array(
            [
                int(ActorType.PEDESTRIAN)
                if getattr(a, "type", "vehicle") == "pedestrian"
                else int(ActorType.VEHICLE)
                for a, _ in placed
            ],
            np.int8,
        ),
        np.array(
            [_behavior_row(b, float(lim)) for (_, b), lim in zip(placed, limit, strict=True)], f32
        ),
    )
    ped = fixed.atype == ActorType.PEDESTRIAN
    if ped.any():  # crossers stand on the kerb until their cross event: no motion along s
        fixed.beh[ped, 0] = 0.0
        fixed.beh[ped, 7] = np.inf
    events: list[list[tuple[int, int, float, float, float, int, float]]] = [[]]
    for a in spec.actors:
        events.append(
            [
                (
                    int(_EVENT_KIND[ev.action]),
                    int(TriggerKind.TIME if ev.trigger == "time" else TriggerKind.EGO_GAP),
                    ev.at,
                    ev.target_speed,
                    ev.decel,
                    1 if ev.direction == "left" else -1,
                    ev.duration,
                )
                for ev in a.events
            ]
        )
    traffic = _sample_traffic(spec, g, rng, fixed)
    if len(traffic):
        traffic = _cap_start_speeds(fixed, traffic, g)
        rules = rules_of(g)
        if rules is not None:  # a vehicle spawned unable to stop would ignore right of way
            cap = spawn_speed_cap(rules, g, traffic.lane, traffic.s, spec.traffic.behavior.b_comf)
            traffic.speed = np.minimum(traffic.speed, cap).astype(np.float32, copy=False)
    s_ref0 = float(R.interp(g, g.s_ref, lane[:1], s[:1])[0])
    phase = int(rng.integers(PHASE_RANGE))
    if spec.traffic.pedestrians:
        traffic = traffic.cat(_sample_walkers(spec, g, rng))
    route = _route_chain(g, int(lane[0]), s_ref0, spec.ego.route_length)
    route_length = spec.ego.route_length
    if spec.ego.waypoints:
        start, points = ego_route_points(spec, g)
        legs = plan_through(g, start, points)
        assert legs is not None  # checked by ego_route_points
        route = section_chain(g, route_lanes(legs), s_ref0)
        # Progress is measured along the chain (reference s per section), so the route's length
        # is where the goal sits on it (the planner's cost also counts 10 m per lane change).
        goal_lane, goal_s = points[-1]
        goal_ref = R.interp(g, g.s_ref, np.array([goal_lane]), np.array([goal_s], np.float32))
        route_length = route[1][len(route[0]) - 1] + float(goal_ref[0])
    return _EnvDraft(
        fixed.cat(traffic),
        events,
        route,
        route_length,
        spec.time_limit_s,
        phase,
        planned=bool(spec.ego.waypoints),
        ignore_lights=tuple(b.ignore_lights for _, b in placed),
    )


def reset(
    specs: list[ScenarioSpec],
    road: R.LaneGraph,
    rngs: list[np.random.Generator],
    num_actors: int | None = None,
    check: bool = True,
) -> WorldState:
    """Instantiate one spec per environment.

    Args:
        specs: B specs on the road ``road``.
        rngs: B generators; background traffic is drawn from them (nothing else is random).
        num_actors: actor slots N (>= the largest spec's need); default the largest need.
        check: run the road-dependent spec checks first.

    Raises:
        SpecError: a spec does not fit the road or the slot count.
    """
    if len(specs) != len(rngs):
        raise ValueError(f"{len(specs)} specs but {len(rngs)} generators")
    if check:
        for sp in specs:
            check_on_road(sp, road, source=sp.name)
    drafts = [_draft(sp, road, rng) for sp, rng in zip(specs, rngs, strict=True)]
    need = max(len(d.actors) for d in drafts)
    N = need if num_actors is None else num_actors
    if need > N:
        raise SpecError(f"scenario needs {need} actor slots but the env has num_actors={N}")
    B = len(specs)
    E = max(1, max(len(ev) for d in drafts for ev in d.events))
    Rn = max(len(d.route[0]) for d in drafts)
    f32 = np.float32
    lane = np.zeros((B, N), np.int32)
    s = np.zeros((B, N), f32)
    d = np.zeros((B, N), f32)
    speed = np.zeros((B, N), f32)
    length = np.full((B, N), 4.5, f32)
    width = np.full((B, N), 1.9, f32)
    atype = np.zeros((B, N), np.int8)
    valid = np.zeros((B, N), np.bool_)
    beh = np.tile(np.array(_behavior_row(BehaviorSpec(), 30.0), f32), (B, N, 1))
    ev_kind = np.zeros((B, N, E), np.int8)
    ev_trig = np.zeros((B, N, E), np.int8)
    ev_val = np.zeros((B, N, E), f32)
    ev_tgt = np.zeros((B, N, E), f32)
    ev_dec = np.zeros((B, N, E), f32)
    ev_dir = np.zeros((B, N, E), np.int8)
    ev_dur = np.ones((B, N, E), f32)
    r_secs = np.full((B, Rn), -1, np.int32)
    r_lanes = np.full((B, Rn), -1, np.int32)
    r_cum = np.zeros((B, Rn + 1), f32)
    r_len = np.zeros(B, f32)
    t_lim = np.zeros(B, f32)
    for b, dr in enumerate(drafts):
        ac = dr.actors
        n = len(ac)
        lane[b, :n] = ac.lane
        s[b, :n] = ac.s
        d[b, :n] = ac.d
        speed[b, :n] = ac.speed
        length[b, :n] = ac.length
        width[b, :n] = ac.width
        atype[b, :n] = ac.atype
        valid[b, :n] = True
        beh[b, :n] = ac.beh
        for j, evs in enumerate(dr.events):
            for k, ev in enumerate(evs):
                (
                    ev_kind[b, j, k],
                    ev_trig[b, j, k],
                    ev_val[b, j, k],
                    ev_tgt[b, j, k],
                    ev_dec[b, j, k],
                    ev_dir[b, j, k],
                    ev_dur[b, j, k],
                ) = ev
        secs, cum, chain_lanes = dr.route
        r_secs[b, : len(secs)] = secs
        r_lanes[b, : len(chain_lanes)] = chain_lanes
        r_cum[b, : len(cum)] = cum
        r_cum[b, len(cum) :] = cum[-1]
        r_len[b] = dr.route_length
        t_lim[b] = dr.time_limit
    x, y, yaw = R.lane_pose(road, lane, s, d)
    zeros = np.zeros((B, N), f32)
    ignore_lights = np.zeros((B, N), np.bool_)
    for b, dr in enumerate(drafts):
        ignore_lights[b, : len(dr.ignore_lights)] = dr.ignore_lights
    behavior = Behavior(
        **{k: np.ascontiguousarray(beh[..., i]) for i, k in enumerate(_BEHAVIOR_FIELDS)},
        ignore_lights=ignore_lights,
    )
    phase = np.array([d.phase for d in drafts], np.int32)
    fixed_offset = [sp.road.lights.offset_s for sp in specs]
    light_offset = np.array(
        [p if o is None else o for p, o in zip(phase.tolist(), fixed_offset, strict=True)], f32
    )
    events = Events(
        ev_kind, ev_trig, ev_val, ev_tgt, ev_dec, ev_dir, ev_dur, np.zeros((B, N, E), np.bool_)
    )
    s_ref0 = R.interp(road, road.s_ref, lane[:, 0], s[:, 0])
    planned = any(dr.planned for dr in drafts)
    route = Route(
        r_secs,
        r_cum,
        np.zeros(B, np.int32),
        r_len,
        s_ref0,
        s_ref0.copy(),
        lanes=r_lanes if planned else None,
    )
    route_choice = np.zeros((B, N), np.int32)
    if rules_of(road) is not None:  # traffic picks its branches at forks (sim.traffic_rules)
        for b, rng in enumerate(rngs):
            route_choice[b] = rng.integers(0, PHASE_RANGE, N)
        route_choice[:, 0] = 0
        # a scripted runner takes first successors (straight on through procedural junctions)
        route_choice[ignore_lights] = 0
    if planned:
        route_choice[:, 0] = successor_slot(road, r_lanes[:, 0], r_lanes[:, min(1, Rn - 1)])
    walk_d_speed = np.zeros((B, N), f32) if np.any(atype == int(ActorType.PEDESTRIAN)) else None
    progress = np.zeros(B, f32)
    return WorldState(
        x=x,
        y=y,
        yaw=yaw,
        speed=speed,
        accel=zeros,
        steer=zeros.copy(),
        length=length,
        width=width,
        lane=lane,
        s=s,
        d=d,
        actor_type=atype,
        valid=valid,
        behavior=behavior,
        events=events,
        lc_target=np.full((B, N), -1, np.int32),
        lc_elapsed=zeros.copy(),
        lc_offset=zeros.copy(),
        brake_decel=zeros.copy(),
        route_choice=route_choice,
        route=route,
        time=np.zeros(B, f32),
        step_count=np.zeros(B, np.int32),
        progress=progress,
        prev_progress=progress.copy(),
        time_limit=t_lim,
        phase=phase,
        stopped_s=np.zeros(B, f32),
        off_route_m=np.zeros(B, f32),
        lane_dist=np.abs(d),
        walk_d_speed=walk_d_speed,
        light_offset=light_offset,
    )


# ---------------------------------------------------------------------------------------------
# step
# ---------------------------------------------------------------------------------------------


def _fire_events(st: WorldState, road: R.LaneGraph) -> WorldState:
    """Trigger scripted events and apply their effects (desired speed, brake, lane change)."""
    ev = st.events
    if not np.count_nonzero(ev.kind):  # no scripted events at all (EventKind.NONE == 0)
        return st
    pending = (ev.kind != EventKind.NONE) & ~ev.fired & st.valid[..., None]
    if not np.count_nonzero(pending):
        return st
    gap_ego = np.hypot(st.x - st.x[:, :1], st.y - st.y[:, :1]) - 0.5 * (
        st.length + st.length[:, :1]
    )
    now = np.where(
        ev.trigger == TriggerKind.TIME,
        st.time[:, None, None] >= ev.trigger_value,
        gap_ego[..., None] <= ev.trigger_value,
    )
    fire = pending & now
    if not np.count_nonzero(fire):
        return st
    # The first firing event per actor this step wins; others wait a step.
    first = fire & (np.cumsum(fire, axis=-1) == 1)
    k = np.argmax(first, axis=-1)
    has = first.any(-1)

    def pick(a: NDArray[_S]) -> NDArray[_S]:
        return np.take_along_axis(a, k[..., None], -1)[..., 0]

    kind = pick(ev.kind)
    speed_ev = has & ((kind == EventKind.SET_SPEED) | (kind == EventKind.STOP))
    tgt = np.where(kind == EventKind.STOP, 0.0, pick(ev.target_speed))
    v0 = np.where(speed_ev, tgt, st.behavior.v0).astype(np.float32, copy=False)
    brake = np.where(speed_ev & (st.speed > tgt), pick(ev.decel), st.brake_decel)
    lc_ev = has & (kind == EventKind.LANE_CHANGE) & (st.lc_target < 0)
    dirn = pick(ev.direction)
    nb = np.where(dirn > 0, road.left[st.lane], road.right[st.lane])
    start = lc_ev & (nb >= 0)
    lc_target = np.where(start, nb, st.lc_target).astype(np.int32, copy=False)
    w_here = R.interp(road, road.width, st.lane, st.s)
    w_nb = R.interp(
        road, road.width, np.where(nb >= 0, nb, st.lane).astype(np.int32, copy=False), st.s
    )
    lc_offset = np.where(start, dirn * 0.5 * (w_here + w_nb), st.lc_offset).astype(
        np.float32, copy=False
    )
    lc_dur = np.where(start, pick(ev.duration), st.behavior.lc_duration).astype(
        np.float32, copy=False
    )
    return replace(
        st,
        behavior=replace(st.behavior, v0=v0, lc_duration=lc_dur),
        brake_decel=brake.astype(np.float32, copy=False),
        lc_target=lc_target,
        lc_offset=lc_offset,
        lc_elapsed=np.where(start, 0.0, st.lc_elapsed).astype(np.float32, copy=False),
        events=replace(ev, fired=ev.fired | first),
    )


@lru_cache(maxsize=64)
def _flat_layout(B: int, N: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(flat actor index, env index), both (B * N,) int64; read-only, shared across steps."""
    flat = np.arange(B * N, dtype=np.int64)
    env = flat // N
    flat.flags.writeable = False
    env.flags.writeable = False
    return flat, env


# Typed 0-d constants for the per-step maths: a Python float operand costs ~0.3 us of
# conversion per ufunc call (as much as the arithmetic at B=1); NEP 50 casts it to float32
# anyway, so these give the same bits.
_F0 = np.array(0.0, np.float32)
_HALF = np.array(0.5, np.float32)
_FREE_GAP = np.array(FREE_GAP, np.float32)
_STOPPED_EPS = np.array(STOPPED_EPS, np.float32)
_NO_LEADER = np.array(0, np.int64)
_I0 = np.array(0, np.int32)
_I1 = np.array(1, np.int32)
_BLOCKED_SPEED = np.array(BLOCKED_SPEED, np.float32)
_F1 = np.array(1.0, np.float32)
_F2 = np.array(2.0, np.float32)
_PI = np.array(np.pi, np.float32)
_MIN_LC_DURATION = np.array(1e-3, np.float32)  # [s] a lane change takes at least this long
_MIN_YAW_SPEED = np.array(0.1, np.float32)  # [m/s] floor of the speed under a lateral rate


def step(
    state: WorldState, actions: NDArray[np.floating], params: SimParams, road: R.LaneGraph
) -> WorldState:
    """Advance all environments by ``params.dt``.

    Args:
        state: current world (B, N).
        actions: ego actions (B, 2) ``[steer, accel]`` in [-1, 1]; non-finite rows brake.
        params: step parameters.
        road: the lane graph the state lives on.

    Returns:
        The next state.

    At B=1 the cost of a step is the number of numpy calls, so the no-op cases that dominate
    (no scripted brake, no lane change in progress, nobody stopping or leaving a lane, no ego
    straddling two lanes) skip their selects; each branch computes what the general formula
    gives there, bit for bit.
    """
    dt = params.dt
    dt32 = np.array(dt, np.float32)
    walk_v = state.walk_d_speed
    if walk_v is not None:  # pedestrians present: crossings start before other events fire
        state = P.start_crossings(state)
        walk_v = state.walk_d_speed
    st = _fire_events(state, road)
    rules = rules_of(road)
    B, N = st.x.shape
    g = road
    beh = st.behavior
    lane0, s0, d0 = st.lane[:, 0], st.s[:, 0], st.d[:, 0]

    # --- Neighbour search on the current state -----------------------------------------------
    # The ego is listed on the neighbour lane its box overlaps; traffic on the lane it changes to.
    ego_w = R.interp(g, g.width, lane0, s0)
    intr = np.abs(d0) > _HALF * (ego_w - st.width[:, 0])
    lane2 = st.lc_target.copy()
    if np.count_nonzero(intr):
        lane2[:, 0] = np.where(
            intr, np.where(d0 > _F0, g.left.take(lane0), g.right.take(lane0)), -1
        )
    else:  # every ego within its lane (the usual case): what the select gives there
        lane2[:, 0] = -1
    sec = lane2 >= 0
    n_sec = np.count_nonzero(sec)
    s2 = st.s
    if n_sec:  # only actors straddling two lanes need the mapping
        # Flat indices of the straddlers (C order, as a boolean mask would list them): their
        # second lane and the position there, gathered and scattered by index.
        ci = sec.reshape(-1).nonzero()[0]
        lane2_c = lane2.reshape(-1).take(ci)
        # map_to_neighbor without its guard for missing neighbours: every lane2_c is a lane.
        s_ref_c = R.interp(g, g.s_ref, st.lane.reshape(-1).take(ci), st.s.reshape(-1).take(ci))
        s2_c = R.s_ref_to_s(g, lane2_c, s_ref_c)
        s2 = st.s.copy()
        s2.reshape(-1)[ci] = s2_c
    listed = st.valid
    if walk_v is not None:  # a pedestrian beside its lane (kerb, sidewalk edge) blocks nobody
        listed = P.listed(st, g)
    ent, _ = sort_entries(g, st.lane, st.s, listed, lane2, s2, positions=False)

    flat, env = _flat_layout(B, N)
    s_f = st.s.reshape(-1)
    v_f = st.speed.reshape(-1)
    len_f = st.length.reshape(-1)
    choice_f = st.route_choice.reshape(-1)

    def bf(a: F32) -> F32:
        return a.reshape(-1)

    lane_f = st.lane.reshape(-1)
    if n_sec:
        # Actors on two lanes also look for a leader on the second one; one search answers
        # both (queries are independent), the closer leader wins.
        M = B * N
        lead, dist = find_leader(
            ent,
            g,
            np.concatenate([env, env.take(ci)]),
            np.concatenate([lane_f, lane2_c]),
            np.concatenate([s_f, s2_c]),
            np.concatenate([flat, ci]),
            np.concatenate([choice_f, choice_f.take(ci)]),
        )
        l2, d2 = lead[M:], dist[M:]
        lead, dist = lead[:M], dist[:M]
        l1, d1 = lead.take(ci), dist.take(ci)
        closer = d2 < d1
        lead[ci] = np.where(closer, l2, l1)
        dist[ci] = np.where(closer, d2, d1)
    else:
        lead, dist = find_leader(ent, g, env, lane_f, s_f, flat, choice_f)
    has_lead = lead >= _NO_LEADER
    # lead == -1 gathers the last actor: harmless, the select drops it.
    gap = dist - _HALF * (len_f + len_f.take(lead))
    dv = v_f - v_f.take(lead)
    if np.count_nonzero(has_lead) < has_lead.size:  # else (a ring, busy lanes) all selects keep
        gap = np.where(has_lead, gap, _FREE_GAP)
        dv = np.where(has_lead, dv, _F0)
    acc = idm_accel(
        v_f, bf(beh.v0), gap, dv, bf(beh.headway), bf(beh.min_gap), bf(beh.a_max), bf(beh.b_comf)
    )
    brake = bf(st.brake_decel)
    if np.count_nonzero(brake):
        braking = (brake > _F0) & (v_f > bf(beh.v0) + _STOPPED_EPS)
        acc = np.where(braking, np.minimum(acc, -brake), acc)
        new_brake = np.where(braking, brake, _F0).reshape(B, N)
    else:  # no scripted brake anywhere
        new_brake = np.zeros((B, N), np.float32)

    if rules is not None:  # lights, right of way, lanes that end (sim.traffic_rules)
        acc = rule_accel(
            rules,
            g,
            acc.reshape(B, N),
            st.lane,
            st.s,
            st.speed,
            st.length,
            st.valid,
            st.route_choice,
            dist.reshape(B, N),
            has_lead.reshape(B, N),
            (beh.v0, beh.headway, beh.min_gap, beh.a_max, beh.b_comf),
            st.time,
            plan_offset(st),
            beh.ignore_lights,
        ).reshape(-1)

    # --- MOBIL lane-change decisions (staggered subset) --------------------------------------
    lc_target = st.lc_target.copy()
    lc_offset = st.lc_offset
    lc_elapsed = st.lc_elapsed
    # Each env holds a MOBIL round once per mobil_interval_s (envs staggered so the batch cost
    # is even); rounds alternate between changes to the left and to the right so two vehicles
    # from either side never claim the same gap on the same snapshot.
    period = np.array(max(1, round(params.mobil_interval_s / dt)), np.int32)
    clock = st.step_count + st.phase
    slot_b = clock % period == _I0
    if np.count_nonzero(slot_b):
        slot = slot_b[:, None]
        cand = (
            slot
            & st.valid
            & (st.lc_target < 0)
            & np.isfinite(beh.lc_threshold)
            & (
                (st.speed > 1.0)
                if rules is None
                else (st.speed > 1.0) | _at_dead_end(rules, st.lane)
            )
            & (st.actor_type == ActorType.VEHICLE)
        )
        cand[:, 0] = False  # the ego is driven by its policy
        ci = np.nonzero(cand.reshape(-1))[0]
        if ci.size:
            leftward = ((clock // period) % 2 == 0)[:, None] & np.ones((1, N), np.bool_)
            lc_offset = lc_offset.copy()  # _mobil starts changes in place
            lc_elapsed = lc_elapsed.copy()
            _mobil(
                st,
                g,
                ent,
                ci,
                lead,
                gap,
                acc,
                lc_target,
                lc_offset,
                lc_elapsed,
                leftward.reshape(-1)[ci],
            )

    # --- Move traffic along lanes --------------------------------------------------------------
    acc2 = acc.reshape(B, N)
    v_new = np.maximum(st.speed + acc2 * dt32, _F0)
    if np.count_nonzero(v_new) == v_new.size:  # nobody comes to a stop within the step
        ds = _HALF * (st.speed + v_new) * dt32
    else:
        ds = np.where(
            v_new > 0,
            0.5 * (st.speed + v_new) * dt,
            st.speed**2 / np.maximum(2 * np.abs(acc2), 1e-6),
        )
    s_new = (st.s + ds).astype(np.float32, copy=False)
    active = lc_target >= 0
    lane_new = st.lane
    d_dot: F32 | None = None  # lateral speed of lane changes; None: nobody changes lane
    if np.count_nonzero(active):
        lc_elapsed = np.where(active, lc_elapsed + dt32, _F0)
        dur = np.maximum(beh.lc_duration, _MIN_LC_DURATION)
        phase = np.minimum(lc_elapsed / dur, _F1)
        angle = _PI * phase
        d_new = np.where(active, lc_offset * _HALF * (_F1 - np.cos(angle)), _F0)
        d_dot = np.where(active & (phase < _F1), lc_offset * _PI / (_F2 * dur) * np.sin(angle), _F0)
        done_lc = active & (phase >= _F1)
        if np.count_nonzero(done_lc):
            tgt = np.where(done_lc, lc_target, st.lane).astype(np.int32, copy=False)
            s_new = np.where(done_lc, R.map_to_neighbor(g, st.lane, s_new, tgt), s_new)
            lane_new = tgt
            d_new = np.where(done_lc, 0.0, d_new)
            lc_target = np.where(done_lc, -1, lc_target)
            lc_offset = np.where(done_lc, 0.0, lc_offset)
    else:
        lc_elapsed = np.zeros((B, N), np.float32)
        d_new = np.zeros((B, N), np.float32)
    lane_adv, s_adv, ended = R.advance(
        g, lane_new, s_new.astype(np.float32, copy=False), st.route_choice
    )
    if lane_adv is not lane_new:  # someone ran past a lane end
        moved = lane_adv != lane_new
        if np.count_nonzero(moved & (lc_target >= 0)):
            # A lane change that runs across a lane end continues from the successor lane.
            nb = np.where(lc_offset > 0, g.left[lane_adv], g.right[lane_adv])
            keep = moved & (lc_target >= 0)
            lc_target = np.where(keep, nb, lc_target)
            lost = keep & (nb < 0)
            d_new = np.where(lost, 0.0, d_new)
            lc_offset = np.where(lost, 0.0, lc_offset)
            lc_target = np.where(lost, -1, lc_target)
    walk_new = walk_v
    if walk_v is not None:  # pedestrians keep their lateral place; crossers walk across
        ped = st.actor_type == ActorType.PEDESTRIAN
        d_walk, walk_new = P.walk(g, lane_adv, s_adv, st.d, walk_v, dt)
        d_new = np.where(ped, d_walk, d_new)
    tx, ty, tyaw = R.lane_pose(g, lane_adv, s_adv, d_new.astype(np.float32, copy=False))
    if walk_new is not None and np.count_nonzero(walk_new):
        tyaw = np.where(walk_new != 0, P.walk_yaw(tyaw, walk_new, v_new), tyaw)
    if d_dot is not None:
        # With no lateral motion the yaw is the lane heading, which lane_pose already wrapped.
        tyaw = R.wrap_half_turn(tyaw + np.arctan2(d_dot, np.maximum(v_new, _MIN_YAW_SPEED)))
    valid = st.valid
    if np.count_nonzero(ended):
        valid = valid & ~(ended & (np.arange(N) > 0)[None, :])

    # --- Ego: bicycle model + projection -------------------------------------------------------
    act, _ = sanitize_action(actions)
    ex, ey, eyaw, ev, esteer, eacc = bicycle_step(
        st.x[:, 0],
        st.y[:, 0],
        st.yaw[:, 0],
        st.speed[:, 0],
        st.steer[:, 0],
        act,
        dt,
        params.vehicle,
    )
    proj = R.project_tracking(g, ex, ey, eyaw, lane0, s0 + ev * dt32)
    if rules is not None and np.count_nonzero(proj.lane != lane0):  # at a fork: the branch taken
        proj = _take_chosen_branch(g, proj, ex, ey, eyaw, lane0, st.route_choice[:, 0])
    if rules is not None:  # past a lane end: hop through short lane sections (towns)
        past = proj.s >= g.lane_length.take(proj.lane) - _PAST_END_EPS
        if np.count_nonzero(past):
            proj = _through_short_lanes(g, proj, ex, ey, eyaw, st.route_choice[:, 0], past)

    def with_ego(traffic: NDArray[Any], ego: NDArray[Any] | int, dtype: type = np.float32) -> Any:
        # Every traffic array here is freshly computed in this step (never a view of the
        # input state), so the ego column is written in place instead of copying.
        out: NDArray[Any] = traffic.astype(dtype, copy=False)
        out[:, 0] = ego
        return out

    if lane_adv is st.lane:  # nobody moved lanes: the one array here that is the input's
        lane_adv = lane_adv.copy()
    d = with_ego(d_new, proj.d)
    route, progress, on_route = _route_progress(st, g, proj)
    route_choice = st.route_choice
    if rules is not None:  # traffic that entered a new lane draws its next fork's branch
        route_choice = next_choice(route_choice, lane_adv != st.lane)
    if route.lanes is not None:  # the ego takes its planned route's branch at the next fork
        Rn = route.lanes.shape[1]
        nxt = np.minimum(route.index + 1, Rn - 1)
        want = route.lanes[np.arange(B), nxt]
        route_choice = route_choice.copy()
        route_choice[:, 0] = successor_slot(g, proj.lane, want)
    # On the route and moving is the usual case: both counters are then zero (the selects' 0.0).
    if np.count_nonzero(on_route) == B:
        off_route_m = np.zeros(B, np.float32)
    else:
        off_route_m = np.where(on_route, _F0, st.off_route_m + ev * dt32)
    stopped = ev < _BLOCKED_SPEED
    if np.count_nonzero(stopped):
        stopped_s = np.where(stopped, st.stopped_s + dt32, _F0)
    else:
        stopped_s = np.zeros(B, np.float32)
    return WorldState(
        x=with_ego(tx, ex),
        y=with_ego(ty, ey),
        yaw=with_ego(tyaw, eyaw),
        speed=with_ego(v_new, ev),
        accel=with_ego(np.where(st.valid, acc2, _F0), eacc),
        steer=with_ego(np.zeros((B, N), np.float32), esteer),
        length=st.length,
        width=st.width,
        lane=with_ego(lane_adv, proj.lane, np.int32),
        s=with_ego(s_adv, proj.s),
        d=d,
        actor_type=st.actor_type,
        valid=valid,
        behavior=st.behavior,
        events=st.events,
        lc_target=with_ego(lc_target.astype(np.int32, copy=False), -1, np.int32),
        lc_elapsed=lc_elapsed,
        lc_offset=lc_offset.astype(np.float32, copy=False),
        brake_decel=new_brake,
        route_choice=route_choice,
        route=route,
        time=st.time + dt32,
        step_count=st.step_count + _I1,
        progress=progress,
        prev_progress=st.progress,
        time_limit=st.time_limit,
        phase=st.phase,
        lane_dist=with_ego(np.abs(d), proj.distance),
        walk_d_speed=walk_new,
        stopped_s=stopped_s,
        off_route_m=off_route_m,
        light_offset=st.light_offset,
    )


def _take_chosen_branch(
    g: R.LaneGraph, proj: R.Projection, x: F32, y: F32, yaw: F32, lane0: I32, choice: I32
) -> R.Projection:
    """Where the ego crossed into a fork's branches, which overlap at first, match it to the
    branch its route choice takes (the tracking projection tries the first successor first)
    when that branch is as near (within ``BRANCH_TIE_M``); a branch starting with lane sections
    shorter than a step is followed through them (up to ``SHORT_HOPS`` lanes)."""
    nsucc, want = R.chosen_successor(g, lane0, choice)
    fork = (nsucc > 1) & (proj.lane != lane0) & (want >= 0) & (proj.lane != want)
    if not np.count_nonzero(fork):
        return proj
    i = np.nonzero(fork)[0]
    cand = want[i].astype(np.int32)
    guess = proj.s[i]
    lane = proj.lane.copy()
    f = [a.copy() for a in (proj.s, proj.d, proj.distance, proj.s_ref)]
    open_ = np.ones(i.size, np.bool_)
    for _ in range(SHORT_HOPS):
        alt = R.project_tracking(g, x[i], y[i], yaw[i], cand, guess)
        better = open_ & (alt.lane == cand) & (alt.distance <= proj.distance[i] + BRANCH_TIE_M)
        if np.count_nonzero(better):
            j = i[better]
            lane[j] = alt.lane[better]
            for arr, new in zip(f, (alt.s, alt.d, alt.distance, alt.s_ref), strict=True):
                arr[j] = new[better]
        open_ &= ~better & (g.lane_length.take(cand) < SHORT_LANE_M)
        open_ &= g.num_successors.take(cand) > 0
        if not np.count_nonzero(open_):
            break
        cand = np.maximum(g.successors[cand, 0], 0).astype(np.int32)
        guess = np.zeros(i.size, np.float32)
    return R.Projection(lane, f[0], f[1], f[2], f[3])


SHORT_LANE_M = 2.0  # [m] lanes shorter than this are crossed within a step at town speeds
_PAST_END_EPS = np.array(1e-3, np.float32)
SHORT_HOPS = 3  # successor lanes tried past a lane end (CARLA towns have 5-100 cm sections)


def _through_short_lanes(
    g: R.LaneGraph,
    proj: R.Projection,
    x: F32,
    y: F32,
    yaw: F32,
    choice: I32,
    past: NDArray[np.bool_],
) -> R.Projection:
    """The tracking projection looks one successor ahead; an ego that crossed a lane shorter
    than one step (Town03 and Town05 have hundreds of 5-100 cm lane sections) is left matched
    past its lane's end. Follow the chosen successors up to ``SHORT_HOPS`` lanes and keep the
    nearest match."""
    i = np.nonzero(past & (g.num_successors.take(proj.lane) > 0))[0]
    if not i.size:
        return proj
    lane = proj.lane[i]
    best = R.Projection(lane, proj.s[i], proj.d[i], proj.distance[i], proj.s_ref[i])
    for _ in range(SHORT_HOPS):
        n, nxt = R.chosen_successor(g, lane, choice[i])
        nxt = np.where(n > 0, nxt, lane)
        lane = nxt.astype(np.int32, copy=False)
        alt = R.project_tracking(g, x[i], y[i], yaw[i], lane, np.zeros(i.size, np.float32))
        take = alt.distance < best.distance - 1e-3
        best = R.Projection(
            np.where(take, alt.lane, best.lane).astype(np.int32, copy=False),
            np.where(take, alt.s, best.s).astype(np.float32, copy=False),
            np.where(take, alt.d, best.d).astype(np.float32, copy=False),
            np.where(take, alt.distance, best.distance).astype(np.float32, copy=False),
            np.where(take, alt.s_ref, best.s_ref).astype(np.float32, copy=False),
        )
    out = [a.copy() for a in (proj.s, proj.d, proj.distance, proj.s_ref)]
    lane_out = proj.lane.copy()
    lane_out[i] = best.lane
    for arr, new in zip(out, (best.s, best.d, best.distance, best.s_ref), strict=True):
        arr[i] = new
    return R.Projection(lane_out, out[0], out[1], out[2], out[3])


BRANCH_TIE_M = 0.5  # [m] a fork's chosen branch wins the ego's projection when this close


def _at_dead_end(rules: Any, lane: I32) -> NDArray[np.bool_] | bool:
    """Vehicles on a lane that tapers out may change lanes standing (False: no such lane)."""
    if rules is None or not np.count_nonzero(rules.junctions.dead_end):
        return False
    out: NDArray[np.bool_] = rules.junctions.dead_end.take(lane)
    return out


def _mobil(
    st: WorldState,
    g: R.LaneGraph,
    ent: object,
    ci: NDArray[np.intp],
    lead: NDArray[np.int64],
    gap: F32,
    acc: F32,
    lc_target: I32,
    lc_offset: F32,
    lc_elapsed: F32,
    leftward: NDArray[np.bool_],
) -> None:
    """Evaluate MOBIL for flat actor indices ``ci`` towards the left (``leftward``) or right
    neighbour; start lane changes in place."""
    from sim.traffic import SortedEntries

    assert isinstance(ent, SortedEntries)
    _B, N = st.x.shape
    beh = st.behavior

    def f(a: NDArray[_S]) -> NDArray[_S]:
        return a.reshape(-1)

    env = (ci // N).astype(np.int64)
    lane = f(st.lane)[ci]
    s = f(st.s)[ci]
    v = f(st.speed)[ci]
    ln = f(st.length)[ci]
    vall, lall = f(st.speed), f(st.length)
    choice = f(st.route_choice)[ci]
    self_a = ci.astype(np.int64)

    def idm_of(who: NDArray[np.int64], v_who: F32, g_who: F32, dv_who: F32) -> F32:
        w = np.maximum(who, 0)
        return idm_accel(
            v_who,
            f(beh.v0)[w],
            g_who,
            dv_who,
            f(beh.headway)[w],
            f(beh.min_gap)[w],
            f(beh.a_max)[w],
            f(beh.b_comf)[w],
        )

    # Old follower o: now behind c; after the change behind c's leader.
    fo, dfo = find_follower(ent, g, env, lane, s, self_a)
    has_o = fo >= 0
    foc = np.maximum(fo, 0)
    gap_o_now = dfo - 0.5 * (lall[foc] + ln)
    a_o = idm_of(fo, vall[foc], gap_o_now, vall[foc] - v)
    lc = np.maximum(lead[ci], 0)
    has_l = lead[ci] >= 0
    # o -> c's leader: centre distance dfo + gap_c + (l_c + l_lead) / 2, minus half lengths.
    gap_o_new = np.where(has_l, dfo + gap[ci] + 0.5 * (ln - lall[foc]), FREE_GAP).astype(
        np.float32, copy=False
    )
    a_o_new = idm_of(
        fo,
        vall[foc],
        gap_o_new.astype(np.float32, copy=False),
        np.where(has_l, vall[foc] - vall[lc], 0.0).astype(np.float32, copy=False),
    )
    gain_o = np.where(has_o, a_o_new - a_o, 0.0)
    a_c = acc[ci]
    p = f(beh.politeness)[ci]
    thr = f(beh.lc_threshold)[ci]
    bsafe = f(beh.b_safe)[ci]
    tgt = np.where(leftward, g.left[lane], g.right[lane])
    okl = tgt >= 0
    tgt_c = np.where(okl, tgt, lane).astype(np.int32, copy=False)
    okl &= g.lane_type[tgt_c] == R.LaneType.DRIVING
    rules = rules_of(g)
    if rules is not None:  # never into a lane that tapers out (an on-ramp's acceleration lane)
        okl &= ~rules.junctions.ending.take(tgt_c)
        # nor inside a junction, nor so late that the change would run into one
        conn = rules.junctions.connector
        into = conn.take(np.maximum(g.successors.take(tgt_c, axis=0)[:, 0], 0))
        late = g.lane_length.take(lane) - s < v * f(beh.lc_duration)[ci]
        okl &= ~conn.take(lane) & ~conn.take(tgt_c) & ~(into & late)
    s_t = R.map_to_neighbor(g, lane, s, tgt_c)
    nl, dnl = find_leader(ent, g, env, tgt_c, s_t, self_a, choice)
    nf, dnf = find_follower(ent, g, env, tgt_c, s_t, self_a)
    nlc, nfc = np.maximum(nl, 0), np.maximum(nf, 0)
    gap_cl = np.where(nl >= 0, dnl - 0.5 * (ln + lall[nlc]), FREE_GAP).astype(
        np.float32, copy=False
    )
    gap_fc = np.where(nf >= 0, dnf - 0.5 * (ln + lall[nfc]), FREE_GAP).astype(
        np.float32, copy=False
    )
    a_c_new = idm_of(
        self_a, v, gap_cl, np.where(nl >= 0, v - vall[nlc], 0.0).astype(np.float32, copy=False)
    )
    # New follower n: behind the new leader now, behind c after.
    gap_fl = np.where(
        (nf >= 0) & (nl >= 0), dnf + dnl - 0.5 * (lall[nfc] + lall[nlc]), FREE_GAP
    ).astype(np.float32, copy=False)
    a_n = idm_of(
        nf,
        vall[nfc],
        gap_fl,
        np.where(nl >= 0, vall[nfc] - vall[nlc], 0.0).astype(np.float32, copy=False),
    )
    a_n_new = idm_of(nf, vall[nfc], gap_fc, (vall[nfc] - v).astype(np.float32, copy=False))
    # Safe for the new follower *and* for the changer itself: without the second check a car
    # already braking at IDM's floor sees no loss in a far worse gap.
    safe = okl & (gap_cl > 0.5) & (gap_fc > 0.5) & (a_c_new >= -bsafe)
    safe &= np.where(nf >= 0, a_n_new >= -bsafe, True)
    gain = (a_c_new - a_c) + p * (np.where(nf >= 0, a_n_new - a_n, 0.0) + gain_o)
    take = safe & (gain > thr)
    best_lane = np.where(take, tgt_c, -1)
    go = best_lane >= 0
    if np.count_nonzero(go):
        idx = ci[go]
        lanes_go = best_lane[go]
        w_here = R.interp(g, g.width, lane[go], s[go])
        w_there = R.interp(g, g.width, lanes_go, s[go])
        sign = np.where(g.left[lane[go]] == lanes_go, 1.0, -1.0)
        lc_target.reshape(-1)[idx] = lanes_go
        lc_offset.reshape(-1)[idx] = sign * 0.5 * (w_here + w_there)
        lc_elapsed.reshape(-1)[idx] = 0.0


@lru_cache(maxsize=64)
def _route_layout(B: int, Rn: int) -> tuple[I32, I32, I32]:
    """Row starts of the flat (B, R) sections and (B, R + 1) cumulative lengths, int32, and the
    last chain index R - 1 as a 0-d int32; read-only, shared across steps."""
    row = np.arange(0, B * Rn, Rn, dtype=np.int32)
    row_cum = np.arange(0, B * (Rn + 1), Rn + 1, dtype=np.int32)
    last = np.array(Rn - 1, np.int32)
    for a in (row, row_cum, last):
        a.flags.writeable = False
    return row, row_cum, last


def _route_progress(
    st: WorldState, g: R.LaneGraph, proj: R.Projection
) -> tuple[Route, F32, NDArray[np.bool_]]:
    """Advance the ego's position in its section chain and measure progress [m].

    The ego stays in its chain entry while on that section (any lane of it), moves to the next
    entry when it reaches the next section (or wraps around a ring), and otherwise (off its
    route) keeps its last progress. Per-env lookups are flat ``take``s (row offset + column).
    """
    rt = st.route
    B, Rn = rt.sections.shape
    row, row_cum, last = _route_layout(B, Rn)
    sec = g.section.take(proj.lane)
    s_ref = proj.s_ref
    index = rt.index
    at = row + index
    cur = rt.sections.take(at)
    nxt_i = np.minimum(index + _I1, last)
    nxt = rt.sections.take(row + nxt_i)
    half = _HALF * g.section_length.take(sec)
    wrapped = (sec == cur) & (s_ref < rt.s_ref - half)
    # nxt_i > index: the chain has a next entry (index + 1 < R).
    advance = (nxt_i > index) & (nxt == sec) & ((nxt != cur) | wrapped)
    if np.count_nonzero(advance):
        index = np.where(advance, nxt_i, index).astype(np.int32, copy=False)
        on = rt.sections.take(row + index) == sec
    else:  # nobody entered a new section (the usual case): the entry read above is current
        on = cur == sec
    prog = rt.cum_length.take(row_cum + index) + s_ref  # (B, R + 1) rows
    progress = prog if np.count_nonzero(on) == B else np.where(on, prog, st.progress)
    progress = progress.astype(np.float32, copy=False)
    route = Route(
        rt.sections,
        rt.cum_length,
        index,
        rt.length,
        rt.start_offset,
        s_ref.astype(np.float32, copy=False),
        lanes=rt.lanes,  # the planned lane route (if any) rides along unchanged
    )
    return route, progress, on


__all__ = ["SimParams", "reset", "step"]
