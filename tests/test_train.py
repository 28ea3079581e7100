"""`gendrive train`: config composition, the run directory, exact resume, signals, errors."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR
from gendrive.config import register_configs
from gendrive.train import train
from gendrive.train_config import TrainConfig

EXE = Path(sys.executable).parent / "gendrive"
PPO_PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "ppo").glob("*.yaml"))
# The lane-keeping task on the highway preset: one lane, no traffic, 300 m.
LANE_KEEP = [
    "scenario.road.num_lanes=1",
    "scenario.ego.lane=-1",
    "scenario.traffic.count=0",
    "scenario.ego.route_length=300",
    "scenario.ego.speed=15",
]
SMALL = ["ppo=small", "ppo.num_envs=8", "ppo.num_steps=32", "eval_episodes=2", "progress_bar=false"]


def _compose(overrides: list[str]) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, TrainConfig)
    return obj


@pytest.mark.parametrize("preset", PPO_PRESETS)
def test_every_ppo_preset_composes(preset: str) -> None:
    cfg = _compose([f"ppo={preset}"])
    assert cfg.ppo.num_envs >= 1 and cfg.ppo.hidden_sizes


def test_bad_ppo_value_names_the_key() -> None:
    with pytest.raises(Exception, match=r"ppo\.clip_coef"):
        _compose(["ppo.clip_coef=wide"])
    with pytest.raises(Exception, match=r"ppo\.lr"):
        _compose(["ppo.lr=0.1"])


def test_resume_through_the_app_continues_exactly(tmp_path: Path) -> None:
    steps = 4 * 8 * 32  # 4 updates
    base = [*LANE_KEEP, *SMALL, "ppo.anneal_lr=false", "eval_every=2", "checkpoint_every=1"]
    log = (tmp_path / "log.txt").open("w")
    train(_compose([*base, f"total_steps={steps}"]), tmp_path / "straight", log=log)
    train(_compose([*base, f"total_steps={steps // 2}"]), tmp_path / "split", log=log)
    train(
        _compose([*base, f"total_steps={steps}", f"resume={tmp_path / 'split'}"]),
        tmp_path / "ignored",
        log=log,
    )
    log.close()
    assert not (tmp_path / "ignored").exists()  # a resumed run writes into its own directory
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert a["update"] == b["update"] == 4
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    rows = list(csv.DictReader((tmp_path / "split" / "updates.csv").open()))
    assert [int(float(r["update"])) for r in rows] == [1, 2, 3, 4]
    assert "resumed from" in (tmp_path / "log.txt").read_text()
    # TensorBoard: the resumed run's scalars continue the first half's, one point per update.
    steps_logged = _tb_scalars(tmp_path / "split" / "tensorboard", "policy_loss")
    assert [s for s, _ in steps_logged] == [256, 512, 768, 1024]
    straight = _tb_scalars(tmp_path / "straight" / "tensorboard", "policy_loss")
    assert [v for _, v in steps_logged] == pytest.approx([v for _, v in straight], rel=1e-6)


def _tb_scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_training_on_a_suite_mixes_its_scenarios(tmp_path: Path) -> None:
    cfg = _compose([*SMALL, "suite=smoke", "total_steps=512", "eval_every=2", "eval_episodes=4"])
    summary = train(cfg, tmp_path / "r", log=(tmp_path / "log.txt").open("w"))
    ev = summary["last_eval"]
    # The evaluation covers both scenarios of the suite (2 episodes each) and logs each.
    for name in ("cut_in_short", "highway_short"):
        assert 0.0 <= ev[f"{name}/route_completion"] <= 1.0
    rows = list(csv.DictReader((tmp_path / "r" / "updates.csv").open()))
    assert rows[-1]["eval/highway_short/route_completion"] != ""
    tags = set(_tb_tags(tmp_path / "r" / "tensorboard"))
    assert {"term/fuel", "eval/cut_in_short/collision_rate", "approx_kl"} <= tags


def _tb_tags(log_dir: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return list(acc.Tags()["scalars"])


def test_dual_step_and_eval_rank() -> None:
    from gendrive.train import dual_step, eval_rank

    assert dual_step(0.1, 1.10, 1.04, 2.0, 1.0) == pytest.approx(0.22)  # too slow: up
    assert dual_step(0.1, 1.00, 1.04, 2.0, 1.0) == pytest.approx(0.02)  # fast enough: down
    assert dual_step(0.01, 0.90, 1.04, 2.0, 1.0) == 0.0  # never negative
    assert dual_step(0.9, 2.00, 1.04, 2.0, 1.0) == 1.0  # capped
    ok = {"return": 50.0, "route_completion": 0.99, "collision_rate": 0.0, "fuel_l_per_100km": 9.0}
    thirsty = {**ok, "fuel_l_per_100km": 11.0, "return": 90.0}
    crashing = {**ok, "collision_rate": 0.05, "fuel_l_per_100km": 5.0, "return": 99.0}
    # Within the budget and competent: least fuel wins whatever the return.
    assert eval_rank(ok, 1.03, 1.04) > eval_rank(thirsty, 1.03, 1.04)
    # Over the budget, or unsafe, ranks below any feasible evaluation.
    assert eval_rank(thirsty, 1.03, 1.04) > eval_rank(ok, 1.05, 1.04)
    assert eval_rank(ok, 1.03, 1.04) > eval_rank(crashing, 1.0, 1.04)
    # Without a budget: the return.
    assert eval_rank(thirsty, None, 0.0) > eval_rank(ok, None, 0.0)


def test_time_budget_moves_the_speed_weight_and_resumes_exactly(tmp_path: Path) -> None:
    """The multiplier follows the evaluations' pace by dual ascent, reaches the reward, and a
    resumed run continues with it exactly."""
    from gendrive.train import dual_step

    steps = 4 * 8 * 32  # 4 updates
    base = [*SMALL, "suite=smoke", "reward=eco", "eval_every=1", "eval_episodes=4",
            "checkpoint_every=1", "ppo.anneal_lr=false", "time_budget.ratio=0.5",
            "time_budget.lr=0.5", "time_budget.init_weight=0.05"]  # fmt: skip
    log = (tmp_path / "log.txt").open("w")
    s1 = train(_compose([*base, f"total_steps={steps}"]), tmp_path / "straight", log=log)
    train(_compose([*base, f"total_steps={steps // 2}"]), tmp_path / "split", log=log)
    train(_compose([*base, f"total_steps={steps}", f"resume={tmp_path / 'split'}"]),
          tmp_path / "x", log=log)  # fmt: skip
    log.close()
    rows = list(csv.DictReader((tmp_path / "straight" / "updates.csv").open()))
    w = 0.05
    for r in rows:  # each logged weight is the dual step from the previous one
        w = dual_step(w, float(r["eval/pace_ratio"]), 0.5, 0.5, 1.0)
        assert float(r["time_budget/speed_weight"]) == pytest.approx(w)
    assert w > 0.05  # nothing drives twice as fast as the rule-based driver: the weight rose
    ref = s1["time_budget"]["reference"]
    assert ref["route_completion"] == 1.0 and ref["travel_time_s"] > 5.0
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert a["time_budget_weight"] == pytest.approx(w) == b["time_budget_weight"]
    for k, v in a["model"].items():  # the weight reached the rewards: resume is exact
        assert torch.equal(v, b["model"][k]), k
    # The rollouts' rewards saw the multiplier: the speed_tracking term is logged and weighted.
    split_rows = list(csv.DictReader((tmp_path / "split" / "updates.csv").open()))
    assert [float(r["time_budget/speed_weight"]) for r in split_rows] == pytest.approx(
        [float(r["time_budget/speed_weight"]) for r in rows]
    )


def test_console_script_writes_checkpoints_and_update_log(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    cmd = [str(EXE), "train", "total_steps=512", *SMALL, *LANE_KEEP, "eval_every=1",
           f"hydra.run.dir={run_dir}"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "2/2 updates" in res.stdout
    assert (run_dir / "checkpoints" / "last.pt").stat().st_size > 0
    assert (run_dir / "checkpoints" / "best.pt").exists()
    rows = list(csv.DictReader((run_dir / "updates.csv").open()))
    assert len(rows) == 2
    logged = ("policy_loss", "value_loss", "approx_kl", "entropy", "explained_variance",
              "term/progress", "term/fuel", "term/collision", "eval/route_completion")  # fmt: skip
    for col in logged:
        assert rows[-1][col] != "", col
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["global_step"] == 512 and not summary["interrupted"]


def test_sigterm_writes_a_final_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    cmd = [str(EXE), "train", "total_steps=100000000", *SMALL, *LANE_KEEP, "eval_every=0",
           "checkpoint_every=1000", f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "updates.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and log.read_text().count("\n") >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in out
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["update"] >= 1
    assert json.loads((run_dir / "train_summary.json").read_text())["interrupted"]


def test_corrupt_checkpoint_and_bad_settings_exit_2_naming_the_problem(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"\x00" * 100)
    res = subprocess.run(
        [str(EXE), "train", f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'n'}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert "last.pt: not a readable checkpoint" in res.stderr
    res = subprocess.run(
        [str(EXE), "train", "total_steps=10", *SMALL, f"hydra.run.dir={tmp_path / 'm'}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 2 and "total_steps: expected >= " in res.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["time_budget.ratio=1.05", "eval_every=0"], "time_budget.ratio: expected 0 (off) or > 0"),
        (["time_budget.ratio=-1"], "time_budget.ratio: expected"),
        (["time_budget.ratio=1.05", "time_budget.init_weight=2"], "0 <= init_weight <= max"),
    ],
)
def test_bad_time_budget_names_the_field(overrides: list[str], message: str) -> None:
    cfg = _compose([*SMALL, "total_steps=512", *overrides])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(cfg, Path("/nonexistent/never-written"), log=sys.stderr)


def test_a_run_trained_with_an_executing_guide_deploys_with_it(tmp_path: Path) -> None:
    """``ppo.guide_executes``: the checkpoint drives as it was trained, the rule-based driver
    (the cloned expert's settings) steering and the network choosing the acceleration."""
    import numpy as np

    from policy.load import expert_driver, load_driver
    from sim.env import DriveVectorEnv
    from sim.scenario import load_spec

    over = [*SMALL, "total_steps=512", "eval_every=2", "eval_episodes=4", "ppo.guide_coef=0.5",
            "ppo.guide_executes=true", "bc.expert_a_max=1.2"]  # fmt: skip
    train(_compose(over), tmp_path / "g", log=(tmp_path / "log.txt").open("w"))
    drv = load_driver(str(tmp_path / "g"))
    assert drv.guide is not None and drv.guide.params.a_max == 1.2  # type: ignore[attr-defined]
    env = DriveVectorEnv(3, scenario=load_spec(Path(CONFIG_DIR) / "scenario" / "highway.yaml"))
    env.reset(seed=7)
    assert env.state is not None
    drv.reset(np.ones(3, np.bool_))
    got = drv.act(env.state, env.road)
    ref = expert_driver({"expert_a_max": 1.2}, guide=True).act(env.state, env.road)
    assert np.array_equal(got[:, 0], ref[:, 0])  # steering: the guide's
    assert not np.array_equal(got[:, 1], ref[:, 1])  # acceleration: the network's
    # A run without it deploys the network alone.
    train(_compose([*SMALL, "total_steps=512", "eval_every=0"]), tmp_path / "n",
          log=(tmp_path / "log.txt").open("a"))  # fmt: skip
    assert load_driver(str(tmp_path / "n")).guide is None  # type: ignore[attr-defined]


def test_a_shielded_run_never_accelerates_past_its_guide(tmp_path: Path) -> None:
    """``ppo.guide_shield``: trained, evaluated and deployed with the acceleration capped at the
    rule-based driver's."""
    import numpy as np

    from policy.load import expert_driver, load_driver
    from policy.ppo.trainer import shield_accel
    from sim.env import DriveVectorEnv
    from sim.scenario import load_spec

    a = torch.tensor([[0.3, 0.9], [-0.2, -0.5]])
    g = torch.tensor([[0.0, 0.4], [0.0, 0.1]])
    assert torch.equal(shield_accel(a, g), torch.tensor([[0.3, 0.4], [-0.2, -0.5]]))

    over = [*SMALL, "total_steps=512", "eval_every=2", "eval_episodes=4", "ppo.guide_coef=0.5",
            "ppo.guide_shield=true"]  # fmt: skip
    train(_compose(over), tmp_path / "s", log=(tmp_path / "log.txt").open("w"))
    drv = load_driver(str(tmp_path / "s"))
    assert drv.shield and drv.guide_dims == ()  # type: ignore[attr-defined]
    from policy.export import load_policy

    assert load_policy(str(tmp_path / "s")).guided  # the exporter says the graph lacks it
    env = DriveVectorEnv(6, scenario=load_spec(Path(CONFIG_DIR) / "scenario" / "cut_in.yaml"))
    env.reset(seed=3)
    drv.reset(np.ones(6, np.bool_))
    ref = expert_driver({}, guide=True)
    ref.reset(np.ones(6, np.bool_))
    capped = 0
    for _ in range(60):
        assert env.state is not None
        got = drv.act(env.state, env.road)
        want = ref.act(env.state, env.road)
        assert np.all(got[:, 1] <= want[:, 1])  # never past the guide's acceleration
        capped += int(np.sum(got[:, 1] == want[:, 1]))
        env.advance(got)
    assert capped > 0  # the cap was reached, not vacuous
