"""Lane-by-lane, vehicle-by-vehicle placement on any procedural road, batched over scenes.

Placement runs downstream to upstream: the front vehicle of a lane goes a random offset behind
the end of the range (``u * spacing`` with ``u ~ U(0, 1)`` and ``spacing = 1000 / density``, so
the range's end is not a special place), then each next vehicle goes its sampled bumper gap
behind the previous one's rear, until one would not fit in the range. Lanes are filled left to
right so that a lane can see its left neighbour's speeds. Each step is one call of a *proposal*
(the learned model, or the rule-based baseline) for every scene still placing in that lane, so
the Python loop runs over steps, never over vehicles.

``keep_clear`` zones: a vehicle whose body would overlap a zone on its lane is moved behind the
zone, its sampled gap measured from the zone's start (the zone's rear acts as its leader).

Closed lanes (ring roads): the front vehicle also reserves a one-second headway at its own
speed ahead of it (``CLOSED_RESERVE_S``), since the last vehicle placed comes round behind it.

Roads with junctions or several lane sections (the urban layouts of :mod:`sim.urban`, maps):
placement runs once per *corridor* (:func:`corridor_contexts`): the driving lanes of one lane
section of one road outside junctions that run in one direction, in the lanes' own direction of
travel (on lanes with positive OpenDRIVE ids, against the reference line, downstream is
decreasing reference ``s``). Junction connecting roads, lanes that taper out and lanes too
narrow for a car stay empty. A lane that leads on (into the next section, road or a junction)
keeps its front vehicle the same one-second headway from its end as a closed lane does, so a
corridor's front vehicles never start on the rear bumper of the next corridor's last ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from generative.model.validity import Vehicles
from sim import road as R
from sim.junctions import NARROW_M
from sim.scenario import RoadSpec, SpecError, build_road, is_closed, road_length
from sim.traffic_rules import rules_of

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

MIN_SPACING_M = 3.0  # [m] bound on the step count: no proposal packs vehicles tighter
CLOSED_RESERVE_S = 1.0  # [s] headway the front vehicle of a closed lane keeps to the last one


class SamplerError(ValueError):
    """A road or argument the traffic samplers cannot handle; the message names it."""


@dataclass(frozen=True)
class RoadContext:
    """What placement needs to know about a road (procedural, one road, one lane section), or
    about one corridor of a larger layout (:func:`corridor_contexts`).

    Placement works in the lanes' travel direction: its ``s_ref`` runs from 0 at the upstream
    end to ``length`` at the downstream end (on a single road, road 0's reference ``s``).

    Attributes:
        road: The spec.
        graph: Its lane graph.
        lanes: Graph lane index of each driving lane, leftmost first (OpenDRIVE id -1, -2, ..).
        length: Reference length of road 0 (of the corridor's lane section) [m].
        closed: Whether the lanes loop (ring road).
        lane_length: Lane-centre length of each driving lane [m].
        road_id: OpenDRIVE road id of the lanes.
        s0: Reference ``s`` of the lane section's start on its road [m].
        reversed: The lanes run against the reference line (positive OpenDRIVE ids).
        odr_lanes: OpenDRIVE lane id of each lane (None: ``-1, -2, ..``).
        leads_on: Per lane, whether it continues beyond the corridor's downstream end (its
            front vehicle keeps ``CLOSED_RESERVE_S`` of headway to the end; None: none does).
        speed_limit: [m/s] limit of the lanes (None: ``road.speed_limit``).
    """

    road: RoadSpec
    graph: R.LaneGraph
    lanes: I64
    length: float
    closed: bool
    lane_length: F64
    road_id: int = 0
    s0: float = 0.0
    reversed: bool = False
    odr_lanes: I64 | None = None
    leads_on: B | None = None
    speed_limit: float | None = None

    @property
    def num_lanes(self) -> int:
        """Driving lanes L."""
        return int(self.lanes.shape[0])

    @property
    def limit(self) -> float:
        """[m/s] the speed limit speeds are fractions of."""
        return self.road.speed_limit if self.speed_limit is None else self.speed_limit

    def odr_lane(self, lane: I64) -> I64:
        """OpenDRIVE lane id of lane index ``lane`` (0 = leftmost)."""
        if self.odr_lanes is None:
            out: I64 = -(lane.astype(np.int64) + 1)
            return out
        return self.odr_lanes[lane]

    def to_road_s(self, s_ref: F64) -> F64:
        """The road's reference ``s`` of placement coordinate ``s_ref`` [m]."""
        if self.reversed:
            return self.s0 + (self.length - s_ref)
        return self.s0 + s_ref

    def to_lane_s(self, lane: I64, s_ref: F64) -> F64:
        """Lane-centre ``s`` of reference ``s_ref`` on lane index ``lane`` (0 = leftmost)."""
        if lane.size == 0:
            return np.zeros(0)
        gl = self.lanes[lane].astype(np.int32)
        out: F64 = R.s_ref_to_s(self.graph, gl, s_ref.astype(np.float32)).astype(np.float64)
        return out


def road_context(road: RoadSpec) -> RoadContext:
    """The :class:`RoadContext` of a procedural road.

    Raises:
        SamplerError: the road cannot be built or has more than one lane section.
    """
    try:
        g = build_road(road)
    except SpecError as e:
        raise SamplerError(f"road: {e}") from None
    if g.section_length.shape[0] != 1:
        raise SamplerError(
            f"road.kind {road.kind!r}: traffic samplers need one road with one lane section, "
            f"got {g.section_length.shape[0]} sections"
        )
    lanes = []
    for k in range(road.num_lanes):
        idx = np.flatnonzero((g.odr_road == 0) & (g.odr_lane == -(k + 1)))
        if idx.size == 0:
            raise SamplerError(f"road: lane {-(k + 1)} of road 0 not in the lane graph")
        lanes.append(int(idx[0]))
    li = np.array(lanes, np.int64)
    return RoadContext(
        road=road,
        graph=g,
        lanes=li,
        length=road_length(g, 0),
        closed=is_closed(g, int(li[0])),
        lane_length=g.lane_length[li].astype(np.float64),
    )


def single_road(road: RoadSpec) -> bool:
    """Whether ``road`` is one road with one lane section (:func:`road_context`); other
    roads are filled corridor by corridor (:func:`corridor_contexts`).

    Raises:
        SamplerError: the road cannot be built.
    """
    try:
        g = build_road(road)
    except SpecError as e:
        raise SamplerError(f"road: {e}") from None
    return bool(g.section_length.shape[0] == 1)


def corridor_contexts(road: RoadSpec) -> list[RoadContext]:
    """One :class:`RoadContext` per corridor of ``road``: per lane section of a road outside
    junctions and per direction, its driving lanes that hold a car along their whole length
    (module docstring). Ordered by section, then reference-direction lanes first.

    Raises:
        SamplerError: the road cannot be built, or has no lane traffic can be placed on.
    """
    try:
        g = build_road(road)
    except SpecError as e:
        raise SamplerError(f"road: {e}") from None
    ok = g.lane_type == R.LaneType.DRIVING
    rules = rules_of(g)
    if rules is not None:  # nobody starts inside a junction, nor on a lane that tapers out
        ok &= ~rules.junctions.connector & ~rules.junctions.dead_end
    ok &= np.minimum.reduceat(g.width, g.lane_start) >= NARROW_M
    rev = np.zeros(g.num_lanes, np.bool_) if g.lane_reversed is None else g.lane_reversed
    out = []
    for sec in range(int(g.section_length.shape[0])):
        for backwards in (False, True):
            idx = np.flatnonzero(ok & (g.section == sec) & (rev == backwards))
            if idx.size == 0:
                continue
            li = idx[np.argsort(np.abs(g.odr_lane[idx]), kind="stable")].astype(np.int64)
            speed = min(
                float(g.speed_limit[g.lane_start[k] : g.lane_start[k] + g.lane_npoints[k]].min())
                for k in li
            )
            out.append(
                RoadContext(
                    road=road,
                    graph=g,
                    lanes=li,
                    length=float(g.section_length[sec]),
                    closed=False,
                    lane_length=g.lane_length[li].astype(np.float64),
                    road_id=int(g.section_road[sec]),
                    s0=float(g.section_s0[sec]),
                    reversed=backwards,
                    odr_lanes=g.odr_lane[li].astype(np.int64),
                    leads_on=np.asarray(g.successors[li, 0] >= 0, np.bool_),
                    speed_limit=speed,
                )
            )
    if not out:
        raise SamplerError(f"road.kind {road.kind!r}: no driving lane outside junctions")
    return out


def corridor_zones(
    ctx: RoadContext, zones: Sequence[Sequence[tuple[int, int, float, float]]]
) -> list[list[tuple[int, int, float, float]]]:
    """keep_clear zones ``(road, lane, s_lo, s_hi)`` (OpenDRIVE ids, reference ``s``) of each
    scene that lie on the corridor ``ctx``, in its placement coordinates and lane indices as
    ``(0, -(k + 1), lo, hi)`` (the form :func:`zone_matrix` reads)."""
    odr = [int(x) for x in ctx.odr_lane(np.arange(ctx.num_lanes, dtype=np.int64))]
    out = []
    for zs in zones:
        mine = []
        for z in zs:
            if int(z[0]) != ctx.road_id or int(z[1]) not in odr:
                continue
            lo, hi = float(z[2]) - ctx.s0, float(z[3]) - ctx.s0
            if ctx.reversed:
                lo, hi = ctx.length - hi, ctx.length - lo
            if hi < 0.0 or lo > ctx.length:
                continue
            mine.append((0, -(odr.index(int(z[1])) + 1), lo, hi))
        out.append(mine)
    return out


@dataclass(frozen=True)
class Proposal:
    """What a proposal returns for each queried row: the next vehicle behind the previous one.

    Attributes:
        gap: Bumper gap to the previous vehicle's rear [m] (ignored for front vehicles).
        v: Speed / speed limit.
        length: [m].
        width: [m].
    """

    gap: F64
    v: F64
    length: F64
    width: F64


@dataclass(frozen=True)
class PlacementState:
    """The inputs of one placement step, ``(Q,)`` each, for the Q rows still placing.

    Attributes:
        scene: Scene of each row.
        lane: Lane index (0 = leftmost) being filled.
        num_lanes: Lanes of the road.
        first: Whether the row places its lane's front vehicle.
        prev_v: Previous (leader) vehicle's speed / limit (0 when first).
        prev_gap: Previous vehicle's gap to its own leader [m] (NaN: none).
        prev_len: Previous vehicle's length [m] (0 when first).
        left_v: Mean speed / limit of the lane to the left (NaN: no such lane or it is empty).
    """

    scene: I64
    lane: int
    num_lanes: int
    first: B
    prev_v: F64
    prev_gap: F64
    prev_len: F64
    left_v: F64


ProposeFn = Callable[[PlacementState], Proposal]


def zone_matrix(
    zones: Sequence[Sequence[tuple[int, int, float, float]]], n_scenes: int, num_lanes: int
) -> tuple[F64, F64]:
    """keep_clear zones as padded ``(S, L, Z)`` matrices of ``s_lo`` and ``s_hi``.

    Zones on another road or lane than road 0's driving lanes are ignored; padding is an empty
    zone at +inf.
    """
    per = [
        [(z[2], z[3]) for z in zs if int(z[0]) == 0 and 1 <= -int(z[1]) <= num_lanes]
        for zs in zones
    ]
    zmax = max([0, *(len(p) for p in per)])
    lo = np.full((n_scenes, num_lanes, max(zmax, 1)), np.inf)
    hi = np.full((n_scenes, num_lanes, max(zmax, 1)), np.inf)
    for b, zs in enumerate(zones):
        cnt = np.zeros(num_lanes, np.int64)
        for z in zs:
            k = -int(z[1]) - 1
            if int(z[0]) != 0 or not 0 <= k < num_lanes:
                continue
            lo[b, k, cnt[k]] = float(z[2])
            hi[b, k, cnt[k]] = float(z[3])
            cnt[k] += 1
    return lo, hi


def place(
    ctx: RoadContext,
    propose: ProposeFn,
    density: F64,
    s_range: tuple[float, float],
    zones_lo: F64,
    zones_hi: F64,
    rng: np.random.Generator,
) -> tuple[I64, I64, F64, F64, F64, F64, F64]:
    """Fill every lane of S scenes (see module docstring).

    Args:
        ctx: The road.
        propose: The next vehicle for each row of a :class:`PlacementState`.
        density: Requested vehicles per km and lane of each scene, ``(S,)``, or of each scene
            and lane, ``(S, L)`` (sets the front vehicle's offset).
        s_range: Reference ``s`` range to fill [m].
        zones_lo, zones_hi: keep_clear zones, ``(S, L, Z)`` (:func:`zone_matrix`).
        rng: Offsets of the front vehicles.

    Returns:
        ``(scene, lane, s_ref, gap_to_previous (NaN for front vehicles), v / limit, length,
        width)``, each ``(M,)``.
    """
    n_s = int(density.shape[0])
    lo, hi = s_range
    dens_l = density if density.ndim == 2 else np.repeat(density[:, None], ctx.num_lanes, 1)
    spacing = 1000.0 / np.maximum(dens_l, 1e-3)  # (S, L)
    max_steps = int(np.ceil((hi - lo) / MIN_SPACING_M)) + zones_lo.shape[2] + 2
    out: list[tuple[I64, I64, F64, F64, F64, F64, F64]] = []
    left_v = np.full(n_s, np.nan)
    all_scenes = np.arange(n_s, dtype=np.int64)
    for k in range(ctx.num_lanes):
        zl, zh = zones_lo[:, k, :], zones_hi[:, k, :]
        active = np.ones(n_s, np.bool_)
        first = np.ones(n_s, np.bool_)
        rear = np.full(n_s, float(hi))
        floor = np.full(n_s, float(lo))
        prev_v = np.zeros(n_s)
        prev_gap = np.full(n_s, np.nan)
        prev_len = np.zeros(n_s)
        offset = rng.uniform(0.0, 1.0, n_s) * spacing[:, k]
        lane_sum = np.zeros(n_s)
        lane_cnt = np.zeros(n_s)
        for _ in range(max_steps):
            q = np.flatnonzero(active)
            if q.size == 0:
                break
            st = PlacementState(
                scene=all_scenes[q],
                lane=k,
                num_lanes=ctx.num_lanes,
                first=first[q],
                prev_v=prev_v[q],
                prev_gap=prev_gap[q],
                prev_len=prev_len[q],
                left_v=left_v[q],
            )
            p = propose(st)
            limit = ctx.limit
            gap = np.where(first[q], offset[q], p.gap)
            if ctx.closed or (ctx.leads_on is not None and ctx.leads_on[k]):
                gap = np.where(first[q], gap + CLOSED_RESERVE_S * p.v * limit, gap)
            s = rear[q] - gap - 0.5 * p.length
            # Behind any keep_clear zone the body would overlap (chains of zones: repeat).
            for _ in range(zl.shape[1] + 1):
                over = (s[:, None] + 0.5 * p.length[:, None] > zl[q]) & (
                    s[:, None] - 0.5 * p.length[:, None] < zh[q]
                )
                if not over.any():
                    break
                z_start = np.where(over, zl[q], np.inf).min(1)
                s = np.where(over.any(1), np.minimum(s, z_start - gap - 0.5 * p.length), s)
            fits = s - 0.5 * p.length >= floor[q]
            placed = q[fits]
            active[q[~fits]] = False
            if placed.size == 0:
                continue
            f = fits
            actual_gap = np.where(first[placed], np.nan, rear[placed] - (s[f] + 0.5 * p.length[f]))
            out.append(
                (
                    placed.astype(np.int64),
                    np.full(placed.size, k, np.int64),
                    s[f],
                    actual_gap,
                    p.v[f],
                    p.length[f],
                    p.width[f],
                )
            )
            if ctx.closed:
                # The front vehicle's front, one lap back, bounds the lane from below.
                was_first = first[placed]
                fl = placed[was_first]
                floor[fl] = s[f][was_first] + 0.5 * p.length[f][was_first] - ctx.length
                floor[fl] = np.maximum(floor[fl], lo)
            rear[placed] = s[f] - 0.5 * p.length[f]
            prev_v[placed] = p.v[f]
            prev_gap[placed] = actual_gap
            prev_len[placed] = p.length[f]
            first[placed] = False
            lane_sum[placed] += p.v[f]
            lane_cnt[placed] += 1
        left_v = np.where(lane_cnt > 0, lane_sum / np.maximum(lane_cnt, 1), np.nan)
    if not out:
        e = np.zeros(0)
        ei = np.zeros(0, np.int64)
        return ei, ei, e, e, e, e, e
    cols = [np.concatenate([o[j] for o in out]) for j in range(7)]
    return cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6]


