"""Typed schemas of ``gendrive drive`` (``configs/drive.yaml``) and ``gendrive devices``
(``configs/devices.yaml``).

The ``input`` group (``configs/input/*.yaml``), ``override``, ``shield`` and ``failsafe`` nodes use
the dataclasses of :mod:`policy.override` directly, so the config and the runtime cannot drift
apart; their ``__post_init__`` checks run when the DictConfig is converted at the entry point
and name the key. The simulator, scenario, reward and metrics nodes are those of ``gendrive run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendrive.config import MetricsNode, RewardConfig, SimConfig
from policy.override.arbiter import ArbiterParams
from policy.override.failsafe import FailsafeParams
from policy.override.mapping import InputConfig
from policy.override.shield import ShieldParams

POLICIES = ("rule_based", "none")


@dataclass
class WindowConfig:
    """The live window: size and bird's-eye scale."""

    width: int = 960  # [px]
    height: int = 720  # [px]
    pixels_per_metre: float = 5.0  # [px/m] ~190 m of road across the window height
    rotate_with_ego: bool = True  # heading up: left on the stick is left on the screen


@dataclass
class DriveConfig:
    """``gendrive drive``: one environment driven live (or replayed headless) with takeovers."""

    sim: SimConfig = field(default_factory=lambda: SimConfig(dt=0.05))
    scenario: dict[str, Any] = field(default_factory=dict)
    reward: RewardConfig = field(default_factory=RewardConfig)
    metrics: MetricsNode = field(default_factory=MetricsNode)
    vehicle_file: str | None = None  # a vehicle YAML file instead of the vehicle group
    vehicle: dict[str, Any] = field(default_factory=dict)  # fuel model: the vehicle group
    input: InputConfig = field(default_factory=InputConfig)
    override: ArbiterParams = field(default_factory=ArbiterParams)
    shield: ShieldParams = field(default_factory=ShieldParams)
    failsafe: FailsafeParams = field(default_factory=FailsafeParams)
    # who drives when the human does not: rule_based | none | a .pt checkpoint or train run dir
    policy: str = "rule_based"
    lane_change: bool = True  # the rule-based policy may change lanes
    headless: bool = False  # no window: replay a trace (input=scripted) or drive a joystick blind
    realtime: bool | None = None  # pace ticks at sim.dt; None: with a window yes, headless no
    episodes: int | None = None  # stop after this many episodes; None: until quit / trace end
    duration_s: float | None = None  # [s] stop after this much simulated time; None: no limit
    seed: int = 0  # episode e is reset with seed + e
    scenario_file: str | None = None  # a ScenarioSpec file instead of the scenario group
    replay_settings: bool = True  # input=scripted: take scenario, seed, dt, policy from the trace
    window: WindowConfig = field(default_factory=WindowConfig)
    screenshot: str | None = None  # PNG of the last frame at exit (relative: in the run dir)
    video: bool = False  # also write videos/session.mp4 of the window


@dataclass
class DevicesConfig:
    """``gendrive devices``: list connected joysticks with their axes and buttons, live."""

    once: bool = False  # print one snapshot and exit
    interval_s: float = 0.1  # [s] refresh period of the live listing
    duration_s: float | None = None  # [s] stop the live listing after this long; None: Ctrl-C
    json: bool = False  # one JSON object per snapshot instead of the table


__all__ = ["POLICIES", "DevicesConfig", "DriveConfig", "WindowConfig"]
