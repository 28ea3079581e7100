"""``gendrive train``: train a PPO driving policy on the embedded simulator.

Writes into the run directory (Hydra's ``outputs/train/<date>/<time>`` unless
``hydra.run.dir=...``; with ``resume=<run dir>`` into that run directory):

- ``updates.csv``: one row per PPO update: step counters, learning rate, losses, approximate KL,
  clip fraction, entropy, explained variance, episode statistics of the rollout (return,
  length, route completion, collision and success rate) and the mean per step of every reward
  term (``term/<name>``), plus ``eval/*`` on evaluation updates (empty otherwise);
- ``checkpoints/last.pt`` every ``checkpoint_every`` updates, at the end and on Ctrl-C/SIGTERM;
  ``checkpoints/best.pt``: the best evaluation return so far, or with ``time_budget.ratio`` the
  least fuel per km within the travel-time budget (see :func:`eval_rank`);
- ``tensorboard/``: every numeric column of ``updates.csv`` as a TensorBoard scalar against the
  env step (``tensorboard --logdir outputs/train``), unless ``tensorboard=false``;
- ``train_summary.json``: the final counters and the last and best evaluation.

``resume=<run dir>`` continues exactly where ``last.pt`` left off: same parameters, optimiser,
normalisers, RNG states and environment states, so N updates straight and N/2 + resume + N/2
give identical parameters. The run's saved config is used; ``total_steps``, ``device``,
``torch_threads``, ``progress_bar``, ``checkpoint_every`` and ``eval_every`` come from the
command line, and any other key that differs is reported and ignored.
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import torch

from gendrive.run import metrics_config, reward_weights, scenario_from_config, write_json_atomic
from gendrive.train_config import TrainConfig
from policy.ppo.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from policy.ppo.trainer import PPOTrainer, evaluate, evaluate_driver
from sim.env import DriveVectorEnv
from sim.scenario import ScenarioSpec, SpecError

RESUME_KEEPS = ("total_steps", "device", "torch_threads", "progress_bar", "checkpoint_every",
                "eval_every", "resume", "tensorboard")  # fmt: skip
EVAL_KEYS = ("return", "route_completion", "collision_rate", "success_rate", "length",
             "travel_time_s", "fuel_l_per_100km", "pace_s_per_km")  # fmt: skip
# With a time budget: each evaluation's ratio to the rule-based driver's, by the column it divides.
RATIO_OF = {"travel_time_ratio": "travel_time_s", "pace_ratio": "pace_s_per_km",
            "fuel_ratio": "fuel_l_per_100km"}  # fmt: skip
COMPETENT_RC = 0.95  # route completion the issue calls competent (time_budget's best.pt) ...
COMPETENT_COLLISIONS = 0.02  # ... at this collision rate or less


scenario_spec = scenario_from_config  # the same rule as gendrive run


def training_scenarios(cfg: TrainConfig) -> list[ScenarioSpec]:
    """The specs to train on: every scenario of ``suite`` (a mixture, one drawn per episode)
    when it is set, else the one of ``scenario_file`` or the ``scenario`` group."""
    if cfg.suite:
        from gendrive.evaluate import load_suite

        return list(load_suite(cfg.suite).scenarios)
    return [scenario_spec(cfg)]


def make_env(cfg: TrainConfig, num_envs: int) -> DriveVectorEnv:
    """A :class:`DriveVectorEnv` of ``num_envs`` environments as the config describes."""
    if cfg.sim.backend != "embedded":
        raise ValueError(f"sim.backend: 'gendrive train' needs 'embedded', got {cfg.sim.backend!r}")
    return DriveVectorEnv(
        num_envs=num_envs,
        scenario=training_scenarios(cfg),
        dt=cfg.sim.dt,
        num_actors=cfg.sim.num_actors,
        reward=reward_weights(cfg),
        metrics=metrics_config(cfg),
        mobil_interval_s=cfg.sim.mobil_interval_s,
    )


def dual_step(weight: float, measured: float, budget: float, lr: float, max_weight: float) -> float:
    """One projected dual-ascent step of a Lagrange multiplier: up while the constrained quantity
    (``measured``) exceeds ``budget``, down while it is under, kept in [0, max_weight]."""
    return float(min(max(weight + lr * (measured - budget), 0.0), max_weight))


def eval_rank(ev: dict[str, float], time_ratio: float | None, budget: float) -> tuple[int, float]:
    """The ordering key of an evaluation for ``best.pt`` (larger is better).

    Without a time budget (``budget`` 0): the evaluation return. With one: first the competent
    evaluations within the budget (``time_ratio <= budget``), by least fuel per km; then the rest
    by return (the multiplier moves the return's scale, so returns rank only until then).
    """
    if budget > 0 and time_ratio is not None:
        fuel = ev.get("fuel_l_per_100km", math.nan)
        if (time_ratio <= budget and math.isfinite(fuel)
                and ev["route_completion"] >= COMPETENT_RC
                and ev["collision_rate"] <= COMPETENT_COLLISIONS):  # fmt: skip
            return (1, -fuel)
    return (0, ev["return"])


def _set_speed_weight(envs: list[DriveVectorEnv | None], w: float) -> None:
    for e in envs:
        if e is not None:
            e.weights = replace(e.weights, speed_tracking=w)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when present, else cpu; an unavailable cuda is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device: expected cpu, cuda, cuda:N or auto, got {name!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} requested but torch.cuda.is_available() is False")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected cpu, cuda, cuda:N or auto, got {name!r}")
    return dev


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain data (stored in checkpoints)."""
    return asdict(cfg)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resumed_config(cfg: TrainConfig, saved: dict[str, Any], log: TextIO) -> TrainConfig:
    """The saved run's config with the keys of :data:`RESUME_KEEPS` from ``cfg``."""
    from omegaconf import OmegaConf

    saved = {k: v for k, v in saved.items() if k != "obs"}  # layout record, not a setting
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)
    typed: TrainConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    for k in RESUME_KEEPS:
        setattr(typed, k, getattr(cfg, k))
    now, then = _flat(config_dict(cfg)), _flat(config_dict(typed))
    ignored = sorted(k for k in now if k in then and now[k] != then[k])
    if ignored:
        print(f"resume: using the checkpoint's value of {', '.join(ignored)}", file=log)
    return typed


