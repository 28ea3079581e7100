"""Bird's-eye-view (BEV) rendering of a :class:`sim.road.LaneGraph` and a :class:`WorldState`.

Conventions
-----------
* **Colours are RGB.** Every colour in :class:`BevStyle` is an ``(R, G, B)`` tuple and every
  frame returned by :func:`render_bev` is an RGB ``uint8`` array of shape ``(H, W, 3)``. OpenCV's
  drawing functions do not care about channel order, so we draw RGB directly; the only BGR
  conversion happens in :class:`VideoWriter`, at the boundary with ``cv2.VideoWriter``.
* **Image axes.** The view is centred on the ego of the rendered environment. World ``+x``
  points right and world ``+y`` points *up* (image rows grow downwards, so ``y`` is flipped).
  With ``BevStyle.rotate_with_ego`` the view instead turns so that the ego's heading points up.
  :func:`view_matrix` gives the ``(2, 3)`` affine world -> pixel map used for everything.
* **Scale.** ``BevStyle.pixels_per_metre`` pixels per metre, the same on both axes.
* **Culling.** Only lane samples inside a box around the ego (the view plus a margin of one
  lane width) are converted and drawn, so the cost per frame is O(samples in view) plus one
  vectorised O(P) mask: a 5 km map renders as fast as a 500 m one.
* **Draw order.** Background, drivable area (non-driving lanes such as shoulders first, then
  driving lanes), lane markings, route, actors, HUD: later items paint over earlier ones.

Markings: a dashed line separates a driving lane from its same-direction right neighbour (drawn
once per pair, on the right border of the left lane); a solid line marks a lane border with no
driving neighbour (``left``/``right == -1`` or a non-driving neighbour), i.e. the outer edge of
the drivable area.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from sim.road import LaneGraph, LaneType, lane_pose
from sim.state import ActorType, WorldState

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]
RGB = tuple[int, int, int]

SHIFT = 3  # fractional bits of pixel coordinates passed to cv2: sub-pixel accurate AA lines
_SCALE = float(1 << SHIFT)
_COORD_LIMIT = 1.0e6  # [px] clip before the int32 cast: far-off points must not overflow
ROUTE_HORIZON_M = 200.0  # [m] length of the route polyline ahead of the ego
ROUTE_SPACING_M = 2.0  # [m] spacing of route polyline points


@dataclass(frozen=True)
class BevStyle:
    """How a BEV frame looks. All colours are RGB (see the module docstring).

    Attributes:
        width: image width [px].
        height: image height [px].
        pixels_per_metre: scale [px/m].
        rotate_with_ego: False: north-up (world +y up); True: the ego's heading points up.
        background: off-road colour.
        road: drivable-area (driving lanes) colour.
        off_lane: colour of non-driving lanes (shoulders, sidewalks).
        marking: lane-marking colour (dashed and solid).
        marking_width_m: marking line width [m] (at least 1 px).
        dash_m: painted length of a dashed marking [m].
        gap_m: gap between dashes [m].
        route: route polyline colour.
        route_alpha: route opacity in [0, 1].
        route_width_m: route line width [m].
        ego: ego box colour.
        vehicle: colour of other vehicles.
        pedestrian: colour of pedestrians.
        heading_mark: colour of the triangle showing each actor's heading.
        text: HUD text colour.
        hud_box: colour of the box behind the HUD text.
        hud_alpha: opacity of that box in [0, 1].
        font_scale: HUD font scale (cv2.FONT_HERSHEY_SIMPLEX).
    """

    width: int = 640
    height: int = 480
    pixels_per_metre: float = 6.0
    rotate_with_ego: bool = False
    background: RGB = (38, 46, 40)
    road: RGB = (80, 80, 80)
    off_lane: RGB = (112, 106, 96)
    marking: RGB = (235, 235, 235)
    marking_width_m: float = 0.15
    dash_m: float = 3.0
    gap_m: float = 6.0
    route: RGB = (70, 220, 120)
    route_alpha: float = 0.45
    route_width_m: float = 1.2
    ego: RGB = (230, 60, 50)
    vehicle: RGB = (70, 140, 235)
    pedestrian: RGB = (245, 200, 50)
    heading_mark: RGB = (250, 250, 250)
    text: RGB = (255, 255, 255)
    hud_box: RGB = (0, 0, 0)
    hud_alpha: float = 0.5
    font_scale: float = 0.5

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"BevStyle: image size must be > 0, got {self.width}x{self.height}")
        if self.pixels_per_metre <= 0:
            raise ValueError(
                f"BevStyle.pixels_per_metre: expected > 0, got {self.pixels_per_metre}"
            )
        for name in ("route_alpha", "hud_alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"BevStyle.{name}: expected in [0, 1], got {getattr(self, name)}")
        if self.dash_m <= 0 or self.gap_m < 0:
            raise ValueError(
                f"BevStyle: dash_m must be > 0 and gap_m >= 0, got {self.dash_m}, {self.gap_m}"
            )


DEFAULT_STYLE = BevStyle()


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def view_matrix(cx: float, cy: float, yaw: float, style: BevStyle = DEFAULT_STYLE) -> F64:
    """The ``(2, 3)`` affine map from world ``(x, y, 1)`` to pixel ``(col, row)``.

    Args:
        cx, cy: world point at the image centre [m] (the ego).
        yaw: ego heading [rad]; used only when ``style.rotate_with_ego``.
        style: image size, scale and rotation mode.

    Returns:
        float64 matrix ``M`` with ``[col, row] = M @ [x, y, 1]``; invert it with
        ``cv2.invertAffineTransform`` to go from pixels to world.
    """
    # Rotating by pi/2 - yaw brings the heading onto view +y, which is image "up".
    phi = math.pi / 2 - yaw if style.rotate_with_ego else 0.0
    c, s = math.cos(phi), math.sin(phi)
    k = style.pixels_per_metre
    # view = R(phi) @ (p - centre); col = W/2 + k * view_x; row = H/2 - k * view_y (flip y).
    return np.array(
        [
            [k * c, -k * s, style.width / 2 - k * (c * cx - s * cy)],
            [-k * s, -k * c, style.height / 2 + k * (s * cx + c * cy)],
        ],
        np.float64,
    )


def _to_px(m: F64, x: NDArray[Any], y: NDArray[Any]) -> NDArray[np.int32]:
    """World points -> fixed-point pixel coordinates ``(K, 2)`` int32 for cv2 with ``SHIFT``."""
    col = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    row = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    pts = np.stack([col, row], -1) * _SCALE
    return np.clip(np.rint(pts), -_COORD_LIMIT * _SCALE, _COORD_LIMIT * _SCALE).astype(np.int32)


def _runs(ok: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Maximal runs of True segments; segment k joins points k and k + 1.

    Returns:
        ``(a, b)`` point slices ``[a, b)`` (at least two points each).
    """
    edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0]  # one past the last True segment
    return [(int(a), int(b) + 1) for a, b in zip(starts, ends, strict=True)]


