"""Validity rules for sampled background traffic, and their repair (shared by all samplers).

Rules, checked per scene and lane in lane-centre ``s`` (what the simulator integrates), with
each vehicle's leader the next vehicle ahead in its lane (on a closed lane, the first vehicle
leads the last one around the loop):

1. **Sizes.** Length in ``LENGTH_RANGE_M``, width in ``WIDTH_RANGE_M``; outside is *repaired*
   (clipped). Checked first: the other rules use the sizes.
2. **Finite.** Every sampled number is finite; a vehicle with a NaN/inf is *rejected*.
3. **No overlap.** Bumper gap to the leader ``g >= MIN_GAP_M``; otherwise the follower is
   *rejected*. Placement works from positive gaps, so this is rare (8 of 31 859 vehicles in the
   realism evaluation, where spacings shrink beyond the trained density range).
4. **Speed limits.** ``0 <= v <= min(MAX_SPEED_FRAC * limit, MAX_SPEED_MPS)``; a speed outside
   is *repaired* (clipped).
5. **Gap consistent with speed.** ``g >= s0 + HEADWAY_FRACTION * v * T`` with the vehicle's own
   jam distance ``s0`` and time headway ``T`` (vehicles without a leader have no gap to keep).
   Repair: first ``s0`` is lowered to ``max(g - HEADWAY_FRACTION v T, g / 2)`` when that is
   smaller (fitted jam distances are noisy: 4 % of recorded US-101 gaps are below their
   driver's fitted s0), then the speed to ``(g - s0) / (HEADWAY_FRACTION T)``. On recorded
   US-101 car following, 99.6 % of states satisfy ``g >= min(s0, 1 m) + 0.3 v T`` with the
   fitted parameters, so the rule changes almost nothing real, while every start is a state
   IDM can brake out of.

Counts of each repair and rejection are returned as :class:`ValidityCounts` and accumulate in
the samplers' stats.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

MIN_GAP_M = 0.5  # [m] bumper clearance below which two vehicles count as touching
MAX_SPEED_FRAC = 1.3  # [-] of the limit: recorded US-101 speeds reach 0.91; speeders exist
MAX_SPEED_MPS = 60.0  # [m/s] 216 km/h: a hard physical cap for any road
HEADWAY_FRACTION = 0.3  # [-] of v*T that a start gap must hold beyond s0 (module docstring)
LENGTH_RANGE_M = (2.0, 20.0)  # [m] motorcycle .. articulated truck (US-101: 2.7 .. 20 m)
WIDTH_RANGE_M = (0.8, 2.6)  # [m] motorcycle .. truck (US-101: 1.2 .. 2.6 m)


@dataclass(frozen=True)
class ValidityCounts:
    """How many vehicles a validity pass looked at, repaired and rejected."""

    sampled: int = 0
    rejected_nonfinite: int = 0
    rejected_overlap: int = 0
    repaired_speed_limit: int = 0
    repaired_gap_speed: int = 0
    repaired_min_gap: int = 0
    repaired_size: int = 0

    def __add__(self, other: ValidityCounts) -> ValidityCounts:
        return ValidityCounts(
            *(getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__)
        )

    @property
    def rejected(self) -> int:
        """Vehicles dropped."""
        return self.rejected_nonfinite + self.rejected_overlap

    @property
    def repaired(self) -> int:
        """Repair actions (a vehicle may count under more than one rule)."""
        return (
            self.repaired_speed_limit
            + self.repaired_gap_speed
            + self.repaired_min_gap
            + self.repaired_size
        )

    def rates(self) -> dict[str, float]:
        """Each count, and the repair/reject totals, per sampled vehicle."""
        n = max(self.sampled, 1)
        out = {k: getattr(self, k) / n for k in self.__dataclass_fields__ if k != "sampled"}
        out["repaired"] = self.repaired / n
        out["rejected"] = self.rejected / n
        return out


@dataclass(frozen=True)
class Vehicles:
    """Sampled vehicles of many scenes as flat ``(M,)`` columns.

    Attributes:
        scene: Scene index.
        lane: Lane index from the left, 0..lanes-1 (OpenDRIVE lane id ``-(lane + 1)``).
        s_ref: Reference-line ``s`` of the centre [m].
        s: Lane-centre ``s`` of the centre [m] (equals ``s_ref`` on straight roads).
        speed: Speed [m/s].
        length: Length [m].
        width: Width [m].
        v0, headway, min_gap, a_max, b_comf: IDM parameters [m/s, s, m, m/s^2, m/s^2].
        politeness, lc_threshold: MOBIL parameters [-, m/s^2].
    """

    scene: I64
    lane: I64
    s_ref: F64
    s: F64
    speed: F64
    length: F64
    width: F64
    v0: F64
    headway: F64
    min_gap: F64
    a_max: F64
    b_comf: F64
    politeness: F64
    lc_threshold: F64

    @property
    def n(self) -> int:
        """Number of vehicles M."""
        return int(self.scene.shape[0])

    def take(self, idx: I64 | B) -> Vehicles:
        """The rows ``idx``."""
        return Vehicles(*(getattr(self, k)[idx] for k in self.__dataclass_fields__))


def relations(v: Vehicles, lane_length: F64 | None) -> tuple[I64, F64]:
    """Sorted order and each vehicle's bumper gap to its leader (inf when none).

    Args:
        v: Vehicles.
        lane_length: Lane-centre length of each lane index [m] for closed lanes (their last
            vehicle follows the first one around the loop); None: no lane is closed.

    Returns:
        (order sorting by (scene, lane, s), gap per vehicle in the original order [m]).
    """
    order = np.lexsort((v.s, v.lane, v.scene))
    sc, ln, s, L = v.scene[order], v.lane[order], v.s[order], v.length[order]
    n = order.size
    gap = np.full(n, np.inf)
    if n == 0:
        return order.astype(np.int64), gap
    same = (sc[1:] == sc[:-1]) & (ln[1:] == ln[:-1])
    gap[:-1] = np.where(same, s[1:] - 0.5 * L[1:] - s[:-1] - 0.5 * L[:-1], np.inf)
    if lane_length is not None:
        last = np.concatenate([~same, [True]])
        first_of = np.maximum.accumulate(np.where(np.concatenate([[True], ~same]), np.arange(n), 0))
        wrap = s[first_of] + lane_length[ln] - 0.5 * L[first_of] - s - 0.5 * L
        gap = np.where(last & (first_of != np.arange(n)), wrap, gap)
    out = np.empty(n)
    out[order] = gap
    return order.astype(np.int64), out


def make_valid(
    v: Vehicles, speed_limit: float, lane_length: F64 | None = None
) -> tuple[Vehicles, ValidityCounts]:
    """Apply the rules of the module docstring: reject or repair, vectorised over all vehicles.

    Returns:
        (valid vehicles, counts).
    """
    n0 = v.n
    L = np.clip(v.length, *LENGTH_RANGE_M)
    W = np.clip(v.width, *WIDTH_RANGE_M)
    rep_size = int(np.count_nonzero((v.length != L) | (v.width != W)))
    v = replace(v, length=L, width=W)
    cols = np.stack(
        [getattr(v, k) for k in Vehicles.__dataclass_fields__ if k not in ("scene", "lane")], 1
    )
    finite = np.isfinite(cols).all(1)
    v = v.take(finite)
    rej_nf = n0 - v.n
    rej_ov = 0
    for _ in range(16):  # each pass drops the followers of touching pairs; chains are short
        _, gap = relations(v, lane_length)
        bad = gap < MIN_GAP_M
        if not bad.any():
            break
        # Drop the follower: the vehicle whose gap to its leader is too small.
        rej_ov += int(bad.sum())
        v = v.take(~bad)
    _, gap = relations(v, lane_length)
    vmax = min(MAX_SPEED_FRAC * speed_limit, MAX_SPEED_MPS)
    speed = v.speed.copy()
    rep_lim = int(np.count_nonzero((speed < 0) | (speed > vmax)))
    speed = np.clip(speed, 0.0, vmax)
    hw = HEADWAY_FRACTION * speed * v.headway
    s0_ok = np.maximum(gap - hw, 0.5 * gap)
    lower_s0 = v.min_gap > s0_ok
    min_gap = np.where(lower_s0, s0_ok, v.min_gap)
    v_ok = np.maximum(gap - min_gap, 0.0) / (HEADWAY_FRACTION * v.headway)
    slow = speed > v_ok + 1e-9
    speed = np.where(slow, v_ok, speed)
    out = replace(v, speed=speed, min_gap=min_gap)
    counts = ValidityCounts(
        sampled=n0,
        rejected_nonfinite=rej_nf,
        rejected_overlap=rej_ov,
        repaired_speed_limit=rep_lim,
        repaired_gap_speed=int(np.count_nonzero(slow)),
        repaired_min_gap=int(np.count_nonzero(lower_s0)),
        repaired_size=rep_size,
    )
    return out, counts
