"""Train the traffic model on the NGSIM US-101 train recordings and write its weights.

    python -m generative.model.train                      # defaults: seed 0, shipped weights
    python -m generative.model.train --epochs 5 --out /tmp/w.pt

Data: ``../shared/data/traffic/ngsim_us101/us101_tracks.csv`` (relative to the repository
root), split by recording with :func:`generative.data.split_recordings` (seed 0: 14 train,
3 validation, 3 test recordings). The model is fitted on the train recordings; the validation
recordings pick the epoch whose weights are kept (lowest validation NLL); the test recordings
are never read here (they are the realism evaluation's held-out set).

Optimiser: AdamW, minibatches, Gaussian input noise (see :class:`TrainConfig`), cosine
learning-rate decay, fixed seed, one CPU thread, so the same command writes the same
weights. The file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from generative.data import fit_idm, load_ngsim_us101, split_recordings
from generative.data.ngsim import Tracks
from generative.model.dataset import (
    BEHAVIOR_FEATURES,
    BEHAVIOR_TARGETS,
    DENSITY_SCALE,
    FEATURES,
    TARGETS,
    Examples,
    build_examples,
    recording_lane_ratios,
)
from generative.model.network import NetConfig, TrafficNet

F64 = NDArray[np.float64]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path("../shared/data/traffic/ngsim_us101/us101_tracks.csv")
DEFAULT_WEIGHTS = Path("generative/model/weights/traffic_model.pt")  # relative to the repo root
WEIGHTS_FORMAT = 3  # bump when the file layout or an input's meaning changes (3: count density)
NOISY_FEATURES = ("density", "difficulty", "left_v")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        data: Tracks CSV in the us101_tracks.csv format (relative paths: from the repo root).
        out: Weights file to write.
        seed: Seed of the split's shuffle is fixed at 0; this seeds torch (init, batches).
        epochs: Passes over the training rows.
        batch_size: Rows per Adam step.
        lr: Adam learning rate.
        hidden: MLP width of the placement head.
        components: Mixture components of the placement head.
        behavior_hidden: MLP width of the behaviour head (323 fitted train vehicles: small).
        behavior_components: Mixture components of the behaviour head.
        weight_decay: AdamW weight decay.
        input_noise: Std of Gaussian noise added to the scene-context inputs
            (:data:`NOISY_FEATURES`) during training, in units of each input's std. The 14
            train recordings differ much more from each other than their snapshots do, and the
            exact snapshot density names the recording; the noise keeps the heads from
            memorising recordings (without it the validation NLL rises from its minimum
            after 3-5 epochs and keeps rising).
        calibrate: After training, calibrate the MOBIL lane-change threshold
            (:func:`calibrate_lane_changes`).
    """

    data: str = str(DEFAULT_DATA)
    out: str = str(DEFAULT_WEIGHTS)
    seed: int = 0
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3
    hidden: int = 32
    components: int = 6
    behavior_hidden: int = 16
    behavior_components: int = 2
    weight_decay: float = 1e-3
    input_noise: float = 0.5
    calibrate: bool = True


@dataclass(frozen=True)
class TrainResult:
    """What a training run did: losses per epoch, the kept epoch, time [s], rows."""

    train_nll: tuple[float, ...]
    val_nll: tuple[float, ...]
    best_epoch: int
    seconds: float
    n_train: int
    n_val: int


def _tensors(ex: Examples) -> dict[str, torch.Tensor]:
    return {
        "x": torch.from_numpy(ex.x),
        "y": torch.from_numpy(ex.y),
        "m": torch.from_numpy(ex.y_mask),
        "bx": torch.from_numpy(ex.bx),
        "by": torch.from_numpy(ex.by),
        "bm": torch.from_numpy(ex.b_mask),
    }


# Inputs that get training noise: the scene context that names a recording (density, the
# difficulty label, the left lane's speed). The leader's state is left exact: blurring it would
# blur the car-following relation between a vehicle and its leader that the head must learn.
NOISY = torch.tensor([f in NOISY_FEATURES for f in FEATURES])
BEHAVIOR_NOISY = torch.tensor([f in NOISY_FEATURES for f in BEHAVIOR_FEATURES])


