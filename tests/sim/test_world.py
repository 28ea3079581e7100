"""Behaviour scenarios for the embedded simulator, read like the situations they test."""

import itertools

import numpy as np
import pytest

from sim import world
from sim.collision import pairwise_collisions
from sim.scenario import (
    ActorSpec,
    BehaviorSpec,
    EgoSpec,
    EventSpec,
    RoadSpec,
    ScenarioSpec,
    TrafficSpec,
    build_road,
)
from sim.traffic import idm_accel

P = world.SimParams()
BRAKE = np.array([[0.0, -1.0]], np.float32)


def _run(spec: ScenarioSpec, steps: int, action: np.ndarray = BRAKE, seed: int = 0):
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(seed)])
    states = [st]
    for _ in range(steps):
        st = world.step(st, np.repeat(action, st.num_envs, 0), P, g)
        states.append(st)
    return g, states


def test_car_stops_behind_stopped_car_without_collision() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1, length=600.0),
        ego=EgoSpec(lane=-1, s=5.0, speed=0.0, route_length=100.0),
        actors=(
            ActorSpec(lane=-1, s=200.0, speed=0.0, behavior=BehaviorSpec(v0=0.0)),
            ActorSpec(lane=-1, s=60.0, speed=25.0, behavior=BehaviorSpec(v0=30.0)),
        ),
    )
    _, states = _run(spec, 400)
    last = states[-1]
    gap = last.x[0, 1] - last.x[0, 2] - 0.5 * (last.length[0, 1] + last.length[0, 2])
    assert last.speed[0, 2] < 0.05
    assert 1.0 < gap < 4.0  # stops about the jam distance s0 = 2 m behind
    assert not any(
        pairwise_collisions(s.x, s.y, s.yaw, s.length, s.width, s.valid).any() for s in states
    )


def test_scripted_hard_brake_decelerates_at_given_rate() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1, length=800.0),
        ego=EgoSpec(lane=-1, s=5.0, speed=0.0, route_length=100.0),
        actors=(
            ActorSpec(
                lane=-1,
                s=100.0,
                speed=20.0,
                behavior=BehaviorSpec(v0=20.0),
                events=(EventSpec(action="set_speed", at=2.0, target_speed=5.0, decel=6.0),),
            ),
        ),
    )
    _, states = _run(spec, 60)
    v = np.array([s.speed[0, 1] for s in states])
    t = np.array([s.time[0] for s in states])
    braking = (t > 2.05) & (v > 5.5)
    assert braking.sum() >= 20
    np.testing.assert_allclose(np.diff(v)[braking[1:]], -0.6, atol=1e-4)  # 6 m/s^2 * 0.1 s
    assert v[-1] == pytest.approx(5.0, abs=0.7)


def test_cut_in_happens_when_ego_gets_close() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=2, length=1000.0),
        ego=EgoSpec(lane=-2, s=30.0, speed=25.0, route_length=500.0),
        actors=(
            ActorSpec(
                lane=-1,
                s=70.0,
                speed=20.0,
                behavior=BehaviorSpec(v0=20.0, lane_change=False),
                events=(
                    EventSpec(
                        action="lane_change",
                        trigger="ego_gap",
                        at=8.0,
                        direction="right",
                        duration=1.5,
                    ),
                ),
            ),
        ),
    )
    _g, states = _run(spec, 120, np.array([[0.0, 0.3]], np.float32))
    lanes = np.array([s.lane[0, 1] for s in states])
    fired = [i for i, s in enumerate(states) if s.lc_target[0, 1] >= 0]
    assert fired, "the cut-in never started"
    i0 = fired[0]
    st0 = states[i0]
    gap = np.hypot(st0.x[0, 1] - st0.x[0, 0], st0.y[0, 1] - st0.y[0, 0]) - 4.6
    assert gap <= 9.5
    assert lanes[0] == 0 and lanes[-1] == 1  # ends in the ego's lane (index 1 = lane -2)
    y = np.array([s.y[0, 1] for s in states[i0 : i0 + 20]])
    assert (np.diff(y) <= 1e-4).all() and np.abs(np.diff(y)).max() < 0.5  # smoothly rightwards
    assert y[-1] == pytest.approx(states[0].y[0, 0], abs=0.01)  # onto the ego's lane centre


def test_no_lane_change_without_scripted_event_when_disabled() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=3, length=1500.0),
        ego=EgoSpec(lane=-2, s=5.0, speed=0.0, route_length=100.0),
        actors=(
            ActorSpec(lane=-2, s=100.0, speed=10.0, behavior=BehaviorSpec(v0=10.0)),
            ActorSpec(
                lane=-2, s=60.0, speed=25.0, behavior=BehaviorSpec(v0=30.0, lane_change=False)
            ),
        ),
    )
    _, states = _run(spec, 200)
    assert {int(s.lane[0, 2]) for s in states} == {1}


