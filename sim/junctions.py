"""Right of way in junctions: conflict tables compiled once per map, a batched yield rule per
step, and lane ends that traffic must leave (tapered merge lanes).

Model
-----
*Connectors* are the driving lanes of OpenDRIVE junction connecting roads. A *path* is the chain
of connectors from an *entry* connector (entered from outside the junction) along first
successors while they stay in the junction (CARLA's connecting roads often have several lane
sections); conflicts, ranks and occupancy are per path, keyed by its entry. Two paths of the
same junction *conflict* when they leave from different lanes and either merge (share a lane or
their exit lane) or their centre lines come closer than ``CONFLICT_DIST_M`` (a crossing). For
each conflicting pair ``(c, c')`` the table keeps ``clear_s``: the distance along ``c'`` past
which a vehicle's rear no longer blocks ``c`` (the last point of ``c'`` near ``c``, plus
``CLEAR_MARGIN_M``; a merge: the end of ``c'``).

Priority: every connector has a strict rank. Its turn class comes first (straight, i.e. a total
heading change below ``STRAIGHT_RAD``, over right turns over left turns: a permissive left turn
yields to oncoming traffic, a minor road's turn onto a priority road yields to the through
traffic, a roundabout entry (a right turn) yields to circulating traffic, whose ring connector
bends less than ``STRAIGHT_RAD``), then the lane index breaks ties. A strict order is what makes
the rule deadlock-free: the highest-ranked waiting vehicle waits only for vehicles already
inside the junction, and those leave.

Per step, per environment (arrays over all actors, no per-actor Python loop):

1. each vehicle's *target connector* is its lane if that is a connector (it is inside and
   committed), else the successor it will take (``route_choice``) if that is one;
2. *occupants*: vehicles on a connector, and approaching vehicles that can no longer stop
   before it (``v^2 / (2 gap) > COMMIT_DECEL``), are recorded per (env, connector) by their rearmost
   position (an approaching one at minus its distance, i.e. before the start);
3. *claims*: the first vehicle of each approach lane within ``APPROACH_M`` of the junction that
   is not held by a red/yellow light claims its connector with its arrival time
   ``eta = gap / max(v, 1 m/s)``;
4. such a first vehicle *yields* (stops at the lane end, IDM behind a virtual standing leader)
   when a conflicting connector is occupied before its ``clear_s``, or is claimed by a
   higher-ranked vehicle arriving within ``eta + CRITICAL_GAP_S`` (gap acceptance: HCM 7th ed.
   critical headways are 4-7 s; roundabout entries ~4.5 s).

Lane ends: a lane with no successor whose width at the end is below ``DEAD_END_WIDTH_M`` is a
tapered lane that ends (an on-ramp's acceleration lane); traffic stops before it narrows below
``NARROW_M`` (seen from the lane before too), which also gives MOBIL the incentive to merge
left; MOBIL never changes into a lane that ends (``ending``: a dead end or a lane leading only
into one). Lanes that leave the map at full width are not dead ends: vehicles drive off them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.opendrive import OdrMap
from sim.traffic import idm_accel

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
BoolArr = NDArray[np.bool_]

CONFLICT_DIST_M = 2.5  # [m] centre lines closer than this: two cars (1.9 m wide) would touch
CLEAR_MARGIN_M = 2.5  # [m] past the conflict zone: a car's rear half length
STRAIGHT_RAD = 1.0  # [rad] total heading change below which a connector counts as straight
APPROACH_M = 60.0  # [m] vehicles nearer the junction than this claim their connector
CRITICAL_GAP_S = 5.0  # [s] gap acceptance: arrival-time margin to a higher-ranked vehicle
COMMIT_DECEL = 4.0  # [m/s^2] an approaching car that would need more to stop goes on (committed)
STOP_MARGIN_M = 1.0  # [m] front bumper to the lane end where a yielding vehicle stands
DEAD_END_WIDTH_M = 1.0  # [m] a lane ending narrower than this has tapered out
NARROW_M = 2.5  # [m] a tapering lane narrower than this no longer holds a car (1.9 m + margin)
_MIN_SPEED = 1.0  # [m/s] floor of the speed in arrival times (a standing car arrives "now")


@dataclass(frozen=True, eq=False)
class JunctionTable:
    """Per lane (L,): ``connector`` (in a junction), ``rank`` (priority, larger wins),
    ``dead_end`` with ``dead_end_s`` [m] where it becomes too narrow for a car (inf elsewhere);
    per lane and conflict slot (L, C): ``conflicts`` (lane index, -1 padding) and
    ``clear_s`` [m] on the conflicting connector."""

    connector: BoolArr
    rank: I32
    dead_end: BoolArr
    conflicts: I32
    clear_s: F32
    dead_end_s: F32
    ending: BoolArr  # a dead end, or a lane all of whose successors are dead ends
    contested: BoolArr  # a connector with at least one conflicting connector
    path_of: I32  # (L,) the entry connector of the junction path a lane is on (-1 outside)
    path_off: F32  # (L,) [m] where the lane starts along that path

    @cached_property  # read every step; the table never changes
    def num_connectors(self) -> int:
        return int(np.count_nonzero(self.connector))


def _polyline(g: R.LaneGraph, lane: int) -> tuple[F32, F32, F32]:
    a, n = int(g.lane_start[lane]), int(g.lane_npoints[lane])
    return g.x[a : a + n], g.y[a : a + n], g.s[a : a + n]


def _paths(
    g: R.LaneGraph, connector: BoolArr, jid: NDArray[np.object_]
) -> tuple[list[int], dict[int, list[int]], I32, F32]:
    """Junction paths: from each entry connector (entered from outside the junction) along
    first successors while they stay in the junction. Returns (entries, lanes per entry,
    path of each lane (its entry, -1 outside), offset of each lane's start along its path)."""
    L = g.num_lanes
    path_of = np.full(L, -1, np.int32)
    path_off = np.zeros(L, np.float32)
    entries = [
        int(c)
        for c in np.nonzero(connector)[0]
        if not any(p >= 0 and connector[p] and jid[p] == jid[c] for p in g.predecessors[c])
    ]
    lanes_of: dict[int, list[int]] = {}
    for e in entries:
        path, off, cur = [], 0.0, e
        while cur >= 0 and connector[cur] and jid[cur] == jid[e] and cur not in path:
            path.append(cur)
            if path_of[cur] < 0:
                path_of[cur], path_off[cur] = e, off
            off += float(g.lane_length[cur])
            cur = int(g.successors[cur, 0])
        lanes_of[e] = path
    return entries, lanes_of, path_of, path_off


def compile_junctions(model: OdrMap, g: R.LaneGraph) -> JunctionTable:
    """The :class:`JunctionTable` of a map (module docstring)."""
    L = g.num_lanes
    junction_of = {rd.num_id: rd.junction for rd in model.roads}
    jid = np.array([junction_of.get(int(r), "-1") for r in g.odr_road], dtype=object)
    connector = (jid != "-1") & (g.lane_type == R.LaneType.DRIVING)
    entries, lanes_of, path_of, path_off = _paths(g, connector, jid)
    poly: dict[int, tuple[F32, F32, F32]] = {}
    last_of: dict[int, int] = {}
    for e, path in lanes_of.items():
        xs, ys, ss = [], [], []
        off = 0.0
        for ln in path:
            x, y, sl = _polyline(g, ln)
            xs.append(x)
            ys.append(y)
            ss.append(sl + np.float32(off))
            off += float(g.lane_length[ln])
        poly[e] = (np.concatenate(xs), np.concatenate(ys), np.concatenate(ss))
        last_of[e] = path[-1]
    rank = np.zeros(L, np.int32)
    for e, path in lanes_of.items():
        h0 = float(g.heading[g.lane_start[e]])
        last = path[-1]
        h1 = float(g.heading[g.lane_start[last] + g.lane_npoints[last] - 1])
        turn = math.remainder(h1 - h0, 2.0 * math.pi)
        cls = 2 if abs(turn) < STRAIGHT_RAD else 1 if turn < 0 else 0
        rank[e] = cls * (L + 1) + (L - e)
    found: dict[int, list[tuple[int, float]]] = {}
    by_junction: dict[str, list[int]] = {}
    for e in entries:
        by_junction.setdefault(str(jid[e]), []).append(e)
    for group in by_junction.values():
        for c in group:
            xc, yc, _ = poly[c]
            mine = found.setdefault(c, [])
            pc = {int(p) for p in g.predecessors[c] if p >= 0}
            exit_c = {int(q) for q in g.successors[last_of[c]] if q >= 0} | set(lanes_of[c])
            for o in group:
                if o == c:
                    continue
                if pc & {int(p) for p in g.predecessors[o] if p >= 0}:
                    continue  # diverging from the same lane: car following orders them
                exit_o = {int(q) for q in g.successors[last_of[o]] if q >= 0} | set(lanes_of[o])
                xo, yo, s_o = poly[o]
                d = np.hypot(xo[:, None] - xc[None, :], yo[:, None] - yc[None, :]).min(1)
                near = np.nonzero(d < CONFLICT_DIST_M)[0]
                if exit_c & exit_o:  # they merge (inside the junction or onto its exit)
                    clear = float(s_o[-1]) + CLEAR_MARGIN_M
                elif near.size:
                    clear = float(s_o[near[-1]]) + CLEAR_MARGIN_M
                else:
                    continue
                mine.append((o, clear))
    C = max([1] + [len(v) for v in found.values()])
    conflicts = np.full((L, C), -1, np.int32)
    clear_s = np.zeros((L, C), np.float32)
    for c, lst in found.items():
        for k, (o, clear) in enumerate(lst):
            conflicts[c, k] = o
            clear_s[c, k] = clear
    end = g.lane_start + g.lane_npoints - 1
    nsucc = g.num_successors
    dead_end = (nsucc == 0) & (g.width[end] < DEAD_END_WIDTH_M) & (g.lane_type == 0)
    dead_end_s = np.full(L, np.inf, np.float32)
    for li in np.nonzero(dead_end)[0]:
        a, n = int(g.lane_start[li]), int(g.lane_npoints[li])
        narrow = np.nonzero(g.width[a : a + n] < NARROW_M)[0]
        dead_end_s[li] = g.s[a + narrow[0]] if narrow.size else g.lane_length[li]
    succ_dead = np.where(g.successors >= 0, dead_end.take(np.maximum(g.successors, 0)), True)
    ending = dead_end | ((nsucc > 0) & succ_dead.all(1))
    contested = connector & (conflicts >= 0).any(1)
    return JunctionTable(
        connector,
        rank,
        dead_end,
        conflicts,
        clear_s,
        dead_end_s,
        ending,
        contested,
        path_of,
        path_off,
    )


def yield_gap(
    table: JunctionTable,
    g: R.LaneGraph,
    lane: I32,
    s: F32,
    speed: F32,
    length: F32,
    valid: BoolArr,
    choice: I32,
    first: BoolArr,
    b_comf: F32,
    held: BoolArr | None = None,
) -> F32:
    """Bumper gap [m] to the point where each vehicle must stop to give way; inf where it
    need not (module docstring, steps 1-4).

    Args:
        lane, s, speed, length, valid, choice, b_comf: (B, N) actor arrays.
        first: (B, N) the vehicle has no leader on its lane before the lane end.
        held: (B, N) stopping for a light (claims nothing); None: nobody.
    """
    B, N = lane.shape
    L = g.num_lanes
    on_conn = table.connector.take(lane) & valid
    nsucc, succ = R.chosen_successor(g, lane, choice)
    succ = np.where(nsucc > 0, succ, lane)
    approaching = valid & ~on_conn & (nsucc > 0) & table.connector.take(succ)
    if not (np.count_nonzero(approaching) and np.count_nonzero(table.connector)):
        return np.full((B, N), np.inf, np.float32)
    gap = g.lane_length.take(lane) - s - 0.5 * length  # front bumper to the lane end
    committed = approaching & (np.square(speed) > 2.0 * COMMIT_DECEL * np.maximum(gap, 0.01))
    rows = (np.arange(B, dtype=np.int64) * L)[:, None]
    # occupants: rearmost position per (env, connector); committed approachers sit before 0
    occ = np.full(B * L, np.inf, np.float32)
    m = on_conn | committed
    path = table.path_of.take(lane)
    idx = (rows + np.where(on_conn, path, succ))[m]
    rear = np.where(on_conn, table.path_off.take(lane) + s - 0.5 * length, -gap - length)[m]
    np.minimum.at(occ, idx, rear.astype(np.float32, copy=False))
    # claims: first vehicles of approach lanes near the junction, not held by a light
    asking = approaching & first & ~committed & (gap < APPROACH_M)
    if held is not None:
        asking &= ~held
    eta = np.maximum(gap, 0.0) / np.maximum(speed, _MIN_SPEED)
    claim = np.full(B * L, np.inf, np.float32)
    ci = (rows + succ)[asking]
    np.minimum.at(claim, ci, eta[asking].astype(np.float32, copy=False))
    # decisions for the asking vehicles: (A, C) over their target's conflicts
    a_rows = np.broadcast_to(rows, (B, N))[asking]
    tgt = succ[asking]
    conf = table.conflicts[tgt]
    has = conf >= 0
    cflat = a_rows[:, None] + np.maximum(conf, 0)
    blocked_occ = has & (occ[cflat] < table.clear_s[tgt])
    higher = table.rank.take(np.maximum(conf, 0)) > table.rank.take(tgt)[:, None]
    blocked_claim = has & higher & (claim[cflat] < eta[asking][:, None] + CRITICAL_GAP_S)
    stop = (blocked_occ | blocked_claim).any(1)
    out = np.full((B, N), np.inf, np.float32)
    out[asking] = np.where(stop, gap[asking] - STOP_MARGIN_M, np.inf)
    return out


def dead_end_gap(
    table: JunctionTable,
    g: R.LaneGraph,
    lane: I32,
    s: F32,
    length: F32,
    choice: I32 | None = None,
) -> F32:
    """Bumper gap [m] to where a tapered lane that ends gets too narrow, on the lane itself or
    on the successor ``choice`` takes (inf elsewhere)."""
    ahead = table.dead_end_s.take(lane) - s
    if choice is not None:
        nsucc, succ = R.chosen_successor(g, lane, choice)
        succ = np.maximum(succ, 0)
        nxt = g.lane_length.take(lane) - s + table.dead_end_s.take(succ)
        ahead = np.where(table.dead_end.take(lane) | (nsucc == 0), ahead, nxt)
    gap = ahead - 0.5 * length - STOP_MARGIN_M
    out: F32 = np.where(np.isfinite(gap), gap, np.inf).astype(np.float32, copy=False)
    return out


def stop_accel(
    speed: F32,
    v0: F32,
    gap: F32,
    headway: F32,
    min_gap: F32,
    a_max: F32,
    b_comf: F32,
) -> F32:
    """IDM acceleration behind a virtual standing leader at bumper ``gap`` (inf: no leader,
    +inf acceleration so a ``minimum`` with the car-following one keeps that)."""
    finite = np.isfinite(gap)
    acc = idm_accel(
        speed,
        v0,
        np.where(finite, np.maximum(gap + min_gap, 0.0), 1e4).astype(np.float32, copy=False),
        speed,
        headway,
        min_gap,
        a_max,
        b_comf,
    )
    out: F32 = np.where(finite, acc, np.inf).astype(np.float32, copy=False)
    return out
