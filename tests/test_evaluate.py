"""`gendrive evaluate`: suites, policy loading, the output directory, replays and errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR
from gendrive.config import register_configs
from gendrive.evaluate import (
    _csv_curves,
    _tensorboard_curves,
    evaluate,
    load_suite,
    make_env,
    overall_mean,
    run_episodes,
)
from gendrive.evaluate_config import EvaluateConfig
from policy.load import PolicyError, PPODriver, load_driver
from sim.scenario import SpecError

EXE = Path(sys.executable).parent / "gendrive"
SUITES = sorted(p.stem for p in (Path(CONFIG_DIR) / "eval").glob("*.yaml"))


def _compose(overrides: list[str]) -> EvaluateConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["progress_bar=false", *overrides])
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, EvaluateConfig)
    return obj


@pytest.mark.parametrize("name", SUITES)
def test_every_suite_loads(name: str) -> None:
    suite = load_suite(name)
    assert suite.scenarios and suite.episodes_per_scenario >= 1
    assert len({s.name for s in suite.scenarios}) == len(suite.scenarios)


def test_highway_suite_has_the_four_highway_scenarios() -> None:
    names = [s.name for s in load_suite("highway").scenarios]
    assert names == ["highway", "curved", "cut_in", "hard_brake"]


def test_bad_suite_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"suite 'nope': not a name in configs/eval/ \(.*smoke"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nscenarios: [highway, nowhere]\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: scenarios\[1\]: scenario 'nowhere'"):
        load_suite(str(bad))
    bad.write_text("name: bad\nscenarios: [{base: highway, ego: {speed: -1}}]\n")
    with pytest.raises(SpecError, match=r"scenarios\[0\]: ego\.speed"):
        load_suite(str(bad))


def test_rule_based_beats_random_on_smoke(tmp_path: Path) -> None:
    cfg = _compose(["policies=[rule_based,random]", "suite=smoke", "videos.worst=1"])
    out = tmp_path / "ev"
    with (tmp_path / "log.txt").open("w") as log:
        summary = evaluate(cfg, out, log=log)
    for name in ("episodes.csv", "metrics.json", "comparison.md", "driving_score.png",
                 "fuel_vs_time.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert not (out / "learning_curve.png").exists()  # no train run among the policies
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    suite = load_suite("smoke")
    assert len(rows) == 2 * len(suite.scenarios) * suite.episodes_per_scenario
    assert {"policy", "scenario", "seed", "driving_score_lb20", "fuel_l_per_100km"} <= set(rows[0])
    # Both policies drive the same seeds on every scenario.
    for pol in ("rule_based", "random"):
        got = sorted((r["scenario"], r["seed"]) for r in rows if r["policy"] == pol)
        assert got == sorted((s.name, str(e)) for s in suite.scenarios for e in (0, 1))
    md = (out / "comparison.md").read_text()
    assert "| `rule_based` |" in md and "| `random` |" in md and "driving score LB2.0" in md
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"rule_based", "random"}
    ds = metrics["results"]["rule_based"]["overall"]["driving_score_lb20"]
    assert ds["n"] == 4 and ds["lo"] <= ds["mean"] <= ds["hi"]
    assert set(metrics["results"]["random"]["per_scenario"]) == {s.name for s in suite.scenarios}
    rb = overall_mean(summary, "rule_based", "driving_score_lb20")
    rnd = overall_mean(summary, "random", "driving_score_lb20")
    assert rb > rnd
    # The worst episode of each policy is replayed alone from its seed: the same episode.
    assert {v["policy"] for v in metrics["videos"]} == {"rule_based", "random"}
    for v in metrics["videos"]:
        assert (out / v["path"]).stat().st_size > 1000
        assert v["replay_end_reason"] == v["end_reason"]
        assert v["replay_progress_m"] == v["progress_m"]
        worst = min(float(r["driving_score_lb20"]) for r in rows if r["policy"] == v["policy"])
        assert v["driving_score_lb20"] == pytest.approx(worst)


def test_episodes_do_not_depend_on_the_batch(tmp_path: Path) -> None:
    """Row i is seed i's episode whether it runs among 3 envs or alone (what replays rely on)."""
    cfg = _compose([])
    spec = load_suite("smoke").scenarios[1]
    for name in ("rule_based", "random"):
        batch = run_episodes(make_env(cfg, spec, 3), load_driver(name, 0), [5, 6, 7, 8])
        alone = run_episodes(make_env(cfg, spec, 1), load_driver(name, 0), [7])
        keys = ("end_reason", "progress_m", "fuel_l", "driving_score_lb20")
        assert {k: batch[2][k] for k in keys} == {k: alone[0][k] for k in keys}, name


