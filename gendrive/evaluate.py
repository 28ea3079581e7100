"""``gendrive evaluate``: every policy x every scenario of a suite, scored and compared.

A suite (``configs/eval/<name>.yaml``) names scenarios and seeds; episode ``e`` of a scenario is
reset with seed ``seed + e`` for every policy, so all policies drive the same episodes. Policies
are ``rule_based``, ``random`` or PPO checkpoints (:func:`policy.load.load_driver`). Episodes are
scored by the same :class:`sim.episode.EpisodeTracker`, reward preset and metrics config as
``gendrive run``. Writes into the run directory (``outputs/eval/<date>/<time>`` unless
``hydra.run.dir=...``):

- ``episodes.csv``: one row per episode: ``policy``, ``policy_spec``, ``scenario``, ``seed`` and
  every metric of ``gendrive run``'s rows;
- ``metrics.json``: per policy, overall and per scenario, the mean and 95 % CI of every metric
  (:func:`gendrive.report.by_scenario`), plus the suite and the replayed videos;
- ``comparison.md``: a markdown table per suite and per scenario, one row per policy;
- ``driving_score.png``, ``fuel_vs_time.png`` and, for train run directories,
  ``learning_curve.png``;
- ``videos/<policy>__<scenario>__seed<seed>.mp4``: each policy's ``videos.worst`` lowest-scoring
  episodes, replayed alone from their seeds (the simulator is deterministic).
"""

from __future__ import annotations

import copy
import csv
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from gendrive.evaluate_config import EvaluateConfig
from gendrive.report import by_scenario
from gendrive.run import metrics_config, reward_weights, write_json_atomic
from policy.load import EpisodeSeeded, PolicyError, load_driver, policy_label
from policy.rule_based import Driver
from sim.env import DriveVectorEnv
from sim.episode import EpisodeTracker, TrackerConfig
from sim.scenario import ScenarioSpec, SpecError, spec_from_dict

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SUITE_DIR = CONFIG_DIR / "eval"
SCENARIO_DIR = CONFIG_DIR / "scenario"

# (column, header, scale): the columns of comparison.md; rates are shown in percent.
COMPARISON = (
    ("driving_score_lb20", "driving score LB2.0", 1.0),
    ("driving_score_lb21", "driving score LB2.1", 1.0),
    ("route_completion_pct", "route completion %", 1.0),
    ("collision", "collision rate %", 100.0),
    ("fuel_l_per_100km", "fuel l/100km", 1.0),
    ("travel_time_s", "travel time s", 1.0),
)


@dataclass(frozen=True)
class Suite:
    """A named set of scenarios and seeds.

    Attributes:
        name: the suite's name.
        scenarios: the resolved scenario specs (names unique within the suite).
        episodes_per_scenario: episodes per scenario (and per policy).
        seed: episode ``e`` of every scenario is reset with ``seed + e``.
        source: the suite file.
    """

    name: str
    scenarios: tuple[ScenarioSpec, ...]
    episodes_per_scenario: int
    seed: int
    source: Path


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _scenario_dict(ref: str, where: str, rel: Path) -> dict[str, Any]:
    """A scenario's raw mapping: a name in configs/scenario/ or a spec file (YAML/JSON)."""
    path = SCENARIO_DIR / f"{ref}.yaml"
    if not path.is_file():
        path = Path(ref) if Path(ref).is_absolute() else rel / ref
        if not path.is_file():
            path = Path(ref)
    if not path.is_file():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise SpecError(
            f"{where}: scenario {ref!r} is neither a name in configs/scenario/ "
            f"({', '.join(known)}) nor a spec file"
        )
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{where}: {path}: expected a mapping, found {type(data).__name__}")
    return data


