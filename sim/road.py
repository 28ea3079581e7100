"""Road networks as arrays: the lane graph, procedural builders and batched lane projection.

Model
-----
A road network is a set of *lanes*. Each lane is the centre line of one driving lane, resampled
at a uniform spacing ``ds <= spacing`` (default 1 m) so that a longitudinal position ``s`` maps to
its sample index in O(1): ``i = floor(s / ds)``. All lanes' samples are concatenated into flat
``(P,)`` arrays; a lane is the slice ``lane_start[l] : lane_start[l] + lane_npoints[l]``.

Per sample: position (x, y), heading (rad, CCW from +x), centre-line arc length ``s`` from the
lane start, the reference-line coordinate ``s_ref`` of the lane's *section*, lane width, signed
curvature (1/m, + left), speed limit (m/s) and the lateral distance from the centre line to the
left and right edges of the drivable area (``left_edge``, ``right_edge``, both >= 0).

This is the OpenDRIVE data model flattened: a *road* has a reference line and one or more *lane
sections*; a section holds parallel lanes that share the reference coordinate ``s_ref``. Lanes
link to successors/predecessors (lane sections, road links, junction connecting roads) and to
their same-direction left/right neighbours within a section. Every lane keeps its OpenDRIVE road
id and lane id (negative: right of the reference line, driving along +s in right-hand traffic),
so a spec position ``(road, lane, s, d)`` means the same place here and in CARLA
(``carla.Map.get_waypoint_xodr``).

Lane coordinates: ``s`` along the lane centre line, ``d`` lateral, + left. A point
``(lane, s, d)`` is ``p(s) + d * n(s)`` with ``n = (-sin h, cos h)`` the left normal.

Procedural reference lines are sequences of segments with linearly varying curvature (OpenDRIVE
planView ``line``, ``arc``, ``spiral``): ``kappa(u) = k0 + (k1 - k0) u / length``, heading
``theta(u) = theta0 + k0 u + (k1 - k0) u^2 / (2 length)``, position integrated numerically
(trapezoid on a 2.5 cm grid: sub-millimetre error for highway curvatures). A lane at constant
offset ``o`` (left +) of the reference line has the reference heading and curvature
``kappa / (1 - o kappa)``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
BoolArr = NDArray[np.bool_]

LANE_SPACING_M = 1.0  # [m] centre-line sample spacing: curvature error < 1e-4 at R >= 50 m
REF_STEP_M = 0.025  # [m] reference-line integration step (sub-mm error on clothoids)
MAX_LINKS = 4  # successors/predecessors per lane (junction fan-out in CARLA towns is <= 4)
PROJECT_WINDOW = 6  # samples either side of the guess searched by tracking projection
HEADING_WEIGHT_M_PER_RAD = 2.0  # [m/rad] projection tie-break between overlapping lanes
TWO_PI = 2.0 * math.pi
HEADING_FREE_RAD = 0.3  # [rad] heading mismatch ignored by that tie-break (lane changes, drift)

# 0-d constants for the per-step kernels: a Python float operand costs ~0.3 us of conversion per
# ufunc call, a typed 0-d array none (and float32 ones keep float32 maths float32).
_F0 = np.array(0.0, np.float32)
_F1 = np.array(1.0, np.float32)
_INF = np.array(np.inf, np.float32)
_HALF = np.array(0.5, np.float32)
_MIN_SEC_LEN = np.array(1e-6, np.float32)
_MIN_SLOPE = np.array(1e-3, np.float32)
_PI = np.array(np.pi, np.float32)
_NEG_PI = np.array(-np.pi, np.float32)
_TWO_PI = np.array(TWO_PI, np.float32)
_I0 = np.array(0, np.int32)
_I1 = np.array(1, np.int32)
_K0 = np.array(0, np.intp)
_WINDOW = np.arange(-PROJECT_WINDOW, PROJECT_WINDOW + 1, dtype=np.int32)
_K_LAST = np.array(_WINDOW.size - 1, np.intp)


class LaneType(IntEnum):
    """What a lane is for; only DRIVING lanes carry traffic."""

    DRIVING = 0
    SHOULDER = 1
    SIDEWALK = 2


@dataclass(frozen=True, eq=False)
class LaneGraph:
    """A road network as flat arrays (see module docstring).

    Point arrays are ``(P,)`` float32; lane arrays ``(L,)``; link arrays ``(L, MAX_LINKS)`` with
    -1 padding; section arrays ``(S,)``.
    """

    # per sample (P,)
    x: F32
    y: F32
    heading: F32
    dheading: F32  # heading change to the next sample, wrapped (0 at a lane's last sample)
    s: F32
    s_ref: F32
    width: F32
    curvature: F32
    speed_limit: F32
    left_edge: F32
    right_edge: F32
    # per lane (L,)
    lane_start: I32
    lane_npoints: I32
    lane_length: F32
    lane_ds: F32
    left: I32
    right: I32
    successors: I32
    predecessors: I32
    num_successors: I32
    section: I32
    odr_road: I32
    odr_lane: I32
    lane_type: NDArray[np.int8]
    # per section (S,)
    section_length: F32
    section_road: I32
    section_s0: F32
    name: str = "road"
    key: str = field(default="")
    # per lane (L,): the lane runs against its road's reference line (OpenDRIVE left lanes in
    # right-hand traffic); its s_ref then counts from the section end. None: none does.
    lane_reversed: BoolArr | None = field(default=None, compare=False)
    # Derived in __post_init__ so the per-step kernels skip recomputing them (each saved array
    # op is ~1 us at B=1). Per sample (P,): the segment to the next sample (0 at a lane's last
    # sample, which never starts a segment) and its squared length, floored as the projection
    # needs it; per lane (L,): the index of the last segment as float32, the clamp in
    # :func:`segment_index` (float32 so the clamp does not promote to float64).
    seg_dx: F32 = field(init=False, repr=False)
    seg_dy: F32 = field(init=False, repr=False)
    seg_len2: F32 = field(init=False, repr=False)
    seg_len: F32 = field(init=False, repr=False)
    seg_ds_ref: F32 = field(init=False, repr=False)  # s_ref change along the segment
    lane_last_seg: F32 = field(init=False, repr=False)
    lane_last_seg_i: I32 = field(init=False, repr=False)
    # [m] s range of one (env, lane) group in the traffic sort keys (sim.traffic), float64 0-d.
    entry_span: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def derive(name: str, value: F32) -> None:
            object.__setattr__(self, name, value)

        dx = np.zeros_like(self.x)
        dy = np.zeros_like(self.y)
        dx[:-1] = self.x[1:] - self.x[:-1]
        dy[:-1] = self.y[1:] - self.y[:-1]
        last = self.lane_start + self.lane_npoints - 1
        dx[last] = 0.0
        dy[last] = 0.0
        derive("seg_dx", dx)
        derive("seg_dy", dy)
        len2 = np.maximum(dx * dx + dy * dy, np.float32(1e-9))
        derive("seg_len2", len2)
        derive("seg_len", np.sqrt(len2))
        dsr = np.zeros_like(self.s_ref)
        dsr[:-1] = self.s_ref[1:] - self.s_ref[:-1]
        dsr[last] = 0.0
        derive("seg_ds_ref", dsr)
        derive("lane_last_seg", (self.lane_npoints - 2).astype(np.float32))
        derive("lane_last_seg_i", (self.lane_npoints - 2).astype(np.int32))
        # float32 maths then float64, as the sort always computed it: the keys keep their bits.
        derive("entry_span", np.array(float(2.0 * self.lane_length.max() + 10.0), np.float64))

    @property
    def num_lanes(self) -> int:
        return int(self.lane_start.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.x.shape[0])

    def lane_index(self, road: int, lane: int, s_ref: float) -> tuple[int, float]:
        """Find the lane holding OpenDRIVE position ``(road, lane, s_ref)``.

        Args:
            road: OpenDRIVE road id.
            lane: OpenDRIVE lane id (non-zero).
            s_ref: reference-line coordinate on the road [m].

        Returns:
            (lane index, centre-line s on that lane [m]).

        Raises:
            KeyError: no such road/lane at that s; the message lists what exists.
        """
        on_road = np.nonzero((self.odr_road == road) & (self.odr_lane == lane))[0]
        if on_road.size == 0:
            lanes = sorted(
                {int(v) for v in self.odr_lane[self.odr_road == road]}
                if np.any(self.odr_road == road)
                else set()
            )
            roads = sorted({int(v) for v in self.odr_road})
            raise KeyError(
                f"road {road} lane {lane} not in map '{self.name}' "
                f"(roads: {roads}; lanes on road {road}: {lanes or 'none'})"
            )
        for li in on_road:
            sec = int(self.section[li])
            s0 = float(self.section_s0[sec])
            length = float(self.section_length[sec])
            if s0 - 1e-3 <= s_ref <= s0 + length + 1e-3:
                local = float(np.clip(s_ref - s0, 0.0, length))
                if self.lane_reversed is not None and self.lane_reversed[li]:
                    local = length - local
                s = float(s_ref_to_s(self, np.array([li]), np.array([local], np.float32))[0])
                return int(li), s
        total = max(
            float(self.section_s0[self.section[li]] + self.section_length[self.section[li]])
            for li in on_road
        )
        raise KeyError(f"s={s_ref:.2f} m outside road {road} (length {total:.2f} m)")


# ---------------------------------------------------------------------------------------------
# Reference-line geometry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One reference-line piece with curvature varying linearly from ``k0`` to ``k1`` [1/m]."""

    length: float
    k0: float = 0.0
    k1: float = 0.0

    @staticmethod
    def line(length: float) -> Segment:
        return Segment(length, 0.0, 0.0)

    @staticmethod
    def arc(length: float, curvature: float) -> Segment:
        return Segment(length, curvature, curvature)

    @staticmethod
    def spiral(length: float, k0: float, k1: float) -> Segment:
        return Segment(length, k0, k1)


