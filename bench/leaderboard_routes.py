"""CARLA Leaderboard routes driven by the rule-based driver: one JSON line per route, then a
summary line.

Every route of the shipped route files (``../shared/data/routes/leaderboard_v1/routes_*.xml``)
is driven once by ``gendrive run scenario=leaderboard route_file=... route_id=...`` (the same
code path: the town's map, background traffic spread around the ego, traffic lights and right of
way from :mod:`sim.traffic_rules`, the ego's route planned through the waypoints). Each line:
file, route id, town, route length, end reason, route completion, both driving scores and the
infraction counts; a route that does not plan (a waypoint off the shipped map) is reported with
its error. The summary gives the share of routes completed and the infraction totals.

    python bench/leaderboard_routes.py                    # every route, seed 0
    python bench/leaderboard_routes.py --files routes_devtest.xml --seed 3
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR
from gendrive.config import RunConfig, register_configs
from gendrive.run import run
from sim.scenario import SpecError

ROUTES_DIR = Path("../shared/data/routes/leaderboard_v1")
INFRACTIONS = (
    "collisions_vehicle",
    "collisions_pedestrian",
    "collisions_layout",
    "red_light",
    "off_road",
    "route_deviation",
    "blocked",
)


def _config(route_file: Path, route_id: str, seed: int, traffic: int) -> RunConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(Path(CONFIG_DIR).resolve()), version_base="1.3"):
        cfg = compose(
            config_name="run",
            overrides=[
                "scenario=leaderboard",
                f"route_file={route_file}",
                f"route_id={route_id}",
                "episodes=1",
                "num_envs=1",
                f"seed={seed}",
                "video.episodes=0",
                "progress_bar=false",
                f"scenario.traffic.count={traffic}",
            ],
        )
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    return obj


def drive(route_file: Path, route_id: str, seed: int, traffic: int) -> dict[str, Any]:
    cfg = _config(route_file, route_id, seed, traffic)
    line: dict[str, Any] = {"file": route_file.name, "route_id": route_id}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        try:
            summary = run(cfg, Path(tmp), log=io.StringIO())
        except SpecError as e:
            line.update(planned=False, error=str(e))
            return line
        with (Path(tmp) / "episodes.csv").open() as f:
            row = next(csv.DictReader(f))
    line.update(
        planned=True,
        scenario=row["scenario"],
        route_length_m=round(float(row["route_length_m"]), 1),
        end_reason=row["end_reason"],
        completed=int(row["completed"]),
        route_completion_pct=float(row["route_completion_pct"]),
        driving_score_lb20=float(row["driving_score_lb20"]),
        driving_score_lb21=float(row["driving_score_lb21"]),
        time_s=float(row["time_s"]),
        **{k: int(float(row[k])) for k in INFRACTIONS},
        wall_s=round(time.perf_counter() - t0, 2),
        env_steps_per_s=round(float(summary.get("env_steps_per_s", math.nan)), 1),
    )
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="*", default=["routes_devtest.xml", "routes_training.xml"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--traffic", type=int, default=40, help="background vehicles per route")
    ap.add_argument("--limit", type=int, default=0, help="first N routes per file (0: all)")
    args = ap.parse_args()
    lines = []
    for name in args.files:
        path = ROUTES_DIR / name
        ids = [r.get("id", "") for r in ET.parse(path).getroot().findall("route")]
        if args.limit:
            ids = ids[: args.limit]
        for rid in ids:
            line = drive(path, rid, args.seed, args.traffic)
            print(json.dumps(line), flush=True)
            lines.append(line)
    ran = [x for x in lines if x["planned"]]
    summary: dict[str, Any] = {
        "summary": True,
        "routes": len(lines),
        "planned": len(ran),
        "completed": sum(x["completed"] for x in ran),
        "completed_share_of_planned": round(sum(x["completed"] for x in ran) / max(len(ran), 1), 3),
        "completed_share_of_all": round(sum(x["completed"] for x in ran) / max(len(lines), 1), 3),
        "mean_route_completion_pct": round(
            sum(x["route_completion_pct"] for x in ran) / max(len(ran), 1), 2
        ),
        "mean_driving_score_lb20": round(
            sum(x["driving_score_lb20"] for x in ran) / max(len(ran), 1), 2
        ),
        "mean_driving_score_lb21": round(
            sum(x["driving_score_lb21"] for x in ran) / max(len(ran), 1), 2
        ),
        "end_reasons": {
            r: sum(x["end_reason"] == r for x in ran)
            for r in sorted({x["end_reason"] for x in ran})
        },
        **{k: sum(x[k] for x in ran) for k in INFRACTIONS},
        "seed": args.seed,
        "traffic": args.traffic,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
