"""Summaries of episode rows: means with 95 % confidence intervals, per scenario, and plots.

A confidence interval here is Student's t interval for the mean of the per-episode values,
``mean +- t_{0.975, n-1} * sd / sqrt(n)``: episodes are independent (each has its own seed), so
this is the interval a reader expects next to a mean. Rates (collision, success) are means of
0/1 columns and get the same interval (the normal approximation; with few episodes it is wide,
which is the honest answer).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Two-sided 95 % Student t quantiles t_{0.975, df} for df = 1..30; beyond, a series in 1/df.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """Two-sided 95 % t quantile (Cornish-Fisher expansion beyond the table, error < 1e-3)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, 95 % CI half-width and bounds of the finite values (NaN/inf are left out)."""
    x = np.asarray([v for v in values if isinstance(v, int | float) and math.isfinite(v)], float)
    n = int(x.size)
    if n == 0:
        return {"mean": math.nan, "ci95": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    m = float(x.mean())
    half = t975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {"mean": m, "ci95": half, "lo": m - half, "hi": m + half, "n": n}


NON_METRIC = {"episode", "env", "seed", "steps", "scenario", "end_reason", "driver"}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-column mean and CI of the numeric columns, plus end-reason counts."""
    out: dict[str, Any] = {"episodes": len(rows)}
    if not rows:
        return out
    for key in rows[0]:
        if key in NON_METRIC:
            continue
        vals = [r[key] for r in rows]
        if all(isinstance(v, int | float) for v in vals):
            out[key] = mean_ci(vals)
    reasons: dict[str, int] = {}
    for r in rows:
        reasons[str(r.get("end_reason", ""))] = reasons.get(str(r.get("end_reason", "")), 0) + 1
    out["end_reasons"] = reasons
    return out


def by_scenario(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"overall": summary, "per_scenario": {name: summary}}``."""
    names = sorted({str(r.get("scenario", "")) for r in rows})
    return {
        "overall": summarize(rows),
        "per_scenario": {n: summarize([r for r in rows if r.get("scenario") == n]) for n in names},
    }


def plot_fuel_vs_time(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Scatter of fuel (l/100 km) against travel time per episode, coloured by end reason.

    Written atomically; returns the path, or None when no episode drove far enough.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    pts = [
        (float(r["travel_time_s"]), float(r["fuel_l_per_100km"]), str(r.get("end_reason")))
        for r in rows
        if math.isfinite(float(r.get("fuel_l_per_100km", math.nan)))
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for reason in sorted({p[2] for p in pts}):
        xs = [p[0] for p in pts if p[2] == reason]
        ys = [p[1] for p in pts if p[2] == reason]
        ax.scatter(xs, ys, s=18, alpha=0.8, label=f"{reason} ({len(xs)})")
    ax.set_xlabel("travel time [s]")
    ax.set_ylabel("fuel [l/100 km]")
    ax.set_title(title or "fuel against travel time, one point per episode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
