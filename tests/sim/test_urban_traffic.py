"""Urban traffic in the world step: junction flow without deadlocks or collisions, lights obeyed
by traffic and the rule-based ego, red-light infractions counted, pedestrians crossing, the
ego's planned route through a junction, the urban observation, determinism."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from policy.rule_based import RuleBasedDriver
from sim import world as W
from sim.collision import pairwise_collisions
from sim.env import DriveVectorEnv
from sim.episode import EpisodeTracker, TrackerConfig
from sim.lights import LightState
from sim.metrics import evaluate
from sim.observation import ObsConfig, obs_dim, obs_slices, observe
from sim.road import LaneGraph
from sim.scenario import (
    ActorSpec,
    EgoSpec,
    EventSpec,
    RoadSpec,
    ScenarioSpec,
    build_road,
    load_spec,
)
from sim.state import ActorType, WorldState
from sim.traffic_rules import rules_of, states_at

ROOT = Path(__file__).resolve().parents[2]
JUNCTIONS = ["intersection", "t_junction", "roundabout", "on_ramp", "off_ramp"]
FLOW_S = 90.0  # [s] of traffic per junction scenario


def _spec(name: str, count: int) -> ScenarioSpec:
    spec = load_spec(ROOT / "configs" / "scenario" / f"{name}.yaml")
    return dataclasses.replace(
        spec, traffic=dataclasses.replace(spec.traffic, count=count), time_limit_s=600.0
    )


@pytest.mark.parametrize("name", JUNCTIONS)
def test_junction_traffic_flows_without_collisions_or_deadlock(name: str) -> None:
    spec = _spec(name, 40)
    g = build_road(spec.road)
    B = 2
    st = W.reset([spec] * B, g, [np.random.default_rng(i) for i in range(B)])
    # traffic only: the ego is taken off the map (not listed, nobody queues behind it)
    valid = st.valid.copy()
    valid[:, 0] = False
    st = dataclasses.replace(st, valid=valid)
    act = np.array([[0.0, -1.0]] * B, np.float32)
    params = W.SimParams()
    traffic0 = int(st.valid[:, 1:].sum())
    standing = np.zeros(st.valid.shape, np.float32)
    for _ in range(int(FLOW_S / params.dt)):
        st = W.step(st, act, params, g)
        hit = pairwise_collisions(st.x, st.y, st.yaw, st.length, st.width, st.valid)
        assert not hit.any(), f"{name}: traffic collided at t={st.time[0]:.1f} s"
        standing = np.where(st.valid & (st.speed < 0.1), standing + params.dt, 0.0)
    left = int(st.valid[:, 1:].sum())
    # traffic keeps flowing: most vehicles crossed and left the map, nobody stands for long
    assert left <= 0.25 * traffic0, f"{name}: {left} of {traffic0} vehicles still on the map"
    assert standing[:, 1:].max() < 45.0, f"{name}: a vehicle stood {standing.max():.0f} s"


def _light_of_ego(spec: ScenarioSpec) -> tuple[WorldState, LaneGraph, int]:
    g = build_road(spec.road)
    st = W.reset([spec], g, [np.random.default_rng(0)])
    rules = rules_of(g)
    assert rules is not None
    k = int(rules.lights.lane_light[st.lane[0, 0]])
    assert k >= 0
    return st, g, k


def _red_spec(speed: float) -> ScenarioSpec:
    # no traffic; the ego 60 m before the stop line of arm 0; green 5 s, so red on arrival
    road = RoadSpec(kind="intersection", num_lanes=1, speed_limit=13.9)
    road = dataclasses.replace(road, lights=dataclasses.replace(road.lights, green_s=5.0))
    return ScenarioSpec(
        road=road,
        ego=EgoSpec(road=0, lane=1, s=62.0, speed=speed, route_length=150.0),
        time_limit_s=60.0,
    )


def test_running_a_red_light_is_an_infraction_and_the_rule_based_ego_stops() -> None:
    spec = _red_spec(8.0)
    for policy, expect in (("cruise", 1), ("rule_based", 0)):
        st, g, _ = _light_of_ego(spec)
        tracker = EpisodeTracker(1, TrackerConfig())
        driver = RuleBasedDriver()
        driver.reset(np.ones(1, np.bool_))
        ran = 0
        events = []
        for _ in range(150):
            act = (
                driver.act(st, g) if policy == "rule_based" else np.array([[0.0, 0.05]], np.float32)
            )
            nxt = W.step(st, act, W.SimParams(), g)
            out = evaluate(st, act, nxt, g)
            ran += int(out.terms["red_light"][0])
            events += tracker.update(st, nxt, out, np.zeros(1), np.ones(1, np.bool_))
            st = nxt
        assert ran == expect, policy
        assert sum(e["type"] == "red_light" for e in events) == expect
        row = tracker.finish(0, st, out)
        assert row["red_light"] == expect
        if expect:
            assert row["driving_score_lb20"] < row["route_completion_pct"]  # penalised


def test_traffic_stops_for_red_lights() -> None:
    spec = _spec("intersection", 40)
    g = build_road(spec.road)
    rules = rules_of(g)
    assert rules is not None
    st = W.reset([spec] * 2, g, [np.random.default_rng(i) for i in range(2)])
    params = W.SimParams()
    act = np.array([[0.0, -1.0]] * 2, np.float32)
    crossings = 0
    for _ in range(600):
        nxt = W.step(st, act, params, g)
        lights = states_at(rules, st.time, st.phase)
        k = rules.lights.lane_light[st.lane]
        stop = rules.lights.lane_stop_s[st.lane]
        crossed = (k >= 0) & (st.s < stop) & (nxt.lane != st.lane) & st.valid & nxt.valid
        crossed[:, 0] = False
        red = np.take_along_axis(lights, np.maximum(k, 0), 1) == LightState.RED
        # only a car that could not stop at the onset of red may go (it needs > 6 m/s^2)
        crossings += int((crossed & red & (st.time[:, None] > 3.0)).sum())
        st = nxt
    assert crossings == 0


def _ped_spec() -> ScenarioSpec:
    walker = ActorSpec(
        type="pedestrian",
        road=0,
        lane=-2,
        s=160.0,
        d=-(1.75 + 3.5 + 1.5),  # on the right kerb of a 3-lane road
        speed=0.0,
        length=0.5,
        width=0.6,
        events=(EventSpec(action="cross", trigger="ego_gap", at=50.0, target_speed=1.5),),
    )
    return ScenarioSpec(
        road=RoadSpec(kind="straight", length=400.0, speed_limit=13.9),
        ego=EgoSpec(lane=-2, s=60.0, speed=12.0, route_length=250.0),
        actors=(walker,),
        time_limit_s=40.0,
    )


def test_a_crossing_pedestrian_is_hit_by_a_blind_ego_and_avoided_by_the_rule_based_one() -> None:
    spec = _ped_spec()
    g = build_road(spec.road)
    for policy in ("blind", "rule_based"):
        st = W.reset([spec], g, [np.random.default_rng(0)])
        assert st.actor_type[0, 1] == ActorType.PEDESTRIAN and st.walk_d_speed is not None
        tracker = EpisodeTracker(1, TrackerConfig())
        driver = RuleBasedDriver()
        driver.reset(np.ones(1, np.bool_))
        kinds = []
        walked = False
        for _ in range(200):
            act = driver.act(st, g) if policy == "rule_based" else np.array([[0.0, 0.1]])
            nxt = W.step(st, np.asarray(act, np.float32), W.SimParams(), g)
            out = evaluate(st, act, nxt, g)
            kinds += [
                e.get("collision")
                for e in tracker.update(st, nxt, out, np.zeros(1), np.ones(1, np.bool_))
            ]
            assert nxt.walk_d_speed is not None
            walked |= bool(nxt.walk_d_speed[0, 1] != 0)
            st = nxt
        assert walked
        if policy == "blind":
            assert "pedestrian" in kinds
            assert tracker.finish(0, st, out)["collisions_pedestrian"] >= 1
        else:
            assert "pedestrian" not in kinds
    # the walker reached the far kerb and stopped
    assert st.walk_d_speed is not None
    assert st.walk_d_speed[0, 1] == 0.0 and st.d[0, 1] > 1.75


def test_the_egos_planned_route_turns_where_the_waypoints_say() -> None:
    base = load_spec(ROOT / "configs" / "scenario" / "intersection.yaml")
    g = build_road(base.road)
    for goal_arm in (1, 2, 3):  # right, straight, left
        spec = dataclasses.replace(
            base,
            ego=dataclasses.replace(base.ego, waypoints=((goal_arm, -1, 60.0),)),
            traffic=dataclasses.replace(base.traffic, count=0),
        )
        st = W.reset([spec], g, [np.random.default_rng(0)])
        assert st.route.lanes is not None
        driver = RuleBasedDriver()
        driver.reset(np.ones(1, np.bool_))
        roads = set()
        for _ in range(400):
            st = W.step(st, driver.act(st, g), W.SimParams(), g)
            roads.add(int(g.odr_road[st.lane[0, 0]]))
            if st.progress[0] >= st.route.length[0] - 1.0:
                break
        assert st.progress[0] >= st.route.length[0] - 5.0, goal_arm
        assert int(g.odr_road[st.lane[0, 0]]) == goal_arm
        assert roads & {1, 2, 3} == {goal_arm}


def test_urban_observation_is_opt_in_and_reads_the_light() -> None:
    spec = _red_spec(8.0)
    g = build_road(spec.road)
    st = W.reset([spec], g, [np.random.default_rng(0)])
    base = ObsConfig()
    urban = ObsConfig(urban=True)
    assert obs_dim(urban) == obs_dim(base) + 4 + base.num_actors
    o0, o1 = observe(st, g, base), observe(st, g, urban)
    np.testing.assert_array_equal(o1[:, : obs_dim(base)], o0)
    sl = obs_slices(urban)
    assert o1[0, sl["light_distance"]][0] == pytest.approx(
        (g.lane_length[st.lane[0, 0]] - st.s[0, 0]) / 100.0, abs=1e-4
    )
    assert o1[0, sl["junction_distance"]][0] == pytest.approx(
        o1[0, sl["light_distance"]][0], abs=1e-4
    )
    for _ in range(60):  # 6 s: green (5 s) then yellow
        st = W.step(st, np.array([[0.0, -1.0]], np.float32), W.SimParams(), g)
    o = observe(st, g, urban)
    assert o[0, sl["light_yellow"]][0] == 1.0 and o[0, sl["light_red"]][0] == 0.0
    hw = build_road(RoadSpec())
    sth = W.reset([ScenarioSpec()], hw, [np.random.default_rng(0)])
    oh = observe(sth, hw, urban)
    assert oh[0, sl["light_distance"]][0] == 1.0 and oh[0, sl["junction_distance"]][0] == 1.0


def test_urban_env_is_deterministic_and_batched_equals_single() -> None:
    spec = _spec("roundabout", 20)
    spec = dataclasses.replace(spec, traffic=dataclasses.replace(spec.traffic, pedestrians=10))

    def roll(B: int, seed: int) -> np.ndarray:
        env = DriveVectorEnv(num_envs=B, scenario=spec, num_actors=spec.max_actors())
        env.reset(seed=[seed + i for i in range(B)])
        drv = RuleBasedDriver()
        drv.reset(np.ones(B, np.bool_))
        for _ in range(100):
            assert env.state is not None
            env.step(drv.act(env.state, env.road))
        assert env.state is not None
        return np.stack([env.state.x, env.state.y, env.state.speed])

    a, b = roll(2, 5), roll(2, 5)
    np.testing.assert_array_equal(a, b)
    single = roll(1, 6)
    np.testing.assert_array_equal(a[:, 1:2], single)


DEVTEST = ROOT / ".." / "shared" / "data" / "routes" / "leaderboard_v1" / "routes_devtest.xml"


@pytest.mark.skipif(not DEVTEST.is_file(), reason="route data absent: ../shared/data/routes")
def test_gendrive_run_drives_a_leaderboard_route(tmp_path: Path) -> None:
    import csv
    import io

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gendrive.cli import CONFIG_DIR
    from gendrive.config import RunConfig, register_configs
    from gendrive.run import run

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="run",
            overrides=[
                "scenario=leaderboard",
                f"route_file={DEVTEST}",
                "route_id=0",
                "episodes=1",
                "num_envs=1",
                "video.episodes=0",
                "progress_bar=false",
                "scenario.traffic.count=15",
            ],
        )
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    run(obj, tmp_path, log=io.StringIO())
    with (tmp_path / "episodes.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["scenario"] == "leaderboard_Town01_0"
    assert float(row["route_length_m"]) > 500.0
    assert float(row["route_completion_pct"]) > 50.0  # it drives the route through junctions
    assert "red_light" in row