def _loss(
    net: TrafficNet,
    t: dict[str, torch.Tensor],
    idx: torch.Tensor,
    noise: float = 0.0,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean placement NLL + mean behaviour NLL (fitted rows only) over the rows ``idx``.

    ``noise`` > 0 perturbs the continuous inputs (see :class:`TrainConfig`).
    """
    x, bx = t["x"][idx], t["bx"][idx]
    if noise > 0:
        x = x + noise * net.placement.x_std * torch.randn(x.shape, generator=gen) * NOISY
        bx = bx + noise * net.behavior.x_std * torch.randn(bx.shape, generator=gen) * BEHAVIOR_NOISY
    place = net.placement.nll(x, t["y"][idx], t["m"][idx]).mean()
    bm = t["bm"][idx]
    if bool(bm.any()):
        by = t["by"][idx][bm]
        beh = net.behavior.nll(bx[bm], by, torch.ones_like(by, dtype=torch.bool))
        return place + beh.mean()
    return place


def resolve(path: str | Path) -> Path:
    """A relative data/weights path is relative to the repository root."""
    p = Path(path)
    return p if p.is_absolute() else (REPO / p).resolve()


def train(
    cfg: TrainConfig, progress: bool = True
) -> tuple[TrafficNet, dict[str, Any], TrainResult]:
    """Fit the model; returns (net, the metadata saved with it, the run's result)."""
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    tracks = load_ngsim_us101(resolve(cfg.data))
    split = split_recordings(tracks.recordings)
    fit = fit_idm(tracks)
    ex_tr, ref = build_examples(tracks, split.train, fit)
    ex_va, _ = build_examples(tracks, split.validation, fit, headway_reference=ref)
    net = TrafficNet(
        NetConfig(len(FEATURES), len(TARGETS), cfg.hidden, 2, cfg.components),
        NetConfig(
            len(BEHAVIOR_FEATURES),
            len(BEHAVIOR_TARGETS),
            cfg.behavior_hidden,
            2,
            cfg.behavior_components,
        ),
    )
    tr, va = _tensors(ex_tr), _tensors(ex_va)
    net.placement.set_scaling(tr["x"], tr["y"], tr["m"])
    bm = tr["bm"]
    net.behavior.set_scaling(tr["bx"][bm], tr["by"][bm], torch.ones_like(tr["by"][bm]).bool())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    gen = torch.Generator().manual_seed(cfg.seed)
    n = ex_tr.n
    all_va = torch.arange(ex_va.n)
    best, best_state, best_epoch = float("inf"), copy.deepcopy(net.state_dict()), -1
    train_nll: list[float] = []
    val_nll: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, desc="traffic model", unit="epoch", file=sys.stderr)
    try:
        for epoch in range(cfg.epochs):
            net.train()
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                loss = _loss(net, tr, idx, cfg.input_noise, gen)
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                total += loss.item() * idx.numel()
            sched.step()
            net.eval()
            with torch.no_grad():
                v = float(_loss(net, va, all_va)) if ex_va.n else float("nan")
            train_nll.append(total / n)
            val_nll.append(v)
            if v < best or not np.isfinite(best):
                best, best_state, best_epoch = v, copy.deepcopy(net.state_dict()), epoch
            if bar is not None:
                bar.set_postfix(train=f"{total / n:.3f}", val=f"{v:.3f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    net.load_state_dict(best_state)
    net.eval()
    dens = ex_tr.x[:, 0] * DENSITY_SCALE
    meta: dict[str, Any] = {
        "format": WEIGHTS_FORMAT,
        "train_config": asdict(cfg),
        "placement": asdict(net.placement.cfg),
        "behavior": asdict(net.behavior.cfg),
        "headway_reference": torch.from_numpy(ref.astype(np.float32)),
        # [veh/km/lane] conditioning range: 5th-95th percentile of training snapshots
        "density_range": [float(np.percentile(dens, 5)), float(np.percentile(dens, 95))],
        "train_recordings": list(split.train),
        "validation_recordings": list(split.validation),
        "test_recordings": list(split.test),
        "best_epoch": best_epoch,
        "val_nll": best,
    }
    lr, lr_d = recording_lane_ratios(tracks, split.train)
    meta["lane_ratios"] = {
        "density": [float(x) for x in lr_d],
        "ratio": [[float(x) for x in row] for row in lr],
    }
    if cfg.calibrate:
        table = calibrate_lane_changes(net, meta, tracks, split.train, cfg.seed)
        meta["lc_threshold_table"] = {"density": table["density"], "threshold": table["threshold"]}
        # The threshold at the training snapshots' median density (weights without a table).
        meta["lc_threshold"] = float(
            np.exp(np.interp(np.median(dens), table["density"], np.log(table["threshold"])))
        )
        meta["lc_calibration"] = table
    res = TrainResult(
        tuple(train_nll), tuple(val_nll), best_epoch, time.perf_counter() - t0, ex_tr.n, ex_va.n
    )
    return net, meta, res


# [m/s^2] MOBIL thresholds tried (the simulator's default is 0.2; dense traffic needs > 2)
LC_THRESHOLD_GRID_MPS2 = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
LC_DENSITY_LEVELS = (15.0, 25.0, 35.0, 45.0, 55.0)  # [veh/km/lane] calibrated densities
CALIBRATION_SCENES = 16  # scenes per (density, threshold) played 10 s


def lane_change_counts(tracks: Tracks, recordings: tuple[str, ...]) -> tuple[F64, F64, F64]:
    """Per recording: main-lane lane changes, observed vehicle-10-s and median density.

    Events and exposure are counted as :func:`generative.realism.real_rollout_stats` counts
    them (debounced events between main lanes; every main-lane row is 0.1 vehicle-s).
    """
    from generative.data import detect_lane_changes
    from generative.data.ngsim import AUX_LANE
    from generative.model.dataset import main_lane_snapshots, snapshot_count_density

    ev = detect_lane_changes(tracks)
    ok = (ev.from_lane != AUX_LANE) & (ev.to_lane != AUX_LANE) & (ev.from_lane >= 0)
    main = (tracks.lane >= 0) & (tracks.lane != AUX_LANE)
    snap = main_lane_snapshots(tracks)
    dens = snapshot_count_density(snap)
    out = []
    for name in recordings:
        r = tracks.recordings.index(name)
        d = dens[snap.snapshot_recording == r]
        d = d[np.isfinite(d)]
        if d.size == 0:
            continue
        n_ev = np.count_nonzero(ok & (tracks.recording[ev.row] == r))
        expo = np.count_nonzero(main & (tracks.recording == r)) * 0.1 / 10.0
        out.append((n_ev, expo, float(np.median(d))))
    a = np.array(out, np.float64).reshape(-1, 3)
    return a[:, 0], a[:, 1], a[:, 2]


def fit_lane_change_rate(events: F64, exposure: F64, density: F64) -> tuple[float, float]:
    """Poisson regression ``rate(d) = exp(a + b d)`` [/veh/10 s] by Newton's method.

    Returns ``(a, b)``. Lane changes are rare (62 in all of US-101), so one rate per
    recording is too noisy to use; the fit pools the recordings and keeps the one trend the
    data show: denser traffic changes lanes less.
    """
    ab = np.array([np.log(max(events.sum(), 0.5) / exposure.sum()), 0.0])
    x = np.column_stack([np.ones_like(density), density])
    for _ in range(50):
        mu = exposure * np.exp(x @ ab)
        grad = x.T @ (events - mu)
        hess = (x * mu[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        ab = ab + step
        if np.abs(step).max() < 1e-10:
            break
    return float(ab[0]), float(ab[1])


def _threshold_for(rates: dict[float, float], target: float) -> float:
    """The threshold whose rate is ``target``: log rate interpolated linearly in log threshold.

    The measured rates fall with the threshold up to sampling noise; they are made
    non-increasing first. Targets beyond the measured range get the end thresholds.
    """
    thr = np.log(np.array(sorted(rates)))
    lr = np.log(np.maximum([rates[k] for k in sorted(rates)], 1e-4))
    lr = np.minimum.accumulate(lr)
    # np.interp needs increasing x: interpolate threshold as a function of -log rate.
    return float(np.exp(np.interp(-np.log(target), -lr, thr)))


def calibrate_lane_changes(
    net: TrafficNet, meta: dict[str, Any], tracks: Tracks, recordings: tuple[str, ...], seed: int
) -> dict[str, Any]:
    """The MOBIL threshold per density whose 10-s rollouts change lanes as often as
    ``recordings`` do at that density.

    Target: the Poisson fit of the recordings' lane-change rate on their density
    (:func:`fit_lane_change_rate`), held at its value at the end of the recordings' median
    densities beyond them (no extrapolation: with medians of 28-39 veh/km/lane the
    exponential would ask 0.6 lane changes per vehicle and 10 s at 15). For each density of
    :data:`LC_DENSITY_LEVELS`, sampled scenes at that density (uniform difficulty) are played
    10 s in the simulator for each threshold of :data:`LC_THRESHOLD_GRID_MPS2` (the same
    scenes: one seed); the threshold giving the target rate is interpolated
    (:func:`_threshold_for`). Returns the table for
    the metadata (``density``, ``threshold``, targets, fit and measured rates).
    """
    from generative.model.sampler import LearnedTrafficSampler
    from generative.realism import rollout_stats

    ev, expo, dens = lane_change_counts(tracks, recordings)
    a, b = fit_lane_change_rate(ev, expo, dens)
    thresholds, targets, rates = [], [], []
    for level in LC_DENSITY_LEVELS:
        target = float(np.exp(a + b * np.clip(level, dens.min(), dens.max())))
        row = {}
        for thr in LC_THRESHOLD_GRID_MPS2:
            sampler = LearnedTrafficSampler.from_net(
                net, {**meta, "lc_threshold": thr, "lc_threshold_table": None}
            )
            roll = rollout_stats(
                sampler, CALIBRATION_SCENES, np.array([level]), np.random.default_rng(seed)
            )
            row[thr] = float(roll.lane_change_rate)
        thresholds.append(_threshold_for(row, target))
        targets.append(target)
        rates.append([row[k] for k in LC_THRESHOLD_GRID_MPS2])
    # Denser traffic never gets a lower threshold: a dip is rollout noise (16 scenes a cell).
    thresholds = [float(x) for x in np.maximum.accumulate(thresholds)]
    return {
        "density": list(LC_DENSITY_LEVELS),
        "threshold": thresholds,
        "target_rate": targets,
        "rate_fit": [a, b],
        "fit_density_range": [float(dens.min()), float(dens.max())],
        "grid": list(LC_THRESHOLD_GRID_MPS2),
        "rates": rates,
    }


def save(net: TrafficNet, meta: dict[str, Any], path: str | Path) -> Path:
    """Write weights and metadata atomically (temporary file in the same folder, then rename)."""
    p = resolve(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    torch.save({"meta": meta, "state": state}, tmp)
    tmp.replace(p)
    return p


def main(argv: list[str] | None = None) -> None:
    """Command line: every :class:`TrainConfig` field as ``--field value``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            ap.add_argument(
                f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value
            )
        else:
            ap.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    kw = {k: getattr(args, k) for k in asdict(defaults)}
    cfg = TrainConfig(**kw)
    net, meta, res = train(cfg, progress=not args.no_progress)
    path = save(net, meta, cfg.out)
    size = path.stat().st_size
    print(
        f"trained in {res.seconds:.1f} s on {res.n_train} rows (validation {res.n_val}); "
        f"best epoch {res.best_epoch}: validation NLL {meta['val_nll']:.3f}; "
        f"MOBIL threshold {meta.get('lc_threshold', 'not calibrated')}; "
        f"wrote {path} ({size / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
