"""OpenDRIVE maps: every shipped map loads, geometry matches the file, links are continuous,
towns are connected, bad files fail by name, the cache and the writer round-trip."""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from sim import opendrive as O
from sim import road as R
from sim.routes import reachable_share
from sim.scenario import EgoSpec, RoadSpec, ScenarioSpec, SpecError, build_road, check_on_road

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
CARLA = DATA / "maps" / "carla"
ESMINI = DATA / "esmini"
MAPS = (
    sorted(CARLA.glob("*.xodr"))
    + sorted((ESMINI / "xodr").glob("*.xodr"))
    + sorted((ESMINI / "unittest_xodr").glob("*.xodr"))
)
TOWNS = sorted(CARLA.glob("*.xodr"))
needs_data = pytest.mark.skipif(
    not MAPS, reason="map data absent: ../shared/data/maps/carla and ../shared/data/esmini"
)
LINK_GAP_M = 0.05  # [m] the bound on a lane end to successor start gap
LINK_HEADING_RAD = 0.05  # [rad] the bound on the heading change across a link


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@functools.cache
def _load(path: Path) -> tuple[O.OdrMap, R.LaneGraph, O.BuildReport]:
    model = O.read_opendrive(path)
    rep = O.BuildReport()
    return model, O.build_lane_graph(model, report=rep), rep


def _lane_slice(g: R.LaneGraph, lane: int) -> slice:
    a = int(g.lane_start[lane])
    return slice(a, a + int(g.lane_npoints[lane]))


def _link_errors(g: R.LaneGraph) -> tuple[int, list[str]]:
    """(driving links, those whose ends are further apart than the bounds)."""
    end = g.lane_start + g.lane_npoints - 1
    src, k = np.nonzero(g.successors >= 0)
    dst = g.successors[src, k]
    drive = (g.lane_type[src] == R.LaneType.DRIVING) & (g.lane_type[dst] == R.LaneType.DRIVING)
    src, dst = src[drive], dst[drive]
    a, b = end[src], g.lane_start[dst]
    gap = np.hypot(g.x[a] - g.x[b], g.y[a] - g.y[b])
    dh = np.abs((g.heading[a] - g.heading[b] + np.pi) % (2 * np.pi) - np.pi)
    bad = np.nonzero((gap > LINK_GAP_M) | (dh > LINK_HEADING_RAD))[0]
    msgs = [
        f"road {g.odr_road[src[i]]} lane {g.odr_lane[src[i]]} -> road {g.odr_road[dst[i]]} "
        f"lane {g.odr_lane[dst[i]]}: gap {gap[i]:.3f} m, heading {dh[i]:.3f} rad"
        for i in bad
    ]
    return int(src.size), msgs


# ---------------------------------------------------------------------------------------------
# Every map
# ---------------------------------------------------------------------------------------------


@needs_data
def test_map_data_is_all_there() -> None:
    assert len(TOWNS) == 5
    assert len(MAPS) == 5 + 19 + 55


@needs_data
@pytest.mark.parametrize("path", MAPS, ids=_ids(MAPS))
def test_every_map_loads_with_continuous_lanes_and_links(path: Path) -> None:
    model, g, rep = _load(path)
    assert g.num_lanes > 0
    for name in ("x", "y", "heading", "curvature", "width", "speed_limit", "left_edge"):
        assert np.isfinite(getattr(g, name)).all(), name
    assert (g.width >= 0).all() and (g.speed_limit > 0).all()
    assert not rep.direction_conflicts
    # links to roads the file lacks are reported, not guessed (stationary_objects.xodr)
    ids = {rd.id for rd in model.roads}
    assert all(u.split("linked road ")[-1] not in ids for u in rep.unresolved_links)
    # consecutive samples along every lane are at most the sampling spacing apart
    step = np.hypot(np.diff(g.x), np.diff(g.y))
    inner = np.ones(g.num_points - 1, np.bool_)
    inner[(g.lane_start + g.lane_npoints - 1)[:-1]] = False
    assert step[inner].max() <= R.LANE_SPACING_M + 1e-3
    # every driving link: the lane's end meets its successor's start
    _, bad = _link_errors(g)
    assert not bad, bad[:5]
    # each lane's ids come from the file
    roads = {rd.num_id: rd for rd in model.roads}
    for lane in range(g.num_lanes):
        rd = roads[int(g.odr_road[lane])]
        assert any(ln.id == g.odr_lane[lane] for sec in rd.sections for ln in sec.lanes)


