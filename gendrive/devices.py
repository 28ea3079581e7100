"""``gendrive devices``: list connected joysticks, gamepads and wheels, live.

For writing an ``input=`` mapping: every joystick with its index, name, axes, buttons and hats,
refreshed every ``interval_s``; each axis also shows the range it has covered since the
listing started, so pressing a pedal once tells its axis number and its released and pressed
values (a G29 pedal: ``+1.000`` released, ``-1.000`` pressed). ``once=true`` prints one
snapshot and exits; ``json=true`` prints one JSON object per snapshot. No window is opened
(SDL's dummy video driver), and nothing is written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any, TextIO

from gendrive.drive_config import DevicesConfig


def format_snapshots(snaps: list[Any], ranges: dict[tuple[int, int], list[float]] | None) -> str:
    """A readable listing; with ``ranges`` ((joystick, axis) -> [min, max]) one line per axis."""
    if not snaps:
        return "no joysticks connected (plug one in; a wheel may need its driver or power)"
    lines = [f"{len(snaps)} joystick(s) connected"]
    for s in snaps:
        lines.append(f"[{s.index}] {s.name}   guid {s.guid}")
        if ranges is None:
            axes = "  ".join(f"{i}:{v:+.3f}" for i, v in enumerate(s.axes))
            lines.append(f"    axes ({len(s.axes)}): {axes}")
        else:
            lines.append(f"    axes ({len(s.axes)}):")
            for i, v in enumerate(s.axes):
                lo, hi = ranges.get((s.index, i), [v, v])
                lines.append(f"      axis {i:2d} {v:+.3f}   seen {lo:+.3f} .. {hi:+.3f}")
        pressed = [str(i) for i, b in enumerate(s.buttons) if b]
        lines.append(
            f"    buttons ({len(s.buttons)}): pressed {' '.join(pressed) if pressed else '-'}"
        )
        if s.hats:
            hats = "  ".join(f"{i}:{h}" for i, h in enumerate(s.hats))
            lines.append(f"    hats ({len(s.hats)}): {hats}")
    return "\n".join(lines)


def list_devices(cfg: DevicesConfig, log: TextIO = sys.stdout) -> list[Any]:
    """Print the listing (once, or live until ``duration_s`` or Ctrl-C); the last snapshot."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # listing needs SDL events, not a window
    import pygame

    from policy.override.joystick import init_joysticks, joystick_snapshots

    if not cfg.interval_s > 0:
        raise ValueError(f"interval_s: expected > 0 s, got {cfg.interval_s}")
    init_joysticks()
    ranges: dict[tuple[int, int], list[float]] = {}
    live_tty = not cfg.once and not cfg.json and log.isatty()
    t0 = time.monotonic()
    while True:
        pygame.event.get()  # hotplug and fresh axis values
        snaps = joystick_snapshots()
        for s in snaps:
            for i, v in enumerate(s.axes):
                r = ranges.setdefault((s.index, i), [v, v])
                r[0], r[1] = min(r[0], v), max(r[1], v)
        if cfg.json:
            print(
                json.dumps(
                    {"t": round(time.monotonic() - t0, 3), "joysticks": [asdict(s) for s in snaps]}
                ),
                file=log,
            )
        else:
            text = format_snapshots(snaps, None if cfg.once else ranges)
            if live_tty:
                text = "\x1b[H\x1b[2J" + text + "\n(move a control to find its number; Ctrl-C)"
            print(text, file=log)
        log.flush()
        if cfg.once or (cfg.duration_s is not None and time.monotonic() - t0 >= cfg.duration_s):
            return snaps
        time.sleep(cfg.interval_s)


def main(cfg: Any) -> None:
    """Hydra entry: list the devices; Ctrl-C ends the live listing normally."""
    from omegaconf import OmegaConf

    typed: DevicesConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    try:
        list_devices(typed)
    except KeyboardInterrupt:
        pass
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["format_snapshots", "list_devices", "main"]
