"""The trainer end to end: ghost steps masked, lane keeping learnt, checkpoints resume exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from policy.ppo.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from policy.ppo.config import PPOConfig
from policy.ppo.trainer import PPOTrainer, evaluate, route_completion
from sim.env import DriveVectorEnv
from sim.scenario import EgoSpec, RoadSpec, ScenarioSpec

# An empty one-lane road: the policy only has to keep its lane and keep moving for 300 m.
LANE_KEEP = ScenarioSpec(
    name="lane_keep",
    road=RoadSpec(kind="straight", num_lanes=1, length=500.0),
    ego=EgoSpec(lane=-1, s=30.0, speed=15.0, route_length=300.0),
    time_limit_s=40.0,
)
EVAL_SEED = 1_000_000  # held out: training resets with seeds 0..B-1


def _trainer(seed: int = 0, **kw: object) -> PPOTrainer:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = PPOConfig(**{"num_envs": 32, "num_steps": 64, **kw})  # type: ignore[arg-type]
    tr = PPOTrainer(DriveVectorEnv(cfg.num_envs, scenario=LANE_KEEP), cfg, seed=seed)
    tr.start()
    return tr


def _random_policy_route_completion(env: DriveVectorEnv, seed: int) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    done = np.zeros(env.num_envs, np.bool_)
    rc = np.zeros(env.num_envs)
    while not done.all():
        a = rng.uniform(-1, 1, (env.num_envs, 2)).astype(np.float32)
        _, _, _, _, info = env.step(a)
        if "_episode" in info:
            m = info["_episode"] & ~done
            rc[m] = route_completion(info, env, m)
            done |= m
    return float(rc.mean())


def test_ghost_steps_after_episode_ends_are_masked() -> None:
    tr = _trainer()
    tr.collect()
    s = tr.storage
    ended = (s.terminated | s.truncated)[:-1]
    assert ended.any()  # the random initial policy leaves the road quickly
    assert torch.equal(s.valid[1:], ~ended)
    # The env reports nothing on ghost steps: no reward, no end.
    assert not (s.terminated | s.truncated)[1:][ended].any()


def _learns(updates: int) -> tuple[float, float, dict[str, float]]:
    tr = _trainer()
    for _ in range(updates):
        tr.train_update(updates)
    eval_env = DriveVectorEnv(16, scenario=LANE_KEEP)
    trained = evaluate(tr.agent, tr.obs_rms, eval_env, EVAL_SEED)
    rand = _random_policy_route_completion(eval_env, EVAL_SEED)
    return trained["route_completion"], rand, trained


def test_ppo_learns_lane_keeping_on_an_empty_road() -> None:
    trained, rand, ev = _learns(updates=25)  # 51k env steps, a few seconds on one core
    assert rand < 0.2
    assert trained > rand + 0.4, ev


@pytest.mark.slow
def test_ppo_completes_the_route_reliably_with_more_training() -> None:
    trained, _, ev = _learns(updates=80)
    assert ev["success_rate"] >= 0.9 and ev["collision_rate"] == 0.0, ev
    assert trained > 0.95


def _params(tr: PPOTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in tr.agent.parameters()]


def test_resume_from_checkpoint_is_exact(tmp_path: Path) -> None:
    n = 4
    straight = _trainer()
    for _ in range(n):
        straight.train_update(n)

    first = _trainer()
    for _ in range(n // 2):
        first.train_update(n)
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(path, first, {"note": "test"})
    assert not path.with_name("last.pt.tmp").exists()

    torch.manual_seed(123)  # a different RNG and a different env seed: all must be restored
    cfg = PPOConfig(num_envs=32, num_steps=64)
    resumed = PPOTrainer(DriveVectorEnv(32, scenario=LANE_KEEP), cfg, seed=99)
    resumed.start()
    restore(resumed, load_checkpoint(path), path)
    assert resumed.update == n // 2 and resumed.global_step == first.global_step
    for _ in range(n - n // 2):
        resumed.train_update(n)

    for a, b in zip(_params(straight), _params(resumed), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(straight.obs_rms.mean, resumed.obs_rms.mean)
    assert torch.equal(straight.reward_scaler.ret, resumed.reward_scaler.ret)
    assert straight.env.state is not None and resumed.env.state is not None
    assert np.array_equal(straight.env.state.x, resumed.env.state.x)


def test_corrupt_or_incompatible_checkpoint_names_the_problem(tmp_path: Path) -> None:
    tr = _trainer(num_envs=4, num_steps=8)
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pt: not a readable checkpoint"):
        load_checkpoint(bad)

    good = tmp_path / "good.pt"
    save_checkpoint(good, tr, {})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:2000])  # a write interrupted half way
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable checkpoint"):
        load_checkpoint(cut)

    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")

    wide = _trainer(num_envs=4, num_steps=8, hidden_sizes=[32, 32])
    with pytest.raises(
        CheckpointError,
        match=r"good\.pt: model\.actor\.0\.weight: expected shape \(32, 87\), found \(64, 87\)",
    ):
        restore(wide, load_checkpoint(good), good)

    other = PPOTrainer(
        DriveVectorEnv(2, scenario=LANE_KEEP), PPOConfig(num_envs=2, num_steps=8), seed=0
    )
    other.start()
    with pytest.raises(
        CheckpointError, match=r"good\.pt: reward_scaler\.ret: expected shape \(2,\), found \(4,\)"
    ):
        restore(other, load_checkpoint(good), good)


def test_evaluation_fuel_time_and_pace_match_the_episode_tracker() -> None:
    """The trainer's evaluation reports fuel and travel time as ``gendrive evaluate`` does."""
    from dataclasses import replace

    from policy.ppo.trainer import evaluate_driver
    from policy.rule_based import RuleBasedDriver
    from sim.episode import EpisodeTracker
    from sim.scenario import load_spec

    hw = load_spec(Path(__file__).parents[3] / "configs" / "scenario" / "highway.yaml")
    # Short: 7 of 8 routes complete (250 m), one times out: both travel-time cases count.
    spec = replace(hw, time_limit_s=8.5, ego=replace(hw.ego, route_length=250.0))
    env = DriveVectorEnv(8, scenario=spec)
    got = evaluate_driver(RuleBasedDriver(), env, EVAL_SEED)

    env.reset(seed=EVAL_SEED)
    driver = RuleBasedDriver()
    driver.reset(np.ones(8, np.bool_))
    tracker = EpisodeTracker(8)
    active = np.ones(8, np.bool_)
    rows = []
    while active.any():
        prev = env.state
        assert prev is not None
        st, out, rew, _, _ = env.advance(driver.act(prev, env.road))
        tracker.update(prev, st, out, rew, active)
        for b in np.nonzero(active & (out.terminated | out.truncated))[0]:
            rows.append(tracker.finish(int(b), st, out))
            active[b] = False
    fuel = np.mean([r["fuel_l_per_100km"] for r in rows])
    time_s = np.mean([r["travel_time_s"] for r in rows])
    pace = sum(r["time_s"] for r in rows) / (sum(r["progress_m"] for r in rows) / 1000.0)
    assert got["fuel_l_per_100km"] == pytest.approx(fuel, rel=1e-3)
    assert got["travel_time_s"] == pytest.approx(time_s, abs=env.params.dt)  # up to a step
    assert got["pace_s_per_km"] == pytest.approx(pace, rel=1e-3)
    assert 0 < sum(r["completed"] for r in rows) < len(rows)  # both cases are covered
    assert got["success_rate"] == pytest.approx(np.mean([r["completed"] for r in rows]))


