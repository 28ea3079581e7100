"""Route planning over lane graphs and CARLA Leaderboard routes on the loaded towns."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from sim import opendrive as O
from sim import road as R
from sim import routes as RT

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
ROUTES = DATA / "routes" / "leaderboard_v1"
CARLA = DATA / "maps" / "carla"
needs_data = pytest.mark.skipif(
    not (ROUTES.is_dir() and CARLA.is_dir()),
    reason="route data absent: ../shared/data/routes/leaderboard_v1 and ../shared/data/maps/carla",
)


@functools.cache
def _town(name: str) -> R.LaneGraph:
    return O.load_lane_graph(CARLA / f"{name}.xodr", use_cache=False)


def _check_linked(g: R.LaneGraph, route: RT.Route) -> None:
    for prev, lane, kind in zip(route.lanes[:-1], route.lanes[1:], route.kinds[1:], strict=True):
        if kind == "follow":
            assert lane in g.successors[prev]
        else:
            assert lane == (g.left[prev] if kind == "left" else g.right[prev])


def test_plan_on_a_straight_road_counts_lane_changes_in_metres() -> None:
    g = R.straight_highway(1000.0, num_lanes=3)
    a, _ = g.lane_index(0, -1, 10.0)
    b, _ = g.lane_index(0, -3, 500.0)
    route = RT.plan(g, (a, 10.0), (b, 500.0))
    assert route is not None
    assert route.lane_changes == 2 and route.kinds[0] == "start"
    assert route.length_m == pytest.approx(490.0 + 2 * RT.LANE_CHANGE_COST_M, abs=0.05)
    _check_linked(g, route)
    assert RT.plan(g, (b, 500.0), (a, 10.0)) is None  # behind, on a one-way road
    same = RT.plan(g, (a, 10.0), (a, 60.0))
    assert same is not None and same.lanes == (a,) and same.length_m == pytest.approx(50.0)


def test_plan_goes_round_a_ring() -> None:
    g = R.ring_road(100.0, num_lanes=1)
    route = RT.plan(g, (0, 100.0), (0, 50.0))  # goal behind: once round the ring
    assert route is not None
    assert route.length_m == pytest.approx(float(g.lane_length[0]) - 50.0, abs=0.1)


@needs_data
def test_carla_y_axis_is_flipped_relative_to_opendrive() -> None:
    (route, *_) = RT.read_leaderboard_routes(ROUTES / "routes_devtest.xml")
    g = _town(route.town)
    x, y, yaw = RT.carla_to_odr(route.waypoints[:, 0], route.waypoints[:, 1], route.waypoints[:, 2])
    flipped = R.project_global(g, x.astype(np.float32), y.astype(np.float32))
    raw = R.project_global(g, x.astype(np.float32), route.waypoints[:, 1].astype(np.float32))
    assert flipped.distance.max() < 1.5
    assert np.median(raw.distance) > 20.0
    heading = R.interp(g, g.heading, flipped.lane, flipped.s)
    dh = np.abs((heading - yaw + np.pi) % (2 * np.pi) - np.pi)
    assert np.mean(dh < 0.3) > 0.9


@needs_data
@pytest.mark.parametrize(
    ("name", "need"),
    [("routes_devtest.xml", 3), ("routes_training.xml", 39)],
)
def test_leaderboard_routes_plan_on_the_towns(name: str, need: int) -> None:
    routes = RT.read_leaderboard_routes(ROUTES / name)
    ok, errors = 0, []
    for route in routes:
        g = _town(route.town)
        try:
            planned = RT.plan_leaderboard_route(g, route)
        except RT.RouteError as e:
            errors.append(str(e))
            continue
        ok += 1
        assert len(planned.legs) == len(route.waypoints) - 1
        for leg in planned.legs:
            _check_linked(g, leg)
        # the route is at least as long as the straight lines between its waypoints
        x, y, _ = RT.carla_to_odr(
            route.waypoints[:, 0], route.waypoints[:, 1], route.waypoints[:, 2]
        )
        assert planned.length_m >= np.hypot(np.diff(x), np.diff(y)).sum() - 5.0
    assert ok >= need, errors
    # failures name the route and the waypoint
    assert all(e.startswith("route ") and "waypoint" in e for e in errors)


@needs_data
def test_unsnappable_waypoint_names_route_and_waypoint() -> None:
    g = _town("Town01")
    wps = np.array([[338.7, 226.75, 270.0], [5000.0, 5000.0, 0.0]])
    with pytest.raises(RT.RouteError, match=r"route 7 \(Town01\) waypoint 1 .* from the nearest"):
        RT.plan_leaderboard_route(g, RT.LeaderboardRoute("7", "Town01", wps))


def test_bad_route_file_is_named(tmp_path: Path) -> None:
    p = tmp_path / "r.xml"
    p.write_text("<routes><route id='1' town='Town01'><waypoint x='1' y='2'/></route></routes>")
    with pytest.raises(RT.RouteError, match=r"r\.xml: route 1 waypoint 0: needs x, y and yaw"):
        RT.read_leaderboard_routes(p)
    p.write_text("<routes><route")
    with pytest.raises(RT.RouteError, match=r"r\.xml: cannot read"):
        RT.read_leaderboard_routes(p)


# ---------------------------------------------------------------------------------------------
# Routes in the world state and Leaderboard specs
# ---------------------------------------------------------------------------------------------


def test_section_chain_joins_lane_changes_and_skips_short_sections() -> None:
    from sim.scenario import RoadSpec, build_road

    g = build_road(RoadSpec(kind="intersection", num_lanes=1))
    start, goal = g.lane_index(0, 1, 80.0), g.lane_index(1, -1, 50.0)
    route = RT.plan(g, start, goal)
    assert route is not None
    lanes = RT.route_lanes([route])
    assert lanes == list(route.lanes)
    secs, cum, chain = RT.section_chain(g, lanes, 5.0)
    assert len(secs) == len(cum) - 1 == len(chain) == 3  # arm 0, the right turn, arm 1
    assert cum[0] == -5.0
    np.testing.assert_allclose(np.diff(cum), g.section_length[secs], rtol=1e-6)
    # the turn is the successor slot that reaches arm 1
    slot = RT.successor_slot(g, np.array([chain[0]], np.int32), np.array([chain[1]], np.int32))
    assert g.successors[chain[0], slot[0]] == chain[1]
    # two lanes on (past a short section) picks the branch leading there
    slot2 = RT.successor_slot(g, np.array([chain[0]], np.int32), np.array([chain[2]], np.int32))
    assert g.successors[chain[0], slot2[0]] == chain[1]


@needs_data
def test_a_short_section_gets_no_chain_entry_but_keeps_its_length() -> None:
    g = _town("Town03")
    short = int(np.nonzero((g.lane_length < 0.5) & (g.lane_type == 0))[0][0])
    before, after = int(g.predecessors[short, 0]), int(g.successors[short, 0])
    _, cum, chain = RT.section_chain(g, [before, short, after], 0.0)
    assert chain == [before, after]
    total = float(g.section_length[g.section[before]] + g.section_length[g.section[short]])
    assert cum[1] == pytest.approx(total)


@needs_data
def test_leaderboard_route_becomes_a_spec_that_checks_on_its_town() -> None:
    from sim.scenario import ScenarioSpec, TrafficSpec, build_road, check_on_road

    base = ScenarioSpec(traffic=TrafficSpec(count=10, radius=100.0), time_limit_s=30.0)
    spec = RT.leaderboard_spec(ROUTES / "routes_devtest.xml", "0", base, CARLA)
    assert spec.road.kind == "file" and spec.road.path.endswith("Town01.xodr")
    assert len(spec.ego.waypoints) >= 2 and spec.traffic == base.traffic
    assert spec.time_limit_s > 30.0  # long enough for the route
    g = build_road(spec.road)
    check_on_road(spec, g)
    # the ego starts where the route's first waypoint snaps, in OpenDRIVE coordinates
    lane, s = g.lane_index(spec.ego.road, spec.ego.lane, spec.ego.s)
    x, y, _ = R.lane_pose(g, np.array([lane]), np.array([s], np.float32), np.zeros(1, np.float32))
    wp = RT.read_leaderboard_routes(ROUTES / "routes_devtest.xml")[0].waypoints[0]
    assert np.hypot(x[0] - wp[0], y[0] + wp[1]) < 1.0
    with pytest.raises(RT.RouteError, match="no route id '99'"):
        RT.leaderboard_spec(ROUTES / "routes_devtest.xml", "99", base, CARLA)