def sample_reference(
    segments: list[Segment],
    x0: float = 0.0,
    y0: float = 0.0,
    theta0: float = 0.0,
    step: float = REF_STEP_M,
) -> tuple[NDArray[np.float64], ...]:
    """Integrate a reference line.

    Returns:
        (u, x, y, theta, kappa), float64 arrays over a fine grid of arc length u [m].
    """
    us, ks, ths = [], [], []
    u_off, th_off = 0.0, theta0
    for i, seg in enumerate(segments):
        if seg.length <= 0:
            raise ValueError(f"segment {i}: length must be > 0, got {seg.length}")
        n = max(2, math.ceil(seg.length / step) + 1)
        u = np.linspace(0.0, seg.length, n)
        k = seg.k0 + (seg.k1 - seg.k0) * u / seg.length
        th = th_off + seg.k0 * u + (seg.k1 - seg.k0) * u**2 / (2.0 * seg.length)
        sl = slice(0 if i == 0 else 1, None)  # shared joint point appears once
        us.append(u[sl] + u_off)
        ks.append(k[sl])
        ths.append(th[sl])
        u_off += seg.length
        th_off = float(th[-1])
    u = np.concatenate(us)
    kappa = np.concatenate(ks)
    theta = np.concatenate(ths)
    du = np.diff(u)
    cx, sy = np.cos(theta), np.sin(theta)
    x = x0 + np.concatenate([[0.0], np.cumsum(0.5 * (cx[1:] + cx[:-1]) * du)])
    y = y0 + np.concatenate([[0.0], np.cumsum(0.5 * (sy[1:] + sy[:-1]) * du)])
    return u, x, y, theta, kappa


