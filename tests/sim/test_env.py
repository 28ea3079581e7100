"""Gymnasium conformance: registration, check_env, native vector env, NEXT_STEP autoreset."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import sim
from sim.env import DriveEnv, DriveVectorEnv
from sim.observation import ObsConfig, obs_dim, obs_slices
from sim.scenario import ActorSpec, EgoSpec, RoadSpec, ScenarioSpec, SpecError, TrafficSpec

SPEC = ScenarioSpec(
    ego=EgoSpec(route_length=150.0), traffic=TrafficSpec(count=12), time_limit_s=8.0
)


def test_make_and_check_env() -> None:
    env = gym.make(sim.ENV_ID, render_mode="rgb_array", scenario=SPEC)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (obs_dim(ObsConfig()),) and obs.dtype == np.float32
    frame = env.render()
    assert frame is not None and frame.shape == (480, 640, 3)


def test_make_vec_gives_the_native_vector_env() -> None:
    venv = gym.make_vec(sim.ENV_ID, num_envs=3, scenario=SPEC)
    assert isinstance(venv.unwrapped, DriveVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, obs_dim(ObsConfig()))


def test_vector_env_matches_single_envs_step_for_step() -> None:
    B = 4
    venv = DriveVectorEnv(num_envs=B, scenario=SPEC)
    singles = [DriveEnv(scenario=SPEC) for _ in range(B)]
    vo, _ = venv.reset(seed=10)
    so = [e.reset(seed=10 + b)[0] for b, e in enumerate(singles)]
    np.testing.assert_array_equal(vo, np.stack(so))
    rng = np.random.default_rng(0)
    pending = np.zeros(B, bool)  # single envs are reset by hand where the vector autoresets
    ended_any = False
    lane_changes = 0
    for _ in range(150):
        act = rng.uniform(-0.3, 1.0, (B, 2)).astype(np.float32)
        vo, vr, vt, vtr, _ = venv.step(act)
        for b, e in enumerate(singles):
            if pending[b]:
                o, r, t, tr = e.reset()[0], 0.0, False, False
                pending[b] = False
            else:
                o, r, t, tr, _ = e.step(act[b])
            np.testing.assert_array_equal(vo[b], o)
            assert vr[b] == pytest.approx(r, abs=1e-6)
            assert (vt[b], vtr[b]) == (t, tr)
            if t or tr:
                pending[b] = True
                ended_any = True
        assert venv.state is not None
        lane_changes += int((venv.state.lc_target >= 0).sum())
    assert ended_any, "no episode ended: autoreset untested"
    assert lane_changes > 0, "no traffic lane change: MOBIL untested"


def test_next_step_autoreset_and_episode_info() -> None:
    spec = ScenarioSpec(ego=EgoSpec(route_length=100.0), time_limit_s=1.0)
    venv = DriveVectorEnv(num_envs=2, scenario=spec)
    venv.reset(seed=0)
    act = np.zeros((2, 2), np.float32)
    for i in range(9):
        _, _, term, trunc, info = venv.step(act)
        assert not term.any() and not trunc.any(), i
    _, _, term, trunc, info = venv.step(act)  # t = 1.0 s: time limit after 10 steps of 0.1 s
    assert trunc.all() and not term.any()
    assert info["_episode"].all() and (info["episode"]["l"] == 10).all()
    _obs, rew, term, trunc, info = venv.step(act)  # next step: autoreset
    assert (rew == 0).all() and not trunc.any()
    assert all((v == 0).all() for v in info["reward_terms"].values())
    assert venv.state is not None and (venv.state.time == 0).all()


def test_collision_terminates_with_penalty_and_events_in_info() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1),
        ego=EgoSpec(lane=-1, s=20.0, speed=20.0),
        actors=(ActorSpec(lane=-1, s=40.0, speed=0.0),),
    )
    env = DriveEnv(scenario=spec)
    env.reset(seed=0)
    for _ in range(30):
        _, r, term, _trunc, info = env.step(np.array([0.0, 1.0], np.float32))
        if term:
            break
    assert term and info["collision"] and info["collided_with"][1]
    assert r < -5.0 and info["reward_terms"]["collision"] == 1.0


def test_nan_action_is_braked_and_reported() -> None:
    env = DriveEnv(scenario=SPEC)
    env.reset(seed=0)
    v0 = env.state.speed[0, 0]
    _, _, _, _, info = env.step(np.array([np.nan, 1.0], np.float32))
    assert info["action_replaced"] and info["action_executed"].tolist() == [0.0, -1.0]
    assert env.state.speed[0, 0] < v0


def test_off_road_terminates() -> None:
    env = DriveEnv(scenario=ScenarioSpec(road=RoadSpec(num_lanes=1), ego=EgoSpec(lane=-1)))
    env.reset(seed=0)
    for _ in range(60):
        _, _, term, _, info = env.step(np.array([1.0, 0.5], np.float32))
        if term:
            break
    assert term and info["off_road"]


def test_observation_fields() -> None:
    env = DriveEnv(
        scenario=ScenarioSpec(
            road=RoadSpec(kind="ring", radius=100.0),
            ego=EgoSpec(lane=-1, s=0.0, speed=15.0),
            actors=(ActorSpec(lane=-1, s=20.0, speed=10.0),),
        )
    )
    obs, _ = env.reset(seed=0)
    sl = obs_slices(ObsConfig())
    assert obs[sl["speed"]][0] == pytest.approx(0.5)
    assert obs[sl["curvature_ahead"]] == pytest.approx(50.0 / 101.75, rel=1e-3)
    assert obs[sl["edge_left"]][0] == pytest.approx(0.175, abs=1e-4)  # 1.75 m to the median
    first = obs[sl["actors"]][:9]
    assert first[8] == 1.0  # valid
    # the actor is 20 m of reference line (20.35 m of lane, 0.2 rad of arc) ahead on the circle
    r, th = 101.75, 0.2
    assert first[0] == pytest.approx(r * np.sin(th) / 50.0, rel=1e-3)
    assert first[1] == pytest.approx(r * (1 - np.cos(th)) / 10.0, rel=1e-2)  # left: ring is CCW


def test_bad_construction_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="lane -3 not in map"):
        # The second spec's ego lane does not exist on its own (2-lane) road.
        two_lanes = ScenarioSpec(road=RoadSpec(num_lanes=2), ego=EgoSpec(lane=-3))
        DriveVectorEnv(scenario=[ScenarioSpec(), two_lanes])
    with pytest.raises(SpecError, match="num_actors=2"):
        DriveVectorEnv(scenario=ScenarioSpec(traffic=TrafficSpec(count=5)), num_actors=2)
    with pytest.raises(ValueError, match="actions: expected shape"):
        env = DriveVectorEnv(num_envs=2)
        env.reset(seed=0)
        env.step(np.zeros((3, 2)))


def test_env_state_round_trip_continues_exactly() -> None:
    a = DriveVectorEnv(num_envs=3, scenario=SPEC)
    a.reset(seed=5)
    act = np.tile(np.array([0.02, 0.6], np.float32), (3, 1))
    for _ in range(10):
        a.step(act)
    snap = a.get_env_state()
    ref = [a.step(act)[0] for _ in range(90)]  # crosses at least one autoreset (8 s limit)
    b = DriveVectorEnv(num_envs=3, scenario=SPEC)
    b.reset(seed=99)  # a different past: the restored state must override all of it
    b.set_env_state(snap)
    for r in ref:
        np.testing.assert_array_equal(b.step(act)[0], r)
    with pytest.raises(ValueError, match="expected 3 generators"):
        b.set_env_state({**snap, "rngs": snap["rngs"][:2]})
