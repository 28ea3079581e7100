"""Train a PPO policy, then compare it with the baselines on an evaluation suite.

Runs the two commands a user would, in a scratch directory, and prints one JSON line per
policy (driving scores, route completion, collision rate, fuel, travel time: overall means over
the suite) plus one line for the training run (env-steps/s end to end, wall time, and the first
evaluation that reached >= 95 % route completion and <= 2 % collisions, if any: the behaviour
clone's evaluation counts, and its wall time includes the cloning but not process start-up):

    gendrive train total_steps=<N> hydra.run.dir=<tmp>/train
    gendrive evaluate policies=[rule_based,random,<tmp>/train] suite=<suite> \
        episodes_per_scenario=<E> hydra.run.dir=<tmp>/eval

    python bench/policy_suite.py                                  # PPO from scratch, one scenario
    python bench/policy_suite.py --recipe suite_bc --episodes 50  # the README's competence run
    python bench/policy_suite.py --total-steps 200000 --episodes 2  # a quick check

``--recipe`` picks the training command: ``scratch`` trains on the ``highway`` scenario alone
with the balanced reward (the first recipe); ``suite_bc`` trains on the whole suite (a mixture)
with the ``safe`` reward from a behaviour-cloned start (4 DAgger rounds of 200k steps), a
128x128 MLP and a 1e-4 learning rate; ``suite_bc_eco`` the same with the ``eco`` reward, a
gentler expert to clone (``bc.expert_a_max=1.2``), PPO learning the acceleration while the
standard rule-based driver steers and caps it (``ppo.guide_executes``, ``ppo.guide_shield``,
``bc.guide_a_max=2.0``) and a travel-time budget of 1.04 x the rule-based driver's
(``time_budget.ratio``; docs/ppo.md, "Eco-driving": run it with ``--total-steps 6000000``).
``--train-args`` appends any further overrides. The training
line's ``wall_time_s`` is the whole ``gendrive train`` process (cloning included);
``best_eval_wall_time_s`` is when the checkpoint the evaluation uses (``best.pt``) was written,
counted from the start of the process.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = Path(sys.executable).parent / "gendrive"
RECIPES = {
    "scratch": [],
    "suite_bc": ["suite=highway", "reward=safe", "bc.steps=200000", "bc.rounds=4",
                 "ppo.learning_rate=1e-4", "ppo.hidden_sizes=[128,128]", "eval_every=20",
                 "eval_episodes=128"],
    "suite_bc_eco": ["suite=highway", "reward=eco", "bc.steps=200000", "bc.rounds=4",
                     "bc.expert_a_max=1.2", "ppo.learning_rate=1e-4",
                     "ppo.hidden_sizes=[128,128]", "eval_every=10", "eval_episodes=128",
                     "time_budget.ratio=1.04", "ppo.guide_coef=0.5", "ppo.guide_executes=true",
                     "ppo.guide_shield=true", "bc.guide_a_max=2.0"],
}  # fmt: skip
COMPETENT_RC = 0.95  # route completion the issue calls competent ...
COMPETENT_COLLISIONS = 0.02  # ... at this collision rate or less


def _run(args: list[str]) -> None:
    res = subprocess.run([str(EXE), *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"gendrive {' '.join(args)} failed:\n{res.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total-steps", type=int, default=12_000_000)
    ap.add_argument("--suite", default="highway")
    ap.add_argument("--episodes", type=int, default=16, help="episodes per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the run dirs here")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="scratch")
    ap.add_argument("--train-args", default="", help="extra gendrive train overrides")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="gendrive_policy_suite_"))
    train, evald = root / "train", root / "eval"
    t0, t0_wall = time.perf_counter(), time.time()
    extra = RECIPES[args.recipe] + args.train_args.split()
    _run(["train", f"total_steps={args.total_steps}", f"seed={args.seed}", "progress_bar=false",
          f"hydra.run.dir={train}", *extra])  # fmt: skip
    train_s = time.perf_counter() - t0
    best = train / "checkpoints" / "best.pt"
    best_at = round(best.stat().st_mtime - t0_wall, 1) if best.exists() else None
    summary = json.loads((train / "train_summary.json").read_text())
    # Competence times count cloning too: updates.csv's wall_time_s starts after it.
    bc = summary.get("bc") or {}
    bc_s = float(bc.get("time_s", 0.0))

    def competent(rc: object, col: object) -> bool:
        return (rc not in (None, "") and col not in (None, "")
                and float(rc) >= COMPETENT_RC and float(col) <= COMPETENT_COLLISIONS)  # type: ignore[arg-type]  # fmt: skip

    competent_at = None
    if competent(bc.get("eval/route_completion"), bc.get("eval/collision_rate")):
        competent_at = {"update": 0, "what": "behaviour clone", "wall_time_s": round(bc_s, 1)}
    with (train / "updates.csv").open() as f:
        for row in csv.DictReader(f):
            if competent_at is not None:
                break
            if competent(row.get("eval/route_completion"), row.get("eval/collision_rate")):
                wall = bc_s + float(row["wall_time_s"])
                competent_at = {"update": int(float(row["update"])), "what": "PPO",
                                "wall_time_s": round(wall, 1)}  # fmt: skip
    print(json.dumps({
        "bench": "ppo_train", "total_steps": summary["global_step"],
        "env_steps_per_s": round(summary["env_steps_per_s"], 1), "wall_time_s": round(train_s, 1),
        "recipe": args.recipe, "overrides": extra, "best_eval_wall_time_s": best_at,
        "first_competent_eval": competent_at, "last_eval": summary.get("last_eval"),
        # The behaviour clone's held-out evaluation and, with a time budget, the rule-based
        # driver's on the same episodes (the reference of the eval/*_ratio columns).
        "clone_eval": {k[5:]: v for k, v in bc.items() if k.startswith("eval/")} or None,
        "time_budget_reference": (summary.get("time_budget") or {}).get("reference"),
    }), flush=True)  # fmt: skip
    _run(["evaluate", f"policies=[rule_based,random,{train}]", f"suite={args.suite}",
          f"episodes_per_scenario={args.episodes}", "progress_bar=false",
          f"hydra.run.dir={evald}"])  # fmt: skip
    metrics = json.loads((evald / "metrics.json").read_text())
    for name, res in metrics["results"].items():
        o = res["overall"]

        def m(key: str, o: dict = o) -> float | None:  # type: ignore[type-arg]
            v = o.get(key)
            return round(v["mean"], 3) if isinstance(v, dict) and v["mean"] is not None else None

        print(json.dumps({
            "bench": "policy_suite", "suite": args.suite, "policy": name,
            "episodes": o["episodes"], "driving_score_lb20": m("driving_score_lb20"),
            "driving_score_lb21": m("driving_score_lb21"),
            "route_completion_pct": m("route_completion_pct"), "collision_rate": m("collision"),
            "fuel_l_per_100km": m("fuel_l_per_100km"), "travel_time_s": m("travel_time_s"),
        }), flush=True)  # fmt: skip
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
