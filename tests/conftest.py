"""Shared test setup: headless SDL/OpenCV, the path to the shared data, a tiny train run."""

import os
from io import StringIO
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# The smallest PPO run: lane keeping on one empty lane, one update (tests/test_train.py trains
# the same setup for longer).
TINY_TRAIN = [
    "scenario.road.num_lanes=1",
    "scenario.ego.lane=-1",
    "scenario.traffic.count=0",
    "scenario.ego.route_length=300",
    "scenario.ego.speed=15",
    "ppo=small",
    "ppo.num_envs=8",
    "ppo.num_steps=32",
    "eval_episodes=2",
    "eval_every=1",
    "progress_bar=false",
    "total_steps=256",
]


@pytest.fixture(scope="session")
def train_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `gendrive train` run directory with checkpoints/best.pt and updates.csv (one update)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gendrive.cli import CONFIG_DIR
    from gendrive.config import register_configs
    from gendrive.train import train
    from gendrive.train_config import TrainConfig

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=TINY_TRAIN)
    typed = OmegaConf.to_object(cfg)
    assert isinstance(typed, TrainConfig)
    run_dir = tmp_path_factory.mktemp("train") / "run"
    train(typed, run_dir, log=StringIO())
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    return run_dir