def _px(v: float) -> int:
    """A line width in pixels, at least 1 (thinner lines vanish)."""
    return max(1, round(v))


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


def _draw_road(img: U8, road: LaneGraph, m: F64, cx: float, cy: float, style: BevStyle) -> None:
    """Drivable area and lane markings of the lane samples near ``(cx, cy)``."""
    k = style.pixels_per_metre
    margin = float(road.width.max(initial=0.0)) + 2.0  # lanes centred just outside still show
    if style.rotate_with_ego:
        # Any rotation of the view fits in the circle through its corners.
        hx = hy = math.hypot(style.width, style.height) / (2 * k) + margin
    else:
        hx, hy = style.width / (2 * k) + margin, style.height / (2 * k) + margin
    inside = (np.abs(road.x - cx) <= hx) & (np.abs(road.y - cy) <= hy)
    # Grow by one sample each way so polygons and lines continue past the box edge.
    inside[1:] |= inside[:-1].copy()
    inside[:-1] |= inside[1:].copy()
    idx = np.nonzero(inside)[0]
    if idx.size < 2:
        return
    lane = np.searchsorted(road.lane_start, idx, side="right") - 1
    # A segment joins consecutive samples of the same lane.
    seg = (np.diff(idx) == 1) & (lane[1:] == lane[:-1])
    if not seg.any():
        return

    h = road.heading[idx].astype(np.float64)
    half = 0.5 * road.width[idx].astype(np.float64)
    nx, ny = -np.sin(h) * half, np.cos(h) * half  # left normal scaled to half a lane width
    px = road.x[idx].astype(np.float64)
    py = road.y[idx].astype(np.float64)
    left_px = _to_px(m, px + nx, py + ny)
    right_px = _to_px(m, px - nx, py - ny)

    ltype = road.lane_type[lane]
    driving = ltype == LaneType.DRIVING
    lnb, rnb = road.left[lane], road.right[lane]
    left_drv = (lnb >= 0) & (road.lane_type[np.maximum(lnb, 0)] == LaneType.DRIVING)
    right_drv = (rnb >= 0) & (road.lane_type[np.maximum(rnb, 0)] == LaneType.DRIVING)

    runs = _runs(seg)
    # Non-driving lanes first so driving lanes and their edge lines paint over any overlap.
    # No anti-aliasing on fills: AA edges of adjacent lanes would leave light seams between them.
    for want_driving in (False, True):
        colour = style.road if want_driving else style.off_lane
        for a, b in runs:
            if bool(driving[a]) != want_driving:
                continue
            poly = np.concatenate([left_px[a:b], right_px[a:b][::-1]])
            cv2.fillPoly(img, [poly], colour, cv2.LINE_8, SHIFT)

    thick = _px(style.marking_width_m * k)
    solid: list[NDArray[np.int32]] = []
    for a, b in runs:
        if not driving[a]:
            continue
        if not left_drv[a]:
            solid.append(left_px[a:b])
        if not right_drv[a]:
            solid.append(right_px[a:b])
    if solid:
        cv2.polylines(img, solid, False, style.marking, thick, cv2.LINE_AA, SHIFT)

    # Dashes follow the lane's own arc length so they stay put as the view moves.
    period = style.dash_m + style.gap_m
    painted = np.mod(road.s[idx], period) < style.dash_m
    dash_seg = seg & painted[:-1] & driving[:-1] & right_drv[:-1]
    dashes = [right_px[a:b] for a, b in _runs(dash_seg)]
    if dashes:
        cv2.polylines(img, dashes, False, style.marking, thick, cv2.LINE_AA, SHIFT)