def test_checkpoint_loads_as_a_driver_and_evaluates(train_run: Path, tmp_path: Path) -> None:
    driver = load_driver(str(train_run))
    assert isinstance(driver, PPODriver)
    assert driver.path.name == "best.pt"
    assert isinstance(load_driver(str(train_run / "checkpoints" / "last.pt")), PPODriver)
    cfg = _compose([])
    env = make_env(cfg, load_suite("smoke").scenarios[0], 2)
    env.reset(seed=0)
    assert env.state is not None
    a = driver.act(env.state, env.road)
    assert a.shape == (2, 2) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    # Deterministic: the Beta mean, so the same state gives the same action.
    assert np.array_equal(a, driver.act(env.state, env.road))
    cfg = _compose([f"policies=[rule_based,{train_run}]", "videos.worst=1"])
    out = tmp_path / "ev"
    with (tmp_path / "log.txt").open("w") as log:
        summary = evaluate(cfg, out, log=log)
    label = f"ppo:{train_run.name}"
    assert set(summary["results"]) == {"rule_based", label}
    assert f"| `{label}` |" in (out / "comparison.md").read_text()
    assert (out / "learning_curve.png").stat().st_size > 5000
    # The curve is read from the run's TensorBoard logs; they hold what updates.csv holds.
    tb = _tensorboard_curves(train_run / "tensorboard")
    csv_curves = _csv_curves(train_run / "updates.csv")
    assert tb["eval/route_completion"] and tb.keys() == csv_curves.keys()
    for tag, pts in tb.items():
        assert [p[0] for p in pts] == [p[0] for p in csv_curves[tag]], tag
        assert [p[1] for p in pts] == pytest.approx([p[1] for p in csv_curves[tag]], rel=1e-6)
    (video,) = [v for v in summary["videos"] if v["policy"] == label]
    assert (out / video["path"]).stat().st_size > 1000
    assert video["replay_end_reason"] == video["end_reason"]


def _gendrive(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(EXE), "evaluate", *args, "progress_bar=false", f"hydra.run.dir={tmp_path / 'r'}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_bad_policies_exit_2_naming_the_problem(train_run: Path, tmp_path: Path) -> None:
    res = _gendrive(["policy=rule_basd"], tmp_path)
    assert res.returncode == 2
    assert "policy 'rule_basd': expected one of rule_based, random" in res.stderr
    missing = tmp_path / "nowhere" / "best.pt"
    res = _gendrive([f"policy={missing}"], tmp_path)
    assert res.returncode == 2 and f"{missing}: checkpoint not found" in res.stderr
    empty = tmp_path / "empty_run"
    empty.mkdir()
    res = _gendrive([f"policy={empty}"], tmp_path)
    assert res.returncode == 2 and "no checkpoints/best.pt or checkpoints/last.pt" in res.stderr
    # A checkpoint trained on a larger observation (one extra input) does not fit.
    ckpt = torch.load(train_run / "checkpoints" / "last.pt", weights_only=True)
    w = ckpt["model"]["actor.0.weight"]
    ckpt["model"]["actor.0.weight"] = torch.cat([w, w[:, :1]], dim=1)
    bad = tmp_path / "wide.pt"
    torch.save(ckpt, bad)
    res = _gendrive([f"policies=[rule_based,{bad}]"], tmp_path)
    assert res.returncode == 2
    assert f"{bad}: model.actor.0.weight: expects observations of size {w.shape[1] + 1}" in (
        res.stderr
    )
    ckpt["obs_dim"] = w.shape[1] + 1
    torch.save(ckpt, bad)
    with pytest.raises(PolicyError, match=rf"wide\.pt: obs_dim: .* trained on {w.shape[1] + 1}"):
        load_driver(str(bad))
    del ckpt["obs_rms"]
    torch.save(ckpt, bad)
    with pytest.raises(PolicyError, match=r"wide\.pt: missing keys \['obs_rms'\]"):
        load_driver(str(bad))
    assert not (tmp_path / "r" / "episodes.csv").exists()  # nothing ran


def test_console_script_evaluates_the_smoke_suite(tmp_path: Path) -> None:
    res = _gendrive(["policy=rule_based", "videos.worst=0"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "| `rule_based` |" in res.stdout
    assert (tmp_path / "r" / "comparison.md").exists()
    assert not (tmp_path / "r" / "videos").exists()
    res = _gendrive([], tmp_path)
    assert res.returncode == 2 and "policy: give policy=" in res.stderr
