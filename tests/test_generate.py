"""`gendrive generate`: config, run directory, errors that name the key, realism hook."""

import json
import subprocess
import sys
import types
from pathlib import Path

import cv2
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR
from gendrive.config import register_configs
from gendrive.generate import GenerateError, evaluate_recordings, generate
from gendrive.generate_config import GenerateConfig
from generative.families import sample_family
from generative.model import LearnedTrafficSampler
from generative.openscenario import xosc_schema_errors
from sim.scenario import load_spec


def _compose(overrides: list[str]) -> GenerateConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="generate", overrides=overrides)
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, GenerateConfig)
    return obj


def test_generate_writes_specs_summary_preview_and_xosc(tmp_path: Path) -> None:
    cfg = _compose(
        [
            "family=hard_brake",
            "n=3",
            "difficulty=0.7",
            "seed=4",
            "export.xosc=true",
            "preview.count=2",
            "preview.columns=2",
            "progress_bar=false",
        ]
    )
    out = tmp_path / "run"
    summary = generate(cfg, out, log=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    specs = sorted((out / "specs").glob("*.json"))
    assert [p.name for p in specs] == [
        "hard_brake_0.json",
        "hard_brake_1.json",
        "hard_brake_2.json",
    ]
    # The files are the batch sampler's scenarios (learned background by default), loadable
    # by gendrive run.
    expected = sample_family("hard_brake", 3, 0.7, seed=4, background=LearnedTrafficSampler())
    for p, (spec, _) in zip(specs, expected, strict=True):
        assert load_spec(p) == spec
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["family"] == "hard_brake" and on_disk["difficulty"] == 0.7
    assert [r["params"]["headway"] for r in on_disk["scenarios"]] == pytest.approx(
        [p["headway"] for _, p in expected]
    )
    assert summary["n"] == 3
    assert on_disk["background"] == "learned"
    assert 0.0 <= on_disk["background_validity"]["rejected"] <= 0.05
    img = cv2.imread(str(out / "preview.png"))
    assert img is not None and img.shape[1] == 2 * cfg.preview.width
    assert img.shape[0] > cfg.preview.height
    assert img.std() > 10  # not a blank canvas
    xoscs = sorted((out / "xosc").glob("*.xosc"))
    assert len(xoscs) == 3 and len(list((out / "xosc").glob("*.xodr"))) == 3
    assert xosc_schema_errors(xoscs[0]) == []


def test_family_none_samples_learned_background_traffic(tmp_path: Path) -> None:
    cfg = _compose(["family=none", "n=2", "preview.count=0", "progress_bar=false"])
    generate(cfg, tmp_path, log=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    spec = load_spec(tmp_path / "specs" / "none_0.json")
    # Learned traffic: vehicles in the spec with fitted behaviours, no random TrafficSpec.
    assert len(spec.actors) > 10 and spec.traffic.count == 0
    assert len({a.behavior.headway for a in spec.actors}) > 5
    assert not (tmp_path / "preview.png").exists()


def test_background_random_keeps_the_simulators_traffic(tmp_path: Path) -> None:
    cfg = _compose(["family=none", "n=1", "preview.count=0", "background=random"])
    cfg.progress_bar = False
    generate(cfg, tmp_path, log=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    spec = load_spec(tmp_path / "specs" / "none_0.json")
    assert spec.actors == () and spec.traffic.count > 0


def test_road_option_takes_a_scenario_configs_road(tmp_path: Path) -> None:
    cfg = _compose(["family=slow_leader", "n=1", "road=ring", "progress_bar=false"])
    generate(cfg, tmp_path, log=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    assert load_spec(tmp_path / "specs" / "slow_leader_0.json").road.kind == "ring"


def test_red_light_runner_generates_on_its_intersection(tmp_path: Path) -> None:
    overrides = ["family=red_light_runner", "n=2", "background=random", "preview.count=2"]
    cfg = _compose([*overrides, "export.xosc=true", "progress_bar=false"])
    generate(cfg, tmp_path, log=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    spec = load_spec(tmp_path / "specs" / "red_light_runner_1.json")
    assert spec.road.kind == "intersection" and spec.road.lights.offset_s is not None
    assert any(a.behavior.ignore_lights for a in spec.actors)
    assert (tmp_path / "preview.png").is_file()
    assert (tmp_path / "xosc" / "red_light_runner_0.xosc").is_file()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("family=nope", r"unknown family 'nope'.*cut_in"),
        ("difficulty=1.5", r"difficulty: expected a number in \[0, 1\]"),
        ("n=0", r"n: expected an integer >= 1"),
        ("road=nowhere", r"road: 'nowhere'"),
        ("background=magic", r"background: unknown sampler 'magic'.*learned"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, override: str, match: str) -> None:
    cfg = _compose([override, "progress_bar=false"])
    with pytest.raises(GenerateError, match=match):
        generate(cfg, tmp_path, log=open(tmp_path / "log.txt", "w"))  # noqa: SIM115


def test_bad_type_fails_at_composition_naming_the_key() -> None:
    with pytest.raises(Exception, match="difficulty"):
        _compose(["difficulty=hard"])


def test_evaluate_says_realism_is_not_installed_or_calls_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "tracks.csv"
    data.write_text("scenario_id,obstacle_id\n")
    with pytest.raises(GenerateError, match="data: evaluate=true needs data"):
        evaluate_recordings(_compose(["evaluate=true"]))
    with pytest.raises(GenerateError, match="data: file not found"):
        evaluate_recordings(_compose(["evaluate=true", "data=/no/such.csv"]))
    cfg = _compose(["evaluate=true", f"data={data}", "seed=7"])
    if "generative.realism" not in sys.modules:
        try:
            import generative.realism  # noqa: F401
        except ModuleNotFoundError:
            with pytest.raises(GenerateError, match="realism evaluation is not installed yet"):
                evaluate_recordings(cfg)
    calls = []

    class Report:
        def to_markdown(self) -> str:
            return "| metric | value |\n|---|---|\n| speed W1 | 0.1 |"

    def fake(path: str, *, seed: int = 0, **sizes: int) -> Report:
        calls.append((path, seed))
        assert sizes == {
            "scenes_per_snapshot": 8,
            "rollout_scenes": 48,
            "c2st_epochs": 300,
            "matched": True,
        }
        return Report()

    monkeypatch.setitem(
        sys.modules, "generative.realism", types.SimpleNamespace(evaluate_realism=fake)
    )
    log = tmp_path / "eval.txt"
    with log.open("w") as f:
        text = evaluate_recordings(cfg, log=f)
    assert calls == [(str(data), 7)]
    assert "speed W1" in text and "speed W1" in log.read_text()


def test_console_script_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gendrive.cli",
            "generate",
            "family=cut_in",
            "n=2",
            "preview.count=2",
            "progress_bar=false",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert (out / "specs" / "cut_in_1.json").is_file() and (out / "preview.png").is_file()
    assert "run directory" in res.stdout


def test_cli_exits_2_naming_the_bad_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gendrive.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["generate", "family=nope", f"hydra.run.dir={tmp_path}"])
    assert exc.value.code == 2
    assert "unknown family 'nope'" in capsys.readouterr().err