@needs_data
def test_link_continuity_over_all_maps() -> None:
    links = 0
    for p in MAPS:
        n, bad = _link_errors(_load(p)[1])
        links += n
        assert not bad, (p.name, bad[:3])
    assert links > 3000  # the towns alone have ~3,000 driving links


@needs_data
@pytest.mark.parametrize("path", TOWNS, ids=_ids(TOWNS))
def test_town_lanes_reach_each_other(path: Path) -> None:
    g = _load(path)[1]
    assert reachable_share(g) > 0.95


@needs_data
def test_lane_widths_follow_the_file_polynomials() -> None:
    for p in [*TOWNS, ESMINI / "xodr" / "soderleden.xodr", ESMINI / "xodr" / "parking_demo.xodr"]:
        model, g, _ = _load(p)
        roads = {rd.num_id: rd for rd in model.roads}
        for lane in range(0, g.num_lanes, 3):
            rd = roads[int(g.odr_road[lane])]
            sec_i = int(g.section[lane])
            s0 = float(g.section_s0[sec_i])
            k = min(range(len(rd.sections)), key=lambda i: abs(rd.sections[i].s - s0))
            ln = next(x for x in rd.sections[k].lanes if x.id == g.odr_lane[lane])
            sl = _lane_slice(g, lane)
            s_ref = g.s_ref[sl].astype(np.float64)
            assert g.lane_reversed is not None
            if g.lane_reversed[lane]:
                s_ref = float(g.section_length[sec_i]) - s_ref
            want, _ = O.eval_poly(ln.widths, s_ref)
            np.testing.assert_allclose(g.width[sl], want, atol=0.01, err_msg=f"{p.name} {lane}")


@needs_data
def test_arc_radius_and_spiral_curvature_rate_match_the_file() -> None:
    # curve_r100: one arc of curvature 0.01; lane centres are concentric circles
    model, g, _ = _load(ESMINI / "xodr" / "curve_r100.xodr")
    rd = model.roads[0]
    arc = next(gm for gm in rd.geometry if gm.kind == "arc")
    k = arc.params[0]
    cx = arc.x - math.sin(arc.hdg) / k
    cy = arc.y + math.cos(arc.hdg) / k
    for lane in range(g.num_lanes):
        sl = _lane_slice(g, lane)
        s_ref = g.s_ref[sl]
        on_arc = (s_ref > arc.s + 1) & (s_ref < arc.s + arc.length - 1)
        if g.lane_reversed is not None and g.lane_reversed[lane]:
            s_abs = g.section_length[g.section[lane]] - s_ref
            on_arc = (s_abs > arc.s + 1) & (s_abs < arc.s + arc.length - 1)
        r = np.hypot(g.x[sl][on_arc] - cx, g.y[sl][on_arc] - cy)
        inner, outer, _, _ = O.lane_t(rd, 0, np.array([arc.s + arc.length / 2]))[
            int(g.odr_lane[lane])
        ]
        t = 0.5 * (inner[0] + outer[0])  # the file's lateral offset of this lane's centre
        assert np.ptp(r) < 0.01
        assert abs(r.mean() - (1.0 / k - t)) < 0.01
        kap = np.abs(g.curvature[sl][on_arc])
        np.testing.assert_allclose(kap, 1.0 / r.mean(), rtol=0.02)
    # curves.xodr: clothoids; curvature rate from the integrated positions
    model, _, _ = _load(ESMINI / "xodr" / "curves.xodr")
    rd = model.roads[0]
    for gm in rd.geometry:
        if gm.kind != "spiral":
            continue
        s = np.linspace(gm.s + 0.5, gm.s + gm.length - 0.5, 400)
        x, y, _, _ = O.eval_reference(rd, s)
        h = np.unwrap(np.arctan2(np.gradient(y, s), np.gradient(x, s)))
        kap = np.gradient(h, s)
        rate = np.polyfit(s[5:-5], kap[5:-5], 1)[0]
        want = (gm.params[1] - gm.params[0]) / gm.length
        assert abs(rate - want) < 0.02 * abs(want) + 1e-7, (rate, want)


@needs_data
def test_speed_limits_signals_and_controllers() -> None:
    model, g, _ = _load(CARLA / "Town04.xodr")
    lane, _ = g.lane_index(45, -2, 50.0)
    assert g.speed_limit[_lane_slice(g, lane)] == pytest.approx(65 * 0.44704)
    # junction connecting roads carry no limit in CARLA towns: they take their incoming road's
    drive = np.repeat(g.lane_type, g.lane_npoints) == R.LaneType.DRIVING
    assert not np.isclose(g.speed_limit[drive], O.DEFAULT_SPEED_LIMIT_MPS).any()
    lights = [sg for sg in model.signals if sg.dynamic]
    assert lights and all(sg.controllers for sg in lights)
    assert len(model.controllers) == 43
    assert sum(len(j.controllers) for j in model.junctions) == 43  # each used by a junction
    ctrl = model.controllers[0]
    assert any(ctrl.id in sg.controllers for sg in model.signals if sg.id in ctrl.signal_ids)
    model2, _, _ = _load(ESMINI / "xodr" / "fabriksgatan_traffic_lights.xodr")
    assert any(sg.dynamic and sg.road for sg in model2.signals)


