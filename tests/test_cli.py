"""`gendrive run` end to end, config composition and config errors that name the key."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR, main
from gendrive.config import RunConfig, register_configs
from gendrive.run import run, scenario_from_config

GROUPS = {
    "scenario": sorted(p.stem for p in (Path(CONFIG_DIR) / "scenario").glob("*.yaml")),
    "driver": sorted(p.stem for p in (Path(CONFIG_DIR) / "driver").glob("*.yaml")),
    "sim": sorted(p.stem for p in (Path(CONFIG_DIR) / "sim").glob("*.yaml")),
    "reward": sorted(p.stem for p in (Path(CONFIG_DIR) / "reward").glob("*.yaml")),
}


def _compose(overrides: list[str]) -> RunConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides)
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    return obj


@pytest.mark.parametrize("override", [f"{g}={o}" for g, opts in GROUPS.items() for o in opts])
def test_every_config_composes_and_instantiates(override: str) -> None:
    cfg = _compose([override])
    spec = scenario_from_config(cfg)  # the scenario node is a valid ScenarioSpec
    assert spec.name


def test_bad_config_value_names_the_key() -> None:
    with pytest.raises(Exception, match=r"sim\.dt"):
        _compose(["sim.dt=fast"])
    with pytest.raises(Exception, match=r"episodez"):
        _compose(["episodez=3"])


def test_bad_scenario_field_names_the_field() -> None:
    cfg = _compose(["scenario.ego.speed=-5"])
    with pytest.raises(Exception, match=r"config 'scenario': ego\.speed: expected >= 0"):
        scenario_from_config(cfg)


def test_run_writes_the_run_directory(tmp_path: Path) -> None:
    cfg = _compose(
        [
            "scenario=cut_in",
            "episodes=3",
            "num_envs=2",
            "video.episodes=1",
            "progress_bar=false",
            "scenario.time_limit_s=20",
        ]
    )
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        summary = run(cfg, tmp_path / "run", log=f)
    out = tmp_path / "run"
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    assert len(rows) == 3 and sorted(int(r["episode"]) for r in rows) == [0, 1, 2]
    assert {r["seed"] for r in rows} == {"0", "1", "2"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["episodes"] == 3 == summary["overall"]["episodes"]
    rc = metrics["overall"]["route_completion_pct"]
    assert rc["n"] == 3 and rc["lo"] <= rc["mean"] <= rc["hi"]
    assert set(metrics["per_scenario"]) == {"cut_in"}
    for col in (
        "driving_score_lb20",
        "driving_score_lb21",
        "fuel_l_per_100km",
        "min_ttc_s",
        "near_misses",
        "hard_brakes",
        "collisions_vehicle",
        "end_reason",
    ):
        assert col in rows[0], col
    assert (out / "fuel_vs_time.png").stat().st_size > 5000
    video = out / "videos" / "episode_0000.mp4"
    assert video.stat().st_size > 1000
    assert "route completion" in log.read_text()
    # The rule-based driver handles the cut-in without crashing.
    assert all(r["collision"] == "0" for r in rows)


def test_random_driver_crashes_or_leaves_road_and_logs_events(tmp_path: Path) -> None:
    cfg = _compose(
        ["driver=random", "episodes=2", "num_envs=2", "video.episodes=0", "progress_bar=false"]
    )
    with (tmp_path / "log.txt").open("w") as f:
        run(cfg, tmp_path / "run", log=f)
    rows = list(csv.DictReader((tmp_path / "run" / "episodes.csv").open()))
    events = [json.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    ended_badly = sum(int(r["off_road"]) for r in rows)
    assert ended_badly == sum(e["type"] == "off_road" for e in events) >= 1
    assert {"episode", "t", "x", "y", "type"} <= set(events[0])


def test_console_script_end_to_end(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "gendrive"
    cmd = [
        str(exe),
        "run",
        "episodes=1",
        "num_envs=1",
        "video.episodes=0",
        "scenario=hard_brake",
        f"hydra.run.dir={tmp_path / 'r'}",
        "progress_bar=false",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "success rate" in res.stdout and "driving score LB 2.1" in res.stdout
    assert (tmp_path / "r" / "episodes.csv").exists()
    assert (tmp_path / "r" / ".hydra" / "config.yaml").exists()
    bad = subprocess.run(
        [str(exe), "run", "scenario_file=/nonexistent/x.yaml", f"hydra.run.dir={tmp_path / 'b'}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "x.yaml: scenario file not found" in bad.stderr


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    main([])
    assert "gendrive <command>" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fly"])


def test_reward_schema_matches_reward_weights() -> None:
    from dataclasses import fields

    from gendrive.config import RewardConfig
    from sim.metrics import RewardWeights

    schema = {f.name: f.default for f in fields(RewardConfig)}
    weights = {f.name: f.default for f in fields(RewardWeights)}
    assert schema == weights  # the Hydra schema mirrors the reward dataclass, defaults included
