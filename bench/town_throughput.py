"""Town throughput: env-steps/s of a CARLA town with background vehicles and pedestrians, one
JSON line per (B, vehicles, pedestrians).

Measures ``DriveVectorEnv.step`` (the world step with traffic lights, junction right of way and
walkers, oriented-box collisions, reward terms and the vector observation) on Town01 with the
ego driven by the rule-based driver (its own time reported apart as ``driver_ms_per_step``).
Vehicles are spread over every driving lane of the town (``traffic.radius``), pedestrians over
its sidewalks. To check that the cost stays close to linear in the number of actors, it also
runs half the actors: ``cost_ratio_vs_half`` is the step time ratio (2.0 is linear; all-pairs
would approach 4).

    python bench/town_throughput.py                       # B in {1, 64}, 100 vehicles + 50 walkers
    python bench/town_throughput.py --B 1 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from policy.rule_based import RuleBasedDriver
from sim.env import DriveVectorEnv
from sim.scenario import EgoSpec, RoadSpec, ScenarioSpec, TrafficSpec

TOWN = "../shared/data/maps/carla/Town01.xodr"


def scenario(vehicles: int, pedestrians: int) -> ScenarioSpec:
    return ScenarioSpec(
        name=f"town01_v{vehicles}_p{pedestrians}",
        road=RoadSpec(kind="file", path=TOWN),
        ego=EgoSpec(road=19, lane=1, s=17.6, speed=0.0, route_length=150.0),
        traffic=TrafficSpec(
            count=vehicles, radius=5000.0, pedestrians=pedestrians, speed_frac=(0.0, 0.5)
        ),
        time_limit_s=3600.0,
    )


def measure(B: int, vehicles: int, pedestrians: int, seconds: float) -> dict[str, float]:
    spec = scenario(vehicles, pedestrians)
    env = DriveVectorEnv(num_envs=B, scenario=spec, num_actors=spec.max_actors())
    env.reset(seed=0)
    driver = RuleBasedDriver()
    driver.reset(np.ones(B, np.bool_))
    step_times: list[float] = []
    act_times: list[float] = []
    t_end = time.perf_counter() + seconds
    for i in range(100_000):
        assert env.state is not None
        t0 = time.perf_counter()
        act = driver.act(env.state, env.road)
        t1 = time.perf_counter()
        _, _, term, trunc, _ = env.step(act)
        t2 = time.perf_counter()
        done = term | trunc
        if done.any():
            driver.reset(done)
        if i < 20:
            continue
        act_times.append(t1 - t0)
        step_times.append(t2 - t1)
        if len(step_times) >= 5 and time.perf_counter() > t_end:
            break
    assert env.state is not None
    st = env.state
    return {
        "t": statistics.median(step_times),
        "t_act": statistics.median(act_times),
        "valid_vehicles": float((st.valid & (st.actor_type == 0)).sum(1).mean()),
        "valid_pedestrians": float((st.valid & (st.actor_type == 1)).sum(1).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--B", type=int, nargs="*", default=[1, 64])
    ap.add_argument("--vehicles", type=int, default=100)
    ap.add_argument("--pedestrians", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=3.0, help="timing budget per config")
    args = ap.parse_args()
    for B in args.B:
        full = measure(B, args.vehicles, args.pedestrians, args.seconds)
        half = measure(B, args.vehicles // 2, args.pedestrians // 2, args.seconds)
        print(
            json.dumps(
                {
                    "bench": "town_step",
                    "map": "Town01",
                    "B": B,
                    "vehicles": args.vehicles,
                    "pedestrians": args.pedestrians,
                    "valid_vehicles_mean": round(full["valid_vehicles"], 1),
                    "valid_pedestrians_mean": round(full["valid_pedestrians"], 1),
                    "env_steps_per_s": round(B / full["t"], 1),
                    "actor_steps_per_s": round(
                        B * (args.vehicles + args.pedestrians + 1) / full["t"], 1
                    ),
                    "ms_per_step": round(full["t"] * 1e3, 3),
                    "driver_ms_per_step": round(full["t_act"] * 1e3, 3),
                    "half_actors_ms_per_step": round(half["t"] * 1e3, 3),
                    "cost_ratio_vs_half": round(full["t"] / half["t"], 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
