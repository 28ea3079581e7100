"""The keyboard as a safety-driver device (CARLA ``manual_control`` conventions).

Default keys: W/Up throttle, S/Down/Space brake, A/Left steer left, D/Right steer right,
T take over, P hand back (CARLA's autopilot key), X emergency stop. Keys are digital, so a held
key ramps its control (:class:`policy.override.mapping.KeyboardKeys`) and releasing it drops the
control to 0 at once. With both steering keys held the one pressed last wins: opposite inputs
never cancel into a neutral command that would hide an active human.

Key state is tracked from the ``KEYDOWN``/``KEYUP`` events the window loop hands to :meth:`poll`
(SDL sends the ups when the window loses focus, so no key sticks). The keyboard needs the
pygame window; it never goes stale and is always alive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from policy.override.command import BUTTONS, DeviceError, HumanCommand
from policy.override.mapping import InputConfig

KEY_FIRST_STEP_S = 0.05  # [s] a tap acts like one 20 Hz tick of holding: a response at once


def _codes(cfg: InputConfig, control: str) -> set[int]:
    out = set()
    for name in getattr(cfg.keys, control):
        try:
            out.add(pygame.key.key_code(name))
        except ValueError:
            raise DeviceError(
                f"input '{cfg.name}': input.keys.{control}: unknown key name {name!r} "
                "(pygame.key.key_code names: a, left, space, f1, ...)"
            ) from None
    return out


class KeyboardDevice:
    """Keyboard driving (see the module docstring).

    Args:
        cfg: the mapping (``kind: keyboard``).
        clock: monotonic time source [s].

    Raises:
        DeviceError: there is no pygame window to receive keys, or a key name is unknown.
    """

    CONTROLS = ("steer_left", "steer_right", "throttle", "brake")

    def __init__(self, cfg: InputConfig, clock: Callable[[], float] = time.monotonic) -> None:
        if not pygame.display.get_init() or pygame.display.get_surface() is None:
            raise DeviceError(
                f"input '{cfg.name}': the keyboard needs the drive window; with headless=true use "
                "input=scripted or a joystick preset"
            )
        self.cfg = cfg
        self.name = cfg.name
        self.clock = clock
        self._codes = {c: _codes(cfg, c) for c in (*self.CONTROLS, *BUTTONS)}
        self._down: dict[int, float] = {}  # key code -> clock when pressed

    def source(self, control: str) -> str:
        """The keys behind a control, e.g. ``"key w/up"``."""
        names = (
            self.cfg.keys.steer_left + self.cfg.keys.steer_right
            if control == "steer"
            else getattr(self.cfg.keys, control, [])
        )
        return "key " + "/".join(names) if names else "unmapped"

    def _held_s(self, control: str, now: float) -> float:
        """How long the longest-held key of ``control`` has been down [s]; -1 when none is."""
        ts = [now - self._down[k] for k in self._codes[control] if k in self._down]
        return max(ts) if ts else -1.0

    def poll(self, events: Sequence[Any] = ()) -> HumanCommand:
        """This tick's command from this tick's window events."""
        now = self.clock()
        for ev in events:
            if ev.type == pygame.KEYDOWN:
                self._down.setdefault(ev.key, now)
            elif ev.type == pygame.KEYUP:
                self._down.pop(ev.key, None)
        k = self.cfg.keys

        def ramp(control: str, rate: float, top: float) -> float:
            held = self._held_s(control, now)
            return 0.0 if held < 0 else min(top, rate * (held + KEY_FIRST_STEP_S))

        left = ramp("steer_left", k.steer_rate_per_s, k.steer_max)
        right = ramp("steer_right", k.steer_rate_per_s, k.steer_max)
        # The later press is the shorter hold; it wins.
        held_l, held_r = self._held_s("steer_left", now), self._held_s("steer_right", now)
        steer = left if right == 0.0 or (left > 0.0 and held_l <= held_r) else -right
        return HumanCommand(
            t=now,
            steer=steer,
            throttle=ramp("throttle", k.throttle_rate_per_s, 1.0),
            brake=ramp("brake", k.brake_rate_per_s, 1.0),
            takeover=self._held_s("takeover", now) >= 0,
            hand_back=self._held_s("hand_back", now) >= 0,
            emergency_stop=self._held_s("emergency_stop", now) >= 0,
        )

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["KEY_FIRST_STEP_S", "KeyboardDevice"]
