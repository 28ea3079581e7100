"""``gendrive run``: headless episodes on the embedded simulator with a built-in driver.

Runs ``episodes`` episodes on ``num_envs`` parallel environments; episode ``e`` is reset with seed
``seed + e``, so any row of ``episodes.csv`` can be replayed alone. Writes into the run directory
(Hydra's ``outputs/<date>/<time>`` unless ``hydra.run.dir=...``):

- ``episodes.csv``: one row per episode with every metric of :mod:`sim.episode` (time, fuel,
  safety, comfort, both Leaderboard driving scores, reward-term sums), appended and flushed as
  episodes end, so an interrupted run keeps what finished;
- ``events.jsonl``: collisions, off-road exits, near misses, hard braking, lane invasions, ...
  with time, position and the actors involved;
- ``metrics.json``: means with 95 % confidence intervals, overall and per scenario (written
  atomically at the end, and on Ctrl-C);
- ``fuel_vs_time.png``: fuel against travel time, one point per episode;
- ``videos/episode_XXXX.mp4``: bird's-eye views of the first ``video.episodes`` episodes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gendrive.config import RunConfig
from gendrive.report import by_scenario, plot_fuel_vs_time
from sim.env import DriveVectorEnv
from sim.episode import EpisodeTracker, TrackerConfig
from sim.metrics import MetricsConfig, RewardWeights
from sim.scenario import ScenarioSpec, SpecError, load_spec, spec_from_dict


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a reader never sees a half-written file (NaN/inf become null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=2))
    os.replace(tmp, path)


def scenario_from_config(cfg: Any) -> ScenarioSpec:
    """The spec from ``scenario_file`` or the ``scenario`` group, or, with ``route_file`` and
    ``route_id`` (run configs), that Leaderboard route with the group's traffic; errors name
    the source."""
    if cfg.scenario_file:
        return load_spec(cfg.scenario_file)
    spec = spec_from_dict(dict(cfg.scenario), source="config 'scenario'")
    route_file = getattr(cfg, "route_file", None)
    if route_file:
        from sim.routes import RouteError, leaderboard_spec

        if getattr(cfg, "route_id", None) is None:
            raise SpecError(f"route_file={route_file}: also give route_id=<id>")
        try:
            return leaderboard_spec(route_file, str(cfg.route_id), spec)  # type: ignore[no-any-return]
        except RouteError as e:
            raise SpecError(str(e)) from None
    return spec


def reward_weights(cfg: Any) -> RewardWeights:
    """The reward preset of any app config with a ``reward`` node, as :class:`RewardWeights`."""
    return RewardWeights(**{f.name: getattr(cfg.reward, f.name) for f in fields(RewardWeights)})


def metrics_config(cfg: Any) -> MetricsConfig:
    """:class:`MetricsConfig` of any app config with ``metrics``, ``vehicle`` and
    ``vehicle_file`` (run, drive, train, evaluate share these keys)."""
    from sim.fuel import load_vehicle, vehicle_from_dict

    m = cfg.metrics
    vehicle = (
        load_vehicle(cfg.vehicle_file)
        if cfg.vehicle_file
        else vehicle_from_dict(dict(cfg.vehicle), source="config 'vehicle'")
    )
    return MetricsConfig(
        ttc_risk_s=m.ttc_risk_s,
        near_miss_ttc_s=m.near_miss_ttc_s,
        hard_brake_mps2=m.hard_brake_mps2,
        terminate_on_collision=m.terminate_on_collision,
        terminate_on_off_road=m.terminate_on_off_road,
        vehicle=vehicle,
    )


SUMMARY_ROWS = (
    ("route_completion_pct", "route completion", "{:.1f} %"),
    ("driving_score_lb20", "driving score LB 2.0", "{:.1f}"),
    ("driving_score_lb21", "driving score LB 2.1", "{:.1f}"),
    ("completed", "success rate", "{:.1%}"),
    ("collision", "collision rate", "{:.1%}"),
    ("off_road", "off-road rate", "{:.1%}"),
    ("truncated", "timeout rate", "{:.1%}"),
    ("mean_speed_mps", "mean speed", "{:.1f} m/s"),
    ("travel_time_s", "travel time", "{:.1f} s"),
    ("fuel_l_per_100km", "fuel", "{:.2f} l/100km"),
    ("co2_g_per_km", "CO2", "{:.0f} g/km"),
    ("energy_kwh_per_100km", "energy", "{:.1f} kWh/100km"),
    ("min_ttc_s", "min TTC", "{:.2f} s"),
    ("near_misses", "near misses / episode", "{:.2f}"),
    ("hard_brakes", "hard brakes / episode", "{:.2f}"),
    ("mean_abs_jerk", "mean |jerk|", "{:.2f} m/s^3"),
    ("return", "return", "{:.2f}"),
)


def format_table(summary: dict[str, Any], title: str) -> str:
    """A fixed-width summary table (mean +- 95 % CI half-width) for the terminal."""
    lines = [title, "-" * 56]
    overall = summary.get("overall", {})
    fuel = overall.get("fuel_l_per_100km", {}).get("mean", math.nan)
    # A combustion car reports fuel and CO2; an electric one (no fuel) its battery energy.
    skip = {"energy_kwh_per_100km"} if fuel > 0 else {"fuel_l_per_100km", "co2_g_per_km"}
    for key, label, fmt in SUMMARY_ROWS:
        if key in skip:
            continue
        s = overall.get(key)
        if not isinstance(s, dict) or not math.isfinite(s.get("mean", math.nan)):
            continue
        ci = s["ci95"]
        pm = f" +- {fmt.format(ci).split()[0]}" if math.isfinite(ci) else ""
        lines.append(f"{label:<26}{fmt.format(s['mean']) + pm:>30}")
    lines.append(f"{'episodes':<26}{overall.get('episodes', 0):>30}")
    lines.append(f"{'env-steps/s':<26}{summary.get('env_steps_per_s', 0):>30.0f}")
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
    mcfg = metrics_config(cfg)
    B = min(cfg.num_envs, cfg.episodes)
    env = DriveVectorEnv(
        num_envs=B,
        scenario=spec,
        dt=cfg.sim.dt,
        num_actors=cfg.sim.num_actors,
        reward=reward_weights(cfg),
        metrics=mcfg,
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
    tracker = EpisodeTracker(
        B,
        TrackerConfig(near_miss_ttc_s=mcfg.near_miss_ttc_s),
        co2_g_per_l=float(getattr(mcfg.vehicle, "co2_g_per_l", 0.0)),
    )
    tracker.episode[:] = np.arange(B)
    env.reset(seed=[cfg.seed + int(e) for e in tracker.episode])
    driver.reset(np.ones(B, np.bool_))
    active = np.ones(B, np.bool_)
    nan_actions = np.zeros(B, np.int64)
    started = B
    rows: list[dict[str, Any]] = []
    vid = cfg.video
    fps = vid.fps or 1.0 / cfg.sim.dt
    writer_of: dict[int, Any] = {}

    def open_video(b: int) -> None:
        from sim.render import VideoWriter

        (out_dir / "videos").mkdir(exist_ok=True)
        name = f"episode_{int(tracker.episode[b]):04d}.mp4"
        writer_of[b] = VideoWriter(str(out_dir / "videos" / name), fps)

    if vid.episodes > 0:
        open_video(0)
    csv_f = (out_dir / "episodes.csv").open("w", newline="")
    ev_f = (out_dir / "events.jsonl").open("w")
    writer: csv.DictWriter[str] | None = None
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
            prev = env.state
            assert prev is not None
            actions = driver.act(prev, env.road)
            st, out, rew, _, replaced = env.advance(actions)
            env_steps += int(active.sum())
            nan_actions += active & replaced
            for ev in tracker.update(prev, st, out, rew, active):
                ev_f.write(json.dumps(ev) + "\n")
            if 0 in writer_of and active[0]:
                from sim.render import render_bev, route_polyline

                hud = {"episode": str(int(tracker.episode[0]))}
                if math.isfinite(float(out.ttc[0])):
                    hud["TTC"] = f"{float(out.ttc[0]):.1f} s"
                writer_of[0].write(
                    render_bev(env.road, st, 0, route_xy=route_polyline(env.road, st, 0), hud=hud)
                )
            ended = active & (out.terminated | out.truncated)
            for b in np.nonzero(ended)[0]:
                row = {
                    "scenario": spec.name,
                    "seed": cfg.seed + int(tracker.episode[b]),
                    "driver": cfg.driver.name,
                    "nan_actions": int(nan_actions[b]),
                    **tracker.finish(int(b), st, out),
                }
                rows.append(row)
                if writer is None:
                    writer = csv.DictWriter(csv_f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                if bar is not None:
                    bar.update(1)
                if int(b) in writer_of:
                    writer_of.pop(int(b)).close()
            csv_f.flush()
            ev_f.flush()
            if ended.any():
                restart = np.zeros(B, np.bool_)
                for b in np.nonzero(ended)[0]:
                    if started < cfg.episodes:
                        tracker.episode[b] = started
                        started += 1
                        restart[b] = True
                    else:
                        active[b] = False
                if restart.any():
                    seeds: list[int | None] = [cfg.seed + int(e) for e in tracker.episode]
                    env.reset(seed=seeds, options={"reset_mask": restart})
                    driver.reset(restart)
                    tracker.reset(restart)
                    nan_actions[restart] = 0
                    if restart[0] and tracker.episode[0] < vid.episodes:
                        open_video(0)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for w in writer_of.values():
            w.close()
        csv_f.close()
        ev_f.close()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "scenario": spec.name,
        "driver": cfg.driver.name,
        "seed": cfg.seed,
        "num_envs": B,
        "interrupted": interrupted,
        "env_steps": env_steps,
        "wall_time_s": wall,
        "env_steps_per_s": env_steps / max(wall, 1e-9),
        **by_scenario(rows),
    }
    write_json_atomic(out_dir / "metrics.json", summary)
    plot_fuel_vs_time(rows, out_dir / "fuel_vs_time.png", f"{spec.name}, {cfg.driver.name}")
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
