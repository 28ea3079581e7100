"""Open the input device an :class:`InputConfig` names; pygame is imported only when needed.

``kind: scripted`` replays ``trace`` without pygame, so headless replays need no SDL at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from policy.override.command import InputDevice
from policy.override.mapping import InputConfig, check_input
from policy.override.scripted import ScriptedDevice


def open_device(cfg: InputConfig, clock: Callable[[], float] = time.monotonic) -> InputDevice:
    """The device for ``cfg`` (checked first).

    Raises:
        ValueError: a bad mapping (names the field).
        FileNotFoundError: the scripted trace does not exist.
        policy.override.command.DeviceError: the joystick is not connected, or the keyboard has
            no window.
    """
    check_input(cfg)
    if cfg.kind == "scripted":
        assert cfg.trace is not None
        return ScriptedDevice.from_file(cfg.trace, name=cfg.name)
    if cfg.kind == "joystick":
        from policy.override.joystick import JoystickDevice

        return JoystickDevice(cfg, clock)
    from policy.override.keyboard import KeyboardDevice

    return KeyboardDevice(cfg, clock)


__all__ = ["open_device"]