@needs_data
def test_left_hand_traffic_runs_left_lanes_forward() -> None:
    _, rht, _ = _load(ESMINI / "xodr" / "e6mini.xodr")
    _, lht, _ = _load(ESMINI / "xodr" / "e6mini-lht.xodr")
    assert rht.lane_reversed is not None and lht.lane_reversed is not None
    assert (rht.lane_reversed == (rht.odr_lane > 0)).all()
    assert (lht.lane_reversed == (lht.odr_lane < 0)).all()
    # the lane towards the centre line (the fast lane) is on the left in RHT, right in LHT
    for g, fast in ((rht, "left"), (lht, "right")):
        for lane in range(g.num_lanes):
            other = int(getattr(g, fast)[lane])
            if other >= 0:
                assert abs(int(g.odr_lane[other])) == abs(int(g.odr_lane[lane])) - 1


@needs_data
def test_spec_position_on_a_reversed_lane_is_the_file_s() -> None:
    model, g, _ = _load(CARLA / "Town04.xodr")
    rd = model.road(45)
    lane, s = g.lane_index(45, 4, 100.0)
    assert g.lane_reversed is not None and g.lane_reversed[lane]
    x, y, _ = R.lane_pose(g, np.array([lane]), np.array([s], np.float32), np.zeros(1, np.float32))
    k = max(i for i, sec in enumerate(rd.sections) if sec.s <= 100.0)
    ts = O.lane_t(rd, k, np.array([100.0]))[4]
    rx, ry, rh, _ = O.eval_reference(rd, np.array([100.0]))
    tc = 0.5 * (ts[0] + ts[1])
    assert (
        math.hypot(
            x[0] - (rx[0] - tc[0] * math.sin(rh[0])), y[0] - (ry[0] + tc[0] * math.cos(rh[0]))
        )
        < 0.05
    )


# ---------------------------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------------------------

GOOD_ROAD = """<?xml version="1.0"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4"/>
  <road id="1" length="100" junction="-1">
    <planView>
      <geometry s="0" x="0" y="0" hdg="0" length="100">{shape}</geometry>
    </planView>
    <lanes><laneSection s="0">
      <center><lane id="0" type="none"/></center>
      <right><lane id="-1" type="driving">
        <width sOffset="0" a="3.5" b="0" c="0" d="0"/>
      </lane></right>
    </laneSection></lanes>
  </road>
</OpenDRIVE>
"""


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("<OpenDRIVE><road id='1'", r"bad\.xodr: malformed XML.*line"),
        (GOOD_ROAD.format(shape="<clothoid/>"), r"bad\.xodr: <clothoid> \(line 6\).*unsupported"),
        (GOOD_ROAD.format(shape="<arc/>"), r"bad\.xodr: <arc> \(line 6\).*'curvature'"),
        (
            GOOD_ROAD.format(shape="<line/>").replace(' length="100" junction', " junction"),
            r"<road> \(line 4\): missing attribute 'length'",
        ),
        (
            GOOD_ROAD.format(
                shape="<paramPoly3 aU='0' bU='1' cU='0' dU='0' aV='0' bV='0' "
                "cV='0' dV='0' pRange='weird'/>"
            ),
            r"pRange='weird'",
        ),
        (GOOD_ROAD.format(shape="<line/>").replace('a="3.5"', 'a="wide"'), r"a='wide'.*number"),
    ],
)
def test_bad_files_name_file_element_and_line(tmp_path: Path, text: str, pattern: str) -> None:
    p = tmp_path / "bad.xodr"
    p.write_text(text)
    with pytest.raises(O.OpenDriveError, match=pattern):
        O.build_lane_graph(O.read_opendrive(p))


