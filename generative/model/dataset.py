"""Training examples for the traffic model: one row per vehicle of a recorded snapshot.

Ordering. Within a snapshot, each lane's vehicles are taken front to back (downstream first), so
the vehicle being placed is the *follower* of the previous one: its gap to that leader and its
speed are what car following ties together (time headway ``gap / v``). Lanes are taken left to
right, and a vehicle also sees the mean speed of the lane to its left (already placed).

Features (inputs, all dimensionless; :data:`FEATURES`):

- ``density``: the snapshot's density in vehicles per km and lane
  (:func:`snapshot_count_density`) / :data:`DENSITY_SCALE`;
- ``lane_density``: the lane's density, ``density * ratio`` / :data:`DENSITY_SCALE`, with the
  lane's ratio ``L * n_lane / n`` (:func:`lane_ratios`: its share of the snapshot's vehicles
  times the lane count; US-101's lanes differ: in the dense recordings the leftmost lane holds
  twice its share), so that a lane's speeds follow its own density (the fundamental diagram);
- ``difficulty``: the lane's aggressiveness label in [0, 1]: 1 minus the quantile rank of the
  lane-snapshot's median time headway among the training lane-snapshots (1 = shortest headways);
- ``lane_pos``: lane index / (lanes - 1) (0 leftmost, 1 rightmost; 0.5 on a one-lane road);
  ``is_left``, ``is_right``: edge-lane flags;
- ``first``: 1 for the front vehicle of its lane (no leader placed yet);
- ``prev_v``, ``prev_log_gap``, ``prev_has_gap``, ``prev_len``: the leader's speed / limit, the
  log of the leader's own gap to *its* leader [log m], whether that gap exists, its length / 5 m;
- ``left_v``, ``has_left``: mean speed / limit of the lane to the left, whether it exists.

Targets (:data:`TARGETS`): ``log_gap`` (log bumper gap to the leader [log m], masked for the
front vehicle), ``v`` (speed / limit), ``log_len`` (log length [log m]) and ``width`` [m].
Behaviour targets: the fitted IDM parameters of the vehicle's track
(:func:`generative.data.fit_idm`), ``v0`` as a fraction of the limit, each mapped to an
unbounded ``z`` by the fit's own logistic bounds; masked where the track was not fitted.

Speeds are fractions of the speed limit. US-101 in Los Angeles is posted at 65 mph
(:data:`US101_SPEED_LIMIT_MPS`), so a recorded 14 m/s is 0.48 of the limit; on a road posted at
16.7 m/s the model's 0.48 becomes 8.0 m/s. Gaps are in metres (not scaled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from generative.data.idm_fit import LOWER, UPPER, IdmFit, fit_idm
from generative.data.ngsim import AUX_LANE, Tracks
from generative.data.snapshots import Snapshots, make_snapshots

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]

US101_SPEED_LIMIT_MPS = 65 * 0.44704  # [m/s] US-101 (Hollywood Freeway) posted 65 mph
US101_LANES = 5  # main lanes 0..4; lane 5 (ramp) is left out: no procedural road has one
DENSITY_SCALE = 30.0  # [veh/km/lane] US-101 snapshots have 10-45: inputs of order one
LENGTH_SCALE = 5.0  # [m] a passenger car: length inputs of order one
SNAPSHOT_EVERY = 5  # [steps] 0.5 s at 10 Hz: ~4x the 1-s snapshots, still distinct states
MIN_HEADWAY_SPEED = 1.0  # [m/s] slower vehicles have no meaningful time headway

LANE_RATIO_RANGE = (0.1, 3.0)  # [-] lane density / snapshot density: an empty lane still has
# a (tiny) density, and 3 bounds a lane that holds most of a short window's vehicles

FEATURES: tuple[str, ...] = (
    "density",
    "lane_density",
    "difficulty",
    "lane_pos",
    "is_left",
    "is_right",
    "first",
    "prev_v",
    "prev_log_gap",
    "prev_has_gap",
    "prev_len",
    "left_v",
    "has_left",
)
TARGETS: tuple[str, ...] = ("log_gap", "v", "log_len", "width")
BEHAVIOR_TARGETS: tuple[str, ...] = ("v0", "headway", "min_gap", "a_max", "b_comf")
BEHAVIOR_FEATURES: tuple[str, ...] = ("v", "log_gap", "has_gap", "density", "difficulty")
# Bounds of the behaviour targets in the model's units (v0 as a fraction of the limit).
BEHAVIOR_LOWER = np.array([LOWER[0] / US101_SPEED_LIMIT_MPS, *LOWER[1:]])
BEHAVIOR_UPPER = np.array([UPPER[0] / US101_SPEED_LIMIT_MPS, *UPPER[1:]])


MIN_LOG_GAP_M = 0.1  # [m] gaps are floored here before the log (touching cars stay finite)


def log_gap(gap: F64, has: NDArray[np.bool_]) -> F64:
    """The network's gap encoding: log of the bumper gap [m] where there is one, else 0.

    Training (:func:`build_examples`), sampling and the realism classifier all encode gaps with
    this one function, so they cannot drift apart.
    """
    out: F64 = np.where(has, np.log(np.maximum(np.nan_to_num(gap, nan=1.0), MIN_LOG_GAP_M)), 0.0)
    return out


def to_z(theta: F64) -> F64:
    """Bounded behaviour parameters ``(.., 5)`` -> unbounded logits (the IDM fit's transform)."""
    p = np.clip((theta - BEHAVIOR_LOWER) / (BEHAVIOR_UPPER - BEHAVIOR_LOWER), 1e-4, 1 - 1e-4)
    out: F64 = np.log(p / (1 - p))
    return out


def from_z(z: F64) -> F64:
    """Inverse of :func:`to_z`."""
    out: F64 = BEHAVIOR_LOWER + (BEHAVIOR_UPPER - BEHAVIOR_LOWER) / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True)