def load_suite(ref: str) -> Suite:
    """Read a suite by name (``configs/eval/<ref>.yaml``) or path.

    Each ``scenarios`` entry is a scenario name or spec file, or a mapping with ``base`` (a name
    or file) and fields deep-merged over it (e.g. a shorter time limit).

    Raises:
        SpecError: missing file or bad field; the message names the suite file and the field.
        FileNotFoundError: never; a missing suite is a SpecError listing the known suites.
    """
    path = SUITE_DIR / f"{ref}.yaml"
    if not path.is_file():
        path = Path(ref)
    if not path.is_file():
        known = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
        raise SpecError(
            f"suite {ref!r}: not a name in configs/eval/ ({', '.join(known)}) or a file"
        )
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping, found {type(data).__name__}")
    unknown = sorted(set(data) - {"name", "scenarios", "episodes_per_scenario", "seed"})
    if unknown:
        raise SpecError(f"{path}: unknown keys {unknown}")
    entries = data.get("scenarios")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{path}: scenarios: expected a non-empty list")
    specs: list[ScenarioSpec] = []
    for i, entry in enumerate(entries):
        where = f"{path}: scenarios[{i}]"
        if isinstance(entry, str):
            raw = _scenario_dict(entry, where, path.parent)
        elif isinstance(entry, dict) and isinstance(entry.get("base"), str):
            over = {k: v for k, v in entry.items() if k != "base"}
            raw = _deep_merge(_scenario_dict(entry["base"], where, path.parent), over)
        else:
            raise SpecError(f"{where}: expected a scenario name, a file or a mapping with 'base'")
        specs.append(spec_from_dict(raw, source=where))
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"{path}: scenarios: names must be unique, repeated {dup}")
    eps = data.get("episodes_per_scenario", 10)
    seed = data.get("seed", 0)
    if not isinstance(eps, int) or eps < 1:
        raise SpecError(f"{path}: episodes_per_scenario: expected an int >= 1, got {eps!r}")
    if not isinstance(seed, int):
        raise SpecError(f"{path}: seed: expected an int, got {seed!r}")
    return Suite(str(data.get("name", path.stem)), tuple(specs), eps, seed, path)


def make_env(cfg: EvaluateConfig, spec: ScenarioSpec, num_envs: int) -> DriveVectorEnv:
    """A vector env of ``num_envs`` environments on ``spec`` with the config's sim and metrics."""
    if cfg.sim.backend != "embedded":
        raise ValueError(
            f"sim.backend: 'gendrive evaluate' needs 'embedded', got {cfg.sim.backend!r}"
        )
    return DriveVectorEnv(
        num_envs=num_envs,
        scenario=spec,
        dt=cfg.sim.dt,
        num_actors=cfg.sim.num_actors,
        reward=reward_weights(cfg),
        metrics=metrics_config(cfg),
        mobil_interval_s=cfg.sim.mobil_interval_s,
    )


FrameHook = Callable[[DriveVectorEnv, Any, Any, int], None]


