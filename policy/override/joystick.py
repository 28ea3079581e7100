"""Joysticks, gamepads and wheels through pygame's SDL joystick API.

Rules:

- The device is chosen by ``input.device``: an index, or a case-insensitive part of the name
  (``G29``); ``None`` takes joystick 0. When nothing matches, :class:`JoystickDevice` raises
  :class:`DeviceError` naming what was asked for and what is connected. There is no fallback to
  the keyboard: a safety driver who believes a wheel is live must not find out otherwise at the
  moment of a takeover.
- Axis values are read from SDL's state each tick (``get_axis``) after the caller pumped events
  (``pygame.event.get()``); the events of this tick are scanned for this device's removal
  (``JOYDEVICEREMOVED``: disconnected) and activity (any axis/button/hat event: fresh).
- A connected device that sent no event for ``stale_timeout_s`` is *stale*: its command is
  neutral with ``alive = False, stale = True``. A wheel's sensors chatter while held, a gamepad
  stick held perfectly still does not: see ``docs/override.md``.
- A removed device that is plugged back in (``JOYDEVICEADDED`` with a matching name) is reopened;
  the arbiter decides what that means (an explicit new takeover, never an automatic one).
- ``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1`` is set before SDL starts, so the device keeps working
  when the window loses focus: a takeover must not depend on where the mouse is.

:func:`joystick_snapshots` lists every connected joystick with its axes, buttons and hats, for
``gendrive devices``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from policy.override.command import AXES, BUTTONS, DeviceError, HumanCommand
from policy.override.mapping import InputConfig, pedal_value, steer_value

_ACTIVITY_EVENTS = (
    pygame.JOYAXISMOTION,
    pygame.JOYBUTTONDOWN,
    pygame.JOYBUTTONUP,
    pygame.JOYHATMOTION,
)


def init_joysticks() -> None:
    """Start SDL's event and joystick subsystems (idempotent; no window is opened)."""
    if not pygame.display.get_init():
        pygame.display.init()  # the event queue lives in SDL's video subsystem
    if not pygame.joystick.get_init():
        pygame.joystick.init()
    pygame.event.pump()  # deliver pending JOYDEVICEADDED so get_count() is current


@dataclass(frozen=True)
class JoystickSnapshot:
    """One joystick's identity and state at one moment (for ``gendrive devices``)."""

    index: int
    name: str
    guid: str
    axes: tuple[float, ...]
    buttons: tuple[int, ...]
    hats: tuple[tuple[int, int], ...]


def joystick_snapshots() -> list[JoystickSnapshot]:
    """Every connected joystick, opened and read once (call :func:`init_joysticks` first)."""
    out = []
    for i in range(pygame.joystick.get_count()):
        js = pygame.joystick.Joystick(i)
        out.append(
            JoystickSnapshot(
                index=i,
                name=js.get_name(),
                guid=js.get_guid(),
                axes=tuple(float(js.get_axis(a)) for a in range(js.get_numaxes())),
                buttons=tuple(int(js.get_button(b)) for b in range(js.get_numbuttons())),
                hats=tuple(
                    (int(h[0]), int(h[1])) for h in (js.get_hat(k) for k in range(js.get_numhats()))
                ),
            )
        )
    return out


def _matches(selector: str | None, index: int, name: str) -> bool:
    if selector is None:
        return index == 0
    sel = selector.strip()
    if sel.isdigit():
        return index == int(sel)
    return sel.lower() in name.lower()