def test_mobil_overtakes_slow_car_and_respects_safe_braking() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=3, length=2000.0),
        ego=EgoSpec(lane=-3, s=5.0, speed=0.0, route_length=100.0),
        actors=(
            ActorSpec(
                lane=-2, s=200.0, speed=10.0, behavior=BehaviorSpec(v0=10.0, lane_change=False)
            ),
            ActorSpec(lane=-2, s=120.0, speed=28.0, behavior=BehaviorSpec(v0=30.0)),
        ),
        traffic=TrafficSpec(count=25, s_range=(300.0, 1900.0)),
    )
    _g, states = _run(spec, 300)
    assert any(s.lane[0, 2] != 1 for s in states), "the fast car never left the slow car's lane"
    assert states[-1].x[0, 2] > states[-1].x[0, 1]  # and passed it
    # MOBIL safety: whenever a lane change starts, the new follower's IDM braking behind the
    # changer is no harsher than its b_safe (checked with the same IDM the simulator uses).
    for prev, nxt in itertools.pairwise(states):
        started = (prev.lc_target < 0) & (nxt.lc_target >= 0)
        for b, j in zip(*np.nonzero(started), strict=True):
            tgt = nxt.lc_target[b, j]
            on_tgt = (prev.lane[b] == tgt) & prev.valid[b]
            behind = on_tgt & (prev.x[b] < prev.x[b, j])
            if not behind.any():
                continue
            k = int(np.argmax(np.where(behind, prev.x[b], -np.inf)))
            gap = prev.x[b, j] - prev.x[b, k] - 0.5 * (prev.length[b, j] + prev.length[b, k])
            bh = prev.behavior
            a = idm_accel(
                prev.speed[b, k : k + 1],
                bh.v0[b, k : k + 1],
                np.float32([gap]),
                prev.speed[b, k : k + 1] - prev.speed[b, j : j + 1],
                bh.headway[b, k : k + 1],
                bh.min_gap[b, k : k + 1],
                bh.a_max[b, k : k + 1],
                bh.b_comf[b, k : k + 1],
            )
            assert a[0] >= -bh.b_safe[b, j] - 1e-3


def test_traffic_on_ring_never_collides() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(kind="ring", radius=120.0, num_lanes=3),
        ego=EgoSpec(lane=-3, s=0.0, speed=0.0, route_length=50.0),
        traffic=TrafficSpec(count=45),
    )
    _, states = _run(spec, 400)
    for s in states[::5]:
        hit = pairwise_collisions(s.x, s.y, s.yaw, s.length, s.width, s.valid)
        hit[:, 0, :] = False  # the ego is parked and braking: it may be rear-ended by design
        hit[:, :, 0] = False
        assert not hit.any()
    assert states[-1].valid.sum() == states[0].valid.sum()  # nobody drove off a ring


def test_step_is_deterministic() -> None:
    spec = ScenarioSpec(traffic=TrafficSpec(count=20))
    _, a = _run(spec, 50, np.array([[0.1, 0.3]], np.float32), seed=3)
    _, b = _run(spec, 50, np.array([[0.1, 0.3]], np.float32), seed=3)
    for sa, sb in zip(a, b, strict=True):
        for name in ("x", "y", "yaw", "speed", "lane", "s", "d"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))


def test_batched_world_equals_single_envs() -> None:
    specs = [
        ScenarioSpec(traffic=TrafficSpec(count=15)),
        ScenarioSpec(
            road=RoadSpec(), ego=EgoSpec(lane=-1, speed=10.0), traffic=TrafficSpec(count=5)
        ),
    ]
    g = build_road(specs[0].road)
    batch = world.reset(specs, g, [np.random.default_rng(i) for i in range(2)], num_actors=20)
    singles = [
        world.reset([sp], g, [np.random.default_rng(i)], num_actors=20)
        for i, sp in enumerate(specs)
    ]
    acts = np.array([[0.05, 0.5], [-0.05, -0.2]], np.float32)
    for _ in range(80):
        batch = world.step(batch, acts, P, g)
        singles = [world.step(s, acts[i : i + 1], P, g) for i, s in enumerate(singles)]
    for i, s in enumerate(singles):
        np.testing.assert_array_equal(batch.x[i], s.x[0])
        np.testing.assert_array_equal(batch.lane[i], s.lane[0])


def test_step_does_not_mutate_its_input() -> None:
    spec = ScenarioSpec(traffic=TrafficSpec(count=20))
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(0)])
    for _ in range(30):
        before = {k: np.copy(v) for k, v in vars(st).items() if isinstance(v, np.ndarray)}
        nxt = world.step(st, np.array([[0.2, 0.5]], np.float32), P, g)
        for k, v in before.items():
            np.testing.assert_array_equal(getattr(st, k), v, err_msg=k)
        st = nxt