def _draw_route(img: U8, route_xy: NDArray[Any], m: F64, style: BevStyle) -> None:
    """Translucent route polyline, blended only inside its bounding box (cheap for short ones)."""
    pts = np.asarray(route_xy, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if pts.shape[0] < 2 or style.route_alpha <= 0.0:
        return
    px = _to_px(m, pts[:, 0], pts[:, 1])
    thick = _px(style.route_width_m * style.pixels_per_metre)
    pad = thick + 2
    lo = np.floor(px.min(0) / _SCALE).astype(int) - pad
    hi = np.ceil(px.max(0) / _SCALE).astype(int) + pad
    x0, y0 = max(0, int(lo[0])), max(0, int(lo[1]))
    x1, y1 = min(style.width, int(hi[0])), min(style.height, int(hi[1]))
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    overlay = roi.copy()
    # Offset into the ROI in fixed point so the line lands where it would on the full image.
    shifted = px - np.array([x0, y0], np.int32) * int(_SCALE)
    cv2.polylines(overlay, [shifted], False, style.route, thick, cv2.LINE_AA, SHIFT)
    cv2.addWeighted(overlay, style.route_alpha, roi, 1.0 - style.route_alpha, 0.0, dst=roi)


def _draw_actors(
    img: U8,
    state: WorldState,
    env: int,
    m: F64,
    cx: float,
    cy: float,
    style: BevStyle,
) -> None:
    """Every valid actor in view as a filled rotated box with a heading triangle."""
    k = style.pixels_per_metre
    reach = math.hypot(style.width, style.height) / (2 * k)
    x = state.x[env].astype(np.float64)
    y = state.y[env].astype(np.float64)
    length = state.length[env].astype(np.float64)
    width = state.width[env].astype(np.float64)
    near = np.hypot(x - cx, y - cy) <= reach + np.hypot(length, width)
    show = np.nonzero(state.valid[env] & near)[0]
    if show.size == 0:
        return
    yaw = state.yaw[env, show].astype(np.float64)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    hl, hw = 0.5 * length[show][:, None], 0.5 * width[show][:, None]
    # Box corners in the actor frame (forward, left): front-left, rear-left, rear-right,
    # front-right; the triangle: nose, then its base 35 % of the length behind the nose.
    fwd = np.concatenate([hl, -hl, -hl, hl, hl, 0.3 * hl, 0.3 * hl], 1)
    lat = np.concatenate([hw, hw, -hw, -hw, 0 * hw, 0.6 * hw, -0.6 * hw], 1)
    wx = x[show][:, None] + c * fwd - s * lat
    wy = y[show][:, None] + s * fwd + c * lat
    pts = _to_px(m, wx, wy)  # (n, 7, 2)
    # Draw the ego last so traffic overlapping it (a crash) never hides it.
    order = sorted(range(show.size), key=lambda i: int(show[i]) == 0)
    for i in order:
        slot = int(show[i])
        if slot == 0:
            colour = style.ego
        elif int(state.actor_type[env, slot]) == ActorType.PEDESTRIAN:
            colour = style.pedestrian
        else:
            colour = style.vehicle
        cv2.fillConvexPoly(img, pts[i, :4], colour, cv2.LINE_AA, SHIFT)
        cv2.fillConvexPoly(img, pts[i, 4:], style.heading_mark, cv2.LINE_AA, SHIFT)


def _draw_hud(img: U8, lines: list[str], style: BevStyle) -> None:
    """Text lines at the top-left on a translucent box, so they read on road and grass alike."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, style.font_scale, 1) for line in lines]
    if not sizes:
        return
    th = max(sz[0][1] for sz in sizes)
    base = max(sz[1] for sz in sizes)
    step = th + base + 4
    x1 = min(style.width, 8 + max(sz[0][0] for sz in sizes) + 8)
    y1 = min(style.height, 8 + len(lines) * step)
    roi = img[:y1, :x1]
    box = np.empty_like(roi)
    box[:] = style.hud_box
    cv2.addWeighted(box, style.hud_alpha, roi, 1.0 - style.hud_alpha, 0.0, dst=roi)
    for i, line in enumerate(lines):
        org = (8, 6 + th + i * step)
        cv2.putText(img, line, org, font, style.font_scale, style.text, 1, cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def render_bev(
    road: LaneGraph,
    state: WorldState,
    env: int = 0,
    style: BevStyle = DEFAULT_STYLE,
    route_xy: NDArray[Any] | None = None,
    hud: dict[str, str] | None = None,
) -> U8:
    """Render one environment as a bird's-eye view centred on its ego.

    Args:
        road: the lane graph the state lives on.
        state: the batched world state.
        env: which environment of the batch to draw.
        style: size, scale, rotation mode and colours.
        route_xy: optional ``(K, 2)`` world points of the ego's route (e.g.
            :func:`route_polyline`), drawn as a translucent polyline.
        hud: extra ``key: value`` lines for the HUD after speed and time.

    Returns:
        RGB ``uint8`` image of shape ``(style.height, style.width, 3)``.

    Raises:
        IndexError: ``env`` is not an environment of ``state``.
    """
    if not 0 <= env < state.num_envs:
        raise IndexError(f"env {env} out of range for a batch of {state.num_envs}")
    cx, cy = float(state.x[env, 0]), float(state.y[env, 0])
    m = view_matrix(cx, cy, float(state.yaw[env, 0]), style)
    img = np.empty((style.height, style.width, 3), np.uint8)
    img[:] = style.background
    _draw_road(img, road, m, cx, cy, style)
    if route_xy is not None:
        _draw_route(img, route_xy, m, style)
    _draw_actors(img, state, env, m, cx, cy, style)
    lines = [
        f"speed {float(state.speed[env, 0]) * 3.6:5.1f} km/h",
        f"t {float(state.time[env]):6.2f} s",
    ]
    lines += [f"{key}: {value}" for key, value in (hud or {}).items()]
    _draw_hud(img, lines, style)
    return img


def route_polyline(
    road: LaneGraph,
    state: WorldState,
    env: int = 0,
    horizon: float = ROUTE_HORIZON_M,
    spacing: float = ROUTE_SPACING_M,
) -> F32:
    """Centre line of the ego's lane ahead: from its ``s`` forward along first successors.

    Points are ``spacing`` m apart along the centre line for up to ``horizon`` m, crossing lane
    ends onto ``road.successors[lane, 0]``; where a lane has no successor the line stops at its
    end (that end point is included).

    Args:
        road: the lane graph.
        state: the batched world state (uses the ego's ``lane`` and ``s``).
        env: which environment.
        horizon: how far ahead [m].
        spacing: point spacing [m] (> 0).

    Returns:
        ``(K, 2)`` float32 world ``(x, y)`` points, K >= 1.
    """
    if spacing <= 0:
        raise ValueError(f"spacing: expected > 0 m, got {spacing}")
    lane = int(state.lane[env, 0])
    dist = np.arange(0.0, horizon + 1e-6, spacing)  # distance ahead of the ego
    out_lane = np.full(dist.shape, -1, np.int32)
    out_s = np.zeros(dist.shape, np.float32)
    pending = np.ones(dist.shape, np.bool_)
    start = -float(np.clip(state.s[env, 0], 0.0, road.lane_length[lane]))  # lane start, ahead
    extra: tuple[int, float] | None = None
    # Each hop consumes a whole lane (> 0 m), so this ends once `start` passes the horizon; the
    # cap only guards against degenerate zero-length lanes.
    for _ in range(10_000):
        length = float(road.lane_length[lane])
        on = pending & (dist - start <= length + 1e-4)
        out_lane[on] = lane
        out_s[on] = np.minimum(dist[on] - start, length)
        pending &= ~on
        if not pending.any():
            break
        nxt = int(road.successors[lane, 0])
        if nxt < 0:
            extra = (lane, length)
            break
        start += length
        lane = nxt
    keep = out_lane >= 0
    lanes, ss = out_lane[keep], out_s[keep]
    if extra is not None and (ss.size == 0 or lanes[-1] != extra[0] or ss[-1] < extra[1] - 1e-3):
        lanes = np.append(lanes, np.int32(extra[0])).astype(np.int32)
        ss = np.append(ss, np.float32(extra[1])).astype(np.float32)
    x, y, _ = lane_pose(road, lanes, ss, np.zeros_like(ss))
    return np.stack([x, y], -1).astype(np.float32)


class VideoWriter:
    """Writes RGB frames to an mp4 (``mp4v``), atomically.

    Frames go to ``path + '.tmp.mp4'``; :meth:`close` renames that to ``path`` with
    :func:`os.replace`, so an interrupted run never leaves a truncated file under the final name.
    Leaving the ``with`` block on an exception discards the partial file (:meth:`abort`).

    Example::

        with VideoWriter("episode.mp4", fps=10) as vw:
            for frame in frames:
                vw.write(frame)
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, size: tuple[int, int] | None = None
    ) -> None:
        """Prepare a writer.

        Args:
            path: final file name (``.mp4``).
            fps: frames per second (> 0).
            size: ``(width, height)`` in pixels; None: taken from the first frame.

        Raises:
            ValueError: bad fps or size.
            RuntimeError: cv2 cannot open a writer at the path (only when ``size`` is given;
                otherwise on the first :meth:`write`).
        """
        if not fps > 0:
            raise ValueError(f"fps: expected > 0, got {fps}")
        if size is not None and (size[0] <= 0 or size[1] <= 0):
            raise ValueError(f"size: expected positive (width, height), got {size}")
        self.path = os.fspath(path)
        self.tmp_path = self.path + ".tmp.mp4"
        self.fps = float(fps)
        self.size = size
        self.frames = 0
        self._writer: Any = None
        self._closed = False
        if size is not None:
            self._open(size)

    def _open(self, size: tuple[int, int]) -> None:
        fourcc = cv2.VideoWriter.fourcc(*"mp4v")
        writer = cv2.VideoWriter(self.tmp_path, fourcc, self.fps, size)
        if not writer.isOpened():
            writer.release()
            raise RuntimeError(
                f"cv2.VideoWriter cannot open '{self.tmp_path}' (for '{self.path}', fourcc mp4v, "
                f"size {size}): check that the folder exists and is writable"
            )
        self._writer = writer
        self.size = size

    def write(self, frame_rgb: NDArray[np.uint8]) -> None:
        """Append one RGB ``uint8`` frame of shape ``(height, width, 3)``.

        Raises:
            ValueError: wrong dtype or shape (cv2 would silently drop such a frame).
            RuntimeError: the writer is closed.
        """
        if self._closed:
            raise RuntimeError(f"VideoWriter for '{self.path}' is closed")
        frame = np.asarray(frame_rgb)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        h, w = int(frame.shape[0]), int(frame.shape[1])
        if self._writer is None:
            self._open((w, h))
        if (w, h) != self.size:
            raise ValueError(f"frame size {w}x{h} differs from the video's {self.size}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it to ``path``. No frames written: no file is created."""
        if not self._release():
            return
        if self.frames > 0:
            os.replace(self.tmp_path, self.path)
        elif os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)

    def abort(self) -> None:
        """Stop and delete the partial file; ``path`` is left untouched."""
        if self._release() and os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)

    def _release(self) -> bool:
        """Release the encoder once; False when already closed (close/abort are idempotent)."""
        if self._closed:
            return False
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        return True

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