class JoystickDevice:
    """A joystick, gamepad or wheel mapped by an :class:`InputConfig` (see module docstring).

    Args:
        cfg: the mapping (``kind: joystick``).
        clock: monotonic time source [s]; tests pass a fake one.

    Raises:
        DeviceError: no joystick matches ``cfg.device``, or a mapped axis/button does not exist
            on the matched one.
    """

    def __init__(self, cfg: InputConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.name = cfg.name
        init_joysticks()
        self._js: Any = None
        self._instance = -1
        self.connected = False
        self._last_event_t = clock()
        self._open()
        assert self._js is not None
        self.device_name: str = self._js.get_name()
        self._check_mapping()
        self.connected = True

    def _open(self) -> None:
        names = [pygame.joystick.Joystick(i).get_name() for i in range(pygame.joystick.get_count())]
        for i, n in enumerate(names):
            if _matches(self.cfg.device, i, n):
                self._js = pygame.joystick.Joystick(i)
                self._instance = self._js.get_instance_id()
                return
        want = "joystick 0" if self.cfg.device is None else f"device={self.cfg.device!r}"
        have = ", ".join(f"[{i}] {n}" for i, n in enumerate(names)) or "none"
        raise DeviceError(
            f"input '{self.cfg.name}': no joystick matching {want} is connected (connected: "
            f"{have}). Plug it in and check with `gendrive devices`, or choose another input= "
            "preset; there is no fallback to the keyboard."
        )

    def _check_mapping(self) -> None:
        n_axes, n_buttons = self._js.get_numaxes(), self._js.get_numbuttons()
        for control in AXES:
            a = getattr(self.cfg, control).axis
            if a is not None and a >= n_axes:
                raise DeviceError(
                    f"input '{self.cfg.name}': input.{control}.axis={a} but '{self.device_name}' "
                    f"has {n_axes} axes (0..{n_axes - 1}); see `gendrive devices`"
                )
        for button in BUTTONS:
            for b in getattr(self.cfg.buttons, button):
                if b >= n_buttons:
                    raise DeviceError(
                        f"input '{self.cfg.name}': input.buttons.{button} has button {b} but "
                        f"'{self.device_name}' has {n_buttons} buttons; see `gendrive devices`"
                    )

    def source(self, control: str) -> str:
        """The physical input behind a control: ``"axis 0"``, ``"button 3"``."""
        if control in AXES:
            a = getattr(self.cfg, control).axis
            return f"axis {a}" if a is not None else "unmapped"
        bs = getattr(self.cfg.buttons, control, [])
        return "button " + "/".join(str(b) for b in bs) if bs else "unmapped"

    def _scan(self, events: Sequence[Any]) -> None:
        now = self.clock()
        for ev in events:
            if ev.type == pygame.JOYDEVICEREMOVED and ev.instance_id == self._instance:
                self.connected = False
            elif ev.type == pygame.JOYDEVICEADDED and not self.connected:
                js = pygame.joystick.Joystick(ev.device_index)
                if js.get_name() == self.device_name:
                    self._js, self._instance = js, js.get_instance_id()
                    self.connected = True
                    self._last_event_t = now
            elif ev.type in _ACTIVITY_EVENTS and getattr(ev, "instance_id", None) == self._instance:
                self._last_event_t = now

    def poll(self, events: Sequence[Any] = ()) -> HumanCommand:
        """This tick's command; ``events`` are this tick's ``pygame.event.get()``."""
        self._scan(events)
        now = self.clock()
        if not self.connected:
            return HumanCommand(t=now, alive=False)
        timeout = self.cfg.stale_timeout_s
        if timeout is not None and now - self._last_event_t > timeout:
            return HumanCommand(t=now, alive=False, stale=True)
        js, c = self._js, self.cfg

        def held(buttons: list[int]) -> bool:
            return any(js.get_button(b) for b in buttons)

        return HumanCommand(
            t=now,
            steer=float(steer_value(js.get_axis(c.steer.axis), c.steer))
            if c.steer.axis is not None
            else 0.0,
            throttle=float(pedal_value(js.get_axis(c.throttle.axis), c.throttle))
            if c.throttle.axis is not None
            else 0.0,
            brake=float(pedal_value(js.get_axis(c.brake.axis), c.brake))
            if c.brake.axis is not None
            else 0.0,
            takeover=held(c.buttons.takeover),
            hand_back=held(c.buttons.hand_back),
            emergency_stop=held(c.buttons.emergency_stop),
        )

    def close(self) -> None:
        """Nothing to release: SDL closes joysticks at quit."""


__all__ = ["JoystickDevice", "JoystickSnapshot", "init_joysticks", "joystick_snapshots"]