def test_a_minimal_road_builds(tmp_path: Path) -> None:
    p = tmp_path / "ok.xodr"
    p.write_text(GOOD_ROAD.format(shape="<line/>"))
    g = O.build_lane_graph(O.read_opendrive(p))
    assert g.num_lanes == 1 and g.lane_length[0] == pytest.approx(100.0)
    assert g.y[0] == pytest.approx(-1.75)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def _same(a: R.LaneGraph, b: R.LaneGraph) -> None:
    for f in ("x", "y", "heading", "s_ref", "width", "successors", "left", "lane_reversed"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.key == b.key and a.name == b.name


@needs_data
def test_cache_round_trip_and_corrupt_entries_are_rebuilt(tmp_path: Path) -> None:
    path = CARLA / "Town01.xodr"
    cold = O.load_lane_graph(path, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("Town01-*.npz")
    warm = O.load_lane_graph(path, cache_dir=tmp_path)
    _same(cold, warm)
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated
    with pytest.warns(UserWarning, match="rebuilding"):
        again = O.load_lane_graph(path, cache_dir=tmp_path)
    _same(cold, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(cold, O.load_lane_graph(path, cache_dir=tmp_path))  # rewritten entry is good
    # an entry whose arrays were tampered with fails its content key
    with np.load(entry) as z:
        data = dict(z)
    data["x"] = data["x"] + 1.0
    with open(entry, "wb") as f:
        np.savez(f, **data)
    with pytest.warns(UserWarning, match="content key"):
        _same(cold, O.load_lane_graph(path, cache_dir=tmp_path))


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GENDRIVE_CACHE_DIR", str(tmp_path))
    assert O.default_cache_dir() == tmp_path / "maps"
    assert os.environ["GENDRIVE_CACHE_DIR"] == str(tmp_path)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        RoadSpec(),
        RoadSpec(kind="curved", num_lanes=2, lane_width=3.2),
        RoadSpec(kind="ring", radius=150.0),
    ],
    ids=["straight", "curved", "ring"],
)
def test_procedural_road_exported_and_imported_gives_the_same_lane_graph(
    tmp_path: Path, spec: RoadSpec
) -> None:
    from generative.openscenario import write_road_xodr, xodr_schema_errors

    ref = build_road(spec)
    ours = O.write_opendrive(O.model_from_road_spec(spec), tmp_path / "ours.xodr")
    assert xodr_schema_errors(ours) == []  # OpenDRIVE 1.7 XSD
    theirs = write_road_xodr(spec, tmp_path / "scenariogeneration.xodr")
    for path in (ours, theirs):
        g = O.build_lane_graph(O.read_opendrive(path))
        assert g.num_lanes == ref.num_lanes
        np.testing.assert_array_equal(g.successors, ref.successors)
        np.testing.assert_array_equal(g.left, ref.left)
        np.testing.assert_allclose(g.speed_limit, spec.speed_limit, rtol=1e-6)
        for lane in range(ref.num_lanes):
            other = int(np.nonzero(g.odr_lane == ref.odr_lane[lane])[0][0])
            sl = _lane_slice(ref, lane)
            x, y, _ = R.lane_pose(
                g, np.full(ref.s[sl].shape, other, np.int32), ref.s[sl], np.zeros_like(ref.s[sl])
            )
            assert np.hypot(x - ref.x[sl], y - ref.y[sl]).max() < 0.05
            assert abs(g.lane_length[other] - ref.lane_length[lane]) < 0.05


@needs_data
@pytest.mark.parametrize("name", ["Town01", "Town03"])
def test_loaded_map_written_and_read_back_is_the_same(tmp_path: Path, name: str) -> None:
    model, g, _ = _load(CARLA / f"{name}.xodr")
    out = O.write_opendrive(model, tmp_path / f"{name}.xodr")
    from generative.openscenario import xodr_schema_errors

    assert xodr_schema_errors(out) == []  # OpenDRIVE 1.7 XSD
    model2 = O.read_opendrive(out)
    assert len(model2.roads) == len(model.roads)
    assert len(model2.signals) == len(model.signals)
    assert [j.controllers for j in model2.junctions] == [j.controllers for j in model.junctions]
    assert model2.controllers == model.controllers
    g2 = O.build_lane_graph(model2)
    np.testing.assert_array_equal(g2.successors, g.successors)
    np.testing.assert_allclose(g2.x, g.x, atol=1e-3)
    np.testing.assert_allclose(g2.y, g.y, atol=1e-3)
    np.testing.assert_allclose(g2.speed_limit, g.speed_limit, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Specs on a town
# ---------------------------------------------------------------------------------------------


@needs_data
def test_scenario_on_town04_highway_spawns_on_a_driving_lane_and_drives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from policy.rule_based import RuleBasedDriver
    from sim import world

    monkeypatch.setenv("GENDRIVE_CACHE_DIR", str(tmp_path))  # not the user's cache
    rel = os.path.relpath(CARLA / "Town04.xodr", Path.cwd())
    spec = ScenarioSpec(
        road=RoadSpec(kind="file", path=rel),
        ego=EgoSpec(road=45, lane=-2, s=50.0, speed=20.0, route_length=800.0),
    )
    g = build_road(spec.road)
    check_on_road(spec, g)
    st = world.reset([spec], g, [np.random.default_rng(0)])
    lane0 = int(st.lane[0, 0])
    assert g.lane_type[lane0] == R.LaneType.DRIVING
    assert (int(g.odr_road[lane0]), int(g.odr_lane[lane0])) == (45, -2)
    x0, y0 = float(st.x[0, 0]), float(st.y[0, 0])
    params = world.SimParams()
    driver = RuleBasedDriver()
    for _ in range(100):
        st = world.step(st, driver.act(st, g), params, g)
    moved = math.hypot(float(st.x[0, 0]) - x0, float(st.y[0, 0]) - y0)
    assert moved > 0.8 * 20.0 * 100 * params.dt
    assert abs(float(st.d[0, 0])) < 1.0 and float(st.progress[0]) > 0
    with pytest.raises(SpecError, match="road 45 lane 2 not in map 'Town04'"):
        check_on_road(ScenarioSpec(road=spec.road, ego=EgoSpec(road=45, lane=2)), g)


@needs_data
def test_gendrive_run_drives_the_town04_example_spec(tmp_path: Path) -> None:
    import csv
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "gendrive"
    cmd = [
        str(exe),
        "run",
        "scenario_file=docs/examples/town04_highway.yaml",
        "episodes=1",
        "num_envs=1",
        "video.episodes=0",
        "progress_bar=false",
        f"hydra.run.dir={tmp_path / 'r'}",
    ]
    # the spec's map path is relative to the repository root, where gendrive is run
    env = dict(os.environ, GENDRIVE_CACHE_DIR=str(tmp_path / "cache"))
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT, env=env
    )
    assert res.returncode == 0, res.stderr
    (row,) = csv.DictReader((tmp_path / "r" / "episodes.csv").open())
    assert row["collision"] == "0" and row["off_road"] == "0", row
    assert float(row["progress_m"]) > 500.0


def _one_geometry_road(tmp_path: Path, shape: str, length: float) -> O.OdrMap:
    p = tmp_path / "g.xodr"
    p.write_text(GOOD_ROAD.format(shape=shape).replace('length="100"', f'length="{length}"'))
    return O.read_opendrive(p)


def test_poly3_and_param_poly3_shapes(tmp_path: Path) -> None:
    # paramPoly3 normalized and arcLength describe the same curve when the coefficients are
    # scaled by powers of the length
    L = 40.0
    cu, cv = (0.0, 1.0, -0.002, 0.0), (0.0, 0.0, 0.01, -0.0001)
    arc = " ".join(f'{c}U="{v}"' for c, v in zip("abcd", cu, strict=True))
    arc += " " + " ".join(f'{c}V="{v}"' for c, v in zip("abcd", cv, strict=True))
    norm = " ".join(f'{c}U="{v * L**i}"' for i, (c, v) in enumerate(zip("abcd", cu, strict=True)))
    norm += " " + " ".join(
        f'{c}V="{v * L**i}"' for i, (c, v) in enumerate(zip("abcd", cv, strict=True))
    )
    m1 = _one_geometry_road(tmp_path, f'<paramPoly3 {arc} pRange="arcLength"/>', L)
    m2 = _one_geometry_road(tmp_path, f'<paramPoly3 {norm} pRange="normalized"/>', L)
    s = np.linspace(0.0, L, 50)
    ref1, ref2 = O.eval_reference(m1.roads[0], s), O.eval_reference(m2.roads[0], s)
    for a, b in zip(ref1, ref2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)
    # poly3: v = c u^2 in local coordinates, parameterised by arc length
    m3 = _one_geometry_road(tmp_path, '<poly3 a="0" b="0" c="0.01" d="0"/>', L)
    s = np.linspace(0.0, L, 4001)
    x, y, h, k = O.eval_reference(m3.roads[0], s)
    np.testing.assert_allclose(y, 0.01 * x**2, atol=1e-6)
    assert np.hypot(np.diff(x), np.diff(y)).sum() == pytest.approx(L, abs=1e-3)
    np.testing.assert_allclose(h, np.arctan(0.02 * x), atol=1e-6)
    np.testing.assert_allclose(k[0], 0.02, rtol=1e-6)
    g = O.build_lane_graph(m3)
    assert g.lane_length[0] > L  # the right lane is outside this left-turning curve