LANE_SCALE_RANGE = (0.25, 4.0)  # [-] bounds of the second pass's spacing factor


def lane_scale(
    ctx: RoadContext,
    scene: I64,
    lane: I64,
    s_ref: F64,
    n_scenes: int,
    density: F64,
    s_range: tuple[float, float],
    zones_lo: F64,
    zones_hi: F64,
) -> F64:
    """Spacing factor per scene and lane, ``(S, L)``, that brings a lane to its asked density.

    From a first placement pass (``scene``, ``lane``, ``s_ref`` of its vehicles): the asked
    centre spacing ``1000 / density`` ``(S, L)`` over the pass's mean spacing, measured from its
    rearmost to its foremost vehicle less the keep_clear zones in between (so the random offset
    of the front vehicle and the range's ends do not enter). Lanes with fewer than 3 vehicles
    use counts, ``(n + 1) / (want + 1)`` with ``want`` the asked vehicles on the lane's free
    length, so that short lanes do not swing. A second pass with every spacing (gap + length)
    scaled by the factor holds the asked density on average. Clipped to
    :data:`LANE_SCALE_RANGE`.
    """
    n_l = ctx.num_lanes
    lo, hi = s_range
    key = scene * n_l + lane
    size = n_scenes * n_l
    got = np.bincount(key, minlength=size).reshape(n_scenes, n_l)
    first_flat = np.full(size, np.inf)
    last_flat = np.full(size, -np.inf)
    np.minimum.at(first_flat, key, s_ref)
    np.maximum.at(last_flat, key, s_ref)
    first, last = first_flat.reshape(n_scenes, n_l), last_flat.reshape(n_scenes, n_l)
    many = got >= 3
    a = np.where(many, first, 0.0)[:, :, None]
    b = np.where(many, last, 0.0)[:, :, None]
    blocked_in = np.clip(np.minimum(zones_hi, b) - np.maximum(zones_lo, a), 0.0, None).sum(2)
    spacing = (np.where(many, last - first, 0.0) - blocked_in) / np.maximum(got - 1, 1)
    by_spacing = 1000.0 / np.maximum(density, 1e-3) / np.maximum(spacing, 1e-3)
    blocked = np.clip(np.minimum(zones_hi, hi) - np.maximum(zones_lo, lo), 0.0, None).sum(2)
    want = density * np.maximum((hi - lo) - blocked, 0.0) / 1000.0
    by_count = (got + 1.0) / (want + 1.0)
    out: F64 = np.clip(np.where(many & (spacing > 0), by_spacing, by_count), *LANE_SCALE_RANGE)
    return out


def to_vehicles(
    ctx: RoadContext,
    scene: I64,
    lane: I64,
    s_ref: F64,
    speed: F64,
    length: F64,
    width: F64,
    beh: F64,
) -> Vehicles:
    """Assemble :class:`Vehicles` (``beh`` is ``(M, 7)``: v0 [m/s], T, s0, a, b, MOBIL
    politeness, MOBIL threshold [m/s^2])."""
    s = ctx.to_lane_s(lane, s_ref)
    if ctx.closed:
        s = np.mod(s, ctx.lane_length[lane])
    return Vehicles(
        scene,
        lane,
        s_ref,
        s,
        speed,
        length,
        width,
        *(beh[:, j] for j in range(7)),
    )