class Examples:
    """Per-vehicle training rows, ``(N, F)`` features and ``(N, 4)`` targets with masks.

    Attributes:
        x: Placement features (:data:`FEATURES`).
        y: Placement targets (:data:`TARGETS`).
        y_mask: Which targets are observed (``log_gap`` is not for a lane's front vehicle).
        bx: Behaviour features (:data:`BEHAVIOR_FEATURES`).
        by: Behaviour targets in logit space (:data:`BEHAVIOR_TARGETS`).
        b_mask: Whether the vehicle's track has fitted IDM parameters, ``(N,)``.
        snapshot: Snapshot index of each row (for grouping).
    """

    x: F32
    y: F32
    y_mask: B
    bx: F32
    by: F32
    b_mask: B
    snapshot: NDArray[np.int64]

    @property
    def n(self) -> int:
        """Number of rows N."""
        return int(self.x.shape[0])


def main_lane_snapshots(tracks: Tracks, every_n_steps: int = SNAPSHOT_EVERY) -> Snapshots:
    """Snapshots of the main lanes 0..4 only (the ramp lane 5 is dropped, relations re-built)."""
    keep = tracks.lane != AUX_LANE
    lane = np.where(keep, tracks.lane, -1).astype(np.int16)
    from dataclasses import replace

    return make_snapshots(replace(tracks, lane=lane), every_n_steps)


def lane_ratios(
    lane: NDArray[np.int64], snapshot: NDArray[np.int64], n_snapshots: int, num_lanes: int
) -> F64:
    """Per-lane density of each snapshot relative to its mean over lanes, ``(S, L)``.

    ``ratio[j, k] = L * n_jk / n_j`` (vehicles in lane k over the snapshot's vehicles, times the
    lane count): the per-lane density a detector per lane would report, divided by the
    snapshot's density, independent of the window length. Clipped to :data:`LANE_RATIO_RANGE`.
    """
    key = snapshot.astype(np.int64) * num_lanes + lane.astype(np.int64)
    cnt = np.bincount(key, minlength=n_snapshots * num_lanes).reshape(n_snapshots, num_lanes)
    tot = np.maximum(cnt.sum(1, keepdims=True), 1)
    out: F64 = np.clip(num_lanes * cnt / tot, *LANE_RATIO_RANGE)
    return out


def recording_lane_ratios(tracks: Tracks, recordings: tuple[str, ...]) -> tuple[F64, F64]:
    """Each recording's pooled lane ratios ``(R, 5)`` and median snapshot density ``(R,)``.

    Recordings with a main lane that holds no vehicle at all (a lane the cameras did not
    cover) are left out. The sampler draws per-lane densities from these when none are given.
    """
    snap = main_lane_snapshots(tracks)
    dens = snapshot_count_density(snap)
    ratios, meds = [], []
    for name in recordings:
        r = tracks.recordings.index(name)
        e = (snap.snapshot_recording[snap.snapshot] == r) & (snap.lane >= 0)
        cnt = np.bincount(snap.lane[e].astype(np.int64), minlength=US101_LANES)[:US101_LANES]
        d = dens[snap.snapshot_recording == r]
        d = d[np.isfinite(d)]
        if cnt.min() == 0 or d.size == 0:
            continue
        ratios.append(US101_LANES * cnt / cnt.sum())
        meds.append(float(np.median(d)))
    return np.array(ratios).reshape(-1, US101_LANES), np.array(meds)


