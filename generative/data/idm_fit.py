"""Per-vehicle IDM parameters fitted to observed car following, batched over vehicles.

Method. For vehicle ``k`` with car-following samples ``i`` (rows with a leader in the same lane,
from :func:`generative.data.snapshots.row_relations`) we minimise

    J_k(theta) = mean_i (idm_accel(v_i, gap_i, dv_i; theta) - a_i)^2 + w |z(theta) - z_prior|^2

over ``theta = (v0, T, s0, a, b)`` with :func:`sim.traffic.idm_accel`, the simulator's own IDM,
so fitted vehicles replay as observed in the simulator. Bounds are enforced by construction:
``theta_j = lo_j + (hi_j - lo_j) sigmoid(z_j)`` and the search runs in unconstrained ``z``. The
small ridge ``w`` towards the simulator defaults (:class:`sim.scenario.BehaviorSpec`) keeps
parameters the data cannot identify (``v0`` of a vehicle that never drives freely, ``b`` of one
that never brakes) at the default instead of drifting to a bound; with informative data its
pull is negligible (see the synthetic-recovery test).

The optimiser is Levenberg-Marquardt, vectorised over vehicles: samples are padded into a
``(K, M)`` matrix with a mask, the Jacobian is forward differences in ``z`` (5 extra calls of
``idm_accel`` on the whole matrix), and each vehicle keeps its own damping and accepts or
rejects its own step. Samples whose observed acceleration sits at the NGSIM export's clipping
level (|a| >= 3.41 m/s^2, 6 % of rows) are censored, not measurements, and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from generative.data.ngsim import Tracks
from generative.data.snapshots import Snapshots, row_relations
from sim.scenario import BehaviorSpec
from sim.traffic import idm_accel

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

PARAM_NAMES: tuple[str, ...] = ("v0", "headway", "min_gap", "a_max", "b_comf")
# [m/s, s, m, m/s^2, m/s^2]: physically plausible highway car following, inside BehaviorSpec's
# validation ranges.
LOWER = np.array([5.0, 0.3, 0.5, 0.3, 0.5])
UPPER = np.array([40.0, 4.0, 8.0, 4.0, 6.0])
# Prior centre: the simulator defaults; v0 has no default (speed limit), 30 m/s ~ US-101's 65 mph.
PRIOR = np.array([30.0, BehaviorSpec.headway, BehaviorSpec.min_gap, 1.5, BehaviorSpec.b_comf])
PRIOR_WEIGHT = 1e-3  # [(m/s^2)^2 per z unit^2]: weak, see the module docstring
ACCEL_CLIP = 3.41  # [m/s^2] NGSIM export clips |a| at 3.4138: such samples are censored
MIN_SAMPLES = 30  # samples (3 s at 10 Hz) below which a vehicle is not fitted
FD_STEP = 1e-3  # [z units] forward-difference step; float32 IDM noise ~1e-7 is far below it


@dataclass(frozen=True)
class IdmFit:
    """Fitted IDM parameters of the vehicles of a :class:`Tracks`, ``(K,)`` each.

    Unfitted vehicles (fewer than ``MIN_SAMPLES`` car-following samples) have NaN parameters.

    Attributes:
        v0: Desired speed [m/s].
        headway: Time headway T [s].
        min_gap: Jam distance s0 [m].
        a_max: Maximum acceleration [m/s^2].
        b_comf: Comfortable deceleration [m/s^2].
        n_samples: Car-following samples used per vehicle.
        rmse_mps2: Root-mean-square acceleration residual of the fit [m/s^2].
        rmse_const_mps2: RMS of the observed acceleration about its mean [m/s^2] (the residual
            of the best constant predictor, a baseline for ``rmse_mps2``).
        fitted: Whether the vehicle was fitted.
    """

    v0: F64
    headway: F64
    min_gap: F64
    a_max: F64
    b_comf: F64
    n_samples: I64
    rmse_mps2: F64
    rmse_const_mps2: F64
    fitted: B

    def params(self) -> F64:
        """Parameters as a ``(K, 5)`` matrix in :data:`PARAM_NAMES` order."""
        out: F64 = np.stack([self.v0, self.headway, self.min_gap, self.a_max, self.b_comf], 1)
        return out

    def behavior(self, k: int) -> BehaviorSpec:
        """The simulator behaviour of fitted vehicle ``k``."""
        if not self.fitted[k]:
            raise ValueError(f"vehicle {k} was not fitted")
        return BehaviorSpec(
            v0=float(self.v0[k]),
            headway=float(self.headway[k]),
            min_gap=float(self.min_gap[k]),
            a_max=float(self.a_max[k]),
            b_comf=float(self.b_comf[k]),
        )


def _theta(z: F64) -> F64:
    out: F64 = LOWER + (UPPER - LOWER) / (1.0 + np.exp(-z))
    return out


def _z(theta: F64) -> F64:
    p = np.clip((theta - LOWER) / (UPPER - LOWER), 1e-6, 1 - 1e-6)
    out: F64 = np.log(p / (1 - p))
    return out


def _predict(theta: F64, v: F32, gap: F32, dv: F32) -> F64:
    """IDM accelerations ``(K, M)`` for parameters ``theta`` ``(K, 5)``."""
    p = theta.astype(np.float32)[:, :, None]
    out: F64 = idm_accel(v, p[:, 0], gap, dv, p[:, 1], p[:, 2], p[:, 3], p[:, 4]).astype(np.float64)
    return out


def fit_idm_batch(
    v: F64,
    gap: F64,
    dv: F64,
    accel: F64,
    mask: B,
    iterations: int = 80,
) -> tuple[F64, F64]:
    """Fit IDM parameters to K padded sample sets at once (Levenberg-Marquardt).

    Args:
        v: Speeds ``(K, M)`` [m/s].
        gap: Bumper gaps to the leader ``(K, M)`` [m].
        dv: Closing speeds ``v - v_leader`` ``(K, M)`` [m/s].
        accel: Observed accelerations ``(K, M)`` [m/s^2].
        mask: Which samples are real ``(K, M)``; each row needs at least one.
        iterations: LM iterations.

    Returns:
        ``(theta, rmse)``: parameters ``(K, 5)`` in :data:`PARAM_NAMES` order and the RMS
        acceleration residual ``(K,)`` [m/s^2].
    """
    k = v.shape[0]
    m = mask.astype(np.float64)
    n = np.maximum(m.sum(axis=1), 1.0)
    scale = m / np.sqrt(n)[:, None]  # residual weights: cost = masked mean square
    # Padding gets a harmless free-road state so idm_accel sees no zeros.
    vf = np.where(mask, v, 10.0).astype(np.float32)
    gf = np.where(mask, gap, 50.0).astype(np.float32)
    df = np.where(mask, dv, 0.0).astype(np.float32)
    z0 = np.broadcast_to(_z(PRIOR), (k, 5))
    sw = np.sqrt(PRIOR_WEIGHT)

    def residuals(z: F64) -> F64:
        r_data = (_predict(_theta(z), vf, gf, df) - accel) * scale
        out: F64 = np.concatenate([np.where(mask, r_data, 0.0), sw * (z - z0)], axis=1)
        return out

    z = z0.copy()
    r = residuals(z)
    cost = np.sum(r * r, axis=1)
    mu = np.full(k, 1e-2)
    eye = np.eye(5)
    for _ in range(iterations):
        jac = np.empty((k, r.shape[1], 5))
        for j in range(5):
            dz = z.copy()
            dz[:, j] += FD_STEP
            jac[:, :, j] = (residuals(dz) - r) / FD_STEP
        jtj = np.einsum("kmi,kmj->kij", jac, jac)
        jtr = np.einsum("kmi,km->ki", jac, r)
        diag = np.einsum("kii->ki", jtj)
        lhs = jtj + mu[:, None, None] * (eye * (diag[:, :, None] + 1e-9))
        step = -np.linalg.solve(lhs, jtr[:, :, None])[:, :, 0]
        z_new = np.clip(z + step, -12.0, 12.0)  # sigmoid saturates: stop z running away
        r_new = residuals(z_new)
        cost_new = np.sum(r_new * r_new, axis=1)
        better = cost_new < cost
        z = np.where(better[:, None], z_new, z)
        r = np.where(better[:, None], r_new, r)
        cost = np.where(better, cost_new, cost)
        mu = np.clip(np.where(better, mu / 3.0, mu * 4.0), 1e-9, 1e9)
    data_r = r[:, : v.shape[1]] / np.where(scale > 0, scale, 1.0)
    rmse: F64 = np.sqrt(np.sum(np.where(mask, data_r, 0.0) ** 2, axis=1) / n)
    return _theta(z), rmse


def car_following_samples(
    tracks: Tracks, rel: Snapshots | None = None
) -> tuple[I64, F64, F64, F64, F64]:
    """Car-following samples of all vehicles: entries with a leader and an unclipped accel.

    Returns:
        ``(track, v, gap, dv, accel)``, each ``(N_cf,)``, sorted by track.
    """
    rel = rel if rel is not None else row_relations(tracks)
    ok = (rel.leader >= 0) & (np.abs(rel.accel_mps2) < ACCEL_CLIP)
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(rel.track[idx], kind="stable")]
    return (
        rel.track[idx].astype(np.int64),
        rel.speed_mps[idx],
        rel.gap_m[idx],
        rel.dv_mps[idx],
        rel.accel_mps2[idx],
    )


def fit_idm(tracks: Tracks, min_samples: int = MIN_SAMPLES, iterations: int = 80) -> IdmFit:
    """Fit IDM parameters to every vehicle of ``tracks`` with enough car-following samples.

    Args:
        tracks: Source tracks (needs lanes: NGSIM-style data).
        min_samples: Minimum car-following samples for a vehicle to be fitted.
        iterations: Levenberg-Marquardt iterations.

    Returns:
        One :class:`IdmFit` row per track.
    """
    trk, v, gap, dv, acc = car_following_samples(tracks)
    kk = tracks.n_tracks
    counts = np.bincount(trk, minlength=kk).astype(np.int64)
    fitted = counts >= min_samples
    out = np.full((kk, 5), np.nan)
    rmse = np.full(kk, np.nan)
    base = np.full(kk, np.nan)
    sel = np.flatnonzero(fitted)
    if sel.size:
        keep = fitted[trk]
        trk, v, gap, dv, acc = trk[keep], v[keep], gap[keep], dv[keep], acc[keep]
        # Pad into (K_fit, M): column = position of the sample within its vehicle.
        row_of = np.full(kk, -1, dtype=np.int64)
        row_of[sel] = np.arange(sel.size)
        r = row_of[trk]
        start = np.searchsorted(trk, sel)
        col = np.arange(trk.size) - start[r]
        mm = int(counts[sel].max())
        shape = (sel.size, mm)
        mask = np.zeros(shape, dtype=np.bool_)
        mask[r, col] = True
        pads = [np.zeros(shape) for _ in range(4)]
        for arr, vals in zip(pads, (v, gap, dv, acc), strict=True):
            arr[r, col] = vals
        theta, err = fit_idm_batch(
            pads[0], pads[1], pads[2], pads[3], mask=mask, iterations=iterations
        )
        out[sel] = theta
        rmse[sel] = err
        mean = np.bincount(r, acc, minlength=sel.size) / counts[sel]
        base[sel] = np.sqrt(np.bincount(r, (acc - mean[r]) ** 2, minlength=sel.size) / counts[sel])
    return IdmFit(
        v0=out[:, 0],
        headway=out[:, 1],
        min_gap=out[:, 2],
        a_max=out[:, 3],
        b_comf=out[:, 4],
        n_samples=counts,
        rmse_mps2=rmse,
        rmse_const_mps2=base,
        fitted=fitted,
    )
