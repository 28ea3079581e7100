"""Typed schemas for the Hydra configs in ``configs/``.

Each schema is registered in Hydra's ConfigStore and sits first in its app's defaults list, so a
misspelt key or a value of the wrong type fails at composition with an OmegaConf error that names
the key (``sim.dt``). The DictConfig is converted to these dataclasses at the entry point; the
scenario node is checked by :func:`sim.scenario.spec_from_dict`, whose errors name the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class SimConfig:
    """The simulator backend and its step."""

    backend: str = "embedded"
    dt: float = 0.1  # [s]; 0.05 for CARLA parity
    num_actors: int | None = None  # actor slots per env; default what the scenario needs
    mobil_interval_s: float = 1.0  # [s] how often each traffic vehicle reconsiders its lane


@dataclass
class DriverConfig:
    """Who drives the ego: ``rule_based`` (IDM + pure pursuit + MOBIL) or ``random``."""

    name: str = "rule_based"
    lane_change: bool = True
    speed_factor: float = 1.0  # desired speed as a fraction of the limit (rule_based)


@dataclass
class RewardConfig:
    """Weights of the named reward terms (see sim.metrics; presets in configs/reward/)."""

    progress: float = 0.1
    speed_tracking: float = 0.0
    fuel: float = -0.02
    time: float = 0.0
    collision: float = -20.0
    off_road: float = -20.0
    red_light: float = -10.0
    ttc_risk: float = -0.1
    comfort: float = -0.001
    takeover: float = -1.0
    route_completed: float = 10.0
    carl: float = 0.0
    speed: float = 0.0


@dataclass
class MetricsNode:
    """Safety/comfort thresholds and episode ends (see sim.metrics.MetricsConfig)."""

    ttc_risk_s: float = 3.0
    near_miss_ttc_s: float = 1.5
    hard_brake_mps2: float = 4.0
    terminate_on_collision: bool = True
    terminate_on_off_road: bool = True


@dataclass
class VideoConfig:
    """Bird's-eye mp4s of the first ``episodes`` episodes of environment 0."""

    episodes: int = 1
    fps: float | None = None  # default: real time (1 / dt)
    width: int = 640
    height: int = 480


@dataclass
class RunConfig:
    """``gendrive run``: N episodes on B parallel embedded environments, written to a run dir."""

    sim: SimConfig = field(default_factory=SimConfig)
    scenario: dict[str, Any] = field(default_factory=dict)
    driver: DriverConfig = field(default_factory=DriverConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    metrics: MetricsNode = field(default_factory=MetricsNode)
    vehicle_file: str | None = None  # a vehicle YAML file instead of the vehicle group
    vehicle: dict[str, Any] = field(default_factory=dict)  # fuel model: the vehicle group
    video: VideoConfig = field(default_factory=VideoConfig)
    episodes: int = 8
    num_envs: int = 4
    seed: int = 0
    scenario_file: str | None = None  # a spec file (YAML/JSON) instead of the scenario group
    # a CARLA Leaderboard route file and route id: drive that route on its town, with the
    # scenario group's traffic, time limit and seed (sim.routes.leaderboard_spec)
    route_file: str | None = None
    route_id: str | None = None
    progress_bar: bool = True


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    from gendrive.drive_config import DevicesConfig, DriveConfig

    cs.store(name="drive_schema", node=DriveConfig)
    cs.store(name="devices_schema", node=DevicesConfig)
    from gendrive.train_config import TrainConfig

    cs.store(name="train_schema", node=TrainConfig)
    from gendrive.evaluate_config import EvaluateConfig

    cs.store(name="evaluate_schema", node=EvaluateConfig)
    from gendrive.generate_config import GenerateConfig

    cs.store(name="generate_schema", node=GenerateConfig)
