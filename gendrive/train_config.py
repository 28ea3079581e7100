"""Typed schema of ``gendrive train`` (``configs/train.yaml``).

The simulator, scenario, reward, metrics and vehicle nodes are those of ``gendrive run``; the
``ppo`` group (``configs/ppo/*.yaml``) is :class:`policy.ppo.config.PPOConfig` itself, so the
config and the trainer cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendrive.config import MetricsNode, RewardConfig, SimConfig
from policy.ppo.bc import BCConfig
from policy.ppo.config import PPOConfig


@dataclass
class TimeBudgetConfig:
    """A travel-time constraint for eco-driving (docs/ppo.md, "Eco-driving").

    With ``ratio > 0`` training keeps the evaluation's mean travel time within ``ratio`` x the
    rule-based driver's on the same held-out episodes: the ``speed_tracking`` reward weight is a
    Lagrange multiplier, raised by dual ascent at every evaluation while the policy is too slow
    and lowered (not below 0) while it is faster than the budget; ``best.pt`` is then the
    evaluation with the least fuel per km among those within the budget and competent (route
    completion >= 95 %, collisions <= 2 %), else the best return until one is.
    """

    ratio: float = 0.0  # allowed travel time / the rule-based driver's; 0: no constraint
    lr: float = 2.0  # multiplier step per unit of (measured ratio - ratio)
    init_weight: float = 0.0  # the multiplier at the start (replaces reward.speed_tracking)
    max_weight: float = 1.0  # the multiplier's ceiling


@dataclass
class TrainConfig:
    """``gendrive train``: PPO on B embedded environments, checkpoints and logs in the run dir."""

    sim: SimConfig = field(default_factory=SimConfig)
    scenario: dict[str, Any] = field(default_factory=dict)
    reward: RewardConfig = field(default_factory=RewardConfig)
    metrics: MetricsNode = field(default_factory=MetricsNode)
    vehicle_file: str | None = None  # a vehicle YAML file instead of the vehicle group
    vehicle: dict[str, Any] = field(default_factory=dict)  # fuel model: the vehicle group
    scenario_file: str | None = None  # a spec file (YAML/JSON) instead of the scenario group
    suite: str | None = None  # train on every scenario of configs/eval/<suite>.yaml (a mixture)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    bc: BCConfig = field(default_factory=BCConfig)  # behaviour-cloning warm start (off: steps 0)
    seed: int = 0  # training env b is reset with seed + b; also seeds torch
    device: str = "auto"  # cpu | cuda | cuda:N | auto (cuda when present)
    torch_threads: int = 1  # intra-op threads; 1 is fastest for these small MLPs (docs/ppo.md)
    total_steps: int = 5_000_000  # env steps to train for (rounded down to whole updates)
    checkpoint_every: int = 10  # [updates] between checkpoints/last.pt writes
    eval_every: int = 10  # [updates] between evaluations (0: never); the best goes to best.pt
    eval_episodes: int = 16  # episodes per evaluation, one per evaluation env
    eval_seed: int = 1_000_000  # evaluation env b is reset with eval_seed + b (held out)
    time_budget: TimeBudgetConfig = field(default_factory=TimeBudgetConfig)
    resume: str | None = None  # a run directory (or a .pt file) to continue exactly
    progress_bar: bool = True
    tensorboard: bool = True  # write tensorboard/ event files (every updates.csv scalar)
