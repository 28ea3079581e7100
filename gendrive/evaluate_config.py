"""Typed schema of ``gendrive evaluate`` (``configs/evaluate.yaml``).

The simulator, reward, metrics and vehicle nodes are those of ``gendrive run``, so an evaluation
scores episodes exactly as a run does. The suite (``configs/eval/<name>.yaml``) is plain YAML
read by :func:`gendrive.evaluate.load_suite`, not a config group: it names scenarios and seeds,
which the evaluation loop, not Hydra, expands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendrive.config import MetricsNode, RewardConfig, SimConfig


@dataclass
class EvalVideoConfig:
    """Bird's-eye mp4s of each policy's worst episodes (lowest LB 2.0 driving score)."""

    worst: int = 1  # episodes per policy (0: none); replayed alone from their seeds
    fps: float | None = None  # default: real time (1 / dt)


@dataclass
class EvaluateConfig:
    """``gendrive evaluate``: every policy x every scenario of a suite, compared."""

    sim: SimConfig = field(default_factory=SimConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    metrics: MetricsNode = field(default_factory=MetricsNode)
    vehicle_file: str | None = None  # a vehicle YAML file instead of the vehicle group
    vehicle: dict[str, Any] = field(default_factory=dict)  # fuel model: the vehicle group
    policy: str | None = None  # one policy: rule_based | random | a .pt file | a train run dir
    policies: list[str] = field(default_factory=list)  # several policies (with or after policy)
    suite: str = "smoke"  # a name in configs/eval/ or a suite YAML file
    episodes_per_scenario: int | None = None  # overrides the suite's value
    seed: int | None = None  # overrides the suite's seed; episode e of a scenario: seed + e
    num_envs: int = 16  # parallel environments per scenario (capped at its episode count)
    videos: EvalVideoConfig = field(default_factory=EvalVideoConfig)
    progress_bar: bool = True