def snapshot_extents(snap: Snapshots) -> tuple[F64, F64]:
    """Each snapshot's occupied road ``(lo, hi)`` [m], ``(S,)`` each: rear bumper of its
    rearmost to front bumper of its foremost main-lane vehicle (empty: ``inf, -inf``).

    NGSIM's CommonRoad slices track only the vehicles present at their first step, so the road
    upstream of the rearmost tracked vehicle empties as the recording runs (by 10 s, often half
    the camera window): a snapshot's observed traffic is its occupied extent, not the window.
    """
    on = snap.lane >= 0
    n = int(snap.snapshot_recording.shape[0])
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, snap.snapshot[on], snap.s_m[on] - 0.5 * snap.length_m[on])
    np.maximum.at(hi, snap.snapshot[on], snap.s_m[on] + 0.5 * snap.length_m[on])
    return lo, hi


def snapshot_count_density(snap: Snapshots) -> F64:
    """Density of each snapshot [veh/km/lane], ``(S,)``: vehicles per km and lane.

    ``1000 (n - 1) / (L E)``: ``n`` main-lane vehicles in the occupied extent ``E``
    (:func:`snapshot_extents`) of ``L`` lanes (those of the snapshot's recording that hold a
    vehicle at any time: a slice may not cover every lane). ``n - 1``: the extent ends on two
    vehicles' bumpers, so a stretch of road of length ``E`` at this density holds about
    ``n - 1`` of them. This is the density of traffic as a loop detector or a sampler counts it
    (vehicles per length of road), the density the model is conditioned on and that the
    sampler's per-lane densities realise. NaN for snapshots with fewer than two vehicles.
    """
    on = snap.lane >= 0
    n_s = int(snap.snapshot_recording.shape[0])
    lo, hi = snapshot_extents(snap)
    cnt = np.bincount(snap.snapshot[on], minlength=n_s).astype(np.float64)
    rec = snap.snapshot_recording[snap.snapshot[on]].astype(np.int64)
    n_rec = int(snap.snapshot_recording.max()) + 1 if n_s else 0
    seen = np.zeros((n_rec, US101_LANES + 1), np.bool_)
    seen[rec, np.clip(snap.lane[on], 0, US101_LANES)] = True
    lanes = np.maximum(seen.sum(1), 1)[snap.snapshot_recording.astype(np.int64)]
    ext = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = np.where((cnt >= 2) & (ext > 1.0), 1000.0 * (cnt - 1.0) / (lanes * ext), np.nan)
    return out


def snapshot_density(snap: Snapshots) -> F64:
    """Pair density of each snapshot [veh/km/lane], ``(S,)``: 1000 / mean spacing.

    Spacing is centre to centre, ``gap + (length + length_leader) / 2``, over the vehicles that
    have a leader in the snapshot. A feature of how closely packed the observed vehicles are
    (realism compares it between windows); in a short window it reads denser than the road
    (a gap straddling a window end is not seen; median 1.12x, 10-90 % 1.01-1.58x
    :func:`snapshot_count_density` on US-101), so it is not what the model is conditioned
    on. Snapshots without any leader: NaN.
    """
    has = snap.leader >= 0
    li = np.where(has, snap.leader, 0)
    spacing = snap.gap_m + 0.5 * (snap.length_m + snap.length_m[li])
    n = snap.n_snapshots
    cnt = np.bincount(snap.snapshot[has], minlength=n).astype(np.float64)
    tot = np.bincount(snap.snapshot[has], spacing[has], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = np.where(cnt > 0, 1000.0 * cnt / tot, np.nan)
    return out


def headway_labels(
    snap: Snapshots, reference: F64 | None = None, use: B | None = None
) -> tuple[F64, F64]:
    """Difficulty label of each entry's (snapshot, lane): 1 - quantile of its median headway.

    Args:
        snap: Snapshots.
        reference: Sorted median headways defining the quantiles (the training set's); None:
            those of the entries in ``use``.
        use: Entries whose groups define the reference when ``reference`` is None (None: all).

    Returns:
        (label per entry ``(N,)``, sorted median headways of the groups that have one).
    """
    group = snap.snapshot.astype(np.int64) * 8 + snap.lane
    uniq, inv = np.unique(group, return_inverse=True)
    ok = np.isfinite(snap.headway_s) & (snap.speed_mps > MIN_HEADWAY_SPEED)
    med = np.full(uniq.size, np.nan)
    # Median per group: sort by (group, headway), take the middle of each group's ok rows.
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((snap.headway_s[idx], inv[idx]))]
    g = inv[order]
    starts = np.searchsorted(g, np.arange(uniq.size), side="left")
    ends = np.searchsorted(g, np.arange(uniq.size), side="right")
    has = ends > starts
    mid = (starts + ends - 1) // 2
    med[has] = snap.headway_s[order[mid[has]]]
    if reference is None:
        in_use = np.zeros(uniq.size, np.bool_)
        in_use[inv[use if use is not None else slice(None)]] = True
        ref = np.sort(med[has & in_use])
    else:
        ref = reference
    q = np.searchsorted(ref, med, side="left") / max(ref.size, 1)
    label = np.where(np.isfinite(med), 1.0 - q, 0.5)
    return label[inv], ref


