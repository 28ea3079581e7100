"""What a safety driver commands in one tick, and the interface every input device implements.

A device turns its raw inputs (joystick axes, keys, a recorded trace) into one
:class:`HumanCommand` per tick through :meth:`InputDevice.poll`. Conventions, shared by every
device so the arbiter never sees device specifics:

- ``steer`` in ``[-1, 1]`` uses the action's convention: ``+`` turns **left** (counter-clockwise,
  like ``yaw``). A gamepad stick or a wheel reports ``-1`` for left, so their presets invert it.
- ``throttle`` and ``brake`` are pedals in ``[0, 1]`` (0 released). They become the action's one
  longitudinal axis with the brake dominating: ``accel = -brake`` whenever the brake is pressed,
  else ``throttle`` (a brake-throttle override, as in road cars).
- Deadzones are applied by the device: a value inside its deadzone is exactly ``0``, so "this
  axis is active" is simply ``value != 0``, judged axis by axis.
- ``t`` is the device's clock [s] (monotonic) when it was read; ``alive`` is False when the device
  is disconnected or stale (no events for its ``stale_timeout_s``); ``stale`` tells the two
  apart. A command that is not alive carries neutral values: frozen inputs are never trusted.

:class:`HumanInputs` is the batched (B,) form the pure arbiter works on; environments without a
human attached have ``present = False`` and never take over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
BoolArr = NDArray[np.bool_]

AXES = ("steer", "throttle", "brake")
BUTTONS = ("takeover", "hand_back", "emergency_stop")


class DeviceError(RuntimeError):
    """An input device is missing, misconfigured or unreadable; the message names it."""


@dataclass(frozen=True)
class HumanCommand:
    """One tick of human input (see the module docstring for the conventions).

    Attributes:
        t: device clock when read [s].
        steer: [-1, 1], + left.
        throttle: [0, 1].
        brake: [0, 1].
        takeover: the takeover button is held.
        hand_back: the hand-back button is held.
        emergency_stop: the emergency-stop button is held.
        alive: the device is connected and fresh.
        stale: the device is connected but sent no events for its stale timeout.
    """

    t: float = 0.0
    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0
    takeover: bool = False
    hand_back: bool = False
    emergency_stop: bool = False
    alive: bool = True
    stale: bool = False

    def action(self) -> tuple[float, float]:
        """The command as an ego action ``(steer, accel)`` in ``[-1, 1]^2`` (brake dominates)."""
        accel = -self.brake if self.brake > 0.0 else self.throttle
        return float(self.steer), float(accel)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (floats round-trip exactly through ``json``)."""
        return asdict(self)

    @staticmethod
    def from_dict(data: Any, where: str = "") -> HumanCommand:
        """Parse one record; errors name ``where`` (e.g. ``trace.jsonl:12``) and the field.

        Unknown keys (``tick`` and the like) are ignored; missing keys take the neutral default.

        Raises:
            ValueError: not a mapping, a non-numeric or non-finite axis, an axis out of range.
        """
        prefix = f"{where}: " if where else ""
        if not isinstance(data, dict):
            raise ValueError(f"{prefix}expected an object, got {type(data).__name__}")
        kw: dict[str, Any] = {}
        for f in fields(HumanCommand):
            if f.name not in data:
                continue
            v = data[f.name]
            if f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise ValueError(f"{prefix}{f.name}: expected true/false, got {v!r}")
            else:
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    raise ValueError(f"{prefix}{f.name}: expected a finite number, got {v!r}")
                v = float(v)
            kw[f.name] = v
        cmd = HumanCommand(**kw)
        lo = {"steer": -1.0, "throttle": 0.0, "brake": 0.0}
        for a in AXES:
            v = getattr(cmd, a)
            if not lo[a] <= v <= 1.0:
                raise ValueError(f"{prefix}{a}: expected in [{lo[a]:g}, 1], got {v}")
        return cmd


NEUTRAL = HumanCommand()


class InputDevice(Protocol):
    """A source of one :class:`HumanCommand` per tick.

    ``poll`` receives the window's events of this tick (``pygame.event.get()``; an empty list
    when there is no window) so that one event queue serves the window and every device.
    """

    name: str

    def poll(self, events: Sequence[Any] = ()) -> HumanCommand: ...

    def source(self, control: str) -> str:
        """Where a control comes from on this device, for logs: ``"axis 0"``, ``"key w"``."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class HumanInputs:
    """Human commands of B environments, each field (B,). ``present``: a human is attached."""

    t: F64
    steer: F32
    throttle: F32
    brake: F32
    takeover: BoolArr
    hand_back: BoolArr
    emergency_stop: BoolArr
    alive: BoolArr
    stale: BoolArr
    present: BoolArr

    @property
    def num_envs(self) -> int:
        return int(self.steer.shape[0])

    @staticmethod
    def from_commands(cmds: Sequence[HumanCommand | None]) -> HumanInputs:
        """Stack per-environment commands; ``None``: no human in that environment."""
        cs = [c if c is not None else NEUTRAL for c in cmds]
        present = np.array([c is not None for c in cmds], np.bool_)

        def col(name: str, dtype: type) -> NDArray[Any]:
            return np.array([getattr(c, name) for c in cs], dtype)

        return HumanInputs(
            t=col("t", np.float64),
            steer=col("steer", np.float32),
            throttle=col("throttle", np.float32),
            brake=col("brake", np.float32),
            takeover=col("takeover", np.bool_) & present,
            hand_back=col("hand_back", np.bool_) & present,
            emergency_stop=col("emergency_stop", np.bool_) & present,
            alive=col("alive", np.bool_) & present,
            stale=col("stale", np.bool_) & present,
            present=present,
        )

    def actions(self) -> F32:
        """(B, 2) ego actions ``[steer, accel]``, the brake dominating the throttle."""
        out = np.empty((self.num_envs, 2), np.float32)
        out[:, 0] = self.steer
        out[:, 1] = np.where(self.brake > 0.0, -self.brake, self.throttle)
        return out


__all__ = [
    "AXES",
    "BUTTONS",
    "NEUTRAL",
    "DeviceError",
    "HumanCommand",
    "HumanInputs",
    "InputDevice",
]
