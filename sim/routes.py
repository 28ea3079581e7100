"""Routes over a lane graph: A* planning, reachability, and CARLA Leaderboard route files.

Planner
-------
Search nodes are lanes entered at a known centre-line position ``s``. Edges, with costs in
metres of driving:

- *follow*: from ``(u, s)`` to successor ``(v, 0)``, cost ``length(u) - s``;
- *lane change*: from ``(u, s)`` to the left/right neighbour ``(n, s')`` at the same reference
  coordinate, cost ``LANE_CHANGE_COST_M`` (a lane change is not free: it takes ~40 m of road
  and some risk; routes prefer staying in lane when the distance is equal).

A* with the straight-line distance from the node's position to the goal as heuristic. It is
admissible: a follow edge covers at least the straight-line distance it moves, and a lane
change moves ~3.5 m sideways for ``LANE_CHANGE_COST_M`` >= that. The goal ``(b, s_b)`` is
reached from a node ``(b, s)`` with ``s <= s_b`` at cost ``s_b - s``.

CARLA world frame
-----------------
CARLA (Unreal) is left-handed: ``x`` forward, ``y`` right, yaw clockwise in degrees. OpenDRIVE
and the lane graph are right-handed (``y`` left, heading counter-clockwise in radians). A CARLA
world point is OpenDRIVE ``(x, -y)`` and a CARLA yaw ``psi`` [deg] is heading ``-radians(psi)``
(:func:`carla_to_odr`). Checked on the Leaderboard routes: with the flip the devtest waypoints
lie on driving lane centres (median 0.5 mm, max 0.6 m) and 98.9 % of the training waypoints
match their lane's heading within 0.3 rad; without it the median distance is 46 m.

Leaderboard routes
------------------
``routes_*.xml`` hold ``<route id town>`` with ``<waypoint x y z yaw ...>`` in CARLA's frame.
:func:`plan_leaderboard_route` snaps each waypoint to the nearest driving lane of the loaded
town (the yaw breaks ties between lanes within ``HEADING_TIE_M`` of the nearest), then plans
between consecutive waypoints; a waypoint farther than ``SNAP_MAX_M`` from any lane, or a leg
without a path, is a :class:`RouteError` naming the route id and the waypoint.
"""

from __future__ import annotations

import heapq
import math
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from sim import road as R

SHORT_SECTION_M = 2.0  # [m] route sections shorter than this are crossed within one step
LANE_CHANGE_COST_M = 10.0  # [m] cost of a lane change: >= a lane width, so A* stays admissible
SNAP_MAX_M = 3.0  # [m] a waypoint farther than ~one lane width from every lane is off the map
# [m] the waypoint's yaw picks among lanes this much farther than the nearest (overlapping
# junction lanes); beyond, position wins: some Leaderboard waypoints carry a reversed yaw
HEADING_TIE_M = 1.0
EdgeKind = Literal["start", "follow", "left", "right"]


class RouteError(ValueError):
    """No route: the message names the route, the waypoint and why."""


@dataclass(frozen=True)
class Route:
    """A planned route: lanes in order with how each was entered, and the length [m]."""

    lanes: tuple[int, ...]
    kinds: tuple[EdgeKind, ...]
    start_s: float
    goal_s: float
    length_m: float

    @property
    def lane_changes(self) -> int:
        return sum(k in ("left", "right") for k in self.kinds)


def _xy(g: R.LaneGraph, lane: int, s: float) -> tuple[float, float]:
    x, y, _ = R.lane_pose(
        g, np.array([lane], np.int32), np.array([s], np.float32), np.zeros(1, np.float32)
    )
    return float(x[0]), float(y[0])


def _neighbor_s(g: R.LaneGraph, lane: int, s: float, other: int) -> float:
    out = R.map_to_neighbor(
        g, np.array([lane], np.int32), np.array([s], np.float32), np.array([other], np.int32)
    )
    return float(out[0])


