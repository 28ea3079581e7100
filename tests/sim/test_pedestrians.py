"""Pedestrian kernels (sim.pedestrians): crossings fire on their trigger, walk to the far kerb
and stop, block a lane only while on it; walkers spawn on sidewalks; specs place pedestrians."""

from __future__ import annotations

import numpy as np
import pytest

from sim import road as R
from sim.pedestrians import KERB_CLEARANCE_M, fire_crossings, in_lane, sample_walkers, walk
from sim.scenario import (
    ActorSpec,
    EventSpec,
    RoadSpec,
    ScenarioSpec,
    SpecError,
    build_road,
    check_on_road,
    spec_from_dict,
)
from sim.state import ActorType, EventKind, Events, TriggerKind


def _events(trigger: int, value: float, direction: int) -> Events:
    shape = (1, 2, 1)
    return Events(
        kind=np.full(shape, EventKind.CROSS, np.int8),
        trigger=np.full(shape, trigger, np.int8),
        trigger_value=np.full(shape, value, np.float32),
        target_speed=np.full(shape, 1.5, np.float32),
        decel=np.ones(shape, np.float32),
        direction=np.full(shape, direction, np.int8),
        duration=np.ones(shape, np.float32),
        fired=np.zeros(shape, np.bool_),
    )


def test_crossings_fire_on_time_or_ego_gap_for_pedestrians_only() -> None:
    atype = np.array([[ActorType.VEHICLE, ActorType.PEDESTRIAN]], np.int8)
    valid = np.ones((1, 2), np.bool_)
    v0 = np.zeros((1, 2), np.float32)
    ev = _events(TriggerKind.EGO_GAP, 20.0, -1)
    far = np.array([[0.0, 30.0]], np.float32)
    v, fired = fire_crossings(ev, atype, valid, np.zeros(1, np.float32), far, v0)
    assert not fired.any() and (v == 0).all()
    near = np.array([[0.0, 19.0]], np.float32)
    v, fired = fire_crossings(ev, atype, valid, np.zeros(1, np.float32), near, v0)
    assert fired[0, :, 0].tolist() == [False, True] and v[0].tolist() == [0.0, -1.5]
    ev = _events(TriggerKind.TIME, 2.0, 1)
    v, _ = fire_crossings(ev, atype, valid, np.array([2.0], np.float32), far, v0)
    assert v[0].tolist() == [0.0, 1.5]


def test_a_crosser_walks_to_the_far_kerb_and_stops() -> None:
    g = R.straight_highway(200.0, num_lanes=2, lane_width=3.5)
    lane = np.array([[0]], np.int32)  # lane -1: left edge 1.75 m, right edge 5.25 m
    s = np.array([[100.0]], np.float32)
    d = np.array([[1.75 + KERB_CLEARANCE_M]], np.float32)
    v = np.array([[-1.4]], np.float32)
    blocked = []
    for _ in range(100):
        d, v = walk(g, lane, s, d, v, 0.1)
        blocked.append(bool(in_lane(g, lane, s, d, np.full((1, 1), 0.6, np.float32), v != 9)[0, 0]))
    assert d[0, 0] == pytest.approx(-(5.25 + KERB_CLEARANCE_M)) and v[0, 0] == 0.0
    assert any(blocked) and not blocked[-1]


def test_walkers_spawn_on_sidewalks_only() -> None:
    g = build_road(RoadSpec(kind="intersection", num_lanes=1))
    lane, s, v0 = sample_walkers(g, np.random.default_rng(0), 50)
    assert lane.size == 50 and (g.lane_type[lane] == R.LaneType.SIDEWALK).all()
    assert ((s > 0) & (s < g.lane_length[lane])).all() and ((v0 > 1.0) & (v0 < 1.7)).all()
    hw = R.straight_highway(100.0)
    assert sample_walkers(hw, np.random.default_rng(0), 5)[0].size == 0


def test_a_pedestrian_spec_is_placed_on_the_kerb_with_a_cross_event() -> None:
    walker = ActorSpec(
        type="pedestrian",
        road=0,
        lane=-1,
        s=300.0,
        d=-7.0,
        speed=0.0,
        length=0.5,
        width=0.6,
        events=(EventSpec(action="cross", trigger="ego_gap", at=25.0, target_speed=1.4),),
    )
    spec = ScenarioSpec(actors=(walker,))
    spec2 = spec_from_dict(spec.to_dict())
    assert spec2.actors[0].type == "pedestrian"
    check_on_road(spec2, build_road(spec2.road))
    with pytest.raises(SpecError, match=r"actors\[0\]\.events\[0\]\.action: 'cross' does not"):
        spec_from_dict({"actors": [{"type": "vehicle", "events": [{"action": "cross"}]}]})
    with pytest.raises(SpecError, match=r"actors\[0\]\.d: expected -3\.0 to 3\.0 m for a veh"):
        spec_from_dict({"actors": [{"d": 7.0}]})


def test_a_pedestrian_on_the_kerb_is_not_the_egos_leader_one_in_the_lane_is() -> None:
    """TTC and headway measure what is in the ego's path: a walker waiting on the kerb beside
    the ego's lane is not its leader; the same walker standing in the lane is."""
    from sim import world
    from sim.metrics import ego_leader
    from sim.scenario import ActorSpec, EgoSpec, RoadSpec, ScenarioSpec, TrafficSpec, build_road

    def leader(d: float) -> int:
        walker = ActorSpec(
            type="pedestrian", lane=-1, s=80.0, d=d, speed=0.0, length=0.5, width=0.6
        )
        spec = ScenarioSpec(
            road=RoadSpec(num_lanes=2, length=400.0),
            ego=EgoSpec(lane=-1, s=30.0, speed=10.0, route_length=200.0),
            actors=(walker,),
            traffic=TrafficSpec(count=0),
        )
        g = build_road(spec.road)
        st = world.reset([spec], g, [np.random.default_rng(0)])
        return int(ego_leader(st, g)[2][0])

    assert leader(3.5) == -1  # on the kerb left of the (leftmost) lane
    assert leader(0.0) == 1  # in the lane, right ahead
