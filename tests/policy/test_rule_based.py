"""Tests for policy.rule_based: lane keeping, car following, stopping, overtaking, batching."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from policy.rule_based import (
    RandomDriver,
    RuleBasedDriver,
    RuleBasedParams,
    make_driver,
    pedal_command,
)
from sim import world
from sim.dynamics import VehicleParams, longitudinal_accel
from sim.road import LaneGraph, interp
from sim.scenario import (
    ActorSpec,
    BehaviorSpec,
    EgoSpec,
    RoadSpec,
    ScenarioSpec,
    TrafficSpec,
    build_road,
)
from sim.state import WorldState

SIM = world.SimParams()


def _start(
    specs: list[ScenarioSpec], num_actors: int | None = None
) -> tuple[WorldState, LaneGraph]:
    road = build_road(specs[0].road)
    rngs = [np.random.default_rng(i) for i in range(len(specs))]
    return world.reset(specs, road, rngs, num_actors=num_actors), road


def _drive(
    spec: ScenarioSpec, seconds: float, params: RuleBasedParams | None = None
) -> tuple[list[WorldState], LaneGraph]:
    """Run one env with the rule-based driver; all states, the initial one first."""
    st, road = _start([spec])
    driver = RuleBasedDriver(params or RuleBasedParams())
    states = [st]
    for _ in range(round(seconds / SIM.dt)):
        st = world.step(st, driver.act(st, road), SIM, road)
        states.append(st)
    return states, road


def _ego(states: list[WorldState], field: str) -> NDArray[np.float64]:
    return np.array([getattr(s, field)[0, 0] for s in states], np.float64)


def _assert_on_road(states: list[WorldState], road: LaneGraph) -> None:
    for s in states:
        lane, pos, d, w = s.lane[0, :1], s.s[0, :1], s.d[0, 0], s.width[0, 0]
        left = float(interp(road, road.left_edge, lane, pos)[0])
        right = float(interp(road, road.right_edge, lane, pos)[0])
        assert d + w / 2 <= left and d - w / 2 >= -right, f"off road at t={s.time[0]:.1f}"
        assert s.lane_dist[0, 0] < 0.5 * float(road.width[road.lane_start[lane[0]]]) + 0.1


# ------------------------------------------------------------------------------ lane keeping


def test_straight_reaches_speed_limit_and_keeps_lane() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(kind="straight", length=2000),
        ego=EgoSpec(speed=10, route_length=1500),
    )
    states, road = _drive(spec, 40.0)
    speed = _ego(states, "speed")
    limit = float(interp(road, road.speed_limit, states[-1].lane[0, :1], states[-1].s[0, :1])[0])
    assert abs(speed[-1] - limit) < 1.0
    assert speed.max() < limit + 0.5  # IDM approaches v0 from below
    assert np.abs(_ego(states, "d")).max() < 0.2
    _assert_on_road(states, road)


@pytest.mark.parametrize(
    "road_spec",
    [RoadSpec(kind="curved", length=2000), RoadSpec(kind="ring", radius=120)],
    ids=["curved", "ring"],
)
def test_curves_keep_lane(road_spec: RoadSpec) -> None:
    spec = ScenarioSpec(road=road_spec, ego=EgoSpec(speed=10, route_length=500))
    states, road = _drive(spec, 40.0)
    assert np.abs(_ego(states, "d")).max() < 0.5
    assert len(set(_ego(states, "lane").tolist())) == 1  # never drifted into another lane
    assert _ego(states, "speed")[-1] > 15.0  # kept moving (ring: curve speed ~19 m/s)
    _assert_on_road(states, road)


# ------------------------------------------------------------------------- car following


def test_stops_behind_stopped_car() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(kind="straight", num_lanes=1, length=1000),
        ego=EgoSpec(lane=-1, s=30, speed=20, route_length=900),
        actors=(ActorSpec(lane=-1, s=150, speed=0, behavior=BehaviorSpec(v0=0.0)),),
    )
    states, _ = _drive(spec, 40.0)
    gaps = np.array(
        [s.x[0, 1] - s.x[0, 0] - 0.5 * (s.length[0, 0] + s.length[0, 1]) for s in states]
    )
    assert gaps.min() > 0.5
    assert gaps[-1] > 0.5
    assert states[-1].speed[0, 0] < 0.1


def _slow_car_spec() -> ScenarioSpec:
    slow = ActorSpec(lane=-2, s=100, speed=10, behavior=BehaviorSpec(v0=10.0, lane_change=False))
    return ScenarioSpec(
        road=RoadSpec(kind="straight", length=2000),
        ego=EgoSpec(lane=-2, s=30, speed=20, route_length=1500),
        actors=(slow,),
    )


def test_overtakes_slow_car_with_lane_changes() -> None:
    states, road = _drive(_slow_car_spec(), 60.0)
    lanes = {int(road.odr_lane[s.lane[0, 0]]) for s in states}
    assert lanes - {-2}, "never left lane -2"
    end = states[-1]
    assert end.x[0, 0] - end.x[0, 1] > 0.5 * (end.length[0, 0] + end.length[0, 1])
    assert end.speed[0, 0] > 25.0
    assert np.abs(_ego(states, "lane_dist")).max() < 2.0
    _assert_on_road(states, road)


def test_stays_behind_slow_car_without_lane_changes() -> None:
    states, road = _drive(_slow_car_spec(), 60.0, RuleBasedParams(lane_change=False))
    assert {int(road.odr_lane[s.lane[0, 0]]) for s in states} == {-2}
    gaps = np.array(
        [s.x[0, 1] - s.x[0, 0] - 0.5 * (s.length[0, 0] + s.length[0, 1]) for s in states]
    )
    assert gaps.min() > 2.0
    assert abs(states[-1].speed[0, 0] - 10.0) < 0.5  # settled behind it at its speed


def test_reset_forgets_lane_change() -> None:
    st, road = _start([_slow_car_spec(), _slow_car_spec()])
    driver = RuleBasedDriver()
    driver.act(st, road)
    target = driver.target_lane
    assert (target >= 0).all()  # both envs start changing out of the slow lane
    driver.reset(np.array([True, False]))
    assert driver.target_lane[0] == -1 and driver.target_lane[1] == target[1]


def test_pedal_command_inverts_longitudinal_dynamics() -> None:
    vp = VehicleParams()
    speed = np.repeat(np.array([0.5, 5.0, 15.0, 30.0], np.float32), 5)
    # All reachable: at 30 m/s the power limit leaves ~1.96 m/s^2 after driving resistance.
    a_des = np.tile(np.array([-6.0, -2.0, -0.05, 0.5, 1.5], np.float32), 4)
    cmd = pedal_command(a_des, speed, vp)
    assert (np.abs(cmd) <= 1.0).all()
    np.testing.assert_allclose(longitudinal_accel(cmd, speed, vp), a_des, atol=1e-5)


# ------------------------------------------------------------------------------ batching


def test_batched_equals_unbatched() -> None:
    road = RoadSpec(kind="straight", length=2000)
    slow = ActorSpec(lane=-2, s=90, speed=12, behavior=BehaviorSpec(v0=12.0))
    specs = [
        ScenarioSpec(road=road, ego=EgoSpec(lane=-2, speed=20, route_length=1500), actors=(slow,)),
        ScenarioSpec(road=road, ego=EgoSpec(lane=-1, s=50, speed=5, d=0.4, route_length=1500)),
        ScenarioSpec(
            road=road,
            ego=EgoSpec(lane=-3, speed=25, route_length=1500),
            traffic=TrafficSpec(count=12, s_range=(60.0, 400.0)),
        ),
        ScenarioSpec(
            road=road,
            ego=EgoSpec(lane=-2, speed=15, route_length=1500),
            actors=(ActorSpec(lane=-3, s=60, speed=15), ActorSpec(lane=-1, s=20, speed=25)),
        ),
    ]
    steps = 50
    st, g = _start(specs)
    batched = RuleBasedDriver()
    acts_b = []
    for _ in range(steps):
        a = batched.act(st, g)
        acts_b.append(a)
        st = world.step(st, a, SIM, g)
    acts_batch = np.stack(acts_b)  # (T, B, 2)
    assert np.abs(acts_batch[:, :, 0]).max() > 0.01  # someone steered (lane changes)
    for b, spec in enumerate(specs):
        one = world.reset([spec], g, [np.random.default_rng(b)])
        single = RuleBasedDriver()
        for t in range(steps):
            a = single.act(one, g)
            np.testing.assert_allclose(a[0], acts_batch[t, b], atol=1e-5, err_msg=f"env {b} t {t}")
            one = world.step(one, a, SIM, g)


# ------------------------------------------------------------------------- random driver


def test_random_driver_reproducible_and_bounded() -> None:
    st, road = _start([ScenarioSpec(), ScenarioSpec()])
    d1, d2 = RandomDriver(seed=7), RandomDriver(seed=7)
    a1 = np.stack([d1.act(st, road) for _ in range(20)])
    a2 = np.stack([d2.act(st, road) for _ in range(20)])
    assert a1.shape == (20, 2, 2) and a1.dtype == np.float32
    np.testing.assert_array_equal(a1, a2)
    assert (np.abs(a1) <= 1.0).all() and a1.std() > 0.3
    d3 = RandomDriver(seed=8)
    assert not np.array_equal(a1, np.stack([d3.act(st, road) for _ in range(20)]))
    d1.reset(np.array([True, False]))


def test_make_driver() -> None:
    assert isinstance(make_driver("rule_based"), RuleBasedDriver)
    assert isinstance(make_driver("random", seed=1), RandomDriver)
    with pytest.raises(ValueError, match=r"rule_based.*random"):
        make_driver("autopilot")
