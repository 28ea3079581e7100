"""A virtual SDL joystick, for tests and benchmarks that drive the real pygame code path.

SDL 2.24+ can attach joysticks that exist only in software (``SDL_JoystickAttachVirtualEx``)
and set their axes and buttons (``SDL_JoystickSetVirtualAxis/Button``); pygame then sees them
exactly like hardware: ``JOYDEVICEADDED``, ``JOYAXISMOTION``, ``get_axis``, ``JOYDEVICEREMOVED``
on detach. pygame does not wrap these calls, so they go through ``ctypes`` to the *same*
``libSDL2`` that pygame loaded (found in ``/proc/self/maps`` and opened with ``RTLD_NOLOAD``, so
no second copy of SDL with its own joystick list is loaded). Linux only, like ``/proc``.

Raw values: an axis value ``v`` in [-1, 1] is sent as ``round(v * 32768)`` clipped to the
Sint16 range; pygame reads it back as ``raw / 32768``, so -1 reads -1.0 and +1 reads 0.99997,
as with hardware.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from policy.override.joystick import init_joysticks

SDL_JOYSTICK_TYPE_UNKNOWN = 0
SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
SDL_JOYSTICK_TYPE_WHEEL = 2
SDL_VIRTUAL_JOYSTICK_DESC_VERSION = 1
AXIS_MAX = 32767  # SDL axis values are Sint16
_SDL_NAME = re.compile(r"^libSDL2-2[.-]")  # libSDL2-2.0.so.0 or pygame's libSDL2-2-<hash>.0.so


class _Desc(ctypes.Structure):
    """``SDL_VirtualJoystickDesc`` (SDL 2.24, ``SDL_VIRTUAL_JOYSTICK_DESC_VERSION`` 1)."""

    _fields_ = [
        ("version", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16),
        ("nhats", ctypes.c_uint16),
        ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16),
        ("padding", ctypes.c_uint16),
        ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p),
        ("SetPlayerIndex", ctypes.c_void_p),
        ("Rumble", ctypes.c_void_p),
        ("RumbleTriggers", ctypes.c_void_p),
        ("SetLED", ctypes.c_void_p),
        ("SendEffect", ctypes.c_void_p),
    ]


def sdl_library() -> ctypes.CDLL:
    """The libSDL2 already mapped into this process by pygame.

    Raises:
        RuntimeError: no libSDL2 is mapped (pygame not imported), or it lacks the virtual
            joystick API (SDL < 2.24).
    """
    init_joysticks()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and _SDL_NAME.match(os.path.basename(parts[-1])):
            lib = ctypes.CDLL(parts[-1], mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
            if not hasattr(lib, "SDL_JoystickAttachVirtualEx"):
                raise RuntimeError(f"{parts[-1]}: SDL < 2.24 has no virtual joysticks")
            lib.SDL_JoystickAttachVirtualEx.argtypes = [ctypes.POINTER(_Desc)]
            lib.SDL_JoystickAttachVirtualEx.restype = ctypes.c_int
            lib.SDL_JoystickOpen.argtypes = [ctypes.c_int]
            lib.SDL_JoystickOpen.restype = ctypes.c_void_p
            lib.SDL_JoystickClose.argtypes = [ctypes.c_void_p]
            lib.SDL_JoystickSetVirtualAxis.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_int16,
            ]
            lib.SDL_JoystickSetVirtualButton.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_uint8,
            ]
            lib.SDL_JoystickDetachVirtual.argtypes = [ctypes.c_int]
            lib.SDL_JoystickInstanceID.argtypes = [ctypes.c_void_p]
            lib.SDL_JoystickInstanceID.restype = ctypes.c_int32
            lib.SDL_JoystickGetDeviceInstanceID.argtypes = [ctypes.c_int]
            lib.SDL_JoystickGetDeviceInstanceID.restype = ctypes.c_int32
            lib.SDL_GetError.restype = ctypes.c_char_p
            return lib
    raise RuntimeError("libSDL2 is not mapped into this process (is pygame imported?)")


class VirtualJoystick:
    """A software joystick pygame sees as real (see the module docstring).

    Args:
        name: the name pygame reports (``get_name``).
        axes, buttons, hats: how many of each.
        initial_axes: starting values in [-1, 1] per axis index (default 0), e.g. ``{2: 1.0}``
            for a released G29 pedal.
        kind: ``SDL_JOYSTICK_TYPE_*``.

    Raises:
        RuntimeError: SDL refused to attach it (the message carries ``SDL_GetError``).
    """

    def __init__(
        self,
        name: str = "Virtual Gamepad",
        axes: int = 6,
        buttons: int = 12,
        hats: int = 0,
        initial_axes: dict[int, float] | None = None,
        kind: int = SDL_JOYSTICK_TYPE_UNKNOWN,
    ) -> None:
        self.lib = sdl_library()
        self._name = name.encode()  # kept alive: SDL copies it, but only during the call
        desc = _Desc(
            version=SDL_VIRTUAL_JOYSTICK_DESC_VERSION,
            type=kind,
            naxes=axes,
            nbuttons=buttons,
            nhats=hats,
            name=self._name,
        )
        index = self.lib.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        if index < 0:
            raise RuntimeError(f"SDL_JoystickAttachVirtualEx: {self.lib.SDL_GetError().decode()}")
        self.device_index = int(index)
        self._ptr = self.lib.SDL_JoystickOpen(self.device_index)
        if not self._ptr:
            raise RuntimeError(f"SDL_JoystickOpen: {self.lib.SDL_GetError().decode()}")
        self.attached = True
        for a in range(axes):
            self.set_axis(a, (initial_axes or {}).get(a, 0.0))
        pygame.event.pump()  # SDL publishes the new device and its values on the next pump

    def set_axis(self, axis: int, value: float) -> None:
        """Move an axis to ``value`` in [-1, 1] (clipped)."""
        raw = max(-AXIS_MAX - 1, min(AXIS_MAX, round(value * (AXIS_MAX + 1))))
        if self.lib.SDL_JoystickSetVirtualAxis(self._ptr, axis, raw) < 0:
            raise RuntimeError(f"SDL_JoystickSetVirtualAxis({axis}): {self.lib.SDL_GetError()!r}")

    def set_button(self, button: int, pressed: bool) -> None:
        """Press or release a button."""
        if self.lib.SDL_JoystickSetVirtualButton(self._ptr, button, int(pressed)) < 0:
            raise RuntimeError(
                f"SDL_JoystickSetVirtualButton({button}): {self.lib.SDL_GetError()!r}"
            )

    def detach(self) -> None:
        """Unplug it: pygame gets ``JOYDEVICEREMOVED`` on the next pump."""
        if not self.attached:
            return
        self.attached = False
        # Device indices shift when other joysticks go away; the instance id does not.
        instance = self.lib.SDL_JoystickInstanceID(self._ptr)
        index = next(
            i
            for i in range(self.lib.SDL_NumJoysticks())
            if self.lib.SDL_JoystickGetDeviceInstanceID(i) == instance
        )
        self.lib.SDL_JoystickClose(self._ptr)
        self.lib.SDL_JoystickDetachVirtual(index)


__all__ = [
    "SDL_JOYSTICK_TYPE_GAMECONTROLLER",
    "SDL_JOYSTICK_TYPE_UNKNOWN",
    "SDL_JOYSTICK_TYPE_WHEEL",
    "VirtualJoystick",
    "sdl_library",
]