def run_episodes(
    env: DriveVectorEnv,
    driver: Driver,
    seeds: Sequence[int],
    on_step: FrameHook | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Drive one episode per seed on ``env`` (B environments, refilled as episodes end).

    The loop is ``gendrive run``'s (same tracker, same reset-on-end), but takes any driver and
    an explicit seed list: row ``i`` is the episode reset with ``seeds[i]`` whatever the batch
    size, so an episode replays alone from its seed.

    Args:
        env: the vector env (its scenario and metrics).
        driver: who drives; re-seeded per episode when it is :class:`EpisodeSeeded`.
        seeds: one seed per episode.
        on_step: called after every step with ``(env, state, outcome, b)`` for env 0's episode
            while it runs (``b`` its episode index): the video hook.
        on_episode: called with each finished row (progress bars).

    Returns:
        One metrics row per seed, in seed order (``episode`` = index into ``seeds``).
    """
    n = len(seeds)
    B = env.num_envs
    if n < B:  # an idle environment would still step and be scored
        raise ValueError(f"run_episodes: env has {B} envs for {n} episodes (need B <= episodes)")
    mcfg = env.metrics_cfg
    tracker = EpisodeTracker(
        B,
        TrackerConfig(near_miss_ttc_s=mcfg.near_miss_ttc_s),
        co2_g_per_l=float(getattr(mcfg.vehicle, "co2_g_per_l", 0.0)),
    )
    tracker.episode[:] = np.arange(B)

    def start(mask: np.ndarray) -> None:
        ep_seeds: list[int | None] = [int(seeds[int(e)]) for e in tracker.episode]
        env.reset(seed=ep_seeds, options={"reset_mask": mask})
        driver.reset(mask)
        if isinstance(driver, EpisodeSeeded):
            driver.seed_episodes(ep_seeds, mask)
        tracker.reset(mask)
        nan_actions[mask] = 0

    nan_actions = np.zeros(B, np.int64)
    start(np.ones(B, np.bool_))
    active = np.ones(B, np.bool_)
    started = B
    rows: dict[int, dict[str, Any]] = {}
    while len(rows) < n:
        prev = env.state
        assert prev is not None
        st, out, rew, _, replaced = env.advance(driver.act(prev, env.road))
        nan_actions += active & replaced
        tracker.update(prev, st, out, rew, active)
        if on_step is not None and active[0]:
            on_step(env, st, out, int(tracker.episode[0]))
        ended = active & (out.terminated | out.truncated)
        if not ended.any():
            continue
        restart = np.zeros(B, np.bool_)
        for b in np.nonzero(ended)[0]:
            e = int(tracker.episode[b])
            row = {"seed": int(seeds[e]), "nan_actions": int(nan_actions[b])}
            rows[e] = {**row, **tracker.finish(int(b), st, out)}
            if on_episode is not None:
                on_episode(rows[e])
            if started < n:
                tracker.episode[b] = started
                started += 1
                restart[b] = True
            else:
                active[b] = False
        if restart.any():
            start(restart)
    return [rows[e] for e in range(n)]


def _fmt(s: Any, scale: float) -> str:
    """``mean ± ci`` of a :func:`mean_ci` dict (``–`` when there is no finite value)."""
    if not isinstance(s, dict) or not math.isfinite(s.get("mean", math.nan)):
        return "–"
    m, ci = s["mean"] * scale, s["ci95"] * scale
    digits = 2 if abs(m) < 10 else 1
    txt = f"{m:.{digits}f}"
    return f"{txt} ± {ci:.{digits}f}" if math.isfinite(ci) else txt


def comparison_table(results: dict[str, dict[str, Any]], scenario: str | None = None) -> str:
    """A markdown table: one row per policy, the :data:`COMPARISON` columns (mean ± 95 % CI)."""
    head = ["policy", *(h for _, h, _ in COMPARISON), "episodes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, res in results.items():
        s = res["overall"] if scenario is None else res["per_scenario"].get(scenario, {})
        cells = [f"`{label}`", *(_fmt(s.get(k), sc) for k, _, sc in COMPARISON)]
        lines.append("| " + " | ".join([*cells, str(s.get("episodes", 0))]) + " |")
    return "\n".join(lines)


def write_comparison(path: Path, suite: Suite, results: dict[str, dict[str, Any]]) -> None:
    """``comparison.md``: the suite table, then one table per scenario."""
    n, s0 = suite.episodes_per_scenario, suite.seed
    parts = [
        f"# Evaluation: suite `{suite.name}`",
        "",
        f"{len(suite.scenarios)} scenarios x {n} episodes (seeds {s0}..{s0 + n - 1}) per policy; "
        "every cell is the mean ± the 95 % CI half-width over episodes (Student t).",
        "",
        "## All scenarios",
        "",
        comparison_table(results),
    ]
    for sp in suite.scenarios:
        parts += ["", f"## {sp.name}", "", comparison_table(results, sp.name)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n")
    tmp.replace(path)


def _savefig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp.png")
    fig.tight_layout()
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def plot_driving_score(path: Path, suite: Suite, results: dict[str, dict[str, Any]]) -> None:
    """Bars per policy for each scenario (and all together), LB 2.0 and 2.1, CI error bars."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    groups = [sp.name for sp in suite.scenarios] + ["all"]
    labels = list(results)
    fig, axes = plt.subplots(2, 1, figsize=(max(6.4, 1.4 * len(groups) * len(labels) / 2), 6.4))
    width = 0.8 / max(len(labels), 1)
    x = np.arange(len(groups))
    panels = (("driving_score_lb20", "driving score LB 2.0"),
              ("driving_score_lb21", "driving score LB 2.1"))  # fmt: skip
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, label in enumerate(labels):
            res = results[label]
            stats = [res["per_scenario"].get(g, {}).get(key) for g in groups[:-1]]
            stats.append(res["overall"].get(key))
            means = [s["mean"] if isinstance(s, dict) else math.nan for s in stats]
            cis = [s["ci95"] if isinstance(s, dict) else math.nan for s in stats]
            cis = [c if math.isfinite(c) else 0.0 for c in cis]
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, means, width, yerr=cis, capsize=3,
                   label=label)  # fmt: skip
        ax.set_xticks(x, groups)
        ax.set_ylim(0, 105)
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title(f"suite {suite.name}: mean with 95 % CI")
    axes[0].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _savefig(fig, path)