def build_examples(
    tracks: Tracks,
    recordings: tuple[str, ...] | None = None,
    fit: IdmFit | None = None,
    headway_reference: F64 | None = None,
    every_n_steps: int = SNAPSHOT_EVERY,
) -> tuple[Examples, F64]:
    """Training rows of every main-lane vehicle in snapshots of ``tracks``.

    Args:
        tracks: Recordings.
        recordings: Names of the recordings to take rows from (e.g. the train split); None: all.
        fit: IDM fits of ``tracks`` (computed when None).
        headway_reference: Sorted lane median headways for the difficulty label (None: these).
        every_n_steps: Snapshot stride.

    Returns:
        (examples, the headway reference used).
    """
    fit = fit if fit is not None else fit_idm(tracks)
    snap = main_lane_snapshots(tracks, every_n_steps)
    names = set(tracks.recordings if recordings is None else recordings)
    in_set = np.array([r in names for r in tracks.recordings], dtype=np.bool_)
    keep = (snap.lane >= 0) & in_set[snap.snapshot_recording[snap.snapshot]]
    count_density = snapshot_count_density(snap)
    keep &= np.isfinite(count_density)[snap.snapshot]
    dens = count_density[snap.snapshot]
    label, ref = headway_labels(snap, headway_reference, keep)
    limit = US101_SPEED_LIMIT_MPS
    v = snap.speed_mps / limit
    lane = snap.lane.astype(np.float64)
    lead = snap.leader
    has_lead = lead >= 0
    li = np.where(has_lead, lead, 0)
    prev_gap = np.where(has_lead, snap.gap_m[li], np.nan)
    prev_has_gap = np.isfinite(prev_gap)
    # Mean speed of each (snapshot, lane), then the left neighbour's.
    n_l = US101_LANES + 1
    grp = snap.snapshot.astype(np.int64) * n_l + snap.lane
    size = snap.n_snapshots * n_l
    cnt = np.bincount(grp, minlength=size)
    mean_v = np.bincount(grp, v, minlength=size) / np.maximum(cnt, 1)
    left = grp - 1
    has_left = (snap.lane > 0) & (cnt[np.maximum(left, 0)] > 0)
    left_v = np.where(has_left, mean_v[np.maximum(left, 0)], 0.0)
    on = snap.lane >= 0
    ratio = lane_ratios(
        np.where(on, snap.lane, 0).astype(np.int64),
        np.where(on, snap.snapshot, snap.n_snapshots).astype(np.int64),
        snap.n_snapshots + 1,
        US101_LANES,
    )
    lane_ratio = ratio[snap.snapshot, np.clip(snap.lane, 0, US101_LANES - 1)]
    x = np.stack(
        [
            dens / DENSITY_SCALE,
            dens * lane_ratio / DENSITY_SCALE,
            label,
            lane / (US101_LANES - 1),
            (snap.lane == 0).astype(np.float64),
            (snap.lane == US101_LANES - 1).astype(np.float64),
            (~has_lead).astype(np.float64),
            np.where(has_lead, v[li], 0.0),
            log_gap(prev_gap, prev_has_gap),
            prev_has_gap.astype(np.float64),
            np.where(has_lead, snap.length_m[li] / LENGTH_SCALE, 0.0),
            left_v,
            has_left.astype(np.float64),
        ],
        axis=1,
    )
    gap = snap.gap_m
    y = np.stack(
        [
            log_gap(gap, has_lead),
            v,
            np.log(snap.length_m),
            snap.width_m,
        ],
        axis=1,
    )
    y_mask = np.ones_like(y, dtype=np.bool_)
    y_mask[:, 0] = has_lead
    theta = fit.params()[snap.track]
    theta = np.concatenate([theta[:, :1] / limit, theta[:, 1:]], axis=1)
    b_mask = fit.fitted[snap.track]
    by = np.where(b_mask[:, None], to_z(np.nan_to_num(theta, nan=1.0)), 0.0)
    bx = np.stack([v, y[:, 0], has_lead.astype(np.float64), dens / DENSITY_SCALE, label], axis=1)
    ex = Examples(
        x=x[keep].astype(np.float32),
        y=y[keep].astype(np.float32),
        y_mask=y_mask[keep],
        bx=bx[keep].astype(np.float32),
        by=by[keep].astype(np.float32),
        b_mask=b_mask[keep],
        snapshot=snap.snapshot[keep].astype(np.int64),
    )
    return ex, ref
