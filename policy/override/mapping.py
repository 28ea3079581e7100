"""Input mappings: which physical axis, button or key drives which control, and how it is shaped.

These dataclasses are the schema of the ``input=`` Hydra group (``configs/input/*.yaml``: presets
``keyboard``, ``gamepad``, ``g29``, ``scripted``) and the runtime configuration of the devices;
:func:`check_input` validates them with errors that name the field (``input.steer.deadzone``).

Shaping, applied by the device so that every later stage sees the same conventions
(:mod:`policy.override.command`):

- **Steering axis** (bipolar, raw ``r`` in [-1, 1]): ``x = -r`` if ``invert`` else ``r``; the
  deadzone ``z`` removes the centre and rescales the rest so the output is continuous::

      y = gain * sign(x) * max(0, (|x| - z) / (1 - z)) ** curve

  ``curve > 1`` gives finer control near the centre, ``gain < 1`` caps the lock a full
  deflection gives. A gamepad stick needs both: at 30 m/s a wheel angle of 4 % of full lock
  already means 8 m/s^2 of lateral acceleration, and a thumb has 1 cm of travel. A wheel is
  linear with gain 1: its 900 degrees to full lock are a 13:1 steering ratio, like a car.
- **Pedal axis** (unipolar): raw ``released`` maps to 0 and raw ``pressed`` to 1, clipped, so
  an Xbox trigger (-1 released, +1 pressed) and a G29 pedal (+1 released, -1 pressed) are the
  same two numbers swapped; then the same deadzone and curve on [0, 1].
- **Buttons** are lists of button indices (any of them held = held); keys are lists of pygame
  key names (``pygame.key.key_code``), e.g. ``[w, up]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from policy.override.command import BUTTONS

INPUT_KINDS = ("keyboard", "joystick", "scripted")
MAX_DEADZONE = 0.9  # [-] beyond this an axis has almost no travel left: surely a typo
MAX_CURVE = 5.0  # [-] exponents beyond this make the first 80 % of travel do nothing


@dataclass
class SteerAxis:
    """A bipolar steering axis (see the module docstring)."""

    axis: int | None = 0  # joystick axis index; None: not mapped (steer stays 0)
    invert: bool = True  # devices report -1 for left; the action's + is left
    deadzone: float = 0.05  # [-] fraction of half travel ignored around the centre
    curve: float = 1.0  # [-] response exponent, >= 1 for finer control near the centre
    gain: float = 1.0  # [-] steering at full deflection, as a fraction of full lock


@dataclass
class PedalAxis:
    """A unipolar pedal or trigger axis mapped to [0, 1] (see the module docstring)."""

    axis: int | None = None  # joystick axis index; None: not mapped (pedal stays 0)
    released: float = -1.0  # raw value at rest
    pressed: float = 1.0  # raw value fully pressed
    deadzone: float = 0.05  # [-] fraction of travel ignored at rest
    curve: float = 1.0  # [-] response exponent


@dataclass
class JoystickButtons:
    """Joystick button indices of the three override buttons (any listed button counts)."""

    takeover: list[int] = field(default_factory=list)
    hand_back: list[int] = field(default_factory=list)
    emergency_stop: list[int] = field(default_factory=list)


@dataclass
class KeyboardKeys:
    """Key names (``pygame.key.key_code``) and the ramps that make keys feel like pedals.

    A held key ramps its control from ``rate * KEY_FIRST_STEP_S`` up to its maximum at ``rate``
    per second and drops to 0 at release (CARLA ``manual_control``'s keyboard behaviour).
    """

    steer_left: list[str] = field(default_factory=lambda: ["a", "left"])
    steer_right: list[str] = field(default_factory=lambda: ["d", "right"])
    throttle: list[str] = field(default_factory=lambda: ["w", "up"])
    brake: list[str] = field(default_factory=lambda: ["s", "down", "space"])
    takeover: list[str] = field(default_factory=lambda: ["t"])
    hand_back: list[str] = field(default_factory=lambda: ["p"])
    emergency_stop: list[str] = field(default_factory=lambda: ["x"])
    steer_rate_per_s: float = 0.5  # [1/s] steering grows this fast while held (CARLA's rate)
    steer_max: float = 0.7  # [-] CARLA caps keyboard steering at 0.7: full lock is too much
    throttle_rate_per_s: float = 2.0  # [1/s] full throttle after 0.5 s
    brake_rate_per_s: float = 5.0  # [1/s] full brake after 0.2 s (CARLA: +0.2 per frame)


@dataclass
class InputConfig:
    """One input device: its kind, how to find it and its mapping (``input=`` group)."""

    name: str = "keyboard"  # preset name, used in messages and logs
    kind: str = "keyboard"  # keyboard | joystick | scripted
    device: str | None = None  # joystick: an index or part of its name; None: joystick 0
    stale_timeout_s: float | None = None  # [s] no events for this long = stale; None: never
    steer: SteerAxis = field(default_factory=SteerAxis)
    throttle: PedalAxis = field(default_factory=PedalAxis)
    brake: PedalAxis = field(default_factory=PedalAxis)
    buttons: JoystickButtons = field(default_factory=JoystickButtons)
    keys: KeyboardKeys = field(default_factory=KeyboardKeys)
    trace: str | None = None  # scripted: a command trace (commands.jsonl of a drive session)


def check_input(cfg: InputConfig) -> None:
    """Validate a mapping; the error names the field and what was expected.

    Raises:
        ValueError: a bad kind, deadzone, curve, pedal range, timeout or missing trace.
    """
    if cfg.kind not in INPUT_KINDS:
        raise ValueError(f"input.kind: expected one of {list(INPUT_KINDS)}, got {cfg.kind!r}")
    if cfg.stale_timeout_s is not None and not cfg.stale_timeout_s > 0:
        raise ValueError(
            f"input.stale_timeout_s: expected > 0 s or null, got {cfg.stale_timeout_s}"
        )
    if cfg.kind == "keyboard" and cfg.stale_timeout_s is not None:
        raise ValueError(
            "input.stale_timeout_s: a keyboard sends no events while a key is held, so it cannot "
            "go stale; expected null"
        )
    if cfg.kind == "scripted" and not cfg.trace:
        raise ValueError("input.trace: input=scripted needs a command trace file (commands.jsonl)")
    axes: list[tuple[str, SteerAxis | PedalAxis]] = [
        ("steer", cfg.steer),
        ("throttle", cfg.throttle),
        ("brake", cfg.brake),
    ]
    for name, ax in axes:
        where = f"input.{name}"
        if ax.axis is not None and ax.axis < 0:
            raise ValueError(f"{where}.axis: expected an axis index >= 0 or null, got {ax.axis}")
        if not 0.0 <= ax.deadzone <= MAX_DEADZONE:
            raise ValueError(
                f"{where}.deadzone: expected in [0, {MAX_DEADZONE}], got {ax.deadzone}"
            )
        if not 0.0 < ax.curve <= MAX_CURVE:
            raise ValueError(f"{where}.curve: expected in (0, {MAX_CURVE}], got {ax.curve}")
        if isinstance(ax, SteerAxis) and not 0.0 < ax.gain <= 1.0:
            raise ValueError(f"{where}.gain: expected in (0, 1], got {ax.gain}")
        if isinstance(ax, PedalAxis):
            if not (math.isfinite(ax.released) and math.isfinite(ax.pressed)):
                raise ValueError(f"{where}: released/pressed must be finite")
            if ax.released == ax.pressed:
                raise ValueError(
                    f"{where}: released and pressed are both {ax.released}; a pedal needs two "
                    "different raw values (e.g. released: 1.0, pressed: -1.0 for a G29 pedal)"
                )
    if cfg.kind == "joystick":
        used = [(n, ax.axis) for n, ax in axes if ax.axis is not None]
        seen: dict[int, str] = {}
        for n, a in used:
            if a in seen:
                raise ValueError(f"input.{n}.axis: axis {a} is already mapped to {seen[a]}")
            seen[a] = n
        for n in BUTTONS:
            bad = [b for b in getattr(cfg.buttons, n) if b < 0]
            if bad:
                raise ValueError(f"input.buttons.{n}: expected button indices >= 0, got {bad}")
    k = cfg.keys
    for n in ("steer_rate_per_s", "steer_max", "throttle_rate_per_s", "brake_rate_per_s"):
        if not getattr(k, n) > 0:
            raise ValueError(f"input.keys.{n}: expected > 0, got {getattr(k, n)}")
    if k.steer_max > 1.0:
        raise ValueError(f"input.keys.steer_max: expected <= 1, got {k.steer_max}")


def _shape(u: NDArray[np.float64], deadzone: float, curve: float) -> NDArray[np.float64]:
    """Deadzone then response curve on magnitudes ``u`` in [0, 1]."""
    live = np.maximum(0.0, (u - deadzone) / (1.0 - deadzone))
    out: NDArray[np.float64] = np.minimum(live, 1.0) ** curve
    return out


def steer_value(raw: float | NDArray[np.floating], ax: SteerAxis) -> NDArray[np.float64]:
    """Shaped steering in [-1, 1] (+ left) from a raw axis value (any shape)."""
    x = np.clip(np.asarray(raw, np.float64), -1.0, 1.0)
    if ax.invert:
        x = -x
    out: NDArray[np.float64] = ax.gain * np.sign(x) * _shape(np.abs(x), ax.deadzone, ax.curve)
    return out


def pedal_value(raw: float | NDArray[np.floating], ax: PedalAxis) -> NDArray[np.float64]:
    """Shaped pedal in [0, 1] from a raw axis value (any shape); ``released`` gives 0."""
    u = (np.asarray(raw, np.float64) - ax.released) / (ax.pressed - ax.released)
    return _shape(np.clip(u, 0.0, 1.0), ax.deadzone, ax.curve)


__all__ = [
    "INPUT_KINDS",
    "InputConfig",
    "JoystickButtons",
    "KeyboardKeys",
    "PedalAxis",
    "SteerAxis",
    "check_input",
    "pedal_value",
    "steer_value",
]
