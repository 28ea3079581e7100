"""Scripted red-light runners (``BehaviorSpec.ignore_lights``) and light plans fixed from the
spec (``LightsSpec.offset_s``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim import world as W
from sim.lights import LightState
from sim.scenario import (
    ActorSpec,
    BehaviorSpec,
    EgoSpec,
    LightsSpec,
    RoadSpec,
    ScenarioSpec,
    SpecError,
    build_road,
    spec_from_dict,
)
from sim.traffic_rules import plan_offset, rules_of, states_at

# Phase 0 (arms 0 and 2) is green for u in [0, 20) s of the 48 s plan, phase 1 (arms 1, 3) for
# [24, 44): at offset 30 s arm 0 shows red (for 18 s) and arm 1 green (for 14 s) at t = 0.
RED_FOR_ARM_0 = 30.0


def _spec(ignore: bool, offset: float | None = RED_FOR_ARM_0) -> ScenarioSpec:
    road = RoadSpec(
        kind="intersection", num_lanes=1, speed_limit=13.9, lights=LightsSpec(offset_s=offset)
    )
    car = ActorSpec(
        road=0,
        lane=1,
        s=50.0,
        speed=10.0,
        behavior=BehaviorSpec(v0=10.0, lane_change=False, ignore_lights=ignore),
    )
    # the ego waits far down arm 1 out of the way
    return ScenarioSpec(
        road=road, ego=EgoSpec(road=1, lane=1, s=90.0, speed=0.0, route_length=50.0), actors=(car,)
    )


def test_a_fixed_offset_gives_a_known_phase_at_t0() -> None:
    spec = _spec(False)
    g = build_road(spec.road)
    rules = rules_of(g)
    assert rules is not None
    st = W.reset([spec, spec], g, [np.random.default_rng(i) for i in range(2)])
    assert np.all(plan_offset(st) == RED_FOR_ARM_0)  # the same in every env
    light = rules.lights.lane_light[st.lane[0]]  # the runner's and the ego's lights
    states = states_at(rules, st.time, plan_offset(st))
    assert states[0, light[1]] == LightState.RED  # arm 0
    assert states[0, light[0]] == LightState.GREEN  # arm 1
    # unset: the per-env phase drawn at reset, as before
    free = _spec(False, offset=None)
    st2 = W.reset([free, free], g, [np.random.default_rng(i) for i in range(2)])
    assert np.array_equal(plan_offset(st2), st2.phase.astype(np.float32))


def test_offset_must_be_a_non_negative_number_naming_the_field() -> None:
    for bad in (-1.0, "soon"):
        with pytest.raises(SpecError, match=r"road\.lights\.offset_s"):
            spec_from_dict({"road": {"kind": "intersection", "lights": {"offset_s": bad}}})


@pytest.mark.parametrize("ignore", [False, True])
def test_a_flagged_vehicle_drives_through_red_an_unflagged_one_stops(ignore: bool) -> None:
    spec = _spec(ignore)
    g = build_road(spec.road)
    rules = rules_of(g)
    assert rules is not None
    st = W.reset([spec], g, [np.random.default_rng(0)])
    assert bool(st.behavior.ignore_lights is not None and st.behavior.ignore_lights[0, 1]) is ignore
    stop = float(rules.lights.lane_stop_s[st.lane[0, 1]])
    k = int(rules.lights.lane_light[st.lane[0, 1]])
    crossed_on = None
    act = np.zeros((1, 2), np.float32)
    for _ in range(150):  # 15 s: arm 0 stays red
        nxt = W.step(st, act, W.SimParams(), g)
        if crossed_on is None and st.s[0, 1] < stop and (nxt.lane[0, 1] != st.lane[0, 1]):
            crossed_on = int(states_at(rules, st.time, plan_offset(st))[0, k])
        st = nxt
    if ignore:
        assert crossed_on == LightState.RED  # it ran the red at speed
        assert g.odr_road[st.lane[0, 1]] == 2  # straight on, not slowed for the junction
        assert st.speed[0, 1] > 9.5
    else:
        assert crossed_on is None  # it waits at the line
        assert st.speed[0, 1] < 0.1 and stop - st.s[0, 1] < 5.0


def test_no_flag_and_no_offset_leave_the_step_as_before() -> None:
    """A spec without either field resets to the same arrays with the flag all False."""
    spec = _spec(False, offset=None)
    g = build_road(spec.road)
    st = W.reset([spec], g, [np.random.default_rng(0)])
    assert st.behavior.ignore_lights is not None and not st.behavior.ignore_lights.any()
    plain = dataclasses.replace(st, light_offset=None)
    a = W.step(st, np.zeros((1, 2), np.float32), W.SimParams(), g)
    b = W.step(plain, np.zeros((1, 2), np.float32), W.SimParams(), g)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.speed, b.speed)