# ---------------------------------------------------------------------------------------------
# Building lane graphs
# ---------------------------------------------------------------------------------------------


@dataclass
class _LaneDraft:
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    heading: NDArray[np.float64]
    s_ref: NDArray[np.float64]
    width: NDArray[np.float64]
    curvature: NDArray[np.float64]
    speed_limit: NDArray[np.float64]
    left_edge: NDArray[np.float64]
    right_edge: NDArray[np.float64]
    section: int
    odr_road: int
    odr_lane: int
    lane_type: int = int(LaneType.DRIVING)
    left: int = -1
    right: int = -1
    successors: list[int] = field(default_factory=list)
    predecessors: list[int] = field(default_factory=list)


def _resample(d: _LaneDraft, spacing: float) -> _LaneDraft:
    """Resample a dense lane polyline to uniform centre-line spacing <= ``spacing``."""
    seg = np.hypot(np.diff(d.x), np.diff(d.y))
    s_dense = np.concatenate([[0.0], np.cumsum(seg)])
    length = float(s_dense[-1])
    n = max(2, math.ceil(length / spacing) + 1)
    s_new = np.linspace(0.0, length, n)

    def f(a: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(s_new, s_dense, a)

    return _LaneDraft(
        x=f(d.x),
        y=f(d.y),
        heading=f(np.unwrap(d.heading)),
        s_ref=f(d.s_ref),
        width=f(d.width),
        curvature=f(d.curvature),
        speed_limit=f(d.speed_limit),
        left_edge=f(d.left_edge),
        right_edge=f(d.right_edge),
        section=d.section,
        odr_road=d.odr_road,
        odr_lane=d.odr_lane,
        lane_type=d.lane_type,
        left=d.left,
        right=d.right,
        successors=list(d.successors),
        predecessors=list(d.predecessors),
    )


def assemble(
    drafts: list[_LaneDraft],
    section_length: list[float],
    section_road: list[int],
    section_s0: list[float],
    name: str,
    spacing: float = LANE_SPACING_M,
) -> LaneGraph:
    """Pack lane drafts (dense polylines plus links) into a :class:`LaneGraph`."""
    lanes = [_resample(d, spacing) for d in drafts]
    counts = np.array([len(ln.x) for ln in lanes], np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32, copy=False)

    def cat(attr: str) -> F32:
        return np.concatenate([getattr(ln, attr) for ln in lanes]).astype(np.float32, copy=False)

    lengths = np.array([np.hypot(np.diff(ln.x), np.diff(ln.y)).sum() for ln in lanes], np.float64)
    s = np.concatenate([np.linspace(0.0, lengths[i], counts[i]) for i in range(len(lanes))])
    heading = np.concatenate([ln.heading for ln in lanes])
    dheading = np.diff(heading, append=heading[-1:])
    dheading[np.cumsum(counts) - 1] = 0.0
    dheading = (dheading + np.pi) % (2 * np.pi) - np.pi
    heading = (heading + np.pi) % (2 * np.pi) - np.pi
    succ = np.full((len(lanes), MAX_LINKS), -1, np.int32)
    pred = np.full((len(lanes), MAX_LINKS), -1, np.int32)
    for i, ln in enumerate(lanes):
        if len(ln.successors) > MAX_LINKS or len(ln.predecessors) > MAX_LINKS:
            raise ValueError(f"lane {i} of '{name}': more than {MAX_LINKS} links")
        succ[i, : len(ln.successors)] = ln.successors
        pred[i, : len(ln.predecessors)] = ln.predecessors
    graph = LaneGraph(
        x=cat("x"),
        y=cat("y"),
        heading=heading.astype(np.float32, copy=False),
        dheading=dheading.astype(np.float32, copy=False),
        s=s.astype(np.float32, copy=False),
        s_ref=cat("s_ref"),
        width=cat("width"),
        curvature=cat("curvature"),
        speed_limit=cat("speed_limit"),
        left_edge=cat("left_edge"),
        right_edge=cat("right_edge"),
        lane_start=starts,
        lane_npoints=counts,
        lane_length=lengths.astype(np.float32, copy=False),
        lane_ds=(lengths / (counts - 1)).astype(np.float32, copy=False),
        left=np.array([ln.left for ln in lanes], np.int32),
        right=np.array([ln.right for ln in lanes], np.int32),
        successors=succ,
        predecessors=pred,
        num_successors=(succ >= 0).sum(1).astype(np.int32, copy=False),
        section=np.array([ln.section for ln in lanes], np.int32),
        odr_road=np.array([ln.odr_road for ln in lanes], np.int32),
        odr_lane=np.array([ln.odr_lane for ln in lanes], np.int32),
        lane_type=np.array([ln.lane_type for ln in lanes], np.int8),
        section_length=np.array(section_length, np.float32),
        section_road=np.array(section_road, np.int32),
        section_s0=np.array(section_s0, np.float32),
        name=name,
    )
    return _with_key(graph)


def _with_key(g: LaneGraph) -> LaneGraph:
    h = hashlib.sha1()
    for name in ("x", "y", "width", "speed_limit", "successors", "left", "right"):
        h.update(np.ascontiguousarray(getattr(g, name)).tobytes())
    object.__setattr__(g, "key", h.hexdigest()[:16])
    return g


def build_highway(
    segments: list[Segment],
    num_lanes: int = 3,
    lane_width: float = 3.5,
    speed_limit: float = 30.0,
    closed: bool = False,
    road_id: int = 0,
    name: str = "highway",
    spacing: float = LANE_SPACING_M,
) -> LaneGraph:
    """A one-way multi-lane road along a reference line (right-hand traffic).

    The reference line is the left (median) edge; lane ids run -1 (leftmost, fast lane) to
    -num_lanes (rightmost), as in OpenDRIVE. ``closed=True`` links every lane to itself (ring).

    Args:
        segments: reference-line pieces.
        num_lanes: 1 to 5.
        lane_width: [m].
        speed_limit: [m/s].
        closed: the road is a loop; the end must meet the start.
    """
    if not 1 <= num_lanes <= 5:
        raise ValueError(f"num_lanes: expected 1..5, got {num_lanes}")
    if lane_width <= 0:
        raise ValueError(f"lane_width: expected > 0 m, got {lane_width}")
    u, rx, ry, th, kappa = sample_reference(segments)
    if closed:
        gap = math.hypot(rx[-1] - rx[0], ry[-1] - ry[0])
        if gap > 0.05:
            raise ValueError(f"closed road '{name}': end is {gap:.3f} m from start (max 0.05 m)")
    drafts = []
    nx, ny = -np.sin(th), np.cos(th)
    total_w = num_lanes * lane_width
    for k in range(1, num_lanes + 1):
        off = -(k - 0.5) * lane_width  # left +: right-hand lanes sit right of the median
        ones = np.ones_like(u)
        drafts.append(
            _LaneDraft(
                x=rx + off * nx,
                y=ry + off * ny,
                heading=th.copy(),
                s_ref=u.copy(),
                width=ones * lane_width,
                curvature=kappa / (1.0 - off * kappa),
                speed_limit=ones * speed_limit,
                left_edge=ones * ((k - 0.5) * lane_width),
                right_edge=ones * (total_w - (k - 0.5) * lane_width),
                section=0,
                odr_road=road_id,
                odr_lane=-k,
                left=k - 2 if k > 1 else -1,
                right=k if k < num_lanes else -1,
                successors=[k - 1] if closed else [],
                predecessors=[k - 1] if closed else [],
            )
        )
    return assemble(drafts, [float(u[-1])], [road_id], [0.0], name, spacing)


def straight_highway(
    length: float = 1000.0,
    num_lanes: int = 3,
    lane_width: float = 3.5,
    speed_limit: float = 30.0,
    name: str = "straight",
) -> LaneGraph:
    """Straight multi-lane highway of ``length`` m along +x (lanes below y = 0)."""
    return build_highway([Segment.line(length)], num_lanes, lane_width, speed_limit, name=name)


def curved_highway(
    length: float = 1200.0,
    radius: float = 300.0,
    transition: float = 60.0,
    num_lanes: int = 3,
    lane_width: float = 3.5,
    speed_limit: float = 30.0,
    name: str = "curved",
) -> LaneGraph:
    """Line - clothoid - arc - clothoid - line - (mirrored bend) - line: a highway S-bend.

    Each bend turns 45 degrees: clothoid transitions of ``transition`` m into and out of an arc of
    ``radius`` m. ``length`` is the total reference length; the three straights share what the
    bends leave.
    """
    if radius <= 0 or transition < 0:
        raise ValueError(f"radius must be > 0 and transition >= 0, got {radius}, {transition}")
    k = 1.0 / radius
    arc = math.pi / 4 / k - transition  # bend turn = arc * k + transition * k = pi/4
    if arc <= 0:
        raise ValueError(f"transition {transition} m too long for a 45 deg bend at R={radius} m")
    curve = 2 * transition + arc
    straight = (length - 2 * curve) / 3.0
    if straight <= 1.0:
        raise ValueError(f"length {length} m too short for radius {radius} m with transitions")
    bend = [
        Segment.spiral(transition, 0.0, k),
        Segment.arc(arc, k),
        Segment.spiral(transition, k, 0.0),
    ]
    if transition == 0:
        bend = [Segment.arc(arc, k)]
    mirror = [Segment(sg.length, -sg.k0, -sg.k1) for sg in bend]
    segs = [Segment.line(straight), *bend, Segment.line(straight), *mirror, Segment.line(straight)]
    return build_highway(segs, num_lanes, lane_width, speed_limit, name=name)


def ring_road(
    radius: float = 200.0,
    num_lanes: int = 3,
    lane_width: float = 3.5,
    speed_limit: float = 25.0,
    name: str = "ring",
) -> LaneGraph:
    """Closed circular road driven counter-clockwise; its lanes are their own successors.

    The reference line is the inner edge (radius ``radius``); right-hand lanes lie outside it.
    """
    if radius <= 0:
        raise ValueError(f"radius: expected > 0 m, got {radius}")
    segs = [Segment.arc(2 * math.pi * radius, 1.0 / radius)]
    return build_highway(segs, num_lanes, lane_width, speed_limit, closed=True, name=name)


# ---------------------------------------------------------------------------------------------
# Batched queries
# ---------------------------------------------------------------------------------------------


def _wrap(a: NDArray[np.floating]) -> NDArray[np.floating]:
    """Angles to [-pi, pi). ``floor`` is several times cheaper than numpy's float modulo."""
    out: NDArray[np.floating] = a - TWO_PI * np.floor((a + np.pi) / TWO_PI)
    return out


def segment_index(g: LaneGraph, lane: I32, s: F32) -> tuple[I32, F32]:
    """Flat index of the segment start holding ``s`` and the fraction along it (float32).

    Computed in the dtype of ``s``: ``u - floor(u)`` is exact, so clamping the float index
    before the integer cast gives the same bits as clamping the integer one, without promoting
    float32 to float64 against an int32 bound.
    """
    ds, last = _lane_table(g)[:2].take(lane, axis=1)
    u = s / ds
    if not isinstance(u, np.ndarray):  # a single 0-d query (spec checks)
        i0, f0 = segment_index(g, np.reshape(lane, 1), np.reshape(s, 1))
        return i0.reshape(()), f0.reshape(())
    i = np.minimum(np.maximum(np.floor(u), _F0), last)
    frac = np.minimum(np.maximum(u - i, _F0), _F1)
    return g.lane_start.take(lane) + i.astype(np.int32), frac.astype(np.float32, copy=False)


# Stacked per-lane and per-sample tables for the per-step kernels, derived once per graph: at
# B=1 a kernel's cost is its number of array calls, and one gather from a stacked table
# replaces one per array. Every entry is the float32 value the kernels computed before.


@lru_cache(maxsize=16)
def _lane_table(g: LaneGraph) -> F32:
    """(4, L) float32 rows: sample spacing, last segment index, lane length and its section's
    length (the per-lane operands of :func:`segment_index` and :func:`s_ref_to_s`)."""
    table = np.stack(
        [g.lane_ds, g.lane_last_seg, g.lane_length, g.section_length.take(g.section)]
    ).astype(np.float32, copy=False)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _lane_int_table(g: LaneGraph) -> I32:
    """(2, L) int32 rows: first sample and last segment index of each lane."""
    table = np.stack([g.lane_start, g.lane_last_seg_i]).astype(np.int32, copy=False)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _segment_table(g: LaneGraph) -> F32:
    """(5, P) float32 rows: x, y, segment dx, dy and squared length (tracking projection)."""
    table = np.stack([g.x, g.y, g.seg_dx, g.seg_dy, g.seg_len2])
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _match_table(g: LaneGraph) -> F32:
    """(5, P) float32 rows read at a projection's matched segment: its length, the lane width,
    ``s``, ``s_ref`` and the segment's ``s_ref`` change."""
    table = np.stack([g.seg_len, g.width, g.s, g.s_ref, g.seg_ds_ref])
    table.flags.writeable = False
    return table


@lru_cache(maxsize=64)
def _window_rows(Q: int) -> NDArray[np.intp]:
    """(Q,) flat offset of each query's row of a (Q, W) projection window; read-only."""
    rows = np.arange(0, Q * _WINDOW.size, _WINDOW.size)
    rows.flags.writeable = False
    return rows


@lru_cache(maxsize=16)
def _pose_table(g: LaneGraph) -> F32:
    """(6, P) float32 rows: x, y, segment dx, segment dy, heading, heading change."""
    table = np.stack([g.x, g.y, g.seg_dx, g.seg_dy, g.heading, g.dheading])
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _s_ref_table(g: LaneGraph) -> F32:
    """(3, P) float32 rows for the Newton steps of :func:`s_ref_to_s`: ``s_ref`` at the segment
    start, at its end, and the floored slope ``d s_ref / d s`` of the segment. Computed as the
    kernel computed them per query, so the bits are the same; a lane's last sample (never a
    segment start there) gets its own values, never read."""
    r0 = g.s_ref
    r1 = np.append(g.s_ref[1:], g.s_ref[-1:])
    ds = np.ones_like(g.s_ref)
    for start, n, lane_ds in zip(g.lane_start, g.lane_npoints, g.lane_ds, strict=True):
        ds[start : start + n] = lane_ds  # once per graph
    slope = np.maximum((r1 - r0) / ds, _MIN_SLOPE)
    table = np.stack([r0, r1, slope]).astype(np.float32, copy=False)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _point_table(g: LaneGraph) -> F32:
    """(5, P) float32 rows: left edge, right edge, speed limit, heading, heading change."""
    table = np.stack([g.left_edge, g.right_edge, g.speed_limit, g.heading, g.dheading])
    table.flags.writeable = False
    return table


def edges_limit_heading(g: LaneGraph, i: I32, f: F32) -> tuple[F32, F32, F32, F32]:
    """Left and right edge distance [m], speed limit [m/s] and heading [rad] at the
    :func:`segment_index` position ``(i, f)``, (B,) each.

    The same formulas as :func:`interp` (and ``heading + dheading * f``), bit for bit, in two
    gathers from one stacked table instead of two per array: at B=1 each gather costs as much
    as the arithmetic.
    """
    table = _point_table(g)
    start = table.take(i, axis=1)  # take(axis=1): a third of table[:, i]'s call overhead
    ends = start[:3]
    left, right, limit = ends + (table[:3].take(i + _I1, axis=1) - ends) * f
    return left, right, limit, start[3] + start[4] * f


def interp(g: LaneGraph, values: F32, lane: I32, s: F32) -> F32:
    """Linear interpolation of a per-sample array at ``(lane, s)``; any broadcast shape."""
    i, f = segment_index(g, lane, s)
    v0 = values.take(i)
    return (v0 + (values.take(i + 1) - v0) * f).astype(np.float32, copy=False)


def wrap_half_turn(h: F32) -> F32:
    """Angles within one turn of [-pi, pi) to [-pi, pi), float32.

    Bit-identical to ``where(h >= pi, h - 2 pi, h)`` then ``where(h < -pi, h + 2 pi, h)``
    (adding ``2 pi * False`` adds an exact zero) in fewer, cheaper array ops.
    """
    h = h - _TWO_PI * (h >= _PI)
    out: F32 = h + _TWO_PI * (h < _NEG_PI)
    return out


def lane_pose(g: LaneGraph, lane: I32, s: F32, d: F32) -> tuple[F32, F32, F32]:
    """World pose of lane coordinates. Returns (x, y, heading) of the same shape."""
    i, f = segment_index(g, lane, s)
    x0, y0, dx, dy, h0, dh = _pose_table(g).take(i, axis=1)
    h = wrap_half_turn(h0 + dh * f)
    x = x0 + dx * f - d * np.sin(h)
    y = y0 + dy * f + d * np.cos(h)
    return (
        x.astype(np.float32, copy=False),
        y.astype(np.float32, copy=False),
        h.astype(np.float32, copy=False),
    )


def s_ref_to_s(g: LaneGraph, lane: I32, s_ref: F32) -> F32:
    """Centre-line ``s`` of ``lane`` at section reference coordinate ``s_ref`` (2 Newton steps).

    :func:`segment_index` is written out with the per-lane lookups hoisted out of the loop.
    """
    ds, last, length, sec_len = _lane_table(g).take(lane, axis=1)
    start = g.lane_start.take(lane)
    refs = _s_ref_table(g)
    s = (s_ref * length / np.maximum(sec_len, _MIN_SEC_LEN)).astype(np.float32, copy=False)
    for _ in range(2):
        u = s / ds
        i = np.minimum(np.maximum(np.floor(u), _F0), last)
        f = np.minimum(np.maximum(u - i, _F0), _F1).astype(np.float32, copy=False)
        r0, r1, slope = refs.take(start + i.astype(np.int32), axis=1)
        r = r0 * (_F1 - f) + r1 * f
        s = s + (s_ref - r) / slope
    out: F32 = np.minimum(np.maximum(s, _F0), length).astype(np.float32, copy=False)
    return out


def map_to_neighbor(g: LaneGraph, lane: I32, s: F32, other: I32) -> F32:
    """``s`` on a parallel lane ``other`` (same section) at the same reference coordinate."""
    safe = np.where(other >= _I0, other, lane).astype(np.int32, copy=False)
    return s_ref_to_s(g, safe, interp(g, g.s_ref, lane, s))


def chosen_successor(g: LaneGraph, lane: I32, choice: I32) -> tuple[I32, I32]:
    """(number of successors, the successor ``choice`` takes) of each lane, any shape.

    The branch is ``choice`` modulo the lane's successor count (so one per-vehicle draw picks
    a branch at every fork); -1 where the lane has no successor. ``successors[lane, k]`` as a
    flat gather: 2-D fancy indexing costs ~3x more at B = 1.
    """
    nsucc = g.num_successors.take(lane)
    k = choice % np.maximum(nsucc, _I1)
    succ: I32 = g.successors.reshape(-1).take(lane * g.successors.shape[1] + k)
    return nsucc, succ


def advance(
    g: LaneGraph, lane: I32, s: F32, choice: I32, max_hops: int = 2
) -> tuple[I32, F32, BoolArr]:
    """Move positions past a lane end onto a successor (up to ``max_hops`` hops per call).

    Args:
        lane, s: positions, any shape; ``s`` may exceed the lane length.
        choice: which successor to take where there are several (taken modulo their count).

    Returns:
        (lane, s, ended): ``ended`` is True where the lane ended with no successor (``s`` is
        then left past the end; the caller decides what that means).
    """
    ended = np.zeros(lane.shape, np.bool_)
    for _ in range(max_hops):
        over = s > g.lane_length.take(lane)
        if not np.count_nonzero(over):  # nobody past a lane end: inputs returned as they are
            break
        nsucc, nxt = chosen_successor(g, lane, choice)
        has = over & (nsucc > _I0)
        s = np.where(has, s - g.lane_length.take(lane), s).astype(np.float32, copy=False)
        lane = np.where(has, nxt, lane).astype(np.int32, copy=False)
        ended |= over & (nsucc == _I0)
    return lane, s, ended


@dataclass(frozen=True)
class Projection:
    """Lane coordinates of world points (all arrays of the query shape)."""

    lane: I32
    s: F32
    d: F32
    distance: F32  # [m] distance to the matched centre line (> |d| past a lane end)
    s_ref: F32  # [m] the section reference coordinate of the match


def _project_on(
    g: LaneGraph,
    px: F32,
    py: F32,
    pyaw: F32 | None,
    seg_start: I32,
    seg_ok: BoolArr,
) -> tuple[NDArray[np.intp], F32, F32, F32, F32]:
    """Best segment among candidates ``seg_start[..., K]`` (flat start indices) per query.

    Returns (best candidate index along K, along-segment t, signed d, score, distance).
    """
    x0, y0 = g.x[seg_start], g.y[seg_start]
    ex, ey = g.x[seg_start + 1] - x0, g.y[seg_start + 1] - y0
    qx, qy = px[..., None] - x0, py[..., None] - y0
    len2 = np.maximum(ex * ex + ey * ey, 1e-9)
    t = np.minimum(np.maximum((qx * ex + qy * ey) / len2, 0.0), 1.0)
    dx, dy = qx - t * ex, qy - t * ey
    dist = np.sqrt(dx * dx + dy * dy)
    score = dist
    if pyaw is not None:
        hd = np.abs(_wrap(pyaw[..., None] - g.heading[seg_start]))
        score = dist + HEADING_WEIGHT_M_PER_RAD * np.maximum(hd - HEADING_FREE_RAD, 0.0)
    score = np.where(seg_ok, score, np.inf)
    k = np.argmin(score, axis=-1)
    # Gather the winners by flat index: take_along_axis costs several microseconds of Python.
    K = score.shape[-1]
    flat = (np.arange(k.size) * K).reshape(k.shape) + k

    def pick(a: NDArray[np.floating]) -> NDArray[np.floating]:
        out: NDArray[np.floating] = a.reshape(-1)[flat]
        return out

    segl = np.sqrt(pick(len2))
    d = pick(ex * qy - ey * qx) / segl
    return (
        k,
        pick(t).astype(np.float32, copy=False),
        d.astype(np.float32, copy=False),
        pick(score).astype(np.float32, copy=False),
        pick(dist).astype(np.float32, copy=False),
    )


def project_global(
    g: LaneGraph,
    x: F32,
    y: F32,
    yaw: F32 | None = None,
    drivable_only: bool = True,
    chunk: int = 4096,
) -> Projection:
    """Nearest lane of arbitrary world points, brute force over all segments (for resets).

    Args:
        x, y: query points, shape Q (flattened internally).
        yaw: optional query headings; breaks ties between overlapping lanes (junctions).
    """
    shape = np.shape(x)
    qx = np.asarray(x, np.float32).reshape(-1)
    qy = np.asarray(y, np.float32).reshape(-1)
    qyaw = None if yaw is None else np.asarray(yaw, np.float32).reshape(-1)
    seg_lane = np.repeat(np.arange(g.num_lanes, dtype=np.int32), g.lane_npoints)
    last = np.zeros(g.num_points, np.bool_)
    last[g.lane_start + g.lane_npoints - 1] = True
    ok = ~last
    if drivable_only:
        ok &= g.lane_type[seg_lane] == LaneType.DRIVING
    seg_start = np.nonzero(ok)[0].astype(np.int32, copy=False)
    lane_out = np.empty(qx.shape, np.int32)
    s_out = np.empty(qx.shape, np.float32)
    d_out = np.empty(qx.shape, np.float32)
    dist_out = np.empty(qx.shape, np.float32)
    rows = max(1, chunk * 64 // max(1, seg_start.size))
    for a in range(0, qx.size, rows):
        b = min(qx.size, a + rows)
        cand = np.broadcast_to(seg_start, (b - a, seg_start.size))
        k, t, d, _, dist = _project_on(
            g,
            qx[a:b],
            qy[a:b],
            None if qyaw is None else qyaw[a:b],
            cand,
            np.ones(cand.shape, np.bool_),
        )
        idx = seg_start[k]
        ln = seg_lane[idx]
        lane_out[a:b] = ln
        s_out[a:b] = g.s[idx] + t * g.lane_ds[ln]
        d_out[a:b] = d
        dist_out[a:b] = dist
    return _finish(
        g,
        lane_out.reshape(shape),
        s_out.reshape(shape),
        d_out.reshape(shape),
        dist_out.reshape(shape),
    )


def _finish(g: LaneGraph, lane: I32, s: F32, d: F32, dist: F32) -> Projection:
    return Projection(lane, s, d, dist, interp(g, g.s_ref, lane, s))


def project_tracking(
    g: LaneGraph,
    x: F32,
    y: F32,
    yaw: F32,
    lane: I32,
    s: F32,
) -> Projection:
    """Lane coordinates of points near a known previous position (per-step ego update).

    Two phases, both O(1) per query with no scan over the map. First, ``PROJECT_WINDOW`` samples
    either side of the guess ``s`` on the previous lane: a point inside that lane's half width
    and away from the window and lane ends is settled (the common case). The rest search the
    previous lane, its left/right neighbours, its first successor/predecessor and the
    neighbours' successors; points that moved further than that fall back to
    :func:`project_global`. Query shape (B,).

    The first phase is :func:`_project_on` written out for one lane with no heading tie-break,
    on the graph's precomputed segment vectors: it runs every step for every env, and at B=1 its
    cost is the number of array operations (same maths, same bits).
    """
    lane = np.asarray(lane, np.int32)
    s_prev = np.asarray(s, np.float32)
    start, last = _lane_int_table(g).take(lane, axis=1)  # last: index of the lane's last segment
    ds = g.lane_ds.take(lane)
    idx = np.floor(s_prev / ds).astype(np.int32)[:, None] + _WINDOW
    seg = np.minimum(np.maximum(idx, _I0), last[:, None])
    ok = idx == seg  # window slots inside the lane
    flat = start[:, None] + seg  # (Q, W) flat segment starts
    px, py, ex, ey, len2 = _segment_table(g).take(flat, axis=1)
    qx, qy = x[:, None] - px, y[:, None] - py
    t = np.minimum(np.maximum((qx * ex + qy * ey) / len2, _F0), _F1)
    dx, dy = qx - t * ex, qy - t * ey
    dist = np.sqrt(dx * dx + dy * dy)
    k = np.where(ok, dist, _INF).argmin(axis=-1)
    pick = _window_rows(k.size) + k  # flat (Q, W) index of k
    best = flat.take(pick)
    t = t.take(pick)
    seg_len, width, s_best, s_ref_best, ds_ref = _match_table(g).take(best, axis=1)
    d = (ex * qy - ey * qx).take(pick) / seg_len
    dist = dist.take(pick)
    seg_i = best - start
    at_edge = ((k == _K0) & (seg_i > _I0)) | ((k == _K_LAST) & (seg_i < last))
    at_end = ((seg_i == last) & (t >= _F1)) | ((seg_i == _I0) & (t <= _F0))
    # (Beyond the lane ends is at_end; a point outside a bend may sit in the wedge between two
    # segments, where its distance exceeds |d| by a hair: that is still settled.)
    settled = (np.abs(d) <= _HALF * width) & ~(at_edge | at_end)
    new_s = s_best + t * ds
    s_ref = s_ref_best + ds_ref * t
    if np.count_nonzero(settled) == settled.size:
        return Projection(lane, new_s, d, dist, s_ref)
    new_lane = lane.copy()
    rest = np.nonzero(~settled)[0]
    rl, rs, rd, rdist = _project_wide(g, x[rest], y[rest], yaw[rest], lane[rest], s_prev[rest])
    new_lane[rest] = rl
    new_s[rest] = rs
    d[rest] = rd
    dist[rest] = rdist
    s_ref[rest] = interp(g, g.s_ref, rl, rs)
    return Projection(new_lane, new_s, d, dist, s_ref)


def _project_wide(
    g: LaneGraph, x: F32, y: F32, yaw: F32, lane: I32, s_prev: F32
) -> tuple[I32, F32, F32, F32]:
    """Second phase of :func:`project_tracking`: seven candidate lanes, then a global scan."""
    left, right = g.left[lane], g.right[lane]
    succ, pred = g.successors[lane, 0], g.predecessors[lane, 0]
    succ_l = np.where(left >= 0, g.successors[np.maximum(left, 0), 0], -1)
    succ_r = np.where(right >= 0, g.successors[np.maximum(right, 0), 0], -1)
    cands = np.stack([lane, left, right, succ, pred, succ_l, succ_r], -1)  # (Q, 7)
    s_side_l = map_to_neighbor(g, lane, s_prev, left)
    s_side_r = map_to_neighbor(g, lane, s_prev, right)
    guess = np.stack(
        [
            s_prev,
            s_side_l,
            s_side_r,
            s_prev - g.lane_length[lane],
            s_prev + g.lane_length[np.maximum(pred, 0)],
            s_side_l - g.lane_length[np.maximum(left, 0)],
            s_side_r - g.lane_length[np.maximum(right, 0)],
        ],
        -1,
    )
    valid_c = cands >= 0
    cl = np.where(valid_c, cands, lane[:, None]).astype(np.int32, copy=False)
    centre = np.floor(guess / g.lane_ds[cl]).astype(np.int32, copy=False)
    w = np.arange(-PROJECT_WINDOW, PROJECT_WINDOW + 1, dtype=np.int32)
    idx = centre[..., None] + w  # (Q, 7, W)
    nseg = (g.lane_npoints[cl] - 1)[..., None]
    ok = valid_c[..., None] & (idx >= 0) & (idx < nseg)
    flat = (g.lane_start[cl][..., None] + np.minimum(np.maximum(idx, 0), nseg - 1)).reshape(
        lane.size, -1
    )
    ok = ok.reshape(lane.size, -1)
    k, t, d, score, dist = _project_on(g, x, y, yaw, flat, ok)
    rows = np.arange(k.size)
    best = flat[rows, k]
    new_lane = cl[rows, k // w.size].astype(np.int32, copy=False)
    new_s = (g.s[best] + t * g.lane_ds[new_lane]).astype(np.float32, copy=False)
    lost = ~np.isfinite(score) | (np.abs(d) > 3.0 * g.width[best])
    if np.count_nonzero(lost):
        pg = project_global(g, x[lost], y[lost], yaw[lost])
        new_lane[lost] = pg.lane
        new_s[lost] = pg.s
        d[lost] = pg.d
        dist[lost] = pg.distance
    return new_lane, new_s, d, dist


def lane_width_at(g: LaneGraph, lane: I32, s: F32) -> F32:
    return interp(g, g.width, lane, s)