def _trim_log(path: Path, last_update: int) -> None:
    """Drop log rows written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    header = lines[0].rstrip("\n").split(",")
    col = header.index("update")
    keep = [lines[0]] + [ln for ln in lines[1:] if float(ln.split(",")[col]) <= last_update]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(keep))
    tmp.replace(path)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints after the current update and exits.

    A second Ctrl-C raises KeyboardInterrupt at once.
    """

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop = True

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)


def train(cfg: TrainConfig, out_dir: Path, log: TextIO = sys.stdout) -> dict[str, Any]:
    """Train (or resume) and write the run directory. Returns the summary."""
    ckpt: dict[str, Any] | None = None
    if cfg.resume:
        src = Path(cfg.resume)
        ckpt_path = src if src.suffix == ".pt" else src / "checkpoints" / "last.pt"
        ckpt = load_checkpoint(ckpt_path)
        cfg = resumed_config(cfg, ckpt["config"], log)
        out_dir = ckpt_path.parent.parent
    p = cfg.ppo
    steps_per_update = p.num_envs * p.num_steps
    num_updates = cfg.total_steps // steps_per_update
    if num_updates < 1:
        raise ValueError(
            f"total_steps: expected >= ppo.num_envs * ppo.num_steps = {steps_per_update}, "
            f"got {cfg.total_steps}"
        )
    if cfg.checkpoint_every < 1:
        raise ValueError(f"checkpoint_every: expected >= 1, got {cfg.checkpoint_every}")
    if cfg.torch_threads < 1:
        raise ValueError(f"torch_threads: expected >= 1, got {cfg.torch_threads}")
    tb_cfg = cfg.time_budget
    if tb_cfg.ratio < 0 or (tb_cfg.ratio > 0 and cfg.eval_every < 1):
        raise ValueError(
            "time_budget.ratio: expected 0 (off) or > 0 with eval_every >= 1 (the constraint is "
            f"measured by the evaluations), got ratio {tb_cfg.ratio}, eval_every {cfg.eval_every}"
        )
    if tb_cfg.lr < 0 or not 0 <= tb_cfg.init_weight <= tb_cfg.max_weight:
        raise ValueError(
            "time_budget: expected lr >= 0 and 0 <= init_weight <= max_weight, got "
            f"lr {tb_cfg.lr}, init_weight {tb_cfg.init_weight}, max_weight {tb_cfg.max_weight}"
        )
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)

    env = make_env(cfg, p.num_envs)
    eval_env = make_env(cfg, cfg.eval_episodes) if cfg.eval_every > 0 else None
    eval_keys = list(EVAL_KEYS)
    if len(env.specs) > 1:  # a mixture: also per scenario (trainer.evaluate's keys)
        eval_keys += [f"{sp.name}/{m}" for sp in env.specs for m in ("route_completion",
                                                                    "collision_rate")]  # fmt: skip
    guide = eval_guide = None
    if p.guide_coef > 0:  # the driver the guide loss imitates: the cloned expert's settings
        from policy.load import expert_driver

        guide = expert_driver(cfg.bc, env.params.vehicle, guide=True)
        if p.guide_executes or p.guide_shield:  # in the evaluations too, as when deployed
            eval_guide = expert_driver(cfg.bc, env.params.vehicle, guide=True)
    trainer = PPOTrainer(env, p, device, seed=cfg.seed, guide=guide)

    def run_eval() -> dict[str, float]:
        """The held-out evaluation, driven as the run will be deployed."""
        assert eval_env is not None
        return evaluate(trainer.agent, trainer.obs_rms if p.norm_obs else None, eval_env,
                        cfg.eval_seed, p.obs_clip, guide=eval_guide,
                        guide_dims=p.guide_dims if p.guide_executes else (),
                        shield=p.guide_shield)  # fmt: skip

    bc_log: list[dict[str, float]] = []
    bc_time = 0.0
    if ckpt is None and cfg.bc.steps > 0:
        from policy.load import expert_driver
        from policy.ppo.bc import warm_start

        t_bc = time.perf_counter()
        warm_start(trainer.agent, trainer.obs_rms if p.norm_obs else None, env,
                   expert_driver(cfg.bc, env.params.vehicle), cfg.bc, cfg.seed, p.gamma,
                   p.obs_clip, log=bc_log)  # fmt: skip
        bc_time = time.perf_counter() - t_bc
        last = bc_log[-1]
        print(f"behaviour cloning: {cfg.bc.rounds} rounds, {int(last['bc/samples'])} samples, "
              f"steer MAE {last['bc/steer_mae']:.3f}, accel MAE {last['bc/accel_mae']:.3f}, "
              f"{bc_time:.1f} s", file=log)  # fmt: skip
        if eval_env is not None:  # where PPO starts from (step 0 of the eval curves)
            bc_eval = run_eval()
            bc_log[-1].update({f"eval/{k}": v for k, v in bc_eval.items()})
            print("clone evaluation: " + ", ".join(f"{k} {v:.3g}" for k, v in bc_eval.items()),
                  file=log)  # fmt: skip
    # The travel-time constraint: the rule-based driver's time on the evaluation episodes is
    # the reference (deterministic, so a resumed run measures the same); the multiplier is the
    # speed_tracking weight of both envs.
    ref_eval: dict[str, float] = {}
    speed_w = tb_cfg.init_weight
    if tb_cfg.ratio > 0:
        assert eval_env is not None
        from policy.rule_based import RuleBasedDriver

        ref_eval = evaluate_driver(RuleBasedDriver(vehicle=eval_env.params.vehicle), eval_env,
                                   cfg.eval_seed)  # fmt: skip
        print(f"time budget: {tb_cfg.ratio:g} x the rule-based driver's "
              f"{ref_eval['travel_time_s']:.2f} s (its fuel {ref_eval['fuel_l_per_100km']:.2f} "
              f"l/100 km) on the {cfg.eval_episodes} evaluation episodes", file=log)  # fmt: skip
    trainer.start()
    best: tuple[int, float] = (0, -math.inf)
    if ckpt is not None:
        restore(trainer, ckpt, ckpt_path)
        key = ckpt.get("best_key")
        best = (int(key[0]), float(key[1])) if key else (0, float(ckpt.get("best_eval", -math.inf)))
        speed_w = float(ckpt.get("time_budget_weight", speed_w))
        print(f"resumed from {ckpt_path} at update {trainer.update}", file=log)
    if tb_cfg.ratio > 0:
        _set_speed_weight([env, eval_env], speed_w)

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    log_path = out_dir / "updates.csv"
    saved_cfg = config_dict(cfg)
    # The observation layout travels with the checkpoint so a loader rebuilds exactly it.
    obs_cfg = env.obs_cfg
    saved_cfg["obs"] = {
        "num_actors": obs_cfg.num_actors,
        "curvature_ahead_m": list(obs_cfg.curvature_ahead_m),
    }
    if ckpt is not None:
        _trim_log(log_path, trainer.update)
    csv_f = log_path.open("a" if ckpt is not None else "w", newline="")
    writer: csv.DictWriter[str] | None = None
    if ckpt is not None and log_path.stat().st_size > 0:
        with log_path.open() as f:
            writer = csv.DictWriter(csv_f, fieldnames=next(csv.reader(f)))

    tb = None
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops the events a resumed run redoes: those after its checkpoint's step.
        purge = trainer.global_step + 1 if ckpt is not None else None
        tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge)
        for i, row_bc in enumerate(bc_log):
            for key, val in row_bc.items():
                tb.add_scalar(key, val, 0 if key.startswith("eval/") else i)
    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=num_updates * steps_per_update, initial=trainer.global_step,
                   unit="step", unit_scale=True, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    last_eval: dict[str, float] = {}
    shown = {"ret": math.nan, "rc": math.nan, "coll": math.nan}
    t_start = time.perf_counter()
    steps_start = trainer.global_step
    interrupted = False

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, trainer, saved_cfg, best_eval=best[1], best_key=list(best),
                        time_budget_weight=speed_w)  # fmt: skip

    try:
        with _StopFlag() as flag:
            while trainer.update < num_updates and not flag.stop:
                t0 = time.perf_counter()
                row: dict[str, Any] = trainer.train_update(num_updates)
                row["steps_per_s"] = steps_per_update / (time.perf_counter() - t0)
                row["wall_time_s"] = time.perf_counter() - t_start
                for k in eval_keys:
                    row[f"eval/{k}"] = ""
                u = trainer.update
                if eval_env is not None and (u % cfg.eval_every == 0 or u == num_updates):
                    last_eval = run_eval()
                    row.update({f"eval/{k}": v for k, v in last_eval.items()})
                    ratio = None
                    if tb_cfg.ratio > 0:
                        for k, col in RATIO_OF.items():
                            last_eval[k] = last_eval[col] / ref_eval[col]
                            row[f"eval/{k}"] = last_eval[k]
                        ratio = last_eval["travel_time_ratio"]
                    rank = eval_rank(last_eval, ratio, tb_cfg.ratio)
                    if rank > best:
                        best = rank
                        checkpoint(ckpt_dir / "best.pt")
                    if ratio is not None:  # after best.pt: it holds the weight it was trained at
                        # The multiplier follows the pace, which a failing episode does not
                        # flatter as it does the travel time.
                        speed_w = dual_step(speed_w, last_eval["pace_ratio"], tb_cfg.ratio,
                                            tb_cfg.lr, tb_cfg.max_weight)  # fmt: skip
                        _set_speed_weight([env, eval_env], speed_w)
                elif tb_cfg.ratio > 0:
                    for k in RATIO_OF:
                        row[f"eval/{k}"] = ""
                if tb_cfg.ratio > 0:
                    row["time_budget/speed_weight"] = speed_w
                if writer is None:
                    writer = csv.DictWriter(csv_f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                csv_f.flush()
                if tb is not None:
                    step = trainer.global_step
                    for key, val in row.items():
                        if key not in ("update", "global_step") and _is_number(val):
                            tb.add_scalar(key, float(val), step)
                    tb.flush()
                if u % cfg.checkpoint_every == 0 or u == num_updates:
                    checkpoint(ckpt_dir / "last.pt")
                if bar is not None:
                    for key, col in (("ret", "episode_return"), ("rc", "route_completion"),
                                     ("coll", "collision_rate")):  # fmt: skip
                        if not math.isnan(row[col]):
                            shown[key] = row[col]
                    bar.set_postfix(ret=f"{shown['ret']:.1f}", rc=f"{shown['rc']:.0%}",
                                    coll=f"{shown['coll']:.0%}", refresh=False)  # fmt: skip
                    bar.update(steps_per_update)
            if flag.stop:
                interrupted = True
                checkpoint(ckpt_dir / "last.pt")
    finally:
        csv_f.close()
        if tb is not None:
            tb.close()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "update": trainer.update,
        "global_step": trainer.global_step,
        "interrupted": interrupted,
        "wall_time_s": wall,
        "env_steps_per_s": (trainer.global_step - steps_start) / max(wall, 1e-9),
        "device": str(device),
        "last_eval": last_eval,
        "best_eval_return": best[1] if best[0] == 0 and math.isfinite(best[1]) else None,
        "best_eval_fuel_l_per_100km": -best[1] if best[0] == 1 else None,
        "time_budget": {"reference": ref_eval, "speed_weight": speed_w} if ref_eval else None,
        "bc": {"time_s": bc_time, **bc_log[-1]} if bc_log else None,
    }
    write_json_atomic(out_dir / "train_summary.json", summary)
    print(
        f"gendrive train: {trainer.update}/{num_updates} updates, {trainer.global_step} steps, "
        f"{summary['env_steps_per_s']:.0f} env-steps/s"
        + (" (interrupted; resume with resume=" + str(out_dir) + ")" if interrupted else ""),
        file=log,
    )
    if last_eval:
        print("last evaluation: " + ", ".join(f"{k} {v:.3g}" for k, v in last_eval.items()),
              file=log)  # fmt: skip
    print(f"run directory: {out_dir}", file=log)
    return summary


def main(cfg: Any) -> None:
    """Hydra entry: convert the DictConfig to :class:`TrainConfig` and train."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        typed: TrainConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        train(typed, out_dir)
    except (CheckpointError, SpecError, ValueError, FileNotFoundError, OmegaConfBaseException) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
