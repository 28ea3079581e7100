"""Takeover events and per-episode override metrics (batched accumulators, like
:class:`sim.episode.EpisodeTracker`).

A *takeover* is one contiguous span of human control (HUMAN or ESTOP). It is written to
``events.jsonl`` when it ends, as one event::

    {"type": "takeover", "episode": 0, "env": 0, "t": 12.3, "x": ..., "y": ..., "speed_mps": ...,
     "ttc_s": 2.1, "trigger": ["steer"], "trigger_source": ["axis 0"],
     "policy_action": [s, a], "human_action": [s, a], "takeover_cost": 0.42,
     "duration_s": 4.5, "steps": 90, "t_end": 16.8, "ended": "hand_back"}

``t``, position, speed and TTC are those of the tick the human took over (before the step);
``ended`` is ``hand_back``, ``device_lost`` (the fail-safe took over), or ``episode_end:<reason>``
(the episode ended under human control, ``<reason>`` as in ``episodes.csv``), ``interrupted``.
Other arbiter and shield events (``hand_back_refused``, ``device_lost`` alerts,
``emergency_stop``, ``shield``, ...) are passed through with the episode, time and position
added.

Per-episode metrics (:meth:`TakeoverLog.finish`): ``takeovers``, ``takeovers_per_km``,
``human_time_s`` and ``human_time_frac`` (time under human control), ``failsafe_time_s``,
``shield_interventions`` (= ``aeb_interventions`` + ``invalid_actions``, each counted once per
contiguous intervention), ``failsafe_stops``, ``emergency_stops``, ``device_alerts``,
``hand_backs_refused``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from policy.override.supervisor import OverrideStep
from sim.state import WorldState

BoolArr = NDArray[np.bool_]

_COUNTS = {
    "failsafe": "failsafe_stops",
    "emergency_stop": "emergency_stops",
    "device_lost": "device_alerts",
    "hand_back_refused": "hand_backs_refused",
}
METRIC_KEYS = (
    "takeovers",
    "takeovers_per_km",
    "human_time_s",
    "human_time_frac",
    "failsafe_time_s",
    "shield_interventions",
    "aeb_interventions",
    "invalid_actions",
    *_COUNTS.values(),
)


def _r(x: float, n: int = 4) -> float | None:
    return round(float(x), n) if math.isfinite(x) else None


def _pair(a: NDArray[np.floating]) -> list[float | None]:
    return [_r(float(v)) for v in a]


class TakeoverLog:
    """Accumulates B running episodes (see the module docstring).

    Args:
        num_envs: B.
        source: maps a control name (``steer``, ``takeover``, ...) to its physical input on the
            device (``"axis 0"``), for ``trigger_source``; None: not recorded.
    """

    def __init__(self, num_envs: int, source: Callable[[str], str] | None = None) -> None:
        self.B = num_envs
        self.source = source
        self.episode = np.zeros(num_envs, np.int64)
        self._open: list[dict[str, Any] | None] = [None] * num_envs
        self._m: dict[str, NDArray[np.float64]] = {}
        self.reset(np.ones(num_envs, np.bool_))

    def reset(self, mask: BoolArr) -> None:
        """Fresh accumulators where ``mask`` (B,)."""
        for k in (
            "takeovers",
            "odometer_m",
            "time_s",
            "human_time_s",
            "failsafe_time_s",
            "aeb_interventions",
            "invalid_actions",
            *_COUNTS.values(),
        ):
            self._m.setdefault(k, np.zeros(self.B))[mask] = 0.0
        for b in np.nonzero(mask)[0]:
            self._open[int(b)] = None

    def _where(self, b: int, world: WorldState) -> dict[str, Any]:
        return {
            "episode": int(self.episode[b]),
            "env": b,
            "t": round(float(world.time[b]), 3),
            "x": round(float(world.x[b, 0]), 3),
            "y": round(float(world.y[b, 0]), 3),
            "speed_mps": round(float(world.speed[b, 0]), 3),
        }

    def _close(self, b: int, how: str, t_end: float) -> dict[str, Any]:
        ev = self._open[b]
        assert ev is not None
        self._open[b] = None
        ev["duration_s"] = round(t_end - ev["t"], 3)
        ev["t_end"] = round(t_end, 3)
        ev["ended"] = how
        return ev

    def update(
        self, step: OverrideStep, world: WorldState, nxt: WorldState, active: BoolArr
    ) -> list[dict[str, Any]]:
        """Fold one tick in; return the events to write.

        Args:
            step: the supervisor's output for this tick.
            world, nxt: the states before and after the step.
            active: environments whose episode is running.
        """
        m = self._m
        dt = (nxt.time - world.time).astype(np.float64)
        act = active

        def add(k: str, v: NDArray[Any]) -> None:
            m[k] += np.where(act, v, 0.0)

        add("time_s", dt)
        add("odometer_m", nxt.speed[:, 0] * dt)
        add("human_time_s", np.where(step.intervened, dt, 0.0))
        add("failsafe_time_s", np.where(step.failsafe, dt, 0.0))
        add("takeovers", step.takeover_start.astype(np.float64))

        out: list[dict[str, Any]] = []
        by_env: dict[int, list[dict[str, Any]]] = {}
        for e in step.events:
            by_env.setdefault(int(e["env"]), []).append(e)
        for b in map(int, np.nonzero(act & (step.takeover_end | step.takeover_start))[0]):
            types = {e["type"] for e in by_env.get(b, [])}
            if step.takeover_end[b] and self._open[b] is not None:
                how = "hand_back" if "hand_back" in types else "device_lost"
                out.append(self._close(b, how, float(world.time[b])))
            if step.takeover_start[b]:
                trig: list[str] = next(
                    (e["trigger"] for e in by_env.get(b, []) if e["type"] == "takeover_start"), []
                )
                ev: dict[str, Any] = {"type": "takeover", **self._where(b, world)}
                ev["ttc_s"] = _r(float(step.ttc[b]), 3)
                ev["trigger"] = trig
                if self.source is not None:
                    ev["trigger_source"] = [self.source(t) for t in trig]
                ev["policy_action"] = _pair(step.policy_action[b])
                ev["human_action"] = _pair(step.human_action[b])
                ev["takeover_cost"] = _r(float(step.takeover_cost[b]))
                ev["steps"] = 0
                self._open[b] = ev
        for b in map(int, np.nonzero(act & step.intervened)[0]):
            running = self._open[b]
            if running is not None:
                running["steps"] += 1
        for b, evs in by_env.items():
            if not act[b]:
                continue
            for e in evs:
                if e["type"] == "takeover_start":
                    continue  # becomes the takeover event when it ends
                if e["type"] == "shield":
                    key = "aeb_interventions" if e["kind"] == "aeb" else "invalid_actions"
                    m[key][b] += 1
                elif e["type"] in _COUNTS:
                    m[_COUNTS[e["type"]]][b] += 1
                extra = {k: v for k, v in e.items() if k not in ("env", "type")}
                out.append({"type": e["type"], **self._where(b, world), **extra})
        return out

    def close_open(self, b: int, how: str, nxt: WorldState) -> list[dict[str, Any]]:
        """End a takeover still open in environment ``b`` (episode end, interruption)."""
        if self._open[b] is None:
            return []
        return [self._close(b, how, float(nxt.time[b]))]

    def finish(self, b: int, reason: str, nxt: WorldState) -> tuple[dict[str, Any], list[Any]]:
        """Environment ``b``'s episode ended at ``nxt`` for ``reason``.

        Returns:
            (the metrics of the module docstring, the events closing an open takeover).
        """
        events = self.close_open(b, f"episode_end:{reason}", nxt)
        m = self._m
        km = m["odometer_m"][b] / 1000.0
        t = m["time_s"][b]
        row = {
            "takeovers": int(m["takeovers"][b]),
            "takeovers_per_km": _r(m["takeovers"][b] / km) if km > 1e-3 else None,
            "human_time_s": _r(m["human_time_s"][b], 3),
            "human_time_frac": _r(m["human_time_s"][b] / t) if t > 0 else None,
            "failsafe_time_s": _r(m["failsafe_time_s"][b], 3),
            "shield_interventions": int(m["aeb_interventions"][b] + m["invalid_actions"][b]),
            "aeb_interventions": int(m["aeb_interventions"][b]),
            "invalid_actions": int(m["invalid_actions"][b]),
            **{k: int(m[k][b]) for k in _COUNTS.values()},
        }
        return row, events


__all__ = ["METRIC_KEYS", "TakeoverLog"]