def plot_fuel_by_policy(
    path: Path, suite: Suite, rows: list[dict[str, Any]], labels: list[str]
) -> None:
    """Fuel (l/100 km) against travel time, one point per episode, coloured by policy.

    Colours follow the policy order of ``driving_score.png`` (matplotlib's C0, C1, ...), so one
    policy has one colour in every plot; episodes too short to have a fuel rate are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for i, label in enumerate(labels):
        pts = [
            (float(r["travel_time_s"]), float(r["fuel_l_per_100km"]))
            for r in rows
            if r["policy"] == label and math.isfinite(float(r["fuel_l_per_100km"]))
        ]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.scatter(xs, ys, s=18, alpha=0.8, color=f"C{i}", label=f"{label} ({len(pts)})")
    ax.set_xlabel("travel time [s]")
    ax.set_ylabel("fuel [l/100 km]")
    ax.set_title(f"suite {suite.name}: fuel against travel time, one point per episode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _savefig(fig, path)


def _csv_floats(rows: list[dict[str, str]], col: str) -> list[float]:
    out = []
    for r in rows:
        try:
            out.append(float(r.get(col) or "nan"))
        except ValueError:
            out.append(math.nan)
    return out


CURVE_TAGS = ("episode_return", "route_completion", "eval/return", "eval/route_completion")


def _tensorboard_curves(log_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """(step, value) series of :data:`CURVE_TAGS` from a run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    have = set(acc.Tags().get("scalars", []))
    return {t: [(float(e.step), float(e.value)) for e in acc.Scalars(t)] for t in CURVE_TAGS
            if t in have}  # fmt: skip


