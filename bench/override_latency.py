"""Input-to-actuation latency of the live ``gendrive drive`` loop; prints one JSON line.

The real loop runs in real time at 20 Hz (``sim.dt = 0.05``) with its window (SDL's dummy video
driver unless a display is set), rendering and logging included, the rule-based policy, the
highway scenario, and a virtual SDL joystick with the gamepad preset as the human's device. A
second thread moves the throttle trigger between two pressed positions at random moments, the
way a hand does, while the main thread drives. Two latencies are reported:

- ``read_to_actuation_ms``: from the moment a tick reads the input (``pygame.event.get`` and
  the device poll) to the moment the simulator has executed the resulting action
  (``env.advance`` returned), every tick. This is the override's own latency; the target is
  < 20 ms at 20 Hz.
- ``event_to_actuation_ms``: from the moment the trigger moved to the actuation of the first
  tick that read it. It adds the wait for the next tick, up to one period (50 ms) and 25 ms on
  average, which no arbitration can remove at a 20 Hz tick; it is reported for completeness.

Each injection is checked to have been executed by exactly the tick that first read it
(``late`` counts those that were not: the zero-added-ticks rule, measured live).

Usage: ``python bench/override_latency.py [--seconds 10] [--seed 0]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from io import StringIO
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR
from gendrive.config import register_configs
from gendrive.drive import drive
from policy.override.virtual import VirtualJoystick

TICK_HZ = 20
TARGET_MS = 20.0  # [ms] read-to-actuation budget at 20 Hz (40 % of a tick)
THROTTLE_AXIS = 5  # the gamepad preset's right trigger
LEVELS = (0.0, 0.5)  # raw trigger positions: both pressed, so the human keeps driving


def pct(values_s: list[float]) -> dict[str, float]:
    ms = np.asarray(values_s) * 1e3
    if ms.size == 0:
        return {}
    return {
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "p99": round(float(np.percentile(ms, 99)), 3),
        "max": round(float(ms.max()), 3),
        "n": int(ms.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="real-time session length [s]")
    ap.add_argument("--seed", type=int, default=0, help="injection timing seed")
    args = ap.parse_args()

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="drive",
            overrides=[
                "input=gamepad",
                f"sim.dt={1.0 / TICK_HZ}",
                f"duration_s={args.seconds}",
                "realtime=true",
                "input.stale_timeout_s=null",  # a virtual trigger held still must not go stale
            ],
        )
    typed = OmegaConf.to_object(cfg)
    pad = VirtualJoystick("Virtual Xbox Pad", axes=6, buttons=12, initial_axes={4: -1.0, 5: -1.0})
    pad.set_axis(THROTTLE_AXIS, LEVELS[0])  # pressed from the start: the human drives

    injections: list[tuple[float, int]] = []  # (perf_counter, level index)
    stop = threading.Event()
    rng = random.Random(args.seed)

    def hand() -> None:
        level = 0
        time.sleep(1.0)  # let the session start
        while not stop.is_set():
            stop.wait(rng.uniform(0.12, 0.33))  # not a multiple of the tick: random phase
            level = 1 - level
            injections.append((time.perf_counter(), level))
            pad.set_axis(THROTTLE_AXIS, LEVELS[level])

    ticks: list[tuple[float, float]] = []
    worker = threading.Thread(target=hand, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        worker.start()
        try:
            summary = drive(typed, Path(tmp), log=StringIO(), tick_times=ticks)  # type: ignore[arg-type]
        finally:
            stop.set()
            worker.join()
            pad.detach()
        steps = list(csv.DictReader((Path(tmp) / "steps.csv").open()))
    accel = [float(r["human_accel"]) for r in steps]

    reads = np.array([t for t, _ in ticks])
    read_to_act = [a - r for r, a in ticks]
    event_to_act: list[float] = []
    late = 0
    for k, (t_inj, _) in enumerate(injections):
        i = int(np.searchsorted(reads, t_inj))  # first tick that read after the move
        if i >= len(ticks) or (k + 1 < len(injections) and injections[k + 1][0] < reads[i]):
            continue  # undone before any tick read it (or after the session)
        event_to_act.append(ticks[i][1] - t_inj)
        # The tick that read it executed it: the command changed exactly there.
        if i == 0 or accel[i] == accel[i - 1]:
            late += 1
    r2a = pct(read_to_act)
    print(
        json.dumps(
            {
                "bench": "override_latency",
                "tick_hz": TICK_HZ,
                "seconds": args.seconds,
                "ticks": summary["ticks"],
                "overruns": summary["overruns"],
                "read_to_actuation_ms": r2a,
                "event_to_actuation_ms": pct(event_to_act),
                "injections": len(event_to_act),
                "late": late,
                "target_ms": TARGET_MS,
                "target_met": bool(r2a and r2a["max"] < TARGET_MS),
                "window": f"{typed.window.width}x{typed.window.height}",
                "video_driver": os.environ.get("SDL_VIDEODRIVER", ""),
                "python": platform.python_version(),
                "cpu": platform.processor() or platform.machine(),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
