"""ScenarioSpec: round trips, errors that name the field, and a property test of the validator."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import world
from sim.scenario import (
    ActorSpec,
    EgoSpec,
    EventSpec,
    RoadSpec,
    ScenarioSpec,
    SpecError,
    TrafficSpec,
    build_road,
    check_on_road,
    dump_spec,
    load_spec,
    spec_from_dict,
)

REPO = Path(__file__).resolve().parents[2]

CUT_IN = ScenarioSpec(
    name="cut_in",
    road=RoadSpec(num_lanes=2),
    ego=EgoSpec(lane=-2, s=30.0, speed=25.0),
    actors=(
        ActorSpec(
            lane=-1,
            s=70.0,
            speed=20.0,
            events=(EventSpec(action="lane_change", trigger="ego_gap", at=8.0, direction="right"),),
        ),
    ),
    traffic=TrafficSpec(count=5, s_range=(200.0, 900.0)),
)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"s{suffix}"
    dump_spec(CUT_IN, p)
    assert load_spec(p) == CUT_IN
    assert spec_from_dict(CUT_IN.to_dict()) == CUT_IN


def test_bundled_scenario_configs_are_valid_specs() -> None:
    files = sorted((REPO / "configs" / "scenario").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        spec = load_spec(f)
        check_on_road(spec, build_road(spec.road), source=str(f))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ego": {"speed": -3.0}}, r"ego\.speed: expected >= 0"),
        ({"actors": [{}, {"speed": "fast"}]}, r"actors\[1\]\.speed: expected a number"),
        ({"road": {"num_lanes": 7}}, r"road\.num_lanes: expected <= 5"),
        ({"road": {"kind": "spiral"}}, r"road\.kind: expected one of"),
        ({"ego": {"sped": 3}}, r"ego: unknown field\(s\) \['sped'\]"),
        ({"version": 9}, r"version: this gendrive reads spec version 1"),
        ({"actors": [{"events": [{"action": "jump"}]}]}, r"actors\[0\]\.events\[0\]\.action"),
        ({"traffic": {"speed_frac": [1.0, 0.5]}}, r"traffic\.speed_frac"),
        ({"road": {"kind": "file", "path": "/nonexistent.xodr"}}, r"file not found"),
        ({"time_limit_s": float("nan")}, r"time_limit_s: expected a finite number"),
    ],
)
def test_invalid_fields_are_named(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec_from_dict(data)


def test_road_dependent_errors() -> None:
    g = build_road(RoadSpec(num_lanes=2, length=500.0))
    with pytest.raises(SpecError, match=r"ego\.lane/s: road 0 lane -3 not in map"):
        check_on_road(ScenarioSpec(road=RoadSpec(num_lanes=2), ego=EgoSpec(lane=-3)), g)
    with pytest.raises(SpecError, match=r"actors\[0\]: overlaps ego at start"):
        check_on_road(
            ScenarioSpec(ego=EgoSpec(lane=-1, s=30.0), actors=(ActorSpec(lane=-1, s=32.0),)), g
        )
    with pytest.raises(SpecError, match=r"ego\.route_length: 900.0 m but only"):
        check_on_road(ScenarioSpec(ego=EgoSpec(lane=-1, route_length=900.0)), g)
    with pytest.raises(SpecError, match=r"actors\[0\]\.lane/s: s=600.00 m outside road 0"):
        check_on_road(ScenarioSpec(ego=EgoSpec(lane=-1), actors=(ActorSpec(lane=-1, s=600.0),)), g)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ego: {speed: -1}\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: ego\.speed"):
        load_spec(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SpecError, match=r"broken\.json: not valid JSON"):
        load_spec(broken)
    with pytest.raises(SpecError, match="scenario file not found"):
        load_spec(tmp_path / "missing.yaml")


# Raw dictionaries: some valid, many not. Whatever the validator accepts must run.
num = st.one_of(
    st.floats(0, 40),
    st.floats(0, 40),
    st.floats(0, 40),
    st.floats(-50, 2000, allow_nan=False),
    st.integers(-5, 50),
)
actor = st.fixed_dictionaries(
    {},
    optional={
        "lane": st.integers(-3, -1),
        "s": st.floats(0, 900),
        "d": st.floats(-3, 3),
        "speed": num,
        "length": st.floats(0.1, 30),
        "width": st.floats(0.1, 5),
        "behavior": st.fixed_dictionaries(
            {},
            optional={
                "v0": st.floats(0, 60),
                "headway": st.floats(0, 5),
                "min_gap": st.floats(0, 5),
                "a_max": st.floats(0.01, 5),
                "b_comf": st.floats(0.01, 9),
                "politeness": st.floats(0, 1),
                "lane_change": st.booleans(),
            },
        ),
        "events": st.lists(
            st.fixed_dictionaries(
                {
                    "action": st.sampled_from(["set_speed", "stop", "lane_change"]),
                    "trigger": st.sampled_from(["time", "ego_gap"]),
                    "at": st.floats(0, 10),
                    "target_speed": st.floats(0, 40),
                    "decel": st.floats(0.1, 11),
                    "direction": st.sampled_from(["left", "right"]),
                    "duration": st.floats(0.2, 5),
                }
            ),
            max_size=2,
        ),
    },
)
raw_spec = st.fixed_dictionaries(
    {
        "road": st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["straight", "curved", "ring"]),
                "num_lanes": st.integers(1, 5),
                "length": st.floats(500, 1500),
                "radius": st.floats(30, 400),
                "speed_limit": st.floats(1, 40),
            }
        ),
        "ego": st.fixed_dictionaries(
            {
                "lane": st.integers(-3, -1),
                "s": st.floats(0, 100),
                "speed": num,
                "route_length": st.floats(1, 400),
            }
        ),
        "actors": st.lists(actor, max_size=3),
        "traffic": st.fixed_dictionaries({"count": st.integers(0, 12)}),
        "time_limit_s": st.floats(0.5, 20),
    }
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_spec, st.integers(0, 2**31))
def test_accepted_specs_never_crash_or_nan(data: dict, seed: int) -> None:
    try:
        spec = spec_from_dict(json.loads(json.dumps(data)))
        g = build_road(spec.road)
        check_on_road(spec, g)
    except SpecError:
        return
    st_ = world.reset([spec], g, [np.random.default_rng(seed)])
    rng = np.random.default_rng(seed)
    for _ in range(30):
        st_ = world.step(st_, rng.uniform(-1, 1, (1, 2)), world.SimParams(), g)
        for name in ("x", "y", "yaw", "speed", "s", "d", "progress"):
            arr = getattr(st_, name)
            assert np.isfinite(arr).all(), name
        assert (st_.speed >= 0).all()
        assert (np.abs(st_.yaw) <= np.pi + 1e-5).all()


def test_spec_yaml_is_readable() -> None:
    text = yaml.safe_dump(CUT_IN.to_dict(), sort_keys=False)
    assert "lane_change" in text and text.startswith("version: 1")
