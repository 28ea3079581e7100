"""Urban layouts (sim.urban): they build through the OpenDRIVE compiler with continuous links,
round-trip through the writer within 5 cm, validate against the XSD, are reachable from a
ScenarioSpec with checked parameters, and the bundled scenario configs load and drive."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim import opendrive as O
from sim import road as R
from sim import urban as U
from sim.routes import plan
from sim.scenario import RoadSpec, SpecError, build_road, check_on_road, spec_from_dict

ROOT = Path(__file__).resolve().parents[2]
LINK_GAP_M = 0.05  # [m] lane end to successor start
LINK_HEADING_RAD = 0.05  # [rad] heading change across a link
ROUND_TRIP_M = 0.05  # [m] the bound on export -> import

SPECS = {
    "intersection": RoadSpec(kind="intersection", num_lanes=2, speed_limit=13.9),
    "t_junction": RoadSpec(kind="t_junction", num_lanes=1, speed_limit=13.9),
    "roundabout": RoadSpec(kind="roundabout", num_lanes=1, speed_limit=13.9),
    "on_ramp": RoadSpec(kind="on_ramp", num_lanes=2, speed_limit=27.8, arm_length=200.0),
    "off_ramp": RoadSpec(kind="off_ramp", num_lanes=2, speed_limit=27.8, arm_length=200.0),
}


def _links(g: R.LaneGraph) -> tuple[np.ndarray, np.ndarray]:
    src, k = np.nonzero(g.successors >= 0)
    return src, g.successors[src, k]


@pytest.mark.parametrize("kind", list(SPECS))
def test_layout_builds_with_continuous_links(kind: str) -> None:
    rep = O.BuildReport()
    g = O.build_lane_graph(U.urban_model(SPECS[kind]), report=rep)
    assert rep.unresolved_links == rep.direction_conflicts == rep.discontinuous_links == []
    src, dst = _links(g)
    assert src.size > 0
    a, b = (g.lane_start + g.lane_npoints - 1)[src], g.lane_start[dst]
    assert np.hypot(g.x[a] - g.x[b], g.y[a] - g.y[b]).max() < LINK_GAP_M
    dh = np.abs((g.heading[a] - g.heading[b] + np.pi) % (2 * np.pi) - np.pi)
    assert dh.max() < LINK_HEADING_RAD
    assert np.isfinite(g.curvature).all()


def test_intersection_movements_and_turn_radii() -> None:
    n, w, kerb = 2, 3.5, 8.0
    g = build_road(SPECS["intersection"])
    conn = np.nonzero(g.odr_road > int(U.JUNCTION_ID))[0]
    assert conn.size == 4 * (n + 2)  # per arm: n straight, one right, one left
    # every incoming lane has a way across; lane 1 (next to the centre line) may turn left
    for arm in range(4):
        lane1, _ = g.lane_index(arm, 1, 50.0)
        assert g.num_successors[lane1] == 2
    H = n * w + kerb
    k = np.abs(
        g.curvature[
            np.concatenate(
                [
                    np.arange(a, a + m)
                    for a, m in zip(g.lane_start[conn], g.lane_npoints[conn], strict=True)
                ]
            )
        ]
    )
    right, left = 1.0 / (H - (n - 0.5) * w), 1.0 / (H + 0.5 * w)
    assert abs(k.max() - right) < 0.01 * right  # tightest turn is the right turn
    assert np.any(np.abs(k - left) < 0.01 * left)
    for i in range(4):  # every arm reaches every other arm (turns from the right lanes)
        for j in range(4):
            if i != j:
                start, goal = g.lane_index(i, 2, 80.0), g.lane_index(j, -1, 50.0)
                assert plan(g, start, goal) is not None, (i, j)


def test_t_junction_has_three_arms_and_no_lights() -> None:
    model = U.urban_model(SPECS["t_junction"])
    assert sorted(rd.num_id for rd in model.roads if rd.junction == "-1") == [0, 1, 2]
    assert model.signals == () and model.controllers == ()
    lit = U.urban_model(SPECS["intersection"])
    assert len(lit.signals) == 4 and [c.sequence for c in lit.controllers] == [0, 1]
    assert lit.junctions[0].controllers == ("c0", "c1")


def test_roundabout_ring_is_closed_and_circulates_counter_clockwise() -> None:
    g = build_road(SPECS["roundabout"])
    ring = np.nonzero(g.odr_road == 10)[0][0]
    lane, seen = int(ring), []
    for _ in range(9):  # ring road -> through connector -> next ring road ...
        seen.append(int(g.odr_road[lane]))
        nxt = [int(t) for t in g.successors[lane] if t >= 0]
        on_ring = [t for t in nxt if g.odr_road[t] in (10, 11, 12, 13) or g.odr_road[t] % 10 == 1]
        lane = on_ring[0]
    assert seen[0] == seen[-1] == 10 and len(set(seen)) == 8  # 4 roads, 4 connectors
    sl = slice(int(g.lane_start[ring]), int(g.lane_start[ring] + g.lane_npoints[ring]))
    cross = g.x[sl][:-1] * g.y[sl][1:] - g.y[sl][:-1] * g.x[sl][1:]
    assert (cross > 0).all()  # counter-clockwise about the centre
    assert np.allclose(np.hypot(g.x[sl], g.y[sl]), 20.0, atol=0.02)


def test_on_ramp_acceleration_lane_tapers_and_ends() -> None:
    g = build_road(SPECS["on_ramp"])
    added = np.nonzero((g.odr_road == 1) & (g.odr_lane == -3))[0]
    assert added.size == 2
    tail = int(added[np.argmax(g.section[added])])
    assert g.num_successors[tail] == 0
    last = int(g.lane_start[tail] + g.lane_npoints[tail] - 1)
    assert g.width[last] < 0.05 and g.width[g.lane_start[tail]] == pytest.approx(3.5)
    ramp, _ = g.lane_index(3, -1, 10.0)
    nxt = int(g.successors[ramp, 0])
    assert g.odr_road[nxt] == 102 and g.odr_road[g.successors[nxt, 0]] == 1


@pytest.mark.parametrize("kind", list(SPECS))
def test_export_import_round_trip_within_5cm(tmp_path: Path, kind: str) -> None:
    from generative.openscenario import xodr_schema_errors

    model = U.urban_model(SPECS[kind])
    ref = O.build_lane_graph(model)
    path = O.write_opendrive(O.model_from_road_spec(SPECS[kind]), tmp_path / f"{kind}.xodr")
    assert xodr_schema_errors(path) == []
    back = O.read_opendrive(path)
    assert len(back.signals) == len(model.signals)
    assert back.controllers == model.controllers
    g = O.build_lane_graph(back)
    assert g.num_lanes == ref.num_lanes
    np.testing.assert_array_equal(g.successors, ref.successors)
    np.testing.assert_array_equal(g.odr_road, ref.odr_road)
    np.testing.assert_array_equal(g.lane_npoints, ref.lane_npoints)
    assert np.hypot(g.x - ref.x, g.y - ref.y).max() < ROUND_TRIP_M
    np.testing.assert_allclose(g.speed_limit, ref.speed_limit, rtol=1e-6)


@pytest.mark.parametrize(
    ("road", "pattern"),
    [
        ({"kind": "roundabout"}, r"road\.num_lanes: .*single-lane.*got 3"),
        ({"kind": "intersection", "junction_radius": 1.0}, r"road\.junction_radius: expected 2"),
        ({"kind": "intersection", "num_lanes": 4}, r"road\.num_lanes: expected 1 to 3"),
        ({"kind": "on_ramp", "signalised": True}, r"road\.signalised: a on_ramp has no"),
        ({"kind": "on_ramp", "ramp_angle": 1.2}, r"road\.ramp_angle: expected <= 0\.8"),
        ({"kind": "roundabout", "num_lanes": 1, "junction_radius": 10.0}, r"junction_radius"),
        ({"kind": "cloverleaf"}, r"road\.kind: expected one of"),
    ],
)
def test_bad_urban_parameters_name_the_field(road: dict[str, object], pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        spec_from_dict({"road": road})


@pytest.mark.parametrize(
    "name", ["intersection", "t_junction", "roundabout", "on_ramp", "off_ramp"]
)
def test_bundled_scenario_configs_fit_their_roads(name: str) -> None:
    data = yaml.safe_load((ROOT / "configs" / "scenario" / f"{name}.yaml").read_text())
    spec = spec_from_dict(data, source=name)
    assert spec.road.kind == name
    check_on_road(spec, build_road(spec.road), source=name)


def test_connect_joins_poses_with_arcs_or_a_hermite_curve() -> None:
    p, q = U.Pose(0.0, 0.0, 0.0), U.Pose(10.0, 10.0, math.pi / 2)
    geoms = U.connect(p, q)
    assert [g.kind for g in geoms] == ["arc"]
    assert geoms[0].params[0] == pytest.approx(0.1)
    s_shift = U.connect(p, U.Pose(30.0, 2.0, 0.0))  # parallel, offset: no corner to round
    assert [g.kind for g in s_shift] == ["paramPoly3"]
    x, y, h, _ = O.eval_geometry(s_shift[0], np.array([s_shift[0].length]))
    assert (x[0], y[0], h[0]) == pytest.approx((30.0, 2.0, 0.0), abs=1e-9)
