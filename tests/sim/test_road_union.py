"""Several roads in one vector env: the union graph, spec shifting and per-part traffic."""

import itertools
from dataclasses import replace

import numpy as np

from policy.rule_based import RuleBasedDriver
from sim.env import DriveVectorEnv
from sim.road import LaneType, project_global
from sim.road_union import UNION_GAP_M, lane_components, shift_spec, union
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

STRAIGHT = RoadSpec(kind="straight", num_lanes=2, length=600.0)
CURVED = RoadSpec(kind="curved", num_lanes=3, length=1400.0, radius=250.0)
RING = RoadSpec(kind="ring", num_lanes=2, radius=100.0)

BRAKE = ScenarioSpec(
    name="brake",
    road=STRAIGHT,
    ego=EgoSpec(lane=-2, s=20.0, speed=20.0, route_length=400.0),
    actors=(
        ActorSpec(
            lane=-2,
            s=60.0,
            speed=20.0,
            behavior=BehaviorSpec(v0=20.0, lane_change=False),
            events=(EventSpec(action="set_speed", at=3.0, target_speed=5.0, decel=6.0),),
        ),
    ),
    time_limit_s=20.0,
)
BUSY = ScenarioSpec(
    name="busy",
    road=CURVED,
    ego=EgoSpec(lane=-2, s=20.0, speed=20.0, route_length=800.0),
    traffic=TrafficSpec(count=15),
    time_limit_s=20.0,
)


def test_union_keeps_each_part_and_separates_them() -> None:
    parts = [build_road(r) for r in (STRAIGHT, CURVED, RING)]
    g, offsets = union(parts)
    assert g.num_lanes == sum(p.num_lanes for p in parts)
    assert g.num_points == sum(p.num_points for p in parts)
    assert len(set(offsets)) == 3 and offsets[0] == 0
    lane0 = 0
    boxes = []
    for p, off in zip(parts, offsets, strict=True):
        sl = slice(int(g.lane_start[lane0]), int(g.lane_start[lane0]) + p.num_points)
        # Same geometry up to a translation along y; same links up to the lane offset.
        np.testing.assert_array_equal(g.x[sl], p.x)
        dy = g.y[sl] - p.y
        assert np.ptp(dy) < 1e-3
        np.testing.assert_array_equal(g.heading[sl], p.heading)
        lanes = slice(lane0, lane0 + p.num_lanes)
        succ = g.successors[lanes]
        np.testing.assert_array_equal(succ, np.where(p.successors >= 0, p.successors + lane0, -1))
        np.testing.assert_array_equal(g.odr_road[lanes], p.odr_road + off)
        boxes.append((float(g.y[sl].min()), float(g.y[sl].max())))
        lane0 += p.num_lanes
    for (lo_a, _), (_, hi_b) in itertools.pairwise(boxes):
        assert lo_a - hi_b >= UNION_GAP_M - 1e-3
    # Each part is its own connected component.
    comp = lane_components(g)
    assert len(set(comp.tolist())) == 3
    # A spec shifted onto part 2 finds its lane there.
    lane, _ = g.lane_index(offsets[2] + 0, -1, 10.0)
    assert comp[lane] == comp[g.num_lanes - 1]
    # A point of part 1 projects onto part 1, never onto another part.
    i = int(g.lane_start[parts[0].num_lanes]) + 50
    proj = project_global(g, g.x[i : i + 1], g.y[i : i + 1], g.heading[i : i + 1])
    assert comp[int(proj.lane[0])] == comp[parts[0].num_lanes]


def test_lane_components_join_neighbours_and_successors() -> None:
    g = build_road(CURVED)
    assert set(lane_components(g).tolist()) == {0}
    ring = build_road(RING)
    assert set(lane_components(ring).tolist()) == {0}


def test_shift_spec_moves_every_road_id() -> None:
    sp = shift_spec(BRAKE, 3000)
    assert sp.ego.road == 3000 and all(a.road == 3000 for a in sp.actors)
    zone = replace(BUSY, traffic=replace(BUSY.traffic, keep_clear=((0.0, -1.0, 10.0, 90.0),)))
    assert shift_spec(zone, 2000).traffic.keep_clear == ((2000.0, -1.0, 10.0, 90.0),)
    assert shift_spec(BRAKE, 0) is BRAKE


def _drive(env: DriveVectorEnv, steps: int) -> list[np.ndarray]:
    drv = RuleBasedDriver()
    env.reset(seed=3)
    drv.reset(np.ones(env.num_envs, np.bool_))
    out = []
    for _ in range(steps):
        assert env.state is not None
        out.append(np.stack([env.state.s, env.state.speed, env.state.d]))
        env.step(drv.act(env.state, env.road))
    return out


def test_mixture_env_runs_each_spec_as_its_own_env_does() -> None:
    """Deterministic scenario in a mixture == the same scenario alone (lane coordinates).

    Not bit for bit: the part sits kilometres from the origin, where float32 positions resolve
    about 0.2 mm, so the ego's projection differs in the fourth decimal.
    """
    mixed = DriveVectorEnv(num_envs=6, scenario=[BUSY, BRAKE])
    alone = DriveVectorEnv(num_envs=1, scenario=BRAKE, num_actors=mixed.num_actors)
    mixed_run = _drive(mixed, 60)
    ks = mixed.spec_index.copy()
    assert set(ks.tolist()) == {0, 1}, "seed 3 should draw both specs"
    alone_run = _drive(alone, 60)
    for b in np.nonzero(ks == 1)[0]:
        for t in range(60):
            np.testing.assert_allclose(mixed_run[t][:, b, :2], alone_run[t][:, 0, :2], atol=2e-3)


def test_mixture_traffic_stays_on_its_own_part() -> None:
    env = DriveVectorEnv(num_envs=8, scenario=[BUSY, BRAKE, replace(BUSY, road=RING)])
    env.reset(seed=0)
    st = env.state
    assert st is not None
    comp = lane_components(env.road)
    for b in range(env.num_envs):
        lanes = st.lane[b][st.valid[b]]
        assert len(set(comp[lanes].tolist())) == 1
        assert np.all(env.road.lane_type[lanes] == LaneType.DRIVING)
    counts = st.valid.sum(1)
    busy = env.spec_index != 1
    assert np.all(counts[busy] > 5) and np.all(counts[~busy] == 2)
