"""``gendrive generate``: sample scenarios of a family; or evaluate realism on recordings.

``gendrive generate family=cut_in n=16 difficulty=0.8 seed=3`` draws ``n`` scenarios of the
family (:mod:`generative.families`; ``family=none`` is background traffic only), scenario ``i``
from ``numpy.random.default_rng([seed, i])``, and writes into the run directory
(``outputs/generate/<date>/<time>`` unless ``hydra.run.dir=...``):

- ``specs/<family>_<i>.json``: ScenarioSpecs (:func:`sim.scenario.load_spec` reads them, so
  ``gendrive run scenario_file=.../specs/cut_in_0.json`` drives one);
- ``summary.json``: family, difficulty, seed and every scenario's drawn parameters;
- ``preview.png``: a grid of bird's-eye views at t = 0 of the first ``preview.count``
  scenarios (ego in red), each titled with its key parameters;
- with ``export.xosc=true``, ``xosc/<family>_<i>.xosc`` and ``.xodr`` (OpenSCENARIO 1.2 and
  OpenDRIVE 1.7, :mod:`generative.openscenario`).

Background traffic comes from ``background=learned`` (default: the learned traffic model,
:class:`generative.model.LearnedTrafficSampler`; its vehicles become actors of the specs),
``background=random`` (the simulator's own random traffic, redrawn at each reset) or
``background=rule_based`` (the realism baseline). ``summary.json`` records which, and the
sampler's repair/reject rates.

``gendrive generate evaluate=true data=<tracks.csv>`` prints the realism tables (matched and
unmatched; ``realism.matched=false``: unmatched only) of the learned traffic model against
recordings in the ``us101_tracks.csv`` format, through
``generative.realism.evaluate_realism`` (docs/generative_model.md).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gendrive.generate_config import GenerateConfig
from gendrive.run import write_json_atomic
from generative.families import FamilyError, check_difficulty, get_family
from generative.sampling import TrafficSampler, make_background
from sim.scenario import RoadSpec, ScenarioSpec, SpecError, dump_spec, load_spec

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
TITLE_PX = 34  # [px] height of the grid's title bar
# Parameters shown on each preview tile, per family (all are in summary.json).
KEY_PARAMS: dict[str, tuple[str, ...]] = {
    "hard_brake": ("headway", "decel", "target_speed"),
    "cut_in": ("cut_gap", "rel_speed", "duration"),
    "slow_leader": ("reveal_gap", "rel_speed"),
    "traffic_jam_end": ("jam_gap", "jam_speed"),
    "merge_into_slow": ("closure_gap", "platoon_speed", "platoon_gap"),
    "red_light_runner": ("arrival_lag", "reveal_dist", "runner_speed_frac"),
    "none": ("density",),
}
UNITS = {
    "headway": "s",
    "decel": "m/s2",
    "target_speed": "m/s",
    "cut_gap": "m",
    "rel_speed": "m/s",
    "duration": "s",
    "reveal_gap": "m",
    "jam_gap": "m",
    "jam_speed": "m/s",
    "closure_gap": "m",
    "platoon_speed": "m/s",
    "platoon_gap": "m",
    "density": "/km/lane",
    "arrival_lag": "s",
    "reveal_dist": "m",
    "runner_speed_frac": "",
}


class GenerateError(ValueError):
    """A bad ``gendrive generate`` setting; the message names the key."""


def _road(ref: str | None) -> RoadSpec | None:
    """The road of a scenario config name (configs/scenario/<ref>.yaml) or of a spec file."""
    if ref is None:
        return None
    path = Path(ref)
    if not path.is_file():
        path = CONFIG_DIR / "scenario" / f"{ref}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / "scenario").glob("*.yaml"))
        raise GenerateError(f"road: {ref!r} is neither a spec file nor a scenario in {known}")
    return load_spec(path).road


def _tile_title(family: str, params: dict[str, Any]) -> str:
    parts = []
    for key in KEY_PARAMS.get(family, ()):
        if key in params:
            parts.append(f"{key} {float(params[key]):.1f} {UNITS.get(key, '')}".strip())
    return ", ".join(parts)


def preview_grid(
    specs: list[ScenarioSpec],
    params: list[dict[str, Any]],
    family: str,
    difficulty: float,
    cfg: GenerateConfig,
) -> np.ndarray:
    """RGB grid of t = 0 bird's-eye views (tiles in row-major order) under a title bar."""
    import cv2

    from sim import world
    from sim.render import BevStyle, render_bev
    from sim.scenario import build_road

    p = cfg.preview
    style = BevStyle(width=p.width, height=p.height, pixels_per_metre=p.pixels_per_metre)
    k = len(specs)
    cols = max(1, min(p.columns, k))
    rows = -(-k // cols)
    grid = np.full((TITLE_PX + rows * p.height, cols * p.width, 3), 20, np.uint8)
    for i, (sp, pr) in enumerate(zip(specs, params, strict=True)):
        g = build_road(sp.road)
        st = world.reset([sp], g, [np.random.default_rng(sp.seed)])
        tile = render_bev(g, st, 0, style=style, hud={sp.name: _tile_title(family, pr)})
        r, c = divmod(i, cols)
        grid[
            TITLE_PX + r * p.height : TITLE_PX + (r + 1) * p.height, c * p.width : (c + 1) * p.width
        ] = tile
    title = f"{family}  difficulty {difficulty:.2f}  seed {cfg.seed}  ({k} of {cfg.n})"
    cv2.putText(
        grid, title, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA
    )
    return grid


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    tmp = path.with_name(path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{tmp}: could not write the PNG")
    tmp.replace(path)


def evaluate_recordings(cfg: GenerateConfig, log: TextIO = sys.stdout) -> str:
    """Print (and return) the realism table of ``cfg.data`` via generative.realism."""
    if not cfg.data:
        raise GenerateError("data: evaluate=true needs data=<tracks csv> (us101_tracks.csv format)")
    if not Path(cfg.data).is_file():
        raise GenerateError(f"data: file not found: {cfg.data}")
    from generative.realism import evaluate_realism as fn

    r = cfg.realism
    if r.scenes_per_snapshot < 1 or r.rollout_scenes < 0 or r.c2st_epochs < 1:
        raise GenerateError(
            "realism: expected scenes_per_snapshot >= 1, rollout_scenes >= 0, c2st_epochs >= 1; "
            f"got {r.scenes_per_snapshot}, {r.rollout_scenes}, {r.c2st_epochs}"
        )
    report = fn(
        cfg.data,
        seed=cfg.seed,
        scenes_per_snapshot=r.scenes_per_snapshot,
        rollout_scenes=r.rollout_scenes,
        c2st_epochs=r.c2st_epochs,
        matched=r.matched,
    )
    text = str(report.to_markdown())
    print(text, file=log)
    return text


def generate(cfg: GenerateConfig, out_dir: Path, log: TextIO = sys.stdout) -> dict[str, Any]:
    """Sample the scenarios and write the run directory (module docstring). Returns summary."""
    try:
        check_difficulty(cfg.difficulty)
        fam = get_family(cfg.family)
    except FamilyError as e:
        raise GenerateError(str(e)) from None
    if cfg.n < 1:
        raise GenerateError(f"n: expected an integer >= 1, got {cfg.n}")
    if cfg.preview.count < 0 or cfg.preview.columns < 1:
        raise GenerateError(
            f"preview: expected count >= 0 and columns >= 1, got {cfg.preview.count}, "
            f"{cfg.preview.columns}"
        )
    road = _road(cfg.road)
    try:
        background = make_background(cfg.background)
    except ValueError as e:
        raise GenerateError(str(e)) from None
    spec_dir = out_dir / "specs"
    spec_dir.mkdir(parents=True, exist_ok=True)
    xosc_dir = out_dir / "xosc"
    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=cfg.n, desc=f"{cfg.family} scenarios", unit="sc", file=sys.stderr)
    specs: list[ScenarioSpec] = []
    rows: list[dict[str, Any]] = []
    try:
        for i in range(cfg.n):
            ((spec, params),) = _sample_one(cfg, i, road, background)
            path = spec_dir / f"{spec.name}.json"
            dump_spec(spec, path)
            row: dict[str, Any] = {"name": spec.name, "spec": str(path.relative_to(out_dir))}
            if cfg.export.xosc:
                from generative.openscenario import export_xosc

                xo, xd = export_xosc(spec, xosc_dir)
                row["xosc"] = str(xo.relative_to(out_dir))
                row["xodr"] = str(xd.relative_to(out_dir))
            row["params"] = params
            specs.append(spec)
            rows.append(row)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    summary = {
        "family": cfg.family,
        "description": fam.description,
        "carla": fam.carla,
        "difficulty": cfg.difficulty,
        "seed": cfg.seed,
        "n": cfg.n,
        "road": dataclasses.asdict(specs[0].road),
        "background": cfg.background,
        "scenarios": rows,
    }
    stats = getattr(background, "stats", None)
    if stats is not None:
        summary["background_validity"] = {"sampled": stats.sampled, **stats.rates()}
    write_json_atomic(out_dir / "summary.json", summary)
    k = min(cfg.preview.count, cfg.n)
    if k > 0:
        grid = preview_grid(
            specs[:k], [r["params"] for r in rows[:k]], cfg.family, cfg.difficulty, cfg
        )
        _write_png(out_dir / "preview.png", grid)
    print(
        f"gendrive generate: {cfg.n} x {cfg.family} at difficulty {cfg.difficulty:.2f} "
        f"-> {spec_dir}",
        file=log,
    )
    if stats is not None:
        r = stats.rates()
        print(
            f"background {cfg.background}: {stats.sampled} vehicles sampled, "
            f"{100 * r['repaired']:.1f}% repaired, {100 * r['rejected']:.1f}% rejected",
            file=log,
        )
    print(f"run directory: {out_dir}", file=log)
    return summary


def _sample_one(
    cfg: GenerateConfig, i: int, road: RoadSpec | None, background: TrafficSampler | None
) -> list[tuple[ScenarioSpec, dict[str, Any]]]:
    """Scenario ``i`` alone, as :func:`sample_family` would draw it in a batch."""
    fam = get_family(cfg.family)
    try:
        spec, params = fam.sample_with_params(
            np.random.default_rng([cfg.seed, i]), cfg.difficulty, road, background
        )
    except FamilyError as e:
        raise GenerateError(str(e)) from None
    return [(dataclasses.replace(spec, name=f"{cfg.family}_{i}"), params)]


def main(cfg: Any) -> None:
    """Hydra entry: convert the DictConfig to :class:`GenerateConfig`, then generate/evaluate."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        typed: GenerateConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        if typed.evaluate:
            evaluate_recordings(typed)
        else:
            generate(typed, out_dir)
    except (SpecError, ValueError, FileNotFoundError, OmegaConfBaseException) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["GenerateError", "evaluate_recordings", "generate", "preview_grid"]
