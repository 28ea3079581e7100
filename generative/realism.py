"""Realism of generated background traffic against held-out recordings.

``evaluate_realism(data_path, seed=0)`` compares three sources with the held-out recordings:

- ``learned``: :class:`generative.model.LearnedTrafficSampler` (the shipped weights);
- ``rule_based``: :class:`generative.baseline.RuleBasedTrafficSampler` (uniform gaps and
  speeds around the limit), the baseline;
- ``train_data``: the NGSIM US-101 training recordings themselves, the floor (how far two sets
  of real recordings are apart).

Held-out set: when ``data_path`` holds any of the model's training recordings (the US-101
file), the recordings of its test split (:func:`generative.data.split_recordings`, seed 0);
otherwise every recording of the file.

Snapshots. Recordings are cut into snapshots every ``SNAPSHOT_EVERY_S`` (main lanes 0..4 only,
:func:`generative.model.dataset.main_lane_snapshots`); each vehicle gets its leader in the same
lane *within the snapshot*. A snapshot's observed road is its occupied extent (rear bumper of
the rearmost to front bumper of the foremost vehicle,
:func:`generative.model.dataset.snapshot_extents`), not the recording's camera window: the
CommonRoad slices track only the vehicles present at their start, so the road behind them
empties as a recording runs. Generated scenes are made to look the same: a straight 5-lane
road at the US-101 limit, scenes conditioned on a held-out snapshot's density (vehicles per km
and lane over its extent, :func:`generative.model.dataset.snapshot_count_density`) and a
uniform difficulty, then cropped to a window of an extent's length in the middle of the road,
with leaders outside the window dropped.

Two comparisons, both reported (:class:`RealismReport` ``sources`` and ``matched``):

- *Unmatched*: each held-out snapshot gets ``scenes_per_snapshot`` generated scenes at its
  density, cropped to a window drawn from the held-out snapshots' extents; ``train_data`` is
  every training snapshot, uncropped. Between-recording differences (each recording is one
  traffic state: its congestion, its lane use, its camera window) dominate this comparison:
  the training recordings themselves are told apart from the held-out ones.
- *Matched*: each generated scene is conditioned on the observable road context of its
  held-out snapshot (5 lanes, the US-101 limit, the snapshot's density and, for samplers that
  take them, its per-lane densities: :func:`lane_ratios`) and cropped to that snapshot's own
  extent; ``train_data`` is, for each held-out snapshot, the ``scenes_per_snapshot``
  training snapshots nearest in per-lane density (:func:`matched_recorded_set`), each cropped
  to the same window at a uniform position. The classifier and its features are the same, so
  the matched C2ST asks "is this realistic traffic for this road context", not "which
  recording is this".

Metrics per source.

- Wasserstein-1 distance (:func:`wasserstein1`, exact for empirical distributions) of: speed
  [m/s], gap to the leader [m], time headway [s] (gap / speed, speeds > 1 m/s, capped at
  ``HEADWAY_CAP_S``), relative speed to the leader ``v - v_leader`` [m/s], lane occupancy (the
  distribution of vehicles over lane indices 0..4) and snapshot pair density [veh/km/lane]
  (1000 / mean centre spacing of the vehicles with a leader in the window,
  :func:`generative.model.dataset.snapshot_density`, computed alike on both sides).
- Classifier two-sample test (C2ST, :func:`c2st_accuracy`): a small MLP tries to tell real
  from generated; accuracy on held-out folds (0.5 = indistinguishable). Three versions:
  ``c2st_vehicle_local`` classifies one vehicle at a time from its own state only, the vector
  (speed, has leader, log gap, headway, relative speed, lane index, length);
  ``c2st_vehicle`` classifies one vehicle-in-its-snapshot at a time, the vector
  (speed, has leader, log gap, headway, relative speed, lane index, length, snapshot density,
  snapshot mean speed, lane mean speed); ``c2st_snapshot`` classifies whole snapshots, the
  vector (density, mean and std of speed, mean log gap, mean headway, share of vehicles per lane
  (5), std of the lane mean speeds). Real and generated are balanced by subsampling; folds are
  drawn by group so that near-duplicate rows never sit on both sides of a fold: real (and
  recorded ``train_data``) snapshots by 2-s block of their recording, generated rows by scene.
  Classifier: 2 hidden layers of 32 ReLU units, full-batch Adam (lr 1e-2, weight decay 1e-4),
  standardised inputs, 5-fold cross-validation, accuracy on the held-out folds. The matched
  comparison adds the same three C2STs with leave-one-recording-out folds (``*_loro``: one
  fold per held-out recording, each fake row in the fold of the recording it was made for;
  with 3 or more held-out recordings): a rule that must hold on an unseen recording's context,
  not a memory of the three recordings. For the matched ``train_data``, a recorded 2-s block
  picked for several held-out snapshots is one group (:func:`matched_recorded_set`).
- Rollout: generated scenes (1 km of traffic) are played 10 s in the embedded simulator
  (:func:`sim.world.reset` / :func:`sim.world.step`, IDM + MOBIL); vehicles that start 300-700 m
  along the road (away from the free road at the front) give the 10-s speed change
  ``v(t + 10 s) - v(t)`` and the lane-change rate (lane changes started per vehicle and 10 s).
  Real: every 1 s, each held-out track with 10 s ahead of it on the main lanes gives one speed
  change; lane changes are the debounced events (:func:`generative.data.detect_lane_changes`)
  between main lanes per vehicle-10-s observed. Metrics: W1 of the speed changes and the
  absolute difference of the lane-change rates.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from generative.data import detect_lane_changes, load_ngsim_us101, split_recordings
from generative.data.ngsim import AUX_LANE, Tracks
from generative.data.snapshots import Snapshots
from generative.model.dataset import (
    US101_LANES,
    US101_SPEED_LIMIT_MPS,
    lane_ratios,
    log_gap,
    main_lane_snapshots,
    snapshot_count_density,
    snapshot_density,
    snapshot_extents,
)
from generative.model.placement import RoadContext, road_context
from generative.model.validity import ValidityCounts, Vehicles
from sim.scenario import ActorSpec, EgoSpec, RoadSpec, ScenarioSpec

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

REPO = Path(__file__).resolve().parents[1]
US101_DATA = Path("../shared/data/traffic/ngsim_us101/us101_tracks.csv")
SNAPSHOT_EVERY_S = 0.5  # [s] snapshot stride (the data are 10 Hz)
HEADWAY_CAP_S = 10.0  # [s] headways beyond this are free driving; capped so W1 stays finite
MARGIN_M = 150.0  # [m] road before and after the window: placement's ends stay outside it
ROLLOUT_S = 10.0  # [s] rollout horizon (the 10 s)
ROLLOUT_ROAD_M = 1500.0  # [m] traffic on the first 1000 m, the ego parked ahead at 1400 m
ROLLOUT_TRAFFIC_M = (0.0, 1000.0)  # [m]
ROLLOUT_EVAL_M = (300.0, 700.0)  # [m] start s of the vehicles measured
FEATURES_W1: tuple[str, ...] = ("speed", "gap", "headway", "rel_speed", "lane", "density")
UNITS = {
    "speed": "m/s",
    "gap": "m",
    "headway": "s",
    "rel_speed": "m/s",
    "lane": "lanes",
    "density": "veh/km/lane",
    "speed_change_10s": "m/s",
    "lane_change_rate": "/veh/10 s",
}
SOURCES: tuple[str, ...] = ("learned", "rule_based", "train_data")


class VehicleSampler(Protocol):
    """What the evaluation needs of a sampler: batched scenes as arrays."""

    @property
    def stats(self) -> ValidityCounts: ...

    def sample_vehicles(
        self,
        ctx: RoadContext,
        rng: np.random.Generator,
        density: F64,
        difficulty: F64,
        s_range: tuple[float, float] | None = None,
        zones: Sequence[Sequence[tuple[int, int, float, float]]] | None = None,
        lane_ratio: F64 | None = None,
    ) -> tuple[Vehicles, ValidityCounts]: ...


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def wasserstein1(a: F64, b: F64) -> float:
    """Exact Wasserstein-1 distance between the empirical distributions of ``a`` and ``b``.

    ``W1 = integral |F_a(x) - F_b(x)| dx`` over the merged support (piecewise constant CDFs).

    Raises:
        ValueError: an empty sample.
    """
    a = np.sort(np.asarray(a, np.float64))
    b = np.sort(np.asarray(b, np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError(f"wasserstein1: empty sample (sizes {a.size}, {b.size})")
    x = np.concatenate([a, b])
    x.sort()
    dx = np.diff(x)
    fa = np.searchsorted(a, x[:-1], side="right") / a.size
    fb = np.searchsorted(b, x[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * dx))


def c2st_accuracy(
    real: F64,
    fake: F64,
    seed: int = 0,
    real_groups: I64 | None = None,
    folds: int = 5,
    epochs: int = 300,
    fake_groups: I64 | None = None,
    paired: bool = False,
) -> float:
    """Classifier two-sample test: mean held-out accuracy of an MLP telling ``real`` from ``fake``.

    The larger set is subsampled to the smaller one's size; rows are split into ``folds``
    folds (rows by ``real_groups`` / ``fake_groups`` when given, so near-duplicate rows share
    a fold: otherwise a classifier could score by recognising a row it saw in training); a
    2-layer MLP (32 units, full-batch Adam, standardised inputs) is trained on the other folds
    and scored on each fold. 0.5 means indistinguishable, 1.0 perfectly separable.

    Args:
        real, fake: ``(N, F)`` feature rows.
        seed: Subsampling, folds and the MLP's initialisation.
        real_groups: Group id of each real row (None: every row its own group).
        fake_groups: Group id of each fake row (None: every row its own group); e.g. the
            2-s blocks of recorded snapshots used as the fake set.
        paired: ``fake_groups`` are ids of ``real_groups`` (a fake row generated for a real
            group's road context): a fake row goes into its real group's fold, so that the
            classifier is tested on contexts it was not trained on, real and fake alike.
        folds: Cross-validation folds.
        epochs: Full-batch Adam steps per fold.
    """
    rng = np.random.default_rng(seed)
    n = min(real.shape[0], fake.shape[0])
    if n < folds:
        raise ValueError(f"c2st: need at least {folds} rows per class, got {n}")
    ri = np.sort(rng.choice(real.shape[0], n, replace=False))
    fi = rng.choice(fake.shape[0], n, replace=False)
    groups = real_groups[ri] if real_groups is not None else ri
    if paired:
        if fake_groups is None or real_groups is None:
            raise ValueError("c2st: paired folds need real_groups and fake_groups")
        ug = np.unique(np.concatenate([groups, fake_groups[fi]]))
    else:
        ug = np.unique(groups)
    g_fold = rng.permutation(ug.size) % folds
    fold_r = g_fold[np.searchsorted(ug, groups)]
    if paired and fake_groups is not None:
        fold_f = g_fold[np.searchsorted(ug, fake_groups[fi])]
    elif fake_groups is None:
        fold_f = rng.permutation(n) % folds
    else:
        fg = fake_groups[fi]
        uf = np.unique(fg)
        fold_f = (rng.permutation(uf.size) % folds)[np.searchsorted(uf, fg)]
    x = np.concatenate([real[ri], fake[fi]]).astype(np.float32)
    y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
    fold = np.concatenate([fold_r, fold_f])
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny full-batch MLPs: more threads only contend
    try:
        return _c2st_folds(x, y, fold, folds, epochs) / float(2 * n)
    finally:
        torch.set_num_threads(threads)


def _c2st_folds(
    x: NDArray[np.float32], y: NDArray[np.float32], fold: I64, folds: int, epochs: int
) -> int:
    """Correct held-out predictions summed over the folds (see :func:`c2st_accuracy`)."""
    correct = 0
    for k in range(folds):
        tr, te = fold != k, fold == k
        if not te.any() or not tr.any():
            continue
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        xt = torch.from_numpy((x[tr] - mu) / sd)
        yt = torch.from_numpy(y[tr])
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 1),
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(epochs):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt)[:, 0], yt)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        with torch.no_grad():
            pred = net(torch.from_numpy((x[te] - mu) / sd))[:, 0] > 0
        correct += int((pred.numpy() == (y[te] > 0.5)).sum())
    return correct


# ---------------------------------------------------------------------------------------------
# Features of a set of snapshots (real or generated)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotSet:
    """Vehicles of many snapshots with in-window leader relations, ``(N,)`` per vehicle.

    ``gap``, ``rel_speed`` are NaN without a leader; ``headway`` NaN without a leader or below
    1 m/s. ``group`` is the fold group of each snapshot ``(S,)`` (C2ST).
    """

    snapshot: I64
    lane: I64
    speed: F64
    length: F64
    gap: F64
    rel_speed: F64
    headway: F64
    density: F64  # (S,) pair density of each snapshot in its window [veh/km/lane]
    group: I64  # (S,)

    @property
    def n_snapshots(self) -> int:
        """Snapshots S."""
        return int(self.density.shape[0])


def _headway(gap: F64, v: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = np.where(v > 1.0, np.minimum(gap / v, HEADWAY_CAP_S), np.nan)
    return out


def used_snapshots(snap: Snapshots, keep: NDArray[np.bool_]) -> I64:
    """Snapshot indices :func:`from_snapshots` keeps (in its order): those of ``keep`` entries
    with a finite pair and count density (at least one leader)."""
    used = np.unique(snap.snapshot[keep])
    ok = np.isfinite(snapshot_density(snap)) & np.isfinite(snapshot_count_density(snap))
    out: I64 = used[ok[used]].astype(np.int64)
    return out


def from_snapshots(snap: Snapshots, keep: NDArray[np.bool_]) -> SnapshotSet:
    """A :class:`SnapshotSet` of the entries ``keep`` of recorded snapshots (renumbered)."""
    dens_all = snapshot_density(snap)
    used = used_snapshots(snap, keep)
    idx = np.flatnonzero(keep & np.isin(snap.snapshot, used))
    new = np.searchsorted(used, snap.snapshot[idx])
    step = snap.snapshot_time_step[used].astype(np.int64)
    rec = snap.snapshot_recording[used].astype(np.int64)
    return SnapshotSet(
        snapshot=new.astype(np.int64),
        lane=snap.lane[idx].astype(np.int64),
        speed=snap.speed_mps[idx],
        length=snap.length_m[idx],
        gap=snap.gap_m[idx],
        rel_speed=snap.dv_mps[idx],
        headway=_headway(snap.gap_m[idx], snap.speed_mps[idx]),
        density=dens_all[used],
        group=rec * 100_000 + step // 20,  # 2-s blocks of one recording
    )


def from_vehicles(v: Vehicles, window: F64, start: float) -> SnapshotSet:
    """A :class:`SnapshotSet` of generated scenes cropped to ``[start, start + window[scene]]``."""
    inside = (v.s >= start) & (v.s <= start + window[v.scene])
    v = v.take(inside)
    order = np.lexsort((v.s, v.lane, v.scene))
    v = v.take(order)
    n = v.n
    same = np.zeros(n, np.bool_)
    same[:-1] = (v.scene[1:] == v.scene[:-1]) & (v.lane[1:] == v.lane[:-1])
    nxt = np.minimum(np.arange(n) + 1, max(n - 1, 0))
    gap = np.where(same, v.s[nxt] - 0.5 * v.length[nxt] - v.s - 0.5 * v.length, np.nan)
    dv = np.where(same, v.speed - v.speed[nxt], np.nan)
    n_s = int(window.shape[0])
    spacing = gap + 0.5 * (v.length + v.length[nxt])
    cnt = np.bincount(v.scene[same], minlength=n_s).astype(np.float64)
    tot = np.bincount(v.scene[same], spacing[same], minlength=n_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        dens = np.where(cnt > 0, 1000.0 * cnt / tot, np.nan)
    ok = np.isfinite(dens)
    keep = ok[v.scene]
    renum = np.cumsum(ok) - 1
    return SnapshotSet(
        snapshot=renum[v.scene[keep]].astype(np.int64),
        lane=v.lane[keep],
        speed=v.speed[keep],
        length=v.length[keep],
        gap=gap[keep],
        rel_speed=dv[keep],
        headway=_headway(gap[keep], v.speed[keep]),
        density=dens[ok],
        group=np.flatnonzero(ok).astype(np.int64),
    )


def recorded_scenes(snap: Snapshots, pick: I64, start: F64, offset: float) -> Vehicles:
    """Entries of recorded snapshots ``pick`` ``(K,)`` as scenes ``0..K-1`` of :class:`Vehicles`.

    Scene k holds the entries of snapshot ``pick[k]`` with ``s`` shifted so that ``start[k]``
    lies at ``offset``: :func:`from_vehicles` with ``start=offset`` then crops each snapshot to
    its own window, exactly as it crops generated scenes. Behaviour columns are zero (unused).
    """
    order = np.argsort(snap.snapshot, kind="stable")
    srt = snap.snapshot[order]
    lo = np.searchsorted(srt, pick, side="left")
    hi = np.searchsorted(srt, pick, side="right")
    cnt = hi - lo
    scene = np.repeat(np.arange(pick.size, dtype=np.int64), cnt)
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
    idx = order[first + np.arange(scene.size)]
    keep = snap.lane[idx] >= 0
    idx, scene = idx[keep], scene[keep]
    s = snap.s_m[idx] - start[scene] + offset
    z = np.zeros(idx.size)
    return Vehicles(
        scene,
        snap.lane[idx].astype(np.int64),
        s,
        s,
        snap.speed_mps[idx],
        snap.length_m[idx],
        snap.width_m[idx],
        *([z] * 7),
    )


def matched_recorded_set(
    snap: Snapshots,
    candidates: I64,
    density: F64,
    ratio: F64,
    window: F64,
    per_snapshot: int,
    rng: np.random.Generator,
    target_recording: I64 | None = None,
) -> SnapshotSet:
    """Recorded snapshots matched to target snapshots: the density-matched floor.

    For each target snapshot j (density ``density[j]``, per-lane ratios ``ratio[j]``, window
    ``window[j]``), the ``per_snapshot`` snapshots among ``candidates`` nearest in per-lane
    density ``density * ratio`` (Euclidean over the lanes), each cropped
    to a window of length ``window[j]`` at a uniform position inside its observed road. The
    result's ``group`` is the target snapshot j of each snapshot (the matched C2ST folds by
    it), except that a recorded 2-s block picked for several targets gets one representative
    target (:func:`_representative_targets`), so that no recorded moment sits in two folds.

    Args:
        snap: Recorded snapshots.
        candidates: Snapshot indices of ``snap`` to choose from (e.g. the training recordings').
        density, window: Targets' density [veh/km/lane] and window [m], ``(J,)`` each.
        ratio: Targets' per-lane ratios (:func:`lane_ratios`), ``(J, L)``.
        per_snapshot: Recorded snapshots per target.
        rng: Crop positions.
        target_recording: Recording of each target ``(J,)`` (None: each target its own).
    """
    if target_recording is None:
        target_recording = np.arange(density.shape[0], dtype=np.int64)
    on = snap.lane >= 0
    n_all = int(snap.snapshot_recording.shape[0])
    c_ratio = lane_ratios(
        snap.lane[on].astype(np.int64), snap.snapshot[on].astype(np.int64), n_all, ratio.shape[1]
    )[candidates]
    c_lane = snapshot_count_density(snap)[candidates, None] * c_ratio  # (C, L)
    t_lane = density[:, None] * ratio  # (J, L)
    dist = np.sqrt(((t_lane[:, None, :] - c_lane[None, :, :]) ** 2).sum(-1))
    near = np.argsort(dist, axis=1, kind="stable")
    pick = candidates[near[:, :per_snapshot]].reshape(-1)
    win = np.repeat(window, per_snapshot)
    s_lo, s_hi = snapshot_extents(snap)
    room = np.maximum(s_hi[pick] - s_lo[pick] - win, 0.0)
    start = s_lo[pick] + rng.uniform(0.0, 1.0, pick.size) * room
    veh = recorded_scenes(snap, pick, start, MARGIN_M)
    out = from_vehicles(veh, win, MARGIN_M)
    target = np.repeat(np.arange(density.shape[0]), per_snapshot)
    rep = _representative_targets(snap, pick, target, target_recording)
    return dataclasses.replace(out, group=rep[out.group])


def _representative_targets(snap: Snapshots, pick: I64, target: I64, target_rec: I64) -> I64:
    """One target per recorded 2-s block: a block picked for several targets counts as one.

    The same recorded moment must not sit on both sides of a C2ST fold (the classifier would
    recognise it): every use of a block gets the same representative target, the first target
    of the held-out recording that uses the block most, so recording folds stay paired.
    """
    blk = snap.snapshot_recording[pick].astype(np.int64) * 100_000 + (
        snap.snapshot_time_step[pick].astype(np.int64) // 20
    )
    ub, inv = np.unique(blk, return_inverse=True)
    recs = np.unique(target_rec)
    ri = np.searchsorted(recs, target_rec[target])
    votes = np.zeros((ub.size, recs.size), np.int64)
    np.add.at(votes, (inv, ri), 1)
    best = votes.argmax(1)  # (blocks,) recording index used most
    rep = np.empty(ub.size, np.int64)
    for b in range(ub.size):
        uses = np.flatnonzero((inv == b) & (ri == best[b]))
        rep[b] = target[uses[0]]
    out: I64 = rep[inv]
    return out


def feature_samples(s: SnapshotSet) -> dict[str, F64]:
    """The per-feature samples compared by W1 (:data:`FEATURES_W1`)."""
    return {
        "speed": s.speed,
        "gap": s.gap[np.isfinite(s.gap)],
        "headway": s.headway[np.isfinite(s.headway)],
        "rel_speed": s.rel_speed[np.isfinite(s.rel_speed)],
        "lane": s.lane.astype(np.float64),
        "density": s.density,
    }


def vehicle_vectors(s: SnapshotSet) -> F64:
    """Per-vehicle C2ST rows (module docstring), ``(N, 10)``."""
    n_s = s.n_snapshots
    cnt = np.maximum(np.bincount(s.snapshot, minlength=n_s), 1)
    mean_v = np.bincount(s.snapshot, s.speed, minlength=n_s) / cnt
    key = s.snapshot * US101_LANES + s.lane
    lc = np.maximum(np.bincount(key, minlength=n_s * US101_LANES), 1)
    lane_v = np.bincount(key, s.speed, minlength=n_s * US101_LANES) / lc
    has = np.isfinite(s.gap)
    out: F64 = np.stack(
        [
            s.speed,
            has.astype(np.float64),
            log_gap(s.gap, has),
            np.nan_to_num(s.headway, nan=0.0),
            np.nan_to_num(s.rel_speed, nan=0.0),
            s.lane.astype(np.float64),
            s.length,
            s.density[s.snapshot],
            mean_v[s.snapshot],
            lane_v[key],
        ],
        1,
    )
    return out


def snapshot_vectors(s: SnapshotSet) -> F64:
    """Per-snapshot C2ST rows (module docstring), ``(S, 10)``."""
    n_s = s.n_snapshots
    cnt = np.maximum(np.bincount(s.snapshot, minlength=n_s), 1).astype(np.float64)

    def mean(x: F64, m: NDArray[np.bool_]) -> F64:
        c = np.maximum(np.bincount(s.snapshot[m], minlength=n_s), 1)
        out: F64 = np.bincount(s.snapshot[m], x[m], minlength=n_s) / c
        return out

    all_ = np.ones(s.snapshot.shape[0], np.bool_)
    mv = mean(s.speed, all_)
    sd = np.sqrt(np.maximum(mean(s.speed**2, all_) - mv**2, 0.0))
    has = np.isfinite(s.gap)
    lg = mean(np.log(np.maximum(np.nan_to_num(s.gap, nan=1.0), 0.1)), has)
    hw_ok = np.isfinite(s.headway)
    hw = mean(np.nan_to_num(s.headway), hw_ok)
    key = s.snapshot * US101_LANES + s.lane
    lane_n = np.bincount(key, minlength=n_s * US101_LANES).reshape(n_s, US101_LANES)
    share = lane_n / cnt[:, None]
    lane_v = np.bincount(key, s.speed, minlength=n_s * US101_LANES).reshape(n_s, US101_LANES)
    lane_mean = np.where(lane_n > 0, lane_v / np.maximum(lane_n, 1), np.nan)
    with np.errstate(invalid="ignore"):
        lane_sd = np.nan_to_num(np.nanstd(lane_mean, axis=1))
    out: F64 = np.column_stack([s.density, mv, sd, lg, hw, share, lane_sd])
    return out


# ---------------------------------------------------------------------------------------------
# Rollout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutStats:
    """10-s speed changes [m/s] ``(K,)`` and lane changes per vehicle and 10 s."""

    speed_change: F64
    lane_change_rate: float
    vehicles: int


def real_rollout_stats(tracks: Tracks, recordings: Sequence[str]) -> RolloutStats:
    """Speed changes over 10 s and lane-change rate of recorded main-lane vehicles."""
    names = set(recordings)
    in_set = np.array([r in names for r in tracks.recordings], np.bool_)
    horizon = round(ROLLOUT_S * 10)  # 10 Hz
    stride = 10  # one window start per second
    main = (tracks.lane >= 0) & (tracks.lane != AUX_LANE)
    rows = np.flatnonzero(in_set[tracks.recording])
    dv: list[F64] = []
    k = tracks.track[rows]
    start = tracks.track_start[k]
    end = tracks.track_start[k + 1]
    pos = rows - start
    later = rows + horizon
    ok = (pos % stride == 0) & (later < end)
    ok &= main[rows] & main[np.minimum(later, tracks.n_rows - 1)]
    r0 = rows[ok]
    dv.append(tracks.speed_mps[r0 + horizon] - tracks.speed_mps[r0])
    ev = detect_lane_changes(tracks)
    ev_ok = (
        in_set[tracks.recording[ev.row]]
        & (ev.from_lane != AUX_LANE)
        & (ev.to_lane != AUX_LANE)
        & (ev.from_lane >= 0)
    )
    observed_s = np.count_nonzero(main & in_set[tracks.recording]) * 0.1
    rate = float(np.count_nonzero(ev_ok)) / max(observed_s, 1e-9) * ROLLOUT_S
    return RolloutStats(np.concatenate(dv), rate, int(np.unique(tracks.track[r0]).size))


def rollout_stats(
    sampler: VehicleSampler, n_scenes: int, density: F64, rng: np.random.Generator
) -> RolloutStats:
    """Play ``n_scenes`` generated scenes 10 s in the embedded simulator (module docstring)."""
    from generative.model.sampler import to_actors
    from sim import world
    from sim.scenario import build_road
    from sim.world import SimParams

    road = RoadSpec(
        kind="straight",
        num_lanes=US101_LANES,
        speed_limit=US101_SPEED_LIMIT_MPS,
        length=ROLLOUT_ROAD_M,
    )
    ctx = road_context(road)
    dens = rng.choice(density, n_scenes)
    diff = rng.uniform(0.0, 1.0, n_scenes)
    veh, _ = sampler.sample_vehicles(ctx, rng, dens, diff, s_range=ROLLOUT_TRAFFIC_M)
    specs = []
    for b in range(n_scenes):
        actors: tuple[ActorSpec, ...] = to_actors(veh.take(veh.scene == b))
        specs.append(
            ScenarioSpec(
                name=f"rollout_{b}",
                road=road,
                ego=EgoSpec(
                    lane=-1, s=ROLLOUT_ROAD_M - 100.0, speed=road.speed_limit, route_length=50.0
                ),
                actors=actors,
                time_limit_s=3600.0,
                seed=b,
            )
        )
    g = build_road(road)
    st = world.reset(specs, g, [np.random.default_rng(b) for b in range(n_scenes)], check=False)
    params = SimParams()
    n_steps = round(ROLLOUT_S / params.dt)
    v0 = st.speed.astype(np.float64).copy()
    s0 = st.s.astype(np.float64).copy()
    lc = np.zeros(st.valid.shape, np.int64)
    prev_tgt = st.lc_target.copy()
    alive = st.valid.copy()
    actions = np.zeros((n_scenes, 2), np.float32)
    for _ in range(n_steps):
        st = world.step(st, actions, params, g)
        lc += (st.lc_target >= 0) & (prev_tgt < 0)
        prev_tgt = st.lc_target.copy()
        alive &= st.valid
    meas = alive.copy()
    meas[:, 0] = False  # the ego
    meas &= (s0 >= ROLLOUT_EVAL_M[0]) & (s0 <= ROLLOUT_EVAL_M[1])
    dv = st.speed.astype(np.float64)[meas] - v0[meas]
    rate = float(lc[meas].sum()) / max(int(meas.sum()), 1)
    return RolloutStats(dv, rate, int(meas.sum()))


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceResult:
    """Metrics of one source against the held-out set (module docstring)."""

    w1: dict[str, float]
    c2st_vehicle_local: float
    c2st_vehicle: float
    c2st_snapshot: float
    rollout_speed_change_w1: float | None
    lane_change_rate: float | None
    lane_change_rate_diff: float | None
    vehicles: int
    snapshots: int
    validity: dict[str, float] = field(default_factory=dict)
    # Matched comparison only: the three C2STs again with leave-one-recording-out folds
    # (keys vehicle_local, vehicle, snapshot); empty otherwise.
    c2st_by_recording: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Every lower-is-better metric by name (the table's rows)."""
        out = {f"w1_{k}": v for k, v in self.w1.items()}
        out["c2st_vehicle_local"] = self.c2st_vehicle_local
        out["c2st_vehicle"] = self.c2st_vehicle
        out["c2st_snapshot"] = self.c2st_snapshot
        for k, v in self.c2st_by_recording.items():
            out[f"c2st_{k}_loro"] = v
        if self.rollout_speed_change_w1 is not None:
            out["w1_speed_change_10s"] = self.rollout_speed_change_w1
        if self.lane_change_rate_diff is not None:
            out["lane_change_rate_diff"] = self.lane_change_rate_diff
        return out


@dataclass(frozen=True)
class RealismReport:
    """Results of :func:`evaluate_realism` for every source.

    ``sources``: the unmatched comparison; ``matched``: the matched one (module docstring;
    empty when not run). Rollout metrics are the same in both.
    """

    data: str
    held_out: tuple[str, ...]
    seed: int
    sources: dict[str, SourceResult]
    real_vehicles: int
    real_snapshots: int
    real_lane_change_rate: float
    real_speed_change_vehicles: int
    seconds: float
    matched: dict[str, SourceResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able plain data."""
        d = dataclasses.asdict(self)
        d["held_out"] = list(self.held_out)
        return _plain(d)  # type: ignore[no-any-return]

    def beats(
        self, a: str = "learned", b: str = "rule_based", matched: bool = False
    ) -> dict[str, bool]:
        """Per metric: whether source ``a`` is closer to the held-out data than ``b``."""
        src = self.matched if matched else self.sources
        ma, mb = src[a].metrics(), src[b].metrics()
        out = {}
        for k, v in ma.items():
            if k.startswith("c2st"):
                out[k] = abs(v - 0.5) < abs(mb[k] - 0.5)
            else:
                out[k] = v < mb[k]
        return out

    def _table(self, src: dict[str, SourceResult]) -> list[str]:
        names = [s for s in SOURCES if s in src]
        rows = list(src[names[0]].metrics())
        lines = [
            "| metric | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for r in rows:
            unit = UNITS.get(r.removeprefix("w1_"), "")
            if r == "lane_change_rate_diff":
                unit = UNITS["lane_change_rate"]
            label = f"{r} [{unit}]" if unit and not r.startswith("c2st") else r
            vals = []
            for n in names:
                v = src[n].metrics().get(r)
                vals.append("—" if v is None else f"{v:.3f}")
            lines.append(f"| {label} | " + " | ".join(vals) + " |")
        lcr = [
            "—" if src[n].lane_change_rate is None else f"{src[n].lane_change_rate:.3f}"
            for n in names
        ]
        lines.append(
            f"| lane_change_rate [/veh/10 s] (real {self.real_lane_change_rate:.3f}) | "
            + " | ".join(lcr)
            + " |"
        )
        rep = [
            f"{100 * src[n].validity['repaired']:.1f}% / {100 * src[n].validity['rejected']:.1f}%"
            if src[n].validity
            else "—"
            for n in names
        ]
        lines.append("| repaired / rejected vehicles | " + " | ".join(rep) + " |")
        if "learned" in src and "rule_based" in src:
            b = self.beats(matched=src is self.matched)
            lost = [k for k, v in b.items() if not v]
            lines += [
                "",
                f"learned beats rule_based on {sum(b.values())} of {len(b)} metrics"
                + (f" (not on: {', '.join(lost)})" if lost else ""),
                "C2ST accuracy of learned (target < 0.65): "
                f"{src['learned'].c2st_vehicle_local:.3f} per vehicle (own state), "
                f"{src['learned'].c2st_vehicle:.3f} per vehicle in its snapshot, "
                f"{src['learned'].c2st_snapshot:.3f} per snapshot"
                + (
                    "; leave one recording out: "
                    + ", ".join(f"{v:.3f}" for v in src["learned"].c2st_by_recording.values())
                    if src["learned"].c2st_by_recording
                    else ""
                ),
            ]
        return lines

    def to_markdown(self) -> str:
        """The tables: one row per metric, one column per source (lower is better; C2ST: 0.5).

        First the matched comparison (when run), then the unmatched one.
        """
        lines = [
            f"Realism against held-out recordings {', '.join(self.held_out)} of {self.data} "
            f"({self.real_snapshots} snapshots, {self.real_vehicles} vehicles; seed {self.seed})",
            "",
        ]
        if self.matched:
            lines += [
                "Matched (each generated scene: its held-out snapshot's density, per-lane "
                "densities and occupied extent; train_data: the training snapshots nearest in "
                "per-lane density, cropped to that window; *_loro: C2ST with one fold per "
                "held-out recording):",
                "",
                *self._table(self.matched),
                "",
            ]
        lines += [
            "Unmatched (generated scenes: the held-out densities, windows drawn from the "
            "held-out snapshots' extents; train_data: every training snapshot, uncropped):",
            "",
            *self._table(self.sources),
        ]
        lines.append(f"({self.seconds:.0f} s)")
        return "\n".join(lines)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return (REPO / p).resolve()


def evaluate_realism(
    data_path: str | Path,
    seed: int = 0,
    *,
    samplers: dict[str, VehicleSampler] | None = None,
    scenes_per_snapshot: int = 8,
    rollout_scenes: int = 48,
    rollout: bool = True,
    train_data: str | Path | None = US101_DATA,
    c2st_epochs: int = 300,
    progress: Callable[[str], None] | None = None,
    split: str = "test",
    matched: bool = True,
) -> RealismReport:
    """Compare the samplers and the training recordings with held-out recordings.

    Args:
        data_path: Tracks CSV in the us101_tracks.csv format (module docstring: which part is
            held out).
        seed: Seeds every draw (scenes, subsampling, classifiers).
        samplers: Sources to compare (default: ``learned`` and ``rule_based``).
        scenes_per_snapshot: Generated scenes per held-out snapshot.
        rollout_scenes: Scenes per sampler played 10 s (0 or ``rollout=False``: no rollout).
        rollout: Whether to run the rollout comparison.
        train_data: US-101 file whose training recordings form the ``train_data`` source (None:
            leave that source out).
        c2st_epochs: Adam steps of each C2ST classifier.
        progress: Called with a short message before each stage.
        split: Which split of the US-101 file is held out: ``test`` (reports) or
            ``validation`` (model selection, so that the test recordings stay unseen).
        matched: Also run the matched comparison (module docstring, ``report.matched``).

    Returns:
        The report (:meth:`RealismReport.to_markdown`, :meth:`RealismReport.to_dict`).
    """
    import time

    t0 = time.perf_counter()
    say = progress if progress is not None else (lambda _m: None)
    if samplers is None:
        from generative.baseline import RuleBasedTrafficSampler
        from generative.model import LearnedTrafficSampler

        samplers = {"learned": LearnedTrafficSampler(), "rule_based": RuleBasedTrafficSampler()}
    path = _resolve(data_path)
    tracks = load_ngsim_us101(path)
    # The recordings the learned sampler's own weights were trained and validated on.
    meta = getattr(samplers.get("learned"), "meta", None) or {}
    trained_on = set(meta.get("train_recordings", [])) | set(meta.get("validation_recordings", []))
    if split not in ("test", "validation"):
        raise ValueError(f"split: expected 'test' or 'validation', got {split!r}")
    if trained_on & set(tracks.recordings):
        held = getattr(split_recordings(tracks.recordings), split)
    else:
        held = tracks.recordings
    every = round(SNAPSHOT_EVERY_S * 10)
    snap = main_lane_snapshots(tracks, every)
    in_held = np.array([r in held for r in tracks.recordings], np.bool_)
    real = from_snapshots(snap, in_held[snap.snapshot_recording[snap.snapshot]])
    if real.n_snapshots < 5:
        raise ValueError(f"{path}: only {real.n_snapshots} held-out snapshots with a leader")
    # Each held-out snapshot's observed road: its occupied extent (the slices track only the
    # vehicles present at their start, so the road behind them empties), and its density in
    # vehicles per km and lane over it: what the samplers are asked for.
    used = used_snapshots(snap, in_held[snap.snapshot_recording[snap.snapshot]])
    ext_lo, ext_hi = snapshot_extents(snap)
    real_win = (ext_hi - ext_lo)[used]
    real_count = snapshot_count_density(snap)[used]
    real_ratio = lane_ratios(real.lane, real.snapshot, real.n_snapshots, US101_LANES)
    real_ref = _RealRef.of(real)
    real_roll = real_rollout_stats(tracks, held) if rollout else None
    if real_roll is not None and real_roll.speed_change.size == 0:
        say("no held-out track is 10 s long: rollout metrics left out")
        real_roll = None
    results: dict[str, SourceResult] = {}
    results_m: dict[str, SourceResult] = {}
    road = RoadSpec(
        kind="straight",
        num_lanes=US101_LANES,
        speed_limit=US101_SPEED_LIMIT_MPS,
        length=float(real_win.max()) + 2 * MARGIN_M,
    )
    ctx = road_context(road)
    for i, (name, sampler) in enumerate(samplers.items()):
        say(f"sampling {name}")
        rng = np.random.default_rng([seed, i])
        n_s = real.n_snapshots * scenes_per_snapshot
        dens = np.repeat(real_count, scenes_per_snapshot)
        diff = rng.uniform(0.0, 1.0, n_s)
        veh, counts = sampler.sample_vehicles(ctx, rng, dens, diff)
        gen = from_vehicles(veh, rng.choice(real_win, n_s), MARGIN_M)
        results[name] = _compare(real_ref, gen, seed, c2st_epochs)
        if matched:
            # The same draws, now also given each snapshot's per-lane densities.
            veh_m, counts_m = sampler.sample_vehicles(
                ctx, rng, dens, diff, lane_ratio=np.repeat(real_ratio, scenes_per_snapshot, 0)
            )
            gen_m = from_vehicles(veh_m, np.repeat(real_win, scenes_per_snapshot), MARGIN_M)
            gen_m = dataclasses.replace(gen_m, group=gen_m.group // scenes_per_snapshot)
            results_m[name] = _compare(real_ref, gen_m, seed, c2st_epochs, matched=True)
            counts = counts + counts_m
        if rollout and rollout_scenes > 0 and real_roll is not None:
            say(f"rollout {name}")
            # Its own stream: the rollout does not depend on which comparisons ran before.
            roll = rollout_stats(
                sampler, rollout_scenes, real_count, np.random.default_rng([seed, i, 1])
            )
            results[name] = _with_rollout(results[name], roll, real_roll)
            if name in results_m:
                results_m[name] = _with_rollout(results_m[name], roll, real_roll)
        results[name] = dataclasses.replace(results[name], validity=counts.rates())
        if name in results_m:
            results_m[name] = dataclasses.replace(results_m[name], validity=counts.rates())
    if train_data is not None:
        tpath = _resolve(train_data)
        if tpath.is_file():
            say("training recordings")
            tt = load_ngsim_us101(tpath)
            train_names = tuple(
                r for r in split_recordings(tt.recordings).train if r not in set(held)
            )
            if not train_names:
                raise ValueError(f"{tpath}: no training recordings outside the held-out set")
            tsnap = main_lane_snapshots(tt, every)
            tin = np.array([r in train_names for r in tt.recordings], np.bool_)
            tset = from_snapshots(tsnap, tin[tsnap.snapshot_recording[tsnap.snapshot]])
            res = _compare(real_ref, tset, seed, c2st_epochs)
            tr = real_rollout_stats(tt, train_names) if real_roll is not None else None
            has_roll = tr is not None and real_roll is not None and tr.speed_change.size > 0
            results["train_data"] = _with_rollout(res, tr, real_roll) if has_roll else res
            if matched:
                cand = used_snapshots(tsnap, tin[tsnap.snapshot_recording[tsnap.snapshot]])
                mset = matched_recorded_set(
                    tsnap,
                    cand,
                    real_count,
                    real_ratio,
                    real_win,
                    scenes_per_snapshot,
                    np.random.default_rng([seed, len(samplers)]),
                    target_recording=real.group // 100_000,
                )
                res_m = _compare(real_ref, mset, seed, c2st_epochs, matched=True)
                results_m["train_data"] = _with_rollout(res_m, tr, real_roll) if has_roll else res_m
    return RealismReport(
        data=str(data_path),
        held_out=tuple(held),
        seed=seed,
        sources=results,
        real_vehicles=int(real.speed.shape[0]),
        real_snapshots=real.n_snapshots,
        real_lane_change_rate=real_roll.lane_change_rate if real_roll is not None else float("nan"),
        real_speed_change_vehicles=real_roll.vehicles if real_roll is not None else 0,
        seconds=time.perf_counter() - t0,
        matched=results_m,
    )


def _with_rollout(
    res: SourceResult, roll: RolloutStats | None, real: RolloutStats | None
) -> SourceResult:
    """``res`` with the rollout metrics of ``roll`` against the held-out ``real``."""
    if roll is None or real is None:
        return res
    return dataclasses.replace(
        res,
        rollout_speed_change_w1=wasserstein1(roll.speed_change, real.speed_change),
        lane_change_rate=roll.lane_change_rate,
        lane_change_rate_diff=abs(roll.lane_change_rate - real.lane_change_rate),
    )


@dataclass(frozen=True)
class _RealRef:
    """The held-out snapshots' features, computed once for every comparison."""

    real: SnapshotSet
    feat: dict[str, F64]
    vv: F64
    sv: F64
    group_v: I64

    @classmethod
    def of(cls, real: SnapshotSet) -> _RealRef:
        return cls(
            real,
            feature_samples(real),
            vehicle_vectors(real),
            snapshot_vectors(real),
            real.group[real.snapshot],
        )


MIN_RECORDINGS_FOR_RECORDING_FOLDS = 3  # leave-one-recording-out needs 3 or more


def _compare(
    ref: _RealRef, other: SnapshotSet, seed: int, epochs: int, matched: bool = False
) -> SourceResult:
    """W1 and the three C2STs of ``other`` against the held-out snapshots.

    Always: 5 folds, real rows grouped by 2-s block, ``other``'s rows by their own groups
    (scene, or the target snapshot when matched). Matched (``other.group`` = the held-out
    snapshot each scene was made for) with at least 3 held-out recordings, also: one fold per
    held-out recording, every fake row in the fold of its target's recording
    (leave one recording out, ``c2st_by_recording``).
    """
    feat = feature_samples(other)
    w1 = {k: wasserstein1(feat[k], ref.feat[k]) for k in FEATURES_W1}
    ov = vehicle_vectors(other)
    sv = snapshot_vectors(other)
    fg_v = other.group[other.snapshot]

    def c2st(real: F64, fake: F64, rg: I64, fg: I64, **kw: Any) -> float:
        return c2st_accuracy(real, fake, seed, rg, epochs=epochs, fake_groups=fg, **kw)

    cl = c2st(ref.vv[:, :7], ov[:, :7], ref.group_v, fg_v)
    cv = c2st(ref.vv, ov, ref.group_v, fg_v)
    cs = c2st(ref.sv, sv, ref.real.group, other.group)
    loro: dict[str, float] = {}
    rec = ref.real.group // 100_000
    n_rec = int(np.unique(rec).size)
    if matched and n_rec >= MIN_RECORDINGS_FOR_RECORDING_FOLDS:
        og = rec[other.group]
        kw = {"folds": n_rec, "paired": True}
        rv = rec[ref.real.snapshot]
        loro = {
            "vehicle_local": c2st(ref.vv[:, :7], ov[:, :7], rv, og[other.snapshot], **kw),
            "vehicle": c2st(ref.vv, ov, rv, og[other.snapshot], **kw),
            "snapshot": c2st(ref.sv, sv, rec, og, **kw),
        }
    return SourceResult(
        w1=w1,
        c2st_vehicle_local=cl,
        c2st_vehicle=cv,
        c2st_snapshot=cs,
        rollout_speed_change_w1=None,
        lane_change_rate=None,
        lane_change_rate_diff=None,
        vehicles=int(other.speed.shape[0]),
        snapshots=other.n_snapshots,
        c2st_by_recording=loro,
    )


def report_json_lines(report: RealismReport) -> list[str]:
    """One JSON line per source (bench format)."""
    out = []
    both = [("unmatched", report.sources), ("matched", report.matched)]
    for comparison, src in both:
        for name, res in src.items():
            out.append(_json_line(report, comparison, name, res))
    return out


def _json_line(report: RealismReport, comparison: str, name: str, res: SourceResult) -> str:
    row: dict[str, Any] = {
        "bench": "realism",
        "comparison": comparison,
        "source": name,
        "seed": report.seed,
        **res.metrics(),
    }
    if res.lane_change_rate is not None:
        row["lane_change_rate"] = res.lane_change_rate
    if res.validity:
        row["repaired_rate"] = res.validity["repaired"]
        row["rejected_rate"] = res.validity["rejected"]
    return json.dumps(_plain(row))


__all__ = [
    "RealismReport",
    "SourceResult",
    "c2st_accuracy",
    "evaluate_realism",
    "matched_recorded_set",
    "recorded_scenes",
    "report_json_lines",
    "wasserstein1",
]
