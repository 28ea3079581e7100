"""The learned traffic model in use: the figures of docs/generative_model.md outside the realism
table.

    python bench/traffic_model.py           # ~2 min on a 2-core machine

Prints, for the shipped weights: realised per-lane and urban-layout densities against the asked
ones, the fundamental diagram (median speed per density), the difficulty's effect on time
headways, the sampling time of one 1.5 km scene, validity rates over every playable family and
the rule-based driver's outcomes on the families with learned and random background traffic.
The last line is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from generative.families import PLAYABLE, drive_rule_based, sample_family
from generative.model import LearnedTrafficSampler, road_context
from generative.model.placement import corridor_contexts
from generative.model.validity import Vehicles
from generative.sampling import make_background
from sim.scenario import RoadSpec

LIMIT = 30.0  # [m/s] road of the conditioning measurements
SCENES = 40


def _sample(
    s: LearnedTrafficSampler, density: float, difficulty: float, ratio: list[float] | None = None
) -> tuple[Vehicles, float]:
    """SCENES scenes on a straight 1 km road (3 lanes, or one per ratio); lane-km per scene."""
    lanes = 3 if ratio is None else len(ratio)
    ctx = road_context(RoadSpec(num_lanes=lanes, length=1000.0, speed_limit=LIMIT))
    r = None if ratio is None else np.tile(ratio, (SCENES, 1))
    veh, _ = s.sample_vehicles(
        ctx,
        np.random.default_rng(0),
        np.full(SCENES, density),
        np.full(SCENES, difficulty),
        lane_ratio=r,
    )
    return veh, float(ctx.lane_length.sum()) / 1000.0


def _median_headway(v: Vehicles) -> float:
    o = np.lexsort((v.s, v.lane, v.scene))
    s, lane, scene, length, speed = v.s[o], v.lane[o], v.scene[o], v.length[o], v.speed[o]
    same = (lane[1:] == lane[:-1]) & (scene[1:] == scene[:-1])
    gap = s[1:] - s[:-1] - 0.5 * (length[1:] + length[:-1])
    ok = same & (speed[:-1] > 1.0)
    return float(np.median(gap[ok] / speed[:-1][ok]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--family-scenes", type=int, default=4, help="per family for the driver")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out: dict[str, object] = {"bench": "traffic_model"}
    s = LearnedTrafficSampler()

    realised = {}
    for d in (8.0, 15.0, 27.5, 37.5, 50.0, 65.0):
        veh, lane_km = _sample(s, d, 0.5)
        realised[d] = veh.n / SCENES / lane_km
    print("asked -> realised density [veh/km/lane]:", {k: round(v, 1) for k, v in realised.items()})
    out["realised_density"] = realised
    ratio = [1.8, 1.2, 1.0, 0.6, 0.4]
    veh, _ = _sample(s, 30.0, 0.5, ratio)
    per_lane = np.bincount(veh.lane, minlength=len(ratio)) / SCENES / 1.0
    rel = per_lane / (30.0 * np.array(ratio))
    print(f"per-lane realised / asked at 30 x {ratio}: {np.round(rel, 2).tolist()}")
    out["per_lane_realised_over_asked"] = rel.tolist()

    urban = {}
    for kind in ("intersection", "t_junction", "roundabout", "on_ramp", "off_ramp"):
        road = RoadSpec(kind=kind, num_lanes=1 if kind == "roundabout" else 2)
        lane_km = sum(float(c.lane_length.sum()) for c in corridor_contexts(road)) / 1000.0
        n = [
            len(s.sample_traffic(road, np.random.default_rng(i), density_veh_per_km_lane=20.0))
            for i in range(20)
        ]
        urban[kind] = float(np.mean(n)) / lane_km
    print("urban layouts, asked 20 veh/km/lane:", {k: round(v, 1) for k, v in urban.items()})
    out["urban_density_at_20"] = urban

    speeds = {}
    for d in (8.0, 15.0, 20.0, 27.5, 32.5, 37.5, 42.5, 50.0, 65.0):
        speeds[d] = float(np.median(_sample(s, d, 0.5)[0].speed))
    rounded = {k: round(v, 1) for k, v in speeds.items()}
    print(f"median speed [m/s] at a {LIMIT:.0f} m/s limit:", rounded)
    out["median_speed"] = speeds

    easy, hard = (_median_headway(_sample(s, 30.0, x)[0]) for x in (0.0, 1.0))
    print(f"median time headway at 30 veh/km/lane: difficulty 0 {easy:.2f} s, 1 {hard:.2f} s")
    out["headway_difficulty_0_1"] = [easy, hard]

    road = RoadSpec(num_lanes=3, length=1500.0)
    t = []
    for i in range(20):
        t0 = time.perf_counter()
        s.sample_traffic(road, np.random.default_rng(i), density_veh_per_km_lane=20.0)
        t.append(time.perf_counter() - t0)
    print(f"one 1.5 km 3-lane scene: {1000 * np.median(t):.1f} ms (median of 20)")
    out["scene_ms"] = 1000 * float(np.median(t))

    fam = LearnedTrafficSampler()
    for d in (0.0, 0.5, 1.0):
        for name in PLAYABLE:
            sample_family(name, 16, d, seed=int(10 * d), background=fam)
    rates = fam.stats.rates()
    print(
        f"families x difficulty 0/0.5/1 x 16: {fam.stats.sampled} vehicles, "
        f"{100 * rates['repaired']:.1f} % repaired, {100 * rates['rejected']:.2f} % rejected"
    )
    out["family_validity"] = {"sampled": fam.stats.sampled, **rates}

    driver = {}
    for bg in ("learned", "random"):
        for d in (0.0, 1.0):
            runs = [
                drive_rule_based(
                    [
                        sp
                        for sp, _ in sample_family(
                            name, args.family_scenes, d, seed=11, background=make_background(bg)
                        )
                    ],
                    seed=11,
                )
                for name in PLAYABLE  # one batch per family: a batch shares one road
            ]
            col = np.concatenate([r.collision for r in runs])
            row = {
                "collision_rate": float(col.mean()),
                "hard_brake_rate": float(np.concatenate([r.hard_brake for r in runs]).mean()),
                "median_min_ttc_s": float(
                    np.median(np.minimum(np.concatenate([r.min_ttc for r in runs]), 10.0))
                ),
                "route_completion_rate": float(
                    np.concatenate([r.route_completed for r in runs]).mean()
                ),
                "episodes": int(col.size),
            }
            driver[f"{bg}_d{d:g}"] = row
            print(f"rule-based driver, {bg} background, difficulty {d:g}:", row)
    out["rule_based_driver"] = driver
    print(json.dumps(out))


if __name__ == "__main__":
    main()