def _guided(seed: int = 0, executes: bool = False) -> PPOTrainer:
    """A trainer whose steering imitates the rule-based driver on a busy 3-lane highway (lane
    changes happen, so the guide's lane-change memory matters)."""
    from policy.rule_based import RuleBasedDriver
    from sim.scenario import load_spec

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    spec = load_spec(Path(__file__).parents[3] / "configs" / "scenario" / "highway.yaml")
    cfg = PPOConfig(num_envs=16, num_steps=32, hidden_sizes=[32, 32], guide_coef=1.0,
                    learning_rate=3e-3, guide_executes=executes)  # fmt: skip
    tr = PPOTrainer(DriveVectorEnv(16, scenario=spec), cfg, seed=seed, guide=RuleBasedDriver())
    tr.start()
    return tr


def test_guide_loss_pulls_steering_to_the_guide_and_resumes_exactly(tmp_path: Path) -> None:
    n = 6
    straight = _guided()
    g = [straight.train_update(n)["guide_loss"] for _ in range(n)]
    assert g[-1] < g[0] - 0.3  # the steering's NLL of the guide's actions falls

    first = _guided()
    for _ in range(n // 2):
        first.train_update(n)
    path = tmp_path / "last.pt"
    save_checkpoint(path, first, {})
    resumed = _guided(seed=5)
    restore(resumed, load_checkpoint(path), path)
    assert np.array_equal(resumed.guide.target_lane, first.guide.target_lane)
    for _ in range(n - n // 2):
        resumed.train_update(n)
    for a, b in zip(_params(straight), _params(resumed), strict=True):
        assert torch.equal(a, b)

    with pytest.raises(ValueError, match="guide_coef > 0 needs a guide"):
        PPOTrainer(straight.env, PPOConfig(num_envs=16, guide_coef=1.0))
    with pytest.raises(ValueError, match=r"guide_dims: expected a subset of \[0, 1\]"):
        PPOTrainer(straight.env, PPOConfig(num_envs=16, guide_dims=[2]))
    with pytest.raises(ValueError, match=r"guide_executes needs ppo\.guide_coef > 0"):
        PPOTrainer(straight.env, PPOConfig(num_envs=16, guide_executes=True))
    with pytest.raises(ValueError, match=r"guide_shield needs ppo\.guide_coef > 0"):
        PPOTrainer(straight.env, PPOConfig(num_envs=16, guide_shield=True))


def test_an_executing_guide_steers_and_ppo_owns_only_the_acceleration() -> None:
    tr = _guided(executes=True)
    tr.collect()
    s = tr.storage
    # The rollouts steered as the rule-based driver did; the acceleration is the policy's own.
    assert torch.equal(s.actions[..., 0], s.guide_actions[..., 0])
    assert not torch.equal(s.actions[..., 1], s.guide_actions[..., 1])
    # The stored log-probabilities are those of the acceleration alone.
    obs, act = s.obs.flatten(0, 1), s.actions.flatten(0, 1)
    with torch.no_grad():
        accel_only = tr.agent.log_prob_dims(obs, act, torch.tensor([1]))
        both = tr.agent.evaluate(obs, act)[0]
    assert torch.allclose(s.logprobs.flatten(), accel_only, atol=1e-5)
    assert not torch.allclose(s.logprobs.flatten(), both, atol=1e-3)
    g = [tr.train_update(4)["guide_loss"] for _ in range(4)]
    assert g[-1] < g[0]  # the steering head still learns to drive like the guide