def _csv_curves(f: Path) -> dict[str, list[tuple[float, float]]]:
    """The same series from ``updates.csv`` (runs without TensorBoard logs)."""
    with f.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "global_step" not in rows[0]:
        return {}
    step = _csv_floats(rows, "global_step")
    out = {}
    for tag in CURVE_TAGS:
        vals = _csv_floats(rows, tag)
        pts = [(s, v) for s, v in zip(step, vals, strict=True) if math.isfinite(v)]
        if pts:
            out[tag] = pts
    return out


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def plot_learning_curve(path: Path, runs: dict[str, Path]) -> bool:
    """Episode return and route completion against the env step, from each run's TensorBoard
    logs (``tensorboard/``), or its ``updates.csv`` where it has none.

    Returns False when no run has a readable log (nothing is written then).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {}
    for label, run_dir in runs.items():
        tb, f = run_dir / "tensorboard", run_dir / "updates.csv"
        curves = _tensorboard_curves(tb) if tb.is_dir() else {}
        if not curves and f.is_file():
            curves = _csv_curves(f)
        if curves:
            logs[label] = curves
    if not logs:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, curves in logs.items():
        for ax, col in zip(axes, ("episode_return", "route_completion"), strict=True):
            xs, ys = _xy(curves.get(col, []))
            line = ax.plot(xs, ys, label=f"{label} (rollout)")[0]
            pts = curves.get(f"eval/{col.replace('episode_', '')}", [])
            if pts:
                ax.plot(*_xy(pts), "o--", color=line.get_color(), label=f"{label} (eval)")
    axes[0].set_ylabel("episode return")
    axes[1].set_ylabel("route completion (0..1)")
    for ax in axes:
        ax.set_xlabel("global_step (env steps)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _savefig(fig, path)
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def replay_video(
    cfg: EvaluateConfig, driver: Driver, spec: ScenarioSpec, seed: int, path: Path, title: str
) -> dict[str, Any]:
    """Replay one episode alone from its seed, writing a bird's-eye mp4; returns its row."""
    from sim.render import VideoWriter, render_bev, route_polyline

    env = make_env(cfg, spec, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(str(path), cfg.videos.fps or 1.0 / cfg.sim.dt) as writer:

        def frame(env: DriveVectorEnv, st: Any, out: Any, e: int) -> None:
            hud = {"policy": title, "seed": str(seed)}
            if math.isfinite(float(out.ttc[0])):
                hud["TTC"] = f"{float(out.ttc[0]):.1f} s"
            writer.write(render_bev(env.road, st, 0, route_xy=route_polyline(env.road, st, 0),
                                    hud=hud))  # fmt: skip

        (row,) = run_episodes(env, driver, [seed], on_step=frame)
    return row


def policy_specs(cfg: EvaluateConfig) -> list[str]:
    """``policy`` then ``policies``, without repeats; an empty list is an error."""
    specs = ([cfg.policy] if cfg.policy else []) + [str(p) for p in cfg.policies]
    out = list(dict.fromkeys(specs))
    if not out:
        raise ValueError("policy: give policy=<rule_based|random|ckpt> or policies=[...]")
    return out


def evaluate(cfg: EvaluateConfig, out_dir: Path, log: TextIO = sys.stdout) -> dict[str, Any]:
    """Run every policy on every scenario of the suite and write the run directory.

    Returns:
        The content of ``metrics.json``.

    Raises:
        PolicyError: a policy string or checkpoint that cannot drive (before anything runs).
        SpecError: a bad suite or scenario.
        ValueError: a bad setting (num_envs, episodes, backend).
    """
    suite = load_suite(cfg.suite)
    n = cfg.episodes_per_scenario or suite.episodes_per_scenario
    seed0 = suite.seed if cfg.seed is None else cfg.seed
    suite = Suite(suite.name, suite.scenarios, n, seed0, suite.source)
    if n < 1 or cfg.num_envs < 1:
        raise ValueError(
            f"episodes_per_scenario and num_envs must be >= 1, got {n}, {cfg.num_envs}"
        )
    specs = policy_specs(cfg)
    # Load every policy first: a bad string or checkpoint fails before minutes of driving.
    drivers: dict[str, tuple[str, Driver]] = {}
    for spec in specs:
        label = policy_label(spec)
        while label in drivers:
            label += "'"
        drivers[label] = (spec, load_driver(spec, seed=seed0))
        cfg_dt = getattr(drivers[label][1], "config", {}).get("sim", {}).get("dt")
        if cfg_dt is not None and float(cfg_dt) != cfg.sim.dt:
            print(f"warning: {label} was trained with sim.dt={cfg_dt}, evaluating at "
                  f"sim.dt={cfg.sim.dt}", file=log)  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = [seed0 + e for e in range(n)]
    total = len(drivers) * len(suite.scenarios) * n
    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="episodes", unit="ep", file=sys.stderr, dynamic_ncols=True)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def tick(row: dict[str, Any]) -> None:
        if bar is not None:
            bar.update(1)

    csv_f = (out_dir / "episodes.csv").open("w", newline="")
    writer: csv.DictWriter[str] | None = None
    try:
        for sp in suite.scenarios:
            env = make_env(cfg, sp, min(cfg.num_envs, n))
            for label, (spec, driver) in drivers.items():
                got = run_episodes(env, driver, seeds, on_episode=tick)
                for r in got:
                    row = {"policy": label, "policy_spec": spec, "scenario": sp.name, **r}
                    rows.append(row)
                    if writer is None:
                        writer = csv.DictWriter(csv_f, fieldnames=list(row))
                        writer.writeheader()
                    writer.writerow(row)
                csv_f.flush()  # an interrupted evaluation keeps the finished scenarios
    finally:
        csv_f.close()
        if bar is not None:
            bar.close()
    results = {lb: by_scenario([r for r in rows if r["policy"] == lb]) for lb in drivers}

    videos: list[dict[str, Any]] = []
    spec_of = {sp.name: sp for sp in suite.scenarios}
    for label, (_, driver) in drivers.items():
        mine = [r for r in rows if r["policy"] == label]
        worst = sorted(mine, key=lambda r: (_num(r["driving_score_lb20"]), r["progress_m"]))
        for r in worst[: max(cfg.videos.worst, 0)]:
            name = f"{_slug(label)}__{_slug(r['scenario'])}__seed{r['seed']}.mp4"
            path = out_dir / "videos" / name
            again = replay_video(cfg, driver, spec_of[r["scenario"]], r["seed"], path, label)
            videos.append({
                "policy": label, "scenario": r["scenario"], "seed": r["seed"],
                "path": str(path.relative_to(out_dir)),
                "driving_score_lb20": r["driving_score_lb20"], "end_reason": r["end_reason"],
                "progress_m": r["progress_m"], "replay_end_reason": again["end_reason"],
                "replay_progress_m": again["progress_m"],
            })  # fmt: skip

    summary: dict[str, Any] = {
        "suite": {
            "name": suite.name,
            "source": str(suite.source),
            "scenarios": [sp.name for sp in suite.scenarios],
            "episodes_per_scenario": n,
            "seed": seed0,
        },
        "policies": {lb: spec for lb, (spec, _) in drivers.items()},
        "results": results,
        "videos": videos,
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json_atomic(out_dir / "metrics.json", summary)
    write_comparison(out_dir / "comparison.md", suite, results)
    plot_driving_score(out_dir / "driving_score.png", suite, results)
    plot_fuel_by_policy(out_dir / "fuel_vs_time.png", suite, rows, list(drivers))
    runs = {lb: Path(spec) for lb, (spec, _) in drivers.items() if Path(spec).is_dir()}
    if runs:
        plot_learning_curve(out_dir / "learning_curve.png", runs)
    print(comparison_table(results), file=log)
    print(f"evaluation directory: {out_dir}", file=log)
    return summary


def _num(v: Any) -> float:
    """A sort key that puts NaN scores first (an unscored episode is the most suspicious)."""
    x = float(v)
    return -math.inf if not math.isfinite(x) else x


def overall_mean(summary: dict[str, Any], label: str, key: str) -> float:
    """Shortcut for tests and scripts: a policy's overall mean of ``key``."""
    s = summary["results"][label]["overall"].get(key)
    return float(s["mean"]) if isinstance(s, dict) else math.nan


def main(cfg: Any) -> None:
    """Hydra entry: convert the DictConfig to :class:`EvaluateConfig` and evaluate."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        typed: EvaluateConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        evaluate(typed, out_dir)
    except (PolicyError, SpecError, ValueError, FileNotFoundError, OmegaConfBaseException) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["Suite", "evaluate", "load_suite", "run_episodes"]
