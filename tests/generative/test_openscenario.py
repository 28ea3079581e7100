"""OpenSCENARIO/OpenDRIVE export validated by the XSDs scenariogeneration ships, and import."""

import dataclasses
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generative.families import PLAYABLE, get_family
from generative.openscenario import (
    OpenScenarioError,
    export_xosc,
    import_xosc,
    light_plans,
    write_road_xodr,
    xodr_schema_errors,
    xosc_schema_errors,
)
from sim import road as R
from sim import world
from sim.lights import LightState
from sim.scenario import (
    ActorSpec,
    EgoSpec,
    EventSpec,
    LightsSpec,
    RoadSpec,
    ScenarioSpec,
    SegmentSpec,
    build_road,
    load_spec,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "scenario").glob("*.yaml"))
DATA = REPO.parent / "shared" / "data"
SR = DATA / "scenarios" / "scenario_runner"
ESMINI = DATA / "esmini" / "xosc"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")

ROADS = [
    RoadSpec(kind="straight", num_lanes=2, length=600.0),
    RoadSpec(kind="curved", num_lanes=3, length=1400.0, radius=250.0, transition=60.0),
    RoadSpec(kind="ring", num_lanes=2, radius=120.0),
    RoadSpec(
        kind="segments",
        num_lanes=1,
        lane_width=3.2,
        segments=(
            SegmentSpec("line", 100.0),
            SegmentSpec("spiral", 50.0, 0.0, 0.01),
            SegmentSpec("arc", 80.0, 0.01, 0.01),
        ),
    ),
]