def plan(
    g: R.LaneGraph,
    start: tuple[int, float],
    goal: tuple[int, float],
    lane_change_cost_m: float = LANE_CHANGE_COST_M,
) -> Route | None:
    """Shortest route from ``start = (lane, s)`` to ``goal = (lane, s)`` (module docstring).

    Returns:
        The route, or None when the goal cannot be reached.
    """
    a, sa = int(start[0]), float(start[1])
    b, sb = int(goal[0]), float(goal[1])
    gx, gy = _xy(g, b, sb)

    def h(lane: int, s: float) -> float:
        x, y = (
            _xy(g, lane, s)
            if s > 0
            else (float(g.x[g.lane_start[lane]]), float(g.y[g.lane_start[lane]]))
        )
        return math.hypot(x - gx, y - gy)

    # node key: (lane, entered at start?) -- lane changes and the start enter mid-lane
    Key = tuple[int, bool]
    best: dict[Key, float] = {(a, False): 0.0}
    entry: dict[Key, float] = {(a, False): sa}
    parent: dict[Key, tuple[Key | None, EdgeKind]] = {(a, False): (None, "start")}
    heap: list[tuple[float, float, Key]] = [(h(a, sa), 0.0, (a, False))]
    done: set[Key] = set()
    goal_cost, goal_key = math.inf, None
    while heap:
        f, cost, key = heapq.heappop(heap)
        if f >= goal_cost:
            break
        if key in done:
            continue
        done.add(key)
        lane, s = key[0], entry[key]
        if lane == b and s <= sb + 1e-3 and cost + sb - s < goal_cost:
            goal_cost, goal_key = cost + max(sb - s, 0.0), key
            continue
        remaining = float(g.lane_length[lane]) - s
        steps: list[tuple[Key, float, float, EdgeKind]] = []
        for v in g.successors[lane]:
            if v >= 0:
                steps.append(((int(v), True), cost + max(remaining, 0.0), 0.0, "follow"))
        for nb, kind in ((int(g.left[lane]), "left"), (int(g.right[lane]), "right")):
            if nb >= 0 and g.lane_type[nb] == g.lane_type[lane]:
                s_nb = _neighbor_s(g, lane, s, nb)
                steps.append(((nb, False), cost + lane_change_cost_m, s_nb, kind))  # type: ignore[arg-type]
        for nk, nc, ns, kind in steps:
            if nk in done or nc >= best.get(nk, math.inf):
                continue
            best[nk], entry[nk], parent[nk] = nc, ns, (key, kind)
            heapq.heappush(heap, (nc + h(nk[0], ns), nc, nk))
    if goal_key is None:
        return None
    lanes: list[int] = []
    kinds: list[EdgeKind] = []
    k: Key | None = goal_key
    while k is not None:
        prev, kind = parent[k]
        lanes.append(k[0])
        kinds.append(kind)
        k = prev
    return Route(tuple(reversed(lanes)), tuple(reversed(kinds)), sa, sb, goal_cost)


def reachable_share(g: R.LaneGraph) -> float:
    """Share of ordered (from, to) driving-lane pairs joined by follow and lane-change edges."""
    drv = np.nonzero(g.lane_type == R.LaneType.DRIVING)[0]
    if drv.size == 0:
        return 0.0
    adj = [
        [int(v) for v in (*g.successors[u], g.left[u], g.right[u]) if v >= 0]
        for u in range(g.num_lanes)
    ]
    total = 0
    for a in drv:
        seen = np.zeros(g.num_lanes, np.bool_)
        seen[a] = True
        q = deque([int(a)])
        while q:
            u = q.popleft()
            for v in adj[u]:
                if not seen[v]:
                    seen[v] = True
                    q.append(v)
        total += int(seen[drv].sum())
    return total / float(drv.size) ** 2


# ---------------------------------------------------------------------------------------------
# CARLA Leaderboard routes
# ---------------------------------------------------------------------------------------------


