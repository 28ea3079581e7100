"""Realism of the learned traffic model against held-out NGSIM US-101 recordings.

    python bench/realism.py                      # the table in docs/generative_model.md
    python bench/realism.py --seed 1
    python bench/realism.py --data <tracks.csv>  # another file in the us101_tracks.csv format
    python bench/realism.py --split validation   # model selection: leaves the test split unseen

Prints the markdown tables (metrics x sources: learned, rule_based, train_data), the matched
comparison first, then the unmatched one (docs/generative_model.md, "Realism"), then one JSON
line per source and comparison: every metric (lower is better; C2ST accuracies: 0.5 is best),
its lane-change rate and the sampler's repaired/rejected rates. Same seed, same numbers (one
CPU thread). ``--no-matched``: the unmatched comparison only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from generative.realism import US101_DATA, evaluate_realism, report_json_lines  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(US101_DATA), help="tracks CSV (default: US-101)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test", choices=("test", "validation"))
    ap.add_argument("--scenes-per-snapshot", type=int, default=8)
    ap.add_argument("--rollout-scenes", type=int, default=48)
    ap.add_argument("--c2st-epochs", type=int, default=300)
    ap.add_argument(
        "--no-matched", action="store_true", help="only the unmatched comparison (half the time)"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    report = evaluate_realism(
        args.data,
        seed=args.seed,
        scenes_per_snapshot=args.scenes_per_snapshot,
        rollout_scenes=args.rollout_scenes,
        c2st_epochs=args.c2st_epochs,
        split=args.split,
        matched=not args.no_matched,
        progress=lambda m: print(f"[realism] {m}", file=sys.stderr),
    )
    print(report.to_markdown())
    for line in report_json_lines(report):
        print(line)


if __name__ == "__main__":
    main()