def _close(a: Any, b: Any, path: str = "") -> None:
    """Plain spec data equal up to float round-off."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6), path
    else:
        assert a == b, path


@pytest.mark.parametrize("road", ROADS, ids=lambda r: r.kind)
def test_xodr_is_schema_valid_and_matches_the_lane_graph(road: RoadSpec, tmp_path: Path) -> None:
    path = write_road_xodr(road, tmp_path / "road.xodr")
    assert xodr_schema_errors(path) == []
    root = ET.parse(path).getroot()
    geoms = root.findall("road/planView/geometry")
    lanes = root.findall("road/lanes/laneSection/right/lane")
    assert [int(ln.get("id", "0")) for ln in lanes] == list(range(-1, -road.num_lanes - 1, -1))
    assert {float(ln.find("width").get("a")) for ln in lanes} == {road.lane_width}  # type: ignore[union-attr]
    # Every geometry starts where the simulator's integrated reference line is at that s.
    g = build_road(road)
    lane0 = int(np.nonzero(g.odr_lane == -1)[0][0])
    for gm in geoms:
        s = float(gm.get("s", 0.0))
        x, y, h = R.lane_pose(
            g,
            np.array([lane0], np.int32),
            R.s_ref_to_s(g, np.array([lane0], np.int32), np.array([s], np.float32)),
            np.array([road.lane_width / 2], np.float32),  # back to the reference line
        )
        assert float(gm.get("x", 0.0)) == pytest.approx(float(x[0]), abs=0.02)
        assert float(gm.get("y", 0.0)) == pytest.approx(float(y[0]), abs=0.02)
        dh = (float(gm.get("hdg", 0.0)) - float(h[0]) + math.pi) % (2 * math.pi) - math.pi
        assert abs(dh) < 2e-3
    total = sum(float(gm.get("length", 0.0)) for gm in geoms)
    assert total == pytest.approx(float(g.section_length[0]), abs=0.05)
    speed = root.find("road/type/speed")
    assert speed is not None and float(speed.get("max", 0)) == road.speed_limit


def test_schemas_reject_broken_files(tmp_path: Path) -> None:
    spec = load_spec(REPO / "configs" / "scenario" / "cut_in.yaml")
    xosc, xodr = export_xosc(spec, tmp_path)
    bad = tmp_path / "bad.xosc"
    bad.write_text(xosc.read_text().replace("<Storyboard>", "<Storyboard><Bogus/>"))
    assert any("Bogus" in e for e in xosc_schema_errors(bad))
    bad_road = tmp_path / "bad.xodr"
    bad_road.write_text(re.sub(r' length="[0-9.]+"', "", xodr.read_text(), count=2))
    assert xodr_schema_errors(bad_road)


@pytest.mark.parametrize("name", PLAYABLE)
def test_every_family_exports_schema_valid_xosc(name: str, tmp_path: Path) -> None:
    from scenariogeneration.xosc import ParseOpenScenario, Scenario

    spec = get_family(name).sample(np.random.default_rng(1), 0.7)
    xosc, xodr = export_xosc(spec, tmp_path)
    assert xosc_schema_errors(xosc) == []
    assert xodr_schema_errors(xodr) == []
    assert isinstance(ParseOpenScenario(str(xosc)), Scenario)
    root = ET.parse(xosc).getroot()
    # Ego, the scripted actors and the drawn background traffic are all entities.
    n = len(root.findall("Entities/ScenarioObject"))
    assert n >= 1 + len(spec.actors) + (1 if spec.traffic.count else 0)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_scenario_config_exports_schema_valid_xosc(path: Path, tmp_path: Path) -> None:
    xosc, xodr = export_xosc(load_spec(path), tmp_path, traffic_seed=0)
    assert xosc_schema_errors(xosc) == [] and xodr_schema_errors(xodr) == []


def test_events_and_triggers_are_written_as_the_simulator_reads_them(tmp_path: Path) -> None:
    cut = load_spec(REPO / "configs" / "scenario" / "cut_in.yaml")
    root = ET.parse(export_xosc(cut, tmp_path)[0]).getroot()
    cond = root.find(".//RelativeDistanceCondition")
    assert cond is not None
    assert float(cond.get("value", 0)) == pytest.approx(8.0 + 0.5 * (4.5 + 4.7))
    assert cond.get("freespace") == "false" and cond.get("rule") == "lessOrEqual"
    target = root.find(".//RelativeTargetLane")
    assert target is not None and target.get("value") == "-1"  # "right": one lane id down
    hard = load_spec(REPO / "configs" / "scenario" / "hard_brake.yaml")
    root = ET.parse(export_xosc(hard, tmp_path)[0]).getroot()
    ev = root.find(".//Event")
    assert ev is not None
    dyn = ev.find(".//SpeedActionDynamics")
    assert dyn is not None and dyn.get("dynamicsDimension") == "rate" and dyn.get("value") == "6.0"
    assert ev.find(".//AbsoluteTargetSpeed").get("value") == "5.0"  # type: ignore[union-attr]
    assert ev.find(".//SimulationTimeCondition").get("value") == "5.0"  # type: ignore[union-attr]
    stop = root.find("Storyboard/StopTrigger//SimulationTimeCondition")
    assert stop is not None and float(stop.get("value", 0)) == hard.time_limit_s


def _spec_with_everything() -> ScenarioSpec:
    return ScenarioSpec(
        name="everything",
        road=RoadSpec(kind="curved", num_lanes=3, length=1400.0, radius=300.0),
        ego=EgoSpec(lane=-2, s=50.0, d=0.2, speed=22.0, route_length=900.0),
        actors=(
            ActorSpec(
                lane=-2,
                s=90.0,
                speed=20.0,
                events=(
                    EventSpec(action="set_speed", at=3.0, target_speed=8.0, decel=5.5),
                    EventSpec(action="stop", trigger="ego_gap", at=6.0, decel=7.0),
                ),
            ),
            ActorSpec(
                lane=-1,
                s=130.0,
                d=-0.3,
                speed=18.0,
                length=12.0,
                width=2.5,
                events=(
                    EventSpec(
                        action="lane_change",
                        trigger="ego_gap",
                        at=15.0,
                        direction="right",
                        duration=2.5,
                    ),
                ),
            ),
        ),
        time_limit_s=75.0,
        seed=9,
    )


def test_round_trip_restores_positions_speeds_and_events(tmp_path: Path) -> None:
    for spec in (
        _spec_with_everything(),
        load_spec(REPO / "configs" / "scenario" / "cut_in.yaml"),
        load_spec(REPO / "configs" / "scenario" / "hard_brake.yaml"),
    ):
        back = import_xosc(export_xosc(spec, tmp_path)[0])
        assert back.road == spec.road
        _close(back.to_dict(), spec.to_dict())


def test_round_trip_of_random_traffic_gives_the_drawn_vehicles(tmp_path: Path) -> None:
    spec = load_spec(REPO / "configs" / "scenario" / "ring.yaml")
    back = import_xosc(export_xosc(spec, tmp_path, traffic_seed=3)[0])
    assert back.road == spec.road and back.traffic.count == 0
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(3)])
    drawn = np.nonzero(st.valid[0, 1:])[0] + 1
    assert len(back.actors) == len(drawn)
    speeds = sorted(round(float(v), 3) for v in st.speed[0, drawn])
    assert sorted(a.speed for a in back.actors) == pytest.approx(speeds, abs=1e-3)
    v0 = sorted(round(float(v), 3) for v in st.behavior.v0[0, drawn])
    assert sorted(a.behavior.v0 or 0.0 for a in back.actors) == pytest.approx(v0, abs=1e-3)
    # The re-import runs, and its traffic drives on (IDM from the kept parameters).
    st2 = world.reset([back], g, [np.random.default_rng(0)])
    for _ in range(20):
        st2 = world.step(st2, np.zeros((1, 2), np.float32), world.SimParams(), g)
    assert np.isfinite(st2.x[st2.valid]).all()


def test_family_specs_round_trip_through_openscenario(tmp_path: Path) -> None:
    for name in ("hard_brake", "cut_in", "merge_into_slow"):
        spec = get_family(name).sample(np.random.default_rng(4), 0.6)
        back = import_xosc(export_xosc(spec, tmp_path)[0])
        n = len(spec.actors)
        _close(
            [a.to_dict() if hasattr(a, "to_dict") else _plain(a) for a in back.actors[:n]],
            [_plain(a) for a in spec.actors],
        )
        _close(_plain(back.ego), _plain(spec.ego))


def _plain(v: Any) -> Any:
    from sim.scenario import _to_plain

    return _to_plain(v)


def _broken(tmp_path: Path, edit: Any, spec: ScenarioSpec | None = None) -> Path:
    """``spec`` (default: the hard_brake config) exported, its .xosc edited by ``edit``."""
    spec = spec or load_spec(REPO / "configs" / "scenario" / "hard_brake.yaml")
    xosc, _ = export_xosc(spec, tmp_path)
    tree = ET.parse(xosc)
    edit(tree.getroot())
    out = tmp_path / "edited.xosc"
    tree.write(out)
    return out


def test_unsupported_elements_are_named_by_their_xml_path(tmp_path: Path) -> None:
    def expression(root: ET.Element) -> None:
        root.find(".//LanePosition").set("s", "${$x * 2}")  # type: ignore[union-attr]

    with pytest.raises(
        OpenScenarioError, match=r"LanePosition: s='\$\{\$x \* 2\}': parameter expressions"
    ):
        import_xosc(_broken(tmp_path, expression))

    def trajectory(root: ET.Element) -> None:
        pa = root.find(".//Event/Action/PrivateAction")
        assert pa is not None
        for c in list(pa):
            pa.remove(c)
        ET.SubElement(ET.SubElement(pa, "RoutingAction"), "FollowTrajectoryAction")

    with pytest.raises(
        OpenScenarioError,
        match=r"Event\[actor0_event0_set_speed\]/Action\[.*\]/PrivateAction/RoutingAction: "
        r"action not supported",
    ):
        import_xosc(_broken(tmp_path, trajectory))

    def controller(root: ET.Element) -> None:
        pv = root.find(".//Private[@entityRef='actor0']")
        assert pv is not None
        ca = ET.SubElement(ET.SubElement(pv, "PrivateAction"), "ControllerAction")
        ET.SubElement(ca, "ActivateControllerAction", longitudinal="true", lateral="true")

    with pytest.raises(
        OpenScenarioError, match=r"Private/PrivateAction/ControllerAction: not supported in Init"
    ):
        import_xosc(_broken(tmp_path, controller))

    def misc_object(root: ET.Element) -> None:
        so = root.find("Entities/ScenarioObject[@name='actor0']")
        assert so is not None
        so[0].tag = "MiscObject"

    with pytest.raises(
        OpenScenarioError, match=r"ScenarioObject\[actor0\]/MiscObject.*vehicles, pedestrians"
    ):
        import_xosc(_broken(tmp_path, misc_object))


@needs_data
def test_slow_preceding_vehicle_imports_and_runs() -> None:
    spec = import_xosc(SR / "asam_osc1.0_examples" / "SlowPrecedingVehicle.xosc")
    assert spec.road.kind == "segments" and spec.road.num_lanes == 2
    assert spec.road.lane_width == pytest.approx(3.9)
    assert spec.ego.lane == -2 and spec.ego.speed == pytest.approx(27.778)  # laneId -3
    (a1,) = spec.actors
    assert a1.lane == -2 and a1.speed == pytest.approx(22.222)
    # 200 m apart reference point to reference point (box centres 1.5 and 1.4 m ahead of them),
    # on a road that starts straight for ~100 m, so the offset mapping barely moves them.
    assert a1.s - spec.ego.s == pytest.approx(200.0 - 0.1, abs=0.05)
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(0)])
    for _ in range(30):
        st = world.step(st, np.zeros((1, 2), np.float32), world.SimParams(), g)
    assert np.isfinite(st.x[st.valid]).all() and st.speed[0, 1] == pytest.approx(22.222, abs=0.1)


@needs_data
@pytest.mark.parametrize(
    ("path", "match"),
    [
        (
            SR / "FollowLeadingVehicle.xosc",
            r"LogicFile '.*Town01': a CARLA town map; the OpenDRIVE map importer",
        ),
        (SR / "LaneChangeSimple.xosc", r"LogicFile '.*Town04': a CARLA town map"),
        (
            SR / "asam_osc1.0_examples" / "CutIn.xosc",
            r"Event\[Event1\]/Action\[Action1\]/PrivateAction/RoutingAction: action not supported",
        ),
        (
            SR / "asam_osc1.0_examples" / "EndOfTrafficJam.xosc",
            r"AB_RQ31_Crest.xodr': file not found",
        ),
        (
            SR / "asam_osc1.0_examples" / "DoubleLaneChanger.xosc",
            r"SampleDatabase.xodr': 70 roads and 10 junctions",
        ),
        (ESMINI / "cut-in.xosc", r"e6mini.xodr': planView/geometry\[0\]/paramPoly3 is not a line"),
        (ESMINI / "cut-in_simple.xosc", r"RelativeRoadPosition: t=1.57 m .*opposite traffic"),
        (
            ESMINI / "acc-test.xosc",
            r"AbsoluteTargetSpeed: value='\$\{\$EgoSpeed / 3.6\}': parameter expressions",
        ),
        (ESMINI / "lane_change_simple.xosc", r"Event\[Lane change event\]: events on the ego"),
        (ESMINI / "alks_cut-in.xosc", r"LanePosition/Orientation: a heading other than the lane's"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_unsupported_examples_fail_naming_the_element(path: Path, match: str) -> None:
    with pytest.raises(OpenScenarioError, match=match):
        import_xosc(path)


def test_a_crossing_pedestrian_exports_as_a_pedestrian_and_round_trips(tmp_path: Path) -> None:
    spec = get_family("pedestrian_crossing").sample(np.random.default_rng(4), 0.6)
    xosc, _ = export_xosc(spec, tmp_path)
    root = ET.parse(xosc).getroot()
    (walker,) = root.findall("Entities/ScenarioObject/Pedestrian")
    assert walker.get("pedestrianCategory") == "pedestrian"
    (h,) = {o.get("h") for o in root.iter("Orientation") if o.get("type") == "relative"}
    assert float(h) == pytest.approx(np.pi / 2)  # faces across the road, to the left
    back = import_xosc(xosc)
    _close(
        [_plain(a) for a in back.actors if a.type == "pedestrian"],
        [_plain(a) for a in spec.actors if a.type == "pedestrian"],
    )


# -- traffic lights ------------------------------------------------------------------------------

STATE_OF = {
    "green": int(LightState.GREEN),
    "yellow": int(LightState.YELLOW),
    "red": int(LightState.RED),
}


def _rlr_with(lights: LightsSpec | None) -> ScenarioSpec:
    """A red_light_runner scenario, its light plan replaced by ``lights`` (None: the family's)."""
    spec = get_family("red_light_runner").sample(np.random.default_rng(3), 0.8)
    if lights is None:
        return spec
    return dataclasses.replace(
        spec, name=f"{spec.name}_lights", road=dataclasses.replace(spec.road, lights=lights)
    )


def _phase_states(xosc: Path, times: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each signal's state at ``times`` [s] from the written ``TrafficSignalController``s, their
    phase lists repeated from t = 0; and each time's distance to the nearest phase change."""
    root = ET.parse(xosc).getroot()
    out: dict[str, np.ndarray] = {}
    margin = np.full(times.shape, np.inf)
    for tsc in root.findall("RoadNetwork/TrafficSignals/TrafficSignalController"):
        phases = tsc.findall("Phase")
        dur = np.array([float(p.get("duration", "nan")) for p in phases])
        assert len(phases) > 0 and (dur > 0).all()
        ends = np.cumsum(dur)
        u = np.mod(times, ends[-1])
        k = np.minimum(np.searchsorted(ends, u, side="right"), len(phases) - 1)
        margin = np.minimum(margin, np.minimum(u - (ends - dur)[k], ends[k] - u))
        for i, p in enumerate(phases):
            for ts in p.findall("TrafficSignalState"):
                sid = ts.get("trafficSignalId", "")
                col = out.setdefault(sid, np.full(times.shape, -1))
                col[k == i] = STATE_OF[ts.get("state", "")]
    for sid, col in out.items():
        assert (col >= 0).all(), f"signal {sid} has no state in some phase"
    return out, margin


def _signals(xosc: Path) -> ET.Element:
    el = ET.parse(xosc).getroot().find("RoadNetwork/TrafficSignals")
    assert el is not None
    return el


def _assert_replays_the_simulator(spec: ScenarioSpec, out: Path) -> list[ET.Element]:
    """Export ``spec``; its light plans replayed from t = 0 give every light the simulator's
    state (:func:`sim.traffic_rules.states_at` at the spec's offset, 0 when it has none) at the
    same times. Returns the written ``TrafficSignalController``s."""
    from sim.traffic_rules import rules_of, states_at

    xosc, xodr = export_xosc(spec, out)
    assert xosc_schema_errors(xosc) == [] and xodr_schema_errors(xodr) == []
    # The .xosc names the .xodr's dynamic signals, each in one plan.
    odr = ET.parse(xodr).getroot()
    dynamic = {s.get("id") for s in odr.iter("signal") if s.get("dynamic") == "yes"}
    plans = ET.parse(xosc).getroot().findall("RoadNetwork/TrafficSignals/TrafficSignalController")
    named: list[str | None] = []
    for tsc in plans:  # every phase of a plan states the same signals
        per_phase = [
            sorted(ts.get("trafficSignalId", "") for ts in ph.findall("TrafficSignalState"))
            for ph in tsc.findall("Phase")
        ]
        assert per_phase and all(ids == per_phase[0] for ids in per_phase)
        named += per_phase[0]
    assert sorted(named) == sorted(dynamic) and dynamic  # each in one plan
    rng = np.random.default_rng(0)
    times = np.concatenate([np.arange(0.0, 200.0, 0.1), rng.uniform(0.0, 4000.0, 3000)])
    mine, margin = _phase_states(xosc, times)
    rules = rules_of(build_road(spec.road))
    assert rules is not None and rules.lights.num_lights > 0
    offset = spec.road.lights.offset_s or 0.0
    sim = states_at(rules, times.astype(np.float32), np.full(times.shape, offset, np.float32))
    off_edge = margin > 1e-3  # float32 time in the simulator: skip the instants of a change
    assert off_edge.mean() > 0.95
    for k, sid in enumerate(rules.lights.signal_id):
        assert np.array_equal(mine[sid][off_edge], sim[off_edge, k]), sid
        assert set(sim[off_edge, k].tolist()) == {0, 1, 2}  # every state was compared
    # The signals an OpenDRIVE controller switches together show the same state throughout.
    for ctrl in odr.findall("controller"):
        ids = [c.get("signalId", "") for c in ctrl.findall("control")]
        for sid in ids[1:]:
            assert np.array_equal(mine[sid], mine[ids[0]])
    return plans


@pytest.mark.parametrize(
    "lights",
    [
        None,  # the family's plan (offset_s = 1 s)
        LightsSpec(green_s=17.0, yellow_s=2.5, all_red_s=1.5, offset_s=37.3),
        LightsSpec(green_s=12.0, yellow_s=4.0, all_red_s=0.0, offset_s=1000.7),
        LightsSpec(offset_s=20.0),  # exactly where phase 0's yellow starts: no split
        LightsSpec(green_s=9.0, yellow_s=3.0, all_red_s=2.0),  # None: exported as offset 0
    ],
    ids=["family", "offset_37.3", "no_all_red_offset_1000.7", "offset_on_boundary", "no_offset"],
)
def test_light_plans_export_and_replay_the_simulators_light_states(
    lights: LightsSpec | None, tmp_path: Path
) -> None:
    spec = _rlr_with(lights)
    plans = _assert_replays_the_simulator(spec, tmp_path)
    assert len(plans) == 1  # one junction, one plan
    lt = spec.road.lights
    total = sum(float(p.get("duration", "nan")) for p in plans[0].findall("Phase"))
    assert total == pytest.approx(2 * (lt.green_s + lt.yellow_s + lt.all_red_s), abs=1e-6)
    if lights is not None and lights.offset_s is None:
        zero = _rlr_with(dataclasses.replace(lights, offset_s=0.0))
        again, _ = export_xosc(dataclasses.replace(zero, name=spec.name), tmp_path / "zero")
        assert ET.tostring(_signals(again)) == ET.tostring(_signals(tmp_path / f"{spec.name}.xosc"))


@pytest.mark.parametrize("variant", ["uncontrolled", "one_phase", "controllers_off_junction"])
def test_light_plans_of_file_maps_group_signals_as_the_simulator(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signals no controller lists, a junction whose controllers share one sequence number and
    controllers outside any junction: plans of one phase and an all-red slot, as sim.lights."""
    from sim.opendrive import write_opendrive
    from sim.urban import urban_model

    monkeypatch.setenv("GENDRIVE_CACHE_DIR", str(tmp_path / "cache"))
    spec = _rlr_with(None)
    model = urban_model(spec.road)
    (j,) = model.junctions
    if variant == "uncontrolled":
        model = dataclasses.replace(
            model, controllers=(), junctions=(dataclasses.replace(j, controllers=()),)
        )
    elif variant == "one_phase":
        ctrls = tuple(dataclasses.replace(c, sequence=0) for c in model.controllers)
        model = dataclasses.replace(model, controllers=ctrls)
    else:
        model = dataclasses.replace(model, junctions=(dataclasses.replace(j, controllers=()),))
    path = write_opendrive(model, tmp_path / "map" / f"{variant}.xodr")
    lights = LightsSpec(green_s=11.0, yellow_s=3.0, all_red_s=1.0, offset_s=13.7)
    road = RoadSpec(kind="file", path=str(path), lights=lights)
    plans = _assert_replays_the_simulator(dataclasses.replace(spec, road=road), tmp_path)
    names = sorted(tsc.get("name", "") for tsc in plans)
    expected = {
        "uncontrolled": ["uncontrolled"],
        "one_phase": [f"junction_{j.id}"],
        "controllers_off_junction": [f"controller_{c.id}" for c in model.controllers],
    }
    assert names == sorted(expected[variant])


def test_roads_without_lights_export_no_traffic_signals(tmp_path: Path) -> None:
    spec = _rlr_with(None)
    for road in (
        dataclasses.replace(spec.road, signalised=False),
        RoadSpec(kind="roundabout", num_lanes=1),
        RoadSpec(kind="straight", num_lanes=2, length=600.0),
    ):
        assert light_plans(road) == []
    quiet = dataclasses.replace(spec, road=dataclasses.replace(spec.road, signalised=False))
    xosc, xodr = export_xosc(quiet, tmp_path)
    assert xosc_schema_errors(xosc) == [] and xodr_schema_errors(xodr) == []
    assert ET.parse(xosc).getroot().find("RoadNetwork/TrafficSignals") is None
    assert not [s for s in ET.parse(xodr).getroot().iter("signal")]


def test_importing_traffic_signal_plans_fails_naming_the_controller(tmp_path: Path) -> None:
    rlr, _ = export_xosc(_rlr_with(None), tmp_path / "rlr")
    with pytest.raises(OpenScenarioError, match=r"roads and 1 junctions"):
        import_xosc(rlr)  # the junction road itself is not importable
    signals = ET.parse(rlr).getroot().find("RoadNetwork/TrafficSignals")
    assert signals is not None

    def add_signals(root: ET.Element) -> None:
        net = root.find("RoadNetwork")
        assert net is not None
        net.insert(1, signals)

    with pytest.raises(
        OpenScenarioError,
        match=r"RoadNetwork/TrafficSignals/TrafficSignalController\[junction_\w+\]: traffic "
        r"signal plans are not supported: the road resolves to a 'straight' RoadSpec",
    ):
        import_xosc(_broken(tmp_path, add_signals))


# -- the ego's route ----------------------------------------------------------------------------


def _route_waypoints(xosc: Path) -> list[tuple[int, int, float, float, str]]:
    """(roadId, laneId, s, offset, routeStrategy) of each Waypoint of the ego's Init route."""
    root = ET.parse(xosc).getroot()
    (route,) = root.findall(
        "Storyboard/Init/Actions/Private[@entityRef='Ego']/PrivateAction/RoutingAction/"
        "AssignRouteAction/Route"
    )
    assert route.get("name") == "EgoRoute" and route.get("closed") == "false"
    assert not root.findall(".//Private[@entityRef!='Ego']//RoutingAction")
    out = []
    for wp in route.findall("Waypoint"):
        (pos,) = wp.findall("Position/LanePosition")
        out.append(
            (
                int(pos.get("roadId", "")),
                int(pos.get("laneId", "")),
                float(pos.get("s", "nan")),
                float(pos.get("offset", "nan")),
                wp.get("routeStrategy", ""),
            )
        )
    return out


def _odr_legs(g: R.LaneGraph, points: list[tuple[int, int, float]]) -> tuple[list[Any], float]:
    """The route :func:`sim.routes.plan` finds through OpenDRIVE lane positions (the first is
    the start): its lanes as (road id, lane id) and its length [m]."""
    from sim.routes import plan_through, route_lanes

    lp = [g.lane_index(r, ln, s) for r, ln, s in points]
    legs = plan_through(g, lp[0], tuple(lp[1:]))
    assert legs is not None
    lanes = [(int(g.odr_road[k]), int(g.odr_lane[k])) for k in route_lanes(legs)]
    return lanes, sum(leg.length_m for leg in legs)


def test_red_light_runner_exports_the_egos_route_through_the_junction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The family's waypoint (the far arm) is an ``AssignRouteAction`` in the ego's Init on the
    .xodr's road and lane ids, and planning through it on the written .xodr gives the spec's
    route through the junction."""
    monkeypatch.setenv("GENDRIVE_CACHE_DIR", str(tmp_path / "cache"))
    spec = _rlr_with(None)
    e = spec.ego
    assert e.waypoints
    xosc, xodr = export_xosc(spec, tmp_path)
    assert xosc_schema_errors(xosc) == [] and xodr_schema_errors(xodr) == []
    wps = _route_waypoints(xosc)
    expected = [(e.road, e.lane, e.s)] + [(int(r), int(ln), s) for r, ln, s in e.waypoints]
    assert [(r, ln) for r, ln, *_ in wps] == [(r, ln) for r, ln, _ in expected]
    assert [w[2] for w in wps] == pytest.approx([s for *_, s in expected], abs=1e-9)
    assert {(w[3], w[4]) for w in wps} == {(0.0, "shortest")}
    # Each waypoint is on a lane of the written .xodr, its s on that road.
    odr = ET.parse(xodr).getroot()
    roads = {int(rd.get("id", "")): rd for rd in odr.findall("road")}
    for road_id, lane_id, s, _, _ in wps:
        rd = roads[road_id]
        assert 0.0 <= s <= float(rd.get("length", "nan"))
        sections = rd.findall("lanes/laneSection")
        sec = [ls for ls in sections if float(ls.get("s", "nan")) <= s + 1e-9][-1]
        ids = {int(ln.get("id", "")) for ln in sec.iter("lane")}
        assert lane_id in ids, (road_id, lane_id, s)
    # sim.routes.plan through the .xosc's waypoints on the .xodr as a map: the spec's route
    # (the ego's lane, the junction's straight connector, the far arm's lane).
    mine = _odr_legs(build_road(RoadSpec(kind="file", path=str(xodr))), [w[:3] for w in wps])
    ref = _odr_legs(build_road(spec.road), expected)
    assert mine[0] == ref[0] and mine[1] == pytest.approx(ref[1], abs=1e-3)
    assert len({r for r, _ in ref[0]}) == 3  # approach arm, junction connector, far arm


def test_specs_without_waypoints_export_no_route(tmp_path: Path) -> None:
    spec = load_spec(REPO / "configs" / "scenario" / "hard_brake.yaml")
    assert not spec.ego.waypoints
    root = ET.parse(export_xosc(spec, tmp_path)[0]).getroot()
    assert root.find(".//RoutingAction") is None
    (p,) = root.findall("ParameterDeclarations/ParameterDeclaration[@name='EgoRouteLength']")
    assert float(p.get("value", "nan")) == spec.ego.route_length


def _routed(road: RoadSpec, waypoints: tuple[tuple[float, ...], ...]) -> ScenarioSpec:
    return ScenarioSpec(
        name="routed",
        road=road,
        ego=EgoSpec(lane=-1, s=50.0, speed=15.0, waypoints=waypoints),
        actors=(ActorSpec(lane=-2, s=120.0, speed=12.0),),
        seed=2,
    )


@pytest.mark.parametrize(
    "spec",
    [
        _routed(RoadSpec(kind="straight", num_lanes=3, length=600.0), ((0.0, -3.0, 420.0),)),
        _routed(
            RoadSpec(kind="curved", num_lanes=3, length=1400.0, radius=300.0),
            ((0.0, -2.0, 300.0), (0.0, -3.0, 1100.5)),
        ),
    ],
    ids=["straight", "curved_two_waypoints"],
)
def test_ego_route_round_trips_on_a_single_road(spec: ScenarioSpec, tmp_path: Path) -> None:
    xosc, _ = export_xosc(spec, tmp_path)
    assert xosc_schema_errors(xosc) == []
    assert len(_route_waypoints(xosc)) == 1 + len(spec.ego.waypoints)
    back = import_xosc(xosc)
    assert back.ego.waypoints == spec.ego.waypoints  # the start waypoint dropped
    _close(back.to_dict(), spec.to_dict())
    g = build_road(spec.road)
    start = [(spec.ego.road, spec.ego.lane, spec.ego.s)]
    pts = [(int(r), int(ln), s) for r, ln, s in spec.ego.waypoints]
    back_pts = [(int(r), int(ln), s) for r, ln, s in back.ego.waypoints]
    lanes, length = _odr_legs(g, start + pts)
    assert _odr_legs(build_road(back.road), start + back_pts) == (lanes, length)
    assert lanes[0] != lanes[-1]  # the route changes lanes


def test_a_route_not_starting_at_the_ego_keeps_every_waypoint(tmp_path: Path) -> None:
    spec = _routed(RoadSpec(kind="straight", num_lanes=3, length=600.0), ((0.0, -3.0, 420.0),))
    xosc, _ = export_xosc(spec, tmp_path)
    tree = ET.parse(xosc)
    first = tree.getroot().find(".//Route/Waypoint/Position/LanePosition")
    assert first is not None
    first.set("s", "80.0")  # a first waypoint 30 m ahead of the ego
    tree.write(tmp_path / "edited.xosc")
    back = import_xosc(tmp_path / "edited.xosc")
    assert back.ego.waypoints == ((0.0, -1.0, 80.0), (0.0, -3.0, 420.0))


def _last_lane_position(root: ET.Element) -> ET.Element:
    el = root.findall(".//Route/Waypoint/Position/LanePosition")[-1]
    assert el is not None
    return el


def test_unsupported_ego_routes_fail_naming_the_element(tmp_path: Path) -> None:
    route_at = r"Private/PrivateAction/RoutingAction/AssignRouteAction/Route\[EgoRoute\]"

    def closed(root: ET.Element) -> None:
        root.find(".//Route").set("closed", "true")  # type: ignore[union-attr]

    def catalog(root: ET.Element) -> None:
        ara = root.find(".//AssignRouteAction")
        assert ara is not None
        ara.remove(ara[0])
        ET.SubElement(ara, "CatalogReference", catalogName="Routes", entryName="r1")

    def behind(root: ET.Element) -> None:
        _last_lane_position(root).set("s", "20.0")  # the ego starts at s = 50

    def off_road(root: ET.Element) -> None:
        _last_lane_position(root).set("s", "700.0")

    def left_lane(root: ET.Element) -> None:
        _last_lane_position(root).set("laneId", "1")

    def world(root: ET.Element) -> None:
        pos = root.findall(".//Route/Waypoint/Position")[-1]
        pos.remove(pos[0])
        ET.SubElement(pos, "WorldPosition", x="10", y="0")

    def actor_route(root: ET.Element) -> None:
        ra = root.find(".//Private[@entityRef='Ego']/PrivateAction/RoutingAction/..")
        actor = root.find(".//Private[@entityRef='actor0']")
        assert ra is not None and actor is not None
        actor.append(ra)

    for edit, match in [
        (closed, rf"{route_at}: closed routes are not supported"),
        (catalog, r"AssignRouteAction/CatalogReference: route catalogs are not supported"),
        (behind, rf"{route_at}/Waypoint: no route reaches this waypoint"),
        (off_road, rf"{route_at}/Waypoint/Position/LanePosition: s=700.00 m outside road 0"),
        (left_lane, r"LanePosition: laneId 1 is not a right-hand driving lane \[-3, -2, -1\]"),
        (world, r"Waypoint/Position/WorldPosition: route waypoints must be LanePositions"),
        (actor_route, r"Private/PrivateAction/RoutingAction: not supported in Init: only the ego"),
    ]:
        with pytest.raises(OpenScenarioError, match=match):
            import_xosc(
                _broken(
                    tmp_path,
                    edit,
                    _routed(
                        RoadSpec(kind="straight", num_lanes=3, length=600.0), ((0.0, -3.0, 420.0),)
                    ),
                )
            )
