"""Behaviour-cloning warm start: the clone copies the rule-based driver and drives like it."""

from __future__ import annotations

import numpy as np
import torch

from policy.ppo.bc import BCConfig, collect, warm_start
from policy.ppo.networks import ActorCritic
from policy.ppo.normalize import RunningMeanStd
from policy.ppo.trainer import evaluate
from policy.rule_based import RuleBasedDriver
from sim.env import DriveVectorEnv
from sim.observation import obs_dim
from sim.scenario import ActorSpec, BehaviorSpec, EgoSpec, EventSpec, RoadSpec, ScenarioSpec

# A curved road and a leader that brakes: the clone must steer through the bends and brake.
CURVE_BRAKE = ScenarioSpec(
    name="curve_brake",
    road=RoadSpec(kind="curved", num_lanes=1, length=900.0, radius=200.0, speed_limit=25.0),
    ego=EgoSpec(lane=-1, s=20.0, speed=18.0, route_length=500.0),
    actors=(
        ActorSpec(
            lane=-1,
            s=70.0,
            speed=18.0,
            behavior=BehaviorSpec(v0=18.0, lane_change=False),
            events=(EventSpec(action="set_speed", at=6.0, target_speed=6.0, decel=4.0),),
        ),
    ),
    time_limit_s=45.0,
)


def test_collect_records_the_expert_without_ghost_steps() -> None:
    env = DriveVectorEnv(4, scenario=CURVE_BRAKE)
    expert = RuleBasedDriver()
    demo = collect(env, expert, steps=400, seed=0, gamma=0.99)
    assert demo.obs.shape == (demo.actions.shape[0], obs_dim(env.obs_cfg))
    assert demo.obs.shape[0] <= 400 and demo.returns.shape == (demo.obs.shape[0],)
    assert torch.isfinite(demo.obs).all() and (demo.actions.abs() <= 1).all()
    # The same states give the same expert actions: the recording is the expert's action.
    env2 = DriveVectorEnv(4, scenario=CURVE_BRAKE)
    env2.reset(seed=0)
    expert2 = RuleBasedDriver()
    expert2.reset(np.ones(4, np.bool_))
    assert env2.state is not None
    a0 = expert2.act(env2.state, env2.road)
    np.testing.assert_allclose(demo.actions[:4].numpy(), a0, atol=1e-6)


def _expert_route_completion(env: DriveVectorEnv, seed: int) -> float:
    expert = RuleBasedDriver()
    env.reset(seed=seed)
    expert.reset(np.ones(env.num_envs, np.bool_))
    done = np.zeros(env.num_envs, np.bool_)
    rc = np.zeros(env.num_envs)
    while not done.all():
        assert env.state is not None
        _, _, _, _, info = env.step(expert.act(env.state, env.road))
        if "_episode" in info:
            m = info["_episode"] & ~done
            rc[m] = info["progress"][m] / env.state.route.length[m]
            done |= m
    return float(np.clip(rc, 0, 1).mean())


def test_warm_start_clones_the_rule_based_driver() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    env = DriveVectorEnv(16, scenario=CURVE_BRAKE)
    agent = ActorCritic(obs_dim(env.obs_cfg), [64, 64])
    rms = RunningMeanStd((obs_dim(env.obs_cfg),))
    ev_env = DriveVectorEnv(8, scenario=CURVE_BRAKE)
    before = evaluate(agent, rms, ev_env, 1_000_000)
    log: list[dict[str, float]] = []
    cfg = BCConfig(steps=6000, rounds=4, epochs=8, batch_size=512, learning_rate=3e-3)
    warm_start(agent, rms, env, RuleBasedDriver(), cfg, seed=0, gamma=0.99, log=log)
    assert len(log) == 4 and log[-1]["bc/steer_mae"] < 0.1 and log[-1]["bc/accel_mae"] < 0.2
    # DAgger rounds add the states the clone visits.
    assert log[-1]["bc/samples"] > 3 * log[0]["bc/samples"]
    after = evaluate(agent, rms, ev_env, 1_000_000)
    expert = _expert_route_completion(ev_env, 1_000_000)
    # The untrained policy leaves the road in the first bend; the clone drives the route like
    # the expert (which follows the braked leader and so does not finish in time either).
    assert before["route_completion"] < 0.5
    assert after["route_completion"] > 0.9 * expert and after["collision_rate"] == 0.0
