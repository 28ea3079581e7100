"""``gendrive run``: headless episodes on the embedded simulator with a built-in driver.

Runs ``episodes`` episodes on ``num_envs`` parallel environments; episode ``e`` is reset with seed
``seed + e``, so any row of ``episodes.csv`` can be replayed alone. Writes into the run directory
(Hydra's ``outputs/<date>/<time>`` unless ``hydra.run.dir=...``):

- ``episodes.csv``: one row per episode with every metric (appended and flushed as episodes end,
  so an interrupted run keeps what finished);
- ``events.jsonl``: collisions and off-road exits with time, position and actors involved;
- ``metrics.json``: the summary (written atomically at the end, and on Ctrl-C);
- ``videos/episode_XXXX.mp4``: bird's-eye views of the first ``video.episodes`` episodes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from gendrive.config import RunConfig
from sim.env import DriveVectorEnv
from sim.metrics import TERM_NAMES, RewardWeights
from sim.scenario import ScenarioSpec, SpecError, load_spec, spec_from_dict

EPISODE_COLUMNS = [
    "episode",
    "env",
    "seed",
    "scenario",
    "return",
    "steps",
    "time_s",
    "progress_m",
    "route_length_m",
    "route_completion_pct",
    "completed",
    "collision",
    "off_road",
    "truncated",
    "mean_speed_mps",
    "max_speed_mps",
    "nan_actions",
    *[f"term_{n}" for n in TERM_NAMES],
]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def scenario_from_config(cfg: RunConfig) -> ScenarioSpec:
    """The spec from ``scenario_file`` or the ``scenario`` group; errors name the source."""
    if cfg.scenario_file:
        return load_spec(cfg.scenario_file)
    return spec_from_dict(dict(cfg.scenario), source="config 'scenario'")


@dataclass
class _Acc:
    """Per-env accumulators of the running episode."""

    B: int
    ret: NDArray[np.float64] = field(init=False)
    steps: NDArray[np.int64] = field(init=False)
    speed_sum: NDArray[np.float64] = field(init=False)
    speed_max: NDArray[np.float64] = field(init=False)
    nan: NDArray[np.int64] = field(init=False)
    terms: dict[str, NDArray[np.float64]] = field(init=False)

    def __post_init__(self) -> None:
        self.reset(np.ones(self.B, np.bool_))

    def reset(self, mask: NDArray[np.bool_]) -> None:
        if not hasattr(self, "ret"):
            self.ret = np.zeros(self.B)
            self.steps = np.zeros(self.B, np.int64)
            self.speed_sum = np.zeros(self.B)
            self.speed_max = np.zeros(self.B)
            self.nan = np.zeros(self.B, np.int64)
            self.terms = {n: np.zeros(self.B) for n in TERM_NAMES}
        for a in (self.ret, self.speed_sum, self.speed_max, *self.terms.values()):
            a[mask] = 0.0
        self.steps[mask] = 0
        self.nan[mask] = 0


def _summary(rows: list[dict[str, Any]], wall_s: float, env_steps: int) -> dict[str, Any]:
    def mean(key: str) -> float:
        return float(np.mean([float(r[key]) for r in rows])) if rows else math.nan

    return {
        "episodes": len(rows),
        "route_completion_pct": mean("route_completion_pct"),
        "success_rate": mean("completed"),
        "collision_rate": mean("collision"),
        "off_road_rate": mean("off_road"),
        "timeout_rate": mean("truncated"),
        "mean_return": mean("return"),
        "mean_speed_kmh": mean("mean_speed_mps") * 3.6,
        "mean_episode_time_s": mean("time_s"),
        "env_steps": env_steps,
        "wall_time_s": wall_s,
        "env_steps_per_s": env_steps / max(wall_s, 1e-9),
    }


def format_table(summary: dict[str, Any], title: str) -> str:
    """A fixed-width summary table for the terminal."""
    lines = [title, "-" * 44]
    fmt = {
        "episodes": "{:.0f}",
        "route_completion_pct": "{:.1f} %",
        "success_rate": "{:.1%}",
        "collision_rate": "{:.1%}",
        "off_road_rate": "{:.1%}",
        "timeout_rate": "{:.1%}",
        "mean_return": "{:.2f}",
        "mean_speed_kmh": "{:.1f} km/h",
        "mean_episode_time_s": "{:.1f} s",
        "env_steps_per_s": "{:.0f}",
    }
    for k, f in fmt.items():
        v = summary.get(k, math.nan)
        lines.append(f"{k:<24}{f.format(v) if isinstance(v, int | float) else v:>20}")
    return "\n".join(lines)


def run(cfg: RunConfig, out_dir: Path, log: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the episodes and write the run directory. Returns the summary."""
    from policy.rule_based import Driver, RuleBasedDriver, RuleBasedParams, make_driver

    spec = scenario_from_config(cfg)
    if cfg.episodes < 1 or cfg.num_envs < 1:
        raise ValueError(f"episodes and num_envs must be >= 1, got {cfg.episodes}, {cfg.num_envs}")
    if cfg.sim.backend != "embedded":
        raise ValueError(
            f"sim.backend: 'gendrive run' drives the embedded simulator; got {cfg.sim.backend!r}"
        )
    B = min(cfg.num_envs, cfg.episodes)
    env = DriveVectorEnv(
        num_envs=B,
        scenario=spec,
        dt=cfg.sim.dt,
        num_actors=cfg.sim.num_actors,
        reward=RewardWeights(**vars(cfg.reward)),
        mobil_interval_s=cfg.sim.mobil_interval_s,
    )
    driver: Driver = (
        RuleBasedDriver(
            RuleBasedParams(
                lane_change=cfg.driver.lane_change, speed_factor=cfg.driver.speed_factor
            )
        )
        if cfg.driver.name == "rule_based"
        else make_driver(cfg.driver.name, seed=cfg.seed)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    episode_of = np.arange(B)
    env.reset(seed=[cfg.seed + int(e) for e in episode_of])
    driver.reset(np.ones(B, np.bool_))
    acc = _Acc(B)
    active = np.ones(B, np.bool_)
    started = B
    rows: list[dict[str, Any]] = []
    writers: dict[int, Any] = {}
    vid = cfg.video
    if vid.episodes > 0:
        from sim.render import VideoWriter

        (out_dir / "videos").mkdir(exist_ok=True)
        fps = vid.fps or 1.0 / cfg.sim.dt
        writers[0] = VideoWriter(str(out_dir / "videos" / "episode_0000.mp4"), fps)
    csv_f = (out_dir / "episodes.csv").open("w", newline="")
    ev_f = (out_dir / "events.jsonl").open("w")
    writer = csv.DictWriter(csv_f, fieldnames=EPISODE_COLUMNS)
    writer.writeheader()
    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.episodes, desc="episodes", unit="ep", file=sys.stderr, dynamic_ncols=True
        )
    t0 = time.perf_counter()
    env_steps = 0
    interrupted = False
    try:
        while len(rows) < cfg.episodes:
            assert env.state is not None
            actions = driver.act(env.state, env.road)
            st, out, rew, _, replaced = env.advance(actions)
            env_steps += int(active.sum())
            acc.ret += np.where(active, rew, 0.0)
            acc.steps += active
            sp = st.speed[:, 0]
            acc.speed_sum += np.where(active, sp, 0.0)
            acc.speed_max = np.where(active, np.maximum(acc.speed_max, sp), acc.speed_max)
            acc.nan += active & replaced
            for n, v in out.terms.items():
                acc.terms[n] += np.where(active, v, 0.0)
            if 0 in writers and active[0]:
                from sim.render import render_bev, route_polyline

                writers[0].write(
                    render_bev(
                        env.road,
                        st,
                        0,
                        route_xy=route_polyline(env.road, st, 0),
                        hud={"episode": str(int(episode_of[0]))},
                    )
                )
            for b in np.nonzero(active & (out.collision | out.off_road))[0]:
                ev: dict[str, Any] = {
                    "episode": int(episode_of[b]),
                    "env": int(b),
                    "t": float(st.time[b]),
                    "x": float(st.x[b, 0]),
                    "y": float(st.y[b, 0]),
                    "type": "collision" if out.collision[b] else "off_road",
                }
                if out.collision[b]:
                    ev["actors"] = [int(j) for j in np.nonzero(out.collided_with[b, 1:])[0] + 1]
                ev_f.write(json.dumps(ev) + "\n")
            ended = active & (out.terminated | out.truncated)
            for b in np.nonzero(ended)[0]:
                rl = float(st.route.length[b])
                row = {
                    "episode": int(episode_of[b]),
                    "env": int(b),
                    "seed": cfg.seed + int(episode_of[b]),
                    "scenario": spec.name,
                    "return": round(float(acc.ret[b]), 4),
                    "steps": int(acc.steps[b]),
                    "time_s": round(float(st.time[b]), 3),
                    "progress_m": round(float(st.progress[b]), 3),
                    "route_length_m": rl,
                    "route_completion_pct": round(100.0 * min(1.0, float(st.progress[b]) / rl), 3),
                    "completed": int(bool(out.route_completed[b] or st.progress[b] >= rl - 0.5)),
                    "collision": int(out.collision[b]),
                    "off_road": int(out.off_road[b]),
                    "truncated": int(out.truncated[b]),
                    "mean_speed_mps": round(float(acc.speed_sum[b] / max(acc.steps[b], 1)), 4),
                    "max_speed_mps": round(float(acc.speed_max[b]), 4),
                    "nan_actions": int(acc.nan[b]),
                    **{f"term_{n}": round(float(acc.terms[n][b]), 4) for n in TERM_NAMES},
                }
                rows.append(row)
                writer.writerow(row)
                if bar is not None:
                    bar.update(1)
                if b in writers:
                    writers.pop(int(b)).close()
            csv_f.flush()
            ev_f.flush()
            if ended.any():
                restart = np.zeros(B, np.bool_)
                for b in np.nonzero(ended)[0]:
                    if started < cfg.episodes:
                        episode_of[b] = started
                        started += 1
                        restart[b] = True
                    else:
                        active[b] = False
                if restart.any():
                    seeds: list[int | None] = [cfg.seed + int(e) for e in episode_of]
                    env.reset(seed=seeds, options={"reset_mask": restart})
                    driver.reset(restart)
                    acc.reset(restart)
                    if restart[0] and episode_of[0] < vid.episodes:
                        from sim.render import VideoWriter

                        fps = vid.fps or 1.0 / cfg.sim.dt
                        writers[0] = VideoWriter(
                            str(out_dir / "videos" / f"episode_{int(episode_of[0]):04d}.mp4"), fps
                        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for w in writers.values():
            w.close()
        csv_f.close()
        ev_f.close()
        if bar is not None:
            bar.close()
    summary = _summary(rows, time.perf_counter() - t0, env_steps)
    summary.update(
        {
            "scenario": spec.name,
            "driver": cfg.driver.name,
            "interrupted": interrupted,
            "seed": cfg.seed,
            "num_envs": B,
        }
    )
    write_json_atomic(out_dir / "metrics.json", summary)
    print(format_table(summary, f"gendrive run: {spec.name}, driver {cfg.driver.name}"), file=log)
    print(f"run directory: {out_dir}", file=log)
    if interrupted:
        raise KeyboardInterrupt
    return summary


def main(cfg: Any) -> None:
    """Hydra entry: convert the DictConfig to :class:`RunConfig` and run."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    typed: RunConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(typed, out_dir)
    except (SpecError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