def carla_to_odr(
    x: NDArray[np.floating], y: NDArray[np.floating], yaw_deg: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """CARLA world ``(x, y, yaw [deg, clockwise])`` to OpenDRIVE ``(x, y, heading [rad])``."""
    return (
        np.asarray(x, np.float64),
        -np.asarray(y, np.float64),
        -np.radians(np.asarray(yaw_deg, np.float64)),
    )


@dataclass(frozen=True)
class LeaderboardRoute:
    """One ``<route>``: CARLA-frame waypoints ``(W, 3)`` columns x, y, yaw [deg]."""

    id: str
    town: str
    waypoints: NDArray[np.float64]


def read_leaderboard_routes(path: str | Path) -> list[LeaderboardRoute]:
    """The routes of a Leaderboard route file; errors name the file and route."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, OSError) as e:
        raise RouteError(f"{p}: cannot read route file: {e}") from None
    out = []
    for i, r in enumerate(root.findall("route")):
        rid, town = r.get("id"), r.get("town")
        if rid is None or town is None:
            raise RouteError(f"{p}: route[{i}] needs 'id' and 'town' attributes")
        rows = []
        for j, w in enumerate(r.findall("waypoint")):
            try:
                rows.append([float(w.get(k, "nan")) for k in ("x", "y", "yaw")])
            except ValueError:
                raise RouteError(f"{p}: route {rid} waypoint {j}: non-numeric x/y/yaw") from None
            if not np.isfinite(rows[-1]).all():
                raise RouteError(f"{p}: route {rid} waypoint {j}: needs x, y and yaw")
        if len(rows) < 2:
            raise RouteError(f"{p}: route {rid}: needs at least 2 waypoints, got {len(rows)}")
        out.append(LeaderboardRoute(rid, town, np.array(rows, np.float64)))
    return out


@dataclass(frozen=True)
class PlannedRoute:
    """A Leaderboard route on the lane graph: the snapped waypoints and the joined legs."""

    id: str
    town: str
    snapped: tuple[tuple[int, float], ...]  # (lane, s) per waypoint
    snap_dist_m: tuple[float, ...]
    legs: tuple[Route, ...]

    @property
    def length_m(self) -> float:
        return sum(leg.length_m for leg in self.legs)


def plan_leaderboard_route(g: R.LaneGraph, route: LeaderboardRoute) -> PlannedRoute:
    """Snap every waypoint to a driving lane and plan between consecutive ones.

    Raises:
        RouteError: a waypoint is farther than ``SNAP_MAX_M`` from every driving lane, or no
            path joins two consecutive waypoints (named by route id and waypoint index).
    """
    x, y, yaw = carla_to_odr(route.waypoints[:, 0], route.waypoints[:, 1], route.waypoints[:, 2])
    px, py = x.astype(np.float32), y.astype(np.float32)
    near = R.project_global(g, px, py)
    aligned = R.project_global(g, px, py, yaw.astype(np.float32))
    use = aligned.distance <= near.distance + HEADING_TIE_M
    lane = np.where(use, aligned.lane, near.lane)
    s_on = np.where(use, aligned.s, near.s)
    distance = np.where(use, aligned.distance, near.distance)
    snapped = []
    for j in range(len(x)):
        dist = float(distance[j])
        if dist > SNAP_MAX_M:
            raise RouteError(
                f"route {route.id} ({route.town}) waypoint {j} at CARLA "
                f"({route.waypoints[j, 0]:.1f}, {route.waypoints[j, 1]:.1f}): {dist:.1f} m from "
                "the nearest driving lane "
                f"(max {SNAP_MAX_M} m)"
            )
        snapped.append((int(lane[j]), float(s_on[j])))
    legs = []
    for j in range(len(snapped) - 1):
        leg = plan(g, snapped[j], snapped[j + 1])
        if leg is None:
            a, b = snapped[j], snapped[j + 1]
            raise RouteError(
                f"route {route.id} ({route.town}): no path from waypoint {j} (road "
                f"{g.odr_road[a[0]]} lane {g.odr_lane[a[0]]}) to waypoint {j + 1} (road "
                f"{g.odr_road[b[0]]} lane {g.odr_lane[b[0]]})"
            )
        legs.append(leg)
    return PlannedRoute(
        route.id,
        route.town,
        tuple(snapped),
        tuple(float(d) for d in distance),
        tuple(legs),
    )


# ---------------------------------------------------------------------------------------------
# The ego's route in the world state
# ---------------------------------------------------------------------------------------------


def route_lanes(legs: tuple[Route, ...] | list[Route]) -> list[int]:
    """The lane sequence of joined legs (a leg's first lane continues the previous leg's last)."""
    out: list[int] = []
    for leg in legs:
        lanes = list(leg.lanes)
        if out and lanes and lanes[0] == out[-1]:
            lanes = lanes[1:]
        out += lanes
    return out


def section_chain(
    g: R.LaneGraph, lanes: list[int], s_ref0: float
) -> tuple[list[int], list[float], list[int]]:
    """The world's route chain (:class:`sim.state.Route`) of a lane sequence.

    Consecutive lanes of one section (a lane change) are one chain entry, holding the lane the
    route leaves the section on. Sections shorter than ``SHORT_SECTION_M`` inside the route
    (CARLA towns have hundreds of 5-100 cm ones) get no entry of their own: the ego crosses
    them within a step, and the world advances one entry per step; their length counts in the
    next entry's start.

    Returns:
        (section per entry, cumulative length [m] at each entry's start, R + 1 values with
        ``-s_ref0`` first, as ``sim.world`` measures progress; lane per entry).
    """
    secs: list[int] = []
    entry_lane: list[int] = []
    cum = [-s_ref0]
    pending = 0.0
    for k, ln in enumerate(lanes):
        sec = int(g.section[ln])
        length = float(g.section_length[sec])
        if secs and secs[-1] == sec:
            entry_lane[-1] = int(ln)
        elif secs and k < len(lanes) - 1 and length < SHORT_SECTION_M:
            pending += length
        else:
            if secs:
                cum.append(cum[-1] + float(g.section_length[secs[-1]]) + pending)
                pending = 0.0
            secs.append(sec)
            entry_lane.append(int(ln))
    cum.append(cum[-1] + float(g.section_length[secs[-1]]) + pending)
    return secs, cum, entry_lane


def successor_slot(
    g: R.LaneGraph, lane: NDArray[np.int32], nxt: NDArray[np.int32]
) -> NDArray[np.int32]:
    """(B,) the slot of ``nxt`` among ``lane``'s successors, or of the successor that leads to
    it (``nxt`` two lanes on, past a short section): the ``route_choice`` that takes it at the
    next fork; 0 where neither (-1 ``nxt``: none wanted)."""
    succ = g.successors.take(lane, axis=0)  # (B, 4)
    hit = succ == nxt[:, None]
    two = (g.successors.take(np.maximum(succ, 0), axis=0) == nxt[:, None, None]).any(2)
    two &= succ >= 0
    out = np.where(hit.any(1), hit.argmax(1), np.where(two.any(1), two.argmax(1), 0))
    return out.astype(np.int32)


@lru_cache(maxsize=256)
def plan_through(
    g: R.LaneGraph, start: tuple[int, float], points: tuple[tuple[int, float], ...]
) -> tuple[Route, ...] | None:
    """Legs from ``start`` through each of ``points`` (``(lane, s)``) in order; None when a leg
    has no path. Cached: resets of the same spec plan once."""
    legs = []
    here = start
    for p in points:
        leg = plan(g, here, p)
        if leg is None:
            return None
        legs.append(leg)
        here = p
    return tuple(legs)


# ---------------------------------------------------------------------------------------------
# Leaderboard routes as scenario specs
# ---------------------------------------------------------------------------------------------

CARLA_MAPS_DIR = "../shared/data/maps/carla"  # relative to the working directory
LEADERBOARD_MIN_SPEED_MPS = 3.0  # [m/s] time limit = length / this + 60 s (generous for lights)


def odr_position(g: R.LaneGraph, lane: int, s: float) -> tuple[int, int, float]:
    """OpenDRIVE ``(road, lane id, s along the road's reference line)`` of lane position
    ``(lane, s)``: the inverse of :meth:`sim.road.LaneGraph.lane_index`."""
    local = float(R.interp(g, g.s_ref, np.array([lane]), np.array([s], np.float32))[0])
    sec = int(g.section[lane])
    if g.lane_reversed is not None and g.lane_reversed[lane]:
        local = float(g.section_length[sec]) - local
    return int(g.odr_road[lane]), int(g.odr_lane[lane]), float(g.section_s0[sec]) + local


def leaderboard_spec(
    route_file: str | Path,
    route_id: str,
    base: Any,
    maps_dir: str | Path = CARLA_MAPS_DIR,
) -> Any:
    """A :class:`sim.scenario.ScenarioSpec` driving Leaderboard route ``route_id``: the town's
    map, the ego standing at the first waypoint with the others as its route waypoints, and
    ``base``'s traffic (use ``traffic.radius`` to spread it around the ego) and seed. The time
    limit is the longer of ``base``'s and ``length / LEADERBOARD_MIN_SPEED_MPS + 60 s``.

    Raises:
        RouteError: no such route id, the town's map is missing, or the route does not plan.
    """
    import dataclasses

    from sim.scenario import EgoSpec, RoadSpec, build_road

    routes = {r.id: r for r in read_leaderboard_routes(route_file)}
    if str(route_id) not in routes:
        raise RouteError(
            f"{route_file}: no route id {route_id!r} (ids: {', '.join(sorted(routes, key=_num))})"
        )
    route = routes[str(route_id)]
    path = Path(maps_dir) / f"{route.town}.xodr"
    if not path.is_file():
        raise RouteError(f"route {route.id}: map of {route.town} not found at {path}")
    road = RoadSpec(kind="file", path=str(path))
    g = build_road(road)
    planned = plan_leaderboard_route(g, route)
    start = odr_position(g, *planned.snapped[0])
    points = [odr_position(g, *p) for p in planned.snapped[1:]]
    ego = EgoSpec(
        road=start[0],
        lane=start[1],
        s=max(start[2], 0.0),
        speed=0.0,
        route_length=max(planned.length_m, 1.0),
        waypoints=tuple((float(r), float(ln), max(s, 0.0)) for r, ln, s in points),
    )
    limit = max(base.time_limit_s, planned.length_m / LEADERBOARD_MIN_SPEED_MPS + 60.0)
    return dataclasses.replace(
        base,
        name=f"leaderboard_{route.town}_{route.id}",
        road=road,
        ego=ego,
        actors=(),
        time_limit_s=min(limit, 3600.0),
    )


def _num(rid: str) -> tuple[int, str]:
    return (int(rid), rid) if rid.isdigit() else (1 << 30, rid)
