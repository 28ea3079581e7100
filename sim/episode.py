"""Per-episode metrics and events from the per-step outcomes (batched accumulators).

:class:`EpisodeTracker` is the stateful edge around :func:`sim.metrics.evaluate`: it accumulates
B running episodes and turns their steps into one row of metrics per finished episode and a
stream of events (for ``events.jsonl``). Runners (``gendrive run``, ``evaluate``, ``drive``) use
it; the env does not, so training pays nothing for it.

Counting rules:

- Collisions within 5 m of the previous one, or with the same actor within 5 s, count once
  (CARLA Leaderboard rule). Collisions are typed by the other actor (vehicle, pedestrian) and
  road-edge contact of the ego's box counts as a collision with the layout ("static").
- A near miss is a TTC dip below ``near_miss_ttc_s`` that recovers without a collision.
- Hard braking, lane invasions (the ego's centre crossing a marking) and wrong-way driving are
  counted on their rising edges.
- Minimum speed (Leaderboard 2.0/2.1): every ``min_speed_checkpoint_m`` of route progress the
  ego's mean speed is compared with the mean speed of the traffic within
  ``min_speed_radius_m``; slower than the traffic is an infraction with its percentage.
- Route completion uses the Leaderboard rule (>= 99 % or within 10 m of the end); both driving
  scores come from :mod:`sim.scores`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.metrics import TERM_NAMES, Outcome
from sim.scores import RouteRecord, driving_scores
from sim.state import ActorType, WorldState

COLLISION_SAME_PLACE_M = 5.0  # [m] Leaderboard: a collision this close to the last counts once
COLLISION_SAME_ACTOR_S = 5.0  # [s] ... as does one with the same actor within this time


@dataclass(frozen=True)
class TrackerConfig:
    """Episode-level counting parameters."""

    near_miss_ttc_s: float = 1.5  # [s]
    min_speed_checkpoint_m: float = 100.0  # [m] of route progress between speed checks
    min_speed_radius_m: float = 50.0  # [m] traffic this close defines the expected speed


END_REASONS = ("completed", "collision", "off_road", "route_deviation", "blocked", "timeout")


class EpisodeTracker:
    """Accumulates B running episodes (see module docstring)."""

    def __init__(
        self, num_envs: int, cfg: TrackerConfig | None = None, co2_g_per_l: float = 0.0
    ) -> None:
        """Args: num_envs: B. cfg: counting parameters. co2_g_per_l: the fuel's CO2 factor."""
        self.B = num_envs
        self.cfg = cfg or TrackerConfig()
        self.co2_g_per_l = co2_g_per_l
        self.episode = np.zeros(num_envs, np.int64)
        self._arrays: dict[str, NDArray[Any]] = {}
        self._collisions: list[list[tuple[float, float, float, int]]] = [
            [] for _ in range(num_envs)
        ]
        self._min_speed: list[list[float]] = [[] for _ in range(num_envs)]
        self.reset(np.ones(num_envs, np.bool_))

    _FLOAT_FIELDS = (
        "time_s",
        "odometer_m",
        "speed_sum",
        "speed_ratio_sum",
        "stopped_s",
        "fuel_ml",
        "off_road_m",
        "headway_sum",
        "jerk_abs_sum",
        "jerk_abs_max",
        "wrong_way_s",
        "ckpt_ego_speed",
        "ckpt_traffic_speed",
        "ckpt_steps",
        "next_ckpt_m",
        "return",
        "completion_time_s",
        "energy_j",
    )
    _INT_FIELDS = (
        "steps",
        "headway_n",
        "hard_brakes",
        "lane_invasions",
        "near_misses",
        "collisions_vehicle",
        "collisions_pedestrian",
        "collisions_layout",
        "red_light",
    )
    _BOOL_FIELDS = ("in_near", "near_hit", "was_hard", "was_wrong", "was_edge")

    def reset(self, mask: NDArray[np.bool_]) -> None:
        """Start fresh accumulators for the environments in ``mask`` (B,)."""
        a = self._arrays
        for k in self._FLOAT_FIELDS:
            a.setdefault(k, np.zeros(self.B))[mask] = 0.0
        for k in self._INT_FIELDS:
            a.setdefault(k, np.zeros(self.B, np.int64))[mask] = 0
        for k in self._BOOL_FIELDS:
            a.setdefault(k, np.zeros(self.B, np.bool_))[mask] = False
        a.setdefault("min_ttc_s", np.full(self.B, np.inf))[mask] = np.inf
        a.setdefault("min_headway_s", np.full(self.B, np.inf))[mask] = np.inf
        a["next_ckpt_m"][mask] = self.cfg.min_speed_checkpoint_m
        a["completion_time_s"][mask] = np.nan
        for name in TERM_NAMES:
            a.setdefault(f"term_{name}", np.zeros(self.B))[mask] = 0.0
        for b in np.nonzero(mask)[0]:
            self._collisions[b] = []
            self._min_speed[b] = []

    def update(
        self,
        prev: WorldState,
        nxt: WorldState,
        out: Outcome,
        reward: NDArray[np.floating],
        active: NDArray[np.bool_],
    ) -> list[dict[str, Any]]:
        """Fold one step into the running episodes; return the events it raised.

        Args:
            prev, nxt: the states around the step.
            out: :func:`sim.metrics.evaluate` of that step.
            reward: the step's reward (B,).
            active: environments whose episode is running (others are ignored).
        """
        a = self._arrays
        act = active
        dt = (nxt.time - prev.time).astype(np.float64)
        v = nxt.speed[:, 0].astype(np.float64)

        def add(key: str, value: NDArray[Any]) -> None:
            a[key] += np.where(act, value, 0)

        add("steps", np.ones(self.B, np.int64))
        add("time_s", dt)
        add("return", np.asarray(reward, np.float64))
        add("odometer_m", v * dt)
        add("speed_sum", v)
        add("speed_ratio_sum", v / np.maximum(out.speed_limit, 0.1))
        add("stopped_s", np.where(v < 0.1, dt, 0.0))
        add("fuel_ml", out.terms["fuel"])
        add("energy_j", out.energy_rate * dt)
        add("off_road_m", np.where(out.off_road, np.maximum(out.terms["progress"], 0.0), 0.0))
        for name, value in out.terms.items():
            add(f"term_{name}", value)
        first_done = act & out.route_completed & np.isnan(a["completion_time_s"])
        a["completion_time_s"] = np.where(first_done, a["time_s"], a["completion_time_s"])
        fin = np.isfinite(out.headway)
        add("headway_sum", np.where(fin, out.headway, 0.0))
        add("headway_n", fin.astype(np.int64))
        a["min_headway_s"] = np.where(
            act, np.minimum(a["min_headway_s"], out.headway), a["min_headway_s"]
        )
        a["min_ttc_s"] = np.where(act, np.minimum(a["min_ttc_s"], out.ttc), a["min_ttc_s"])
        ajerk = np.abs(out.jerk).astype(np.float64)
        add("jerk_abs_sum", ajerk)
        a["jerk_abs_max"] = np.where(act, np.maximum(a["jerk_abs_max"], ajerk), a["jerk_abs_max"])
        add("wrong_way_s", np.where(out.wrong_way, dt, 0.0))
        add("lane_invasions", out.lane_change.astype(np.int64))

        events: list[dict[str, Any]] = []

        def event(b: int, kind: str, **kw: Any) -> None:
            events.append(
                {
                    "episode": int(self.episode[b]),
                    "env": int(b),
                    "type": kind,
                    "t": round(float(nxt.time[b]), 3),
                    "x": round(float(nxt.x[b, 0]), 3),
                    "y": round(float(nxt.y[b, 0]), 3),
                    "speed_mps": round(float(v[b]), 3),
                    **kw,
                }
            )

        # Rising edges: hard braking, wrong way, road-edge contact.
        hard_start = act & out.hard_brake & ~a["was_hard"]
        add("hard_brakes", hard_start.astype(np.int64))
        for b in np.nonzero(hard_start)[0]:
            event(int(b), "hard_brake", accel_mps2=round(float(nxt.accel[b, 0]), 3))
        for b in np.nonzero(act & out.wrong_way & ~a["was_wrong"])[0]:
            event(int(b), "wrong_way")
        for b in np.nonzero(act & out.lane_change)[0]:
            event(
                int(b), "lane_invasion", from_lane=int(prev.lane[b, 0]), to_lane=int(nxt.lane[b, 0])
            )
        edge_start = act & out.road_edge & ~a["was_edge"]
        a["was_hard"], a["was_wrong"], a["was_edge"] = out.hard_brake, out.wrong_way, out.road_edge

        # Collisions (deduplicated), vehicles/pedestrians by actor, the road edge as layout.
        for b in np.nonzero(act & (out.collision | edge_start))[0]:
            hits = [int(j) for j in np.nonzero(out.collided_with[b, 1:])[0] + 1]
            if out.road_edge[b] and edge_start[b]:
                hits.append(-1)
            for j in hits:
                if self._is_new_collision(
                    int(b), float(nxt.time[b]), float(nxt.x[b, 0]), float(nxt.y[b, 0]), j
                ):
                    if j < 0:
                        kind = "collisions_layout"
                    elif nxt.actor_type[b, j] == ActorType.PEDESTRIAN:
                        kind = "collisions_pedestrian"
                    else:
                        kind = "collisions_vehicle"
                    a[kind][b] += 1
                    extra: dict[str, Any] = {"collision": kind.removeprefix("collisions_")}
                    if j >= 0:
                        extra.update(actors=[j], other_speed_mps=round(float(nxt.speed[b, j]), 3))
                    event(int(b), "collision", **extra)

        # Near misses: a TTC dip that recovers without a collision.
        low = out.ttc < self.cfg.near_miss_ttc_s
        start = act & low & ~a["in_near"]
        a["near_hit"] = np.where(start, False, a["near_hit"]) | (act & out.collision)
        recover = act & ~low & a["in_near"]
        miss = recover & ~a["near_hit"]
        add("near_misses", miss.astype(np.int64))
        for b in np.nonzero(miss)[0]:
            event(int(b), "near_miss", min_ttc_s=round(float(a["min_ttc_s"][b]), 3))
        a["in_near"] = np.where(act, low, a["in_near"])

        # Minimum-speed checkpoints.
        dx = nxt.x - nxt.x[:, :1]
        dy = nxt.y - nxt.y[:, :1]
        near = nxt.valid & (dx * dx + dy * dy <= self.cfg.min_speed_radius_m**2)
        near[:, 0] = False
        n_near = near.sum(1)
        traffic_v = np.where(n_near > 0, (nxt.speed * near).sum(1) / np.maximum(n_near, 1), np.nan)
        has_tr = np.isfinite(traffic_v)
        add("ckpt_ego_speed", np.where(has_tr, v, 0.0))
        add("ckpt_traffic_speed", np.where(has_tr, traffic_v, 0.0))
        add("ckpt_steps", has_tr.astype(np.float64))
        cross = act & (nxt.progress >= a["next_ckpt_m"])
        for b in np.nonzero(cross)[0]:
            if a["ckpt_steps"][b] > 0 and a["ckpt_traffic_speed"][b] > 0:
                pct = 100.0 * a["ckpt_ego_speed"][b] / a["ckpt_traffic_speed"][b]
                if pct < 100.0:
                    self._min_speed[b].append(pct)
                    event(int(b), "min_speed", percentage=round(pct, 2))
            a["ckpt_ego_speed"][b] = a["ckpt_traffic_speed"][b] = a["ckpt_steps"][b] = 0.0
            a["next_ckpt_m"][b] += self.cfg.min_speed_checkpoint_m

        ran = act & (out.terms["red_light"] > 0)
        add("red_light", ran.astype(np.int64))
        for b in np.nonzero(ran)[0]:
            event(int(b), "red_light", lane=int(prev.lane[b, 0]))
        for b in np.nonzero(act & out.off_road)[0]:
            event(int(b), "off_road")
        for b in np.nonzero(act & out.route_deviation)[0]:
            event(int(b), "route_deviation", off_route_m=round(float(nxt.off_route_m[b]), 2))
        for b in np.nonzero(act & out.blocked)[0]:
            event(int(b), "blocked", stopped_s=round(float(nxt.stopped_s[b]), 1))
        return events

    def _is_new_collision(self, b: int, t: float, x: float, y: float, actor: int) -> bool:
        recent = self._collisions[b]
        for t0, x0, y0, a0 in recent:
            if math.hypot(x - x0, y - y0) <= COLLISION_SAME_PLACE_M:
                return False
            if a0 == actor and t - t0 <= COLLISION_SAME_ACTOR_S:
                return False
        recent.append((t, x, y, actor))
        return True

    def finish(self, b: int, nxt: WorldState, out: Outcome) -> dict[str, Any]:
        """The metrics row of environment ``b``'s episode that ended at ``nxt``."""
        a = self._arrays
        steps = max(int(a["steps"][b]), 1)
        route_len = float(nxt.route.length[b])
        progress = float(max(nxt.progress[b], 0.0))
        km = float(a["odometer_m"][b]) / 1000.0
        litres = float(a["fuel_ml"][b]) / 1000.0
        infractions = {
            k: int(a[k][b])
            for k in (
                "collisions_vehicle",
                "collisions_pedestrian",
                "collisions_layout",
                "red_light",
            )
        }
        off_pct = 100.0 * float(a["off_road_m"][b]) / route_len
        scores = driving_scores(
            RouteRecord(route_len, progress, infractions, tuple(self._min_speed[b]), off_pct)
        )
        if out.route_completed[b] or progress >= route_len - 10.0:
            reason = "completed"
        elif out.collision[b]:
            reason = "collision"
        elif out.off_road[b]:
            reason = "off_road"
        elif out.route_deviation[b]:
            reason = "route_deviation"
        elif out.blocked[b]:
            reason = "blocked"
        else:
            reason = "timeout"
        done_t = a["completion_time_s"][b]
        hw_n = int(a["headway_n"][b])

        def r(x: float, n: int = 4) -> float:
            return round(float(x), n) if math.isfinite(x) else float(x)

        row: dict[str, Any] = {
            "episode": int(self.episode[b]),
            "env": int(b),
            "end_reason": reason,
            "return": r(a["return"][b]),
            "steps": int(a["steps"][b]),
            "time_s": r(a["time_s"][b], 3),
            "travel_time_s": r(done_t if math.isfinite(done_t) else a["time_s"][b], 3),
            "progress_m": r(progress, 3),
            "route_length_m": r(route_len, 3),
            **{k: r(v) for k, v in scores.items()},
            "completed": int(reason == "completed"),
            "mean_speed_mps": r(a["speed_sum"][b] / steps),
            "mean_speed_ratio": r(a["speed_ratio_sum"][b] / steps),
            "time_stopped_s": r(a["stopped_s"][b], 3),
            "distance_km": r(km, 5),
            "fuel_l": r(litres, 5),
            "fuel_l_per_100km": r(100.0 * litres / km if km > 1e-3 else math.nan),
            "co2_g_per_km": r(litres * self.co2_g_per_l / km if km > 1e-3 else math.nan, 2),
            "energy_kwh": r(float(a["energy_j"][b]) / 3.6e6, 5),
            "energy_kwh_per_100km": r(
                float(a["energy_j"][b]) / 3.6e6 / km * 100.0 if km > 1e-3 else math.nan
            ),
            **infractions,
            "collision": int(out.collision[b]),
            "off_road": int(out.off_road[b]),
            "off_road_pct": r(off_pct),
            "red_light": int(a["red_light"][b]),
            "min_speed_infractions": len(self._min_speed[b]),
            "route_deviation": int(out.route_deviation[b]),
            "blocked": int(out.blocked[b]),
            "truncated": int(out.truncated[b]),
            "wrong_way_s": r(a["wrong_way_s"][b], 3),
            "lane_invasions": int(a["lane_invasions"][b]),
            "min_ttc_s": r(a["min_ttc_s"][b], 3),
            "mean_headway_s": r(a["headway_sum"][b] / hw_n if hw_n else math.inf, 3),
            "min_headway_s": r(a["min_headway_s"][b], 3),
            "hard_brakes": int(a["hard_brakes"][b]),
            "near_misses": int(a["near_misses"][b]),
            "mean_abs_jerk": r(a["jerk_abs_sum"][b] / steps),
            "max_abs_jerk": r(a["jerk_abs_max"][b]),
            **{f"term_{n}": r(a[f"term_{n}"][b]) for n in TERM_NAMES},
        }
        return row
