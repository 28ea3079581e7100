"""Embedded simulator throughput: one JSON line per (B, N) configuration.

Measures ``DriveVectorEnv.step`` (the ego driven by the rule-based driver, timed apart; IDM
oriented-box collisions, reward terms and the vector observation) on a 3-lane ring road whose
size grows with N so traffic density stays constant and no vehicle leaves the map. Next to it, in
the same process, a bare numpy probe (bicycle kinematics for every actor plus an all-pairs
broad-phase circle test, no traffic logic and no observation) gives a baseline to read our numbers
against on whatever machine runs this.

    python bench/sim_throughput.py                 # B in {1, 64, 1024} x N in {8, 32, 128}
    python bench/sim_throughput.py --B 1024 --N 32 --seconds 5
    python bench/sim_throughput.py --B 1 --breakdown   # + where a step's time goes

Each line: B, N, env_steps_per_s, vehicle_steps_per_s, ms_per_step (median of repeats; the
driver's own time is driver_ms_per_step, not included),
probe_env_steps_per_s, ratio_to_probe, and cost_per_vehicle_vs_N8 (how the per-vehicle cost grows
with N at fixed B: 1.0 is perfectly linear). With ``--breakdown`` also ``world_ms``,
``metrics_ms`` (evaluate + reward) and ``observation_ms``: the pure functions the env step
calls, timed apart on the same states (medians; the env adds its bookkeeping on top).

To time an older version the same way, run this file from a checkout of it with
``PYTHONPATH=<that checkout>`` (the editable install would import this tree otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np

from policy.rule_based import RuleBasedDriver
from sim import metrics, world
from sim.env import DriveVectorEnv
from sim.observation import observe
from sim.scenario import EgoSpec, RoadSpec, ScenarioSpec, TrafficSpec

LANES = 3
SPACING_PER_VEHICLE_M = 25.0  # [m] of lane per vehicle: ~40 veh/km/lane, busy but flowing


def scenario(n: int) -> ScenarioSpec:
    circumference = max(600.0, n * SPACING_PER_VEHICLE_M / LANES)
    radius = circumference / (2 * math.pi)
    return ScenarioSpec(
        name=f"ring_n{n}",
        road=RoadSpec(kind="ring", radius=radius, num_lanes=LANES, speed_limit=25.0),
        ego=EgoSpec(lane=-2, s=0.0, speed=20.0, route_length=5000.0),
        traffic=TrafficSpec(count=n - 1, min_spacing=6.0),
        time_limit_s=3600.0,
    )


def time_steps(fn, seconds: float, min_reps: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of one call, over repeats filling about ``seconds``."""
    fn()
    fn()
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) > 20000:
            break
    return statistics.median(times)


def probe(B: int, N: int, seconds: float) -> float:
    """Bare numpy: bicycle kinematics for B*N actors + all-pairs circle broad phase."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1000, (B, N)).astype(np.float32)
    y = rng.uniform(-10, 0, (B, N)).astype(np.float32)
    yaw = np.zeros((B, N), np.float32)
    v = rng.uniform(10, 30, (B, N)).astype(np.float32)
    steer = rng.uniform(-0.05, 0.05, (B, N)).astype(np.float32)
    acc = rng.uniform(-1, 1, (B, N)).astype(np.float32)
    r2 = np.float32(5.0**2)
    dt = np.float32(0.1)

    def step() -> None:
        nonlocal x, y, yaw, v
        v = np.maximum(v + acc * dt, 0)
        yaw = yaw + v * np.tan(steer) / np.float32(2.875) * dt
        x = x + v * np.cos(yaw) * dt
        y = y + v * np.sin(yaw) * dt
        dx = x[:, :, None] - x[:, None, :]
        dy = y[:, :, None] - y[:, None, :]
        _ = (dx * dx + dy * dy) < r2

    return time_steps(step, seconds)


def _time_parts(env: DriveVectorEnv, act: np.ndarray, parts: dict[str, list[float]]) -> None:
    """Time the step's pure parts on the current state (nothing is advanced)."""
    st = env.state
    assert st is not None
    t0 = time.perf_counter()
    nxt = world.step(st, act, env.params, env.road)
    t1 = time.perf_counter()
    out = metrics.evaluate(st, act, nxt, env.road, env.metrics_cfg)
    metrics.reward(out.terms, env.weights)
    t2 = time.perf_counter()
    observe(nxt, env.road, env.obs_cfg)
    t3 = time.perf_counter()
    parts["world"].append(t1 - t0)
    parts["metrics"].append(t2 - t1)
    parts["observation"].append(t3 - t2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--B", type=int, nargs="*", default=[1, 64, 1024])
    ap.add_argument("--N", type=int, nargs="*", default=[8, 32, 128])
    ap.add_argument("--seconds", type=float, default=2.0, help="timing budget per config")
    ap.add_argument("--breakdown", action="store_true", help="also time world/metrics/obs")
    args = ap.parse_args()
    per_vehicle_n8: dict[int, float] = {}
    for B in args.B:
        for N in sorted(args.N):
            env = DriveVectorEnv(num_envs=B, scenario=scenario(N), num_actors=N)
            env.reset(seed=0)
            driver = RuleBasedDriver()
            driver.reset(np.ones(B, np.bool_))
            ends = steps = 0
            step_times: list[float] = []
            act_times: list[float] = []
            parts: dict[str, list[float]] = {"world": [], "metrics": [], "observation": []}
            t_end = time.perf_counter() + args.seconds
            for i in range(100_000):
                assert env.state is not None
                t0 = time.perf_counter()
                act = driver.act(env.state, env.road)
                if args.breakdown and i >= 20:
                    _time_parts(env, act, parts)
                t1 = time.perf_counter()
                _, _, term, trunc, _ = env.step(act)
                t2 = time.perf_counter()
                done = term | trunc
                if done.any():
                    driver.reset(done)
                if i < 20:  # warm-up: traffic settles into car following
                    continue
                ends += int(done.sum())
                steps += B
                act_times.append(t1 - t0)
                step_times.append(t2 - t1)
                if len(step_times) >= 5 and time.perf_counter() > t_end:
                    break
            t = statistics.median(step_times)
            t_act = statistics.median(act_times)
            assert env.state is not None
            valid = float(env.state.valid.sum(1).mean())
            tp = probe(B, N, min(1.0, args.seconds))
            per_vehicle = t / (B * N)
            if min(args.N) == N:
                per_vehicle_n8[B] = per_vehicle
            row = {
                "bench": "sim_step",
                "B": B,
                "N": N,
                "valid_actors_mean": round(valid, 2),
                "episode_ends_per_1k_steps": round(1000 * ends / max(steps, 1), 3),
                "env_steps_per_s": round(B / t, 1),
                "vehicle_steps_per_s": round(B * N / t, 1),
                "ms_per_step": round(t * 1e3, 4),
                "driver_ms_per_step": round(t_act * 1e3, 4),
                "probe_env_steps_per_s": round(B / tp, 1),
                "ratio_to_probe": round(tp / t, 4),
                "cost_per_vehicle_vs_N8": round(per_vehicle / per_vehicle_n8[B], 3)
                if B in per_vehicle_n8
                else None,
            }
            if args.breakdown:
                row.update(
                    {f"{k}_ms": round(statistics.median(v) * 1e3, 4) for k, v in parts.items()}
                )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
