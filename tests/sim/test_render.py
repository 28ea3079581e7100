"""Tests for sim.render: colours where expected, actor placement, route polyline, video files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from sim import world
from sim.render import BevStyle, VideoWriter, render_bev, route_polyline, view_matrix
from sim.road import LaneGraph
from sim.scenario import RoadSpec, ScenarioSpec, TrafficSpec, build_road
from sim.state import WorldState

STYLE = BevStyle()
HUD_ROWS, HUD_COLS = 90, 260  # generous bound of the HUD box at the top-left


def _make(road_spec: RoadSpec | None = None) -> tuple[LaneGraph, WorldState]:
    spec = ScenarioSpec(road=road_spec or RoadSpec(), traffic=TrafficSpec(count=10))
    road = build_road(spec.road)
    st = world.reset([spec], road, [np.random.default_rng(0)], num_actors=16)
    return road, st


def _colour_at(img: NDArray[np.uint8], row: int, col: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in img[row, col])
    return r, g, b


def _pixel(st: WorldState, x: float, y: float, style: BevStyle = STYLE) -> tuple[int, int]:
    """(row, col) of a world point in the frame of env 0."""
    m = view_matrix(float(st.x[0, 0]), float(st.y[0, 0]), float(st.yaw[0, 0]), style)
    col, row = m @ np.array([x, y, 1.0])
    return round(row), round(col)


def _far_from_road_pixels(
    road: LaneGraph, st: WorldState, min_dist: float
) -> list[tuple[int, int]]:
    """Grid pixels (outside the HUD) whose world point is > min_dist m from every lane edge."""
    inv = cv2.invertAffineTransform(
        view_matrix(float(st.x[0, 0]), float(st.y[0, 0]), float(st.yaw[0, 0]), STYLE)
    )
    out = []
    for row in range(4, STYLE.height, 24):
        for col in range(4, STYLE.width, 24):
            if row < HUD_ROWS and col < HUD_COLS:
                continue
            wx, wy = inv @ np.array([col, row, 1.0])
            dist = np.hypot(road.x - wx, road.y - wy) - road.width / 2
            if dist.min() > min_dist:
                out.append((row, col))
    return out


def _check_basic(road: LaneGraph, st: WorldState) -> NDArray[np.uint8]:
    img = render_bev(road, st, 0, STYLE, route_xy=None, hud={"episode": "3"})
    assert img.shape == (480, 640, 3)
    assert img.dtype == np.uint8
    # The ego sits at the image centre.
    centre = img[238:243, 318:323].reshape(-1, 3)
    assert (centre == STYLE.ego).all(1).all()
    # Road grey is there in quantity (at least a 10 m x 10 m patch worth).
    assert (img == STYLE.road).all(-1).sum() > (10 * STYLE.pixels_per_metre) ** 2
    # Far from any lane only background remains.
    far = _far_from_road_pixels(road, st, 20.0)
    assert len(far) > 10
    for row, col in far:
        assert _colour_at(img, row, col) == STYLE.background, (row, col)
    return img


def test_render_straight() -> None:
    road, st = _make()
    _check_basic(road, st)
    # Straight road along +x, north-up: the bottom-right corner is > 30 m from the road.
    img = render_bev(road, st)
    assert float(st.y[0, 0]) - STYLE.height / 2 / STYLE.pixels_per_metre < -10.5 - 20.0
    assert _colour_at(img, 479, 639) == STYLE.background


def test_render_ring() -> None:
    road, st = _make(RoadSpec(kind="ring", radius=100))
    _check_basic(road, st)


def test_render_rotated_and_curved() -> None:
    road, st = _make(RoadSpec(kind="curved", length=1200, radius=150))
    st = replace(st, yaw=st.yaw.copy())
    st.yaw[0, 0] = 0.7
    style = BevStyle(rotate_with_ego=True)
    img = render_bev(road, st, 0, style)
    # With the view turned to the ego's heading, a point 3 m ahead of the ego is straight above.
    c, s = np.cos(0.7), np.sin(0.7)
    row, col = _pixel(st, float(st.x[0, 0]) + 1.0 * c, float(st.y[0, 0]) + 1.0 * s, style)
    assert (row, col) == (240 - 6, 320)
    assert _colour_at(img, row, col) in (style.ego, style.heading_mark)


def test_moving_an_actor_moves_its_box() -> None:
    road, st = _make()
    ex, ey = float(st.x[0, 0]), float(st.y[0, 0])
    old_row, old_col = _pixel(st, float(st.x[0, 1]), float(st.y[0, 1]))
    new_row, new_col = _pixel(st, ex + 10.0, ey)
    assert (new_row, new_col) == (240, 320 + 60)
    # Behind the box centre (the nose carries the heading triangle).
    before = render_bev(road, st)
    assert _colour_at(before, old_row, old_col - 6) == STYLE.vehicle
    assert _colour_at(before, new_row, new_col - 6) != STYLE.vehicle

    x, y, yaw = st.x.copy(), st.y.copy(), st.yaw.copy()
    x[0, 1], y[0, 1], yaw[0, 1] = ex + 10.0, ey, 0.0
    after = render_bev(road, replace(st, x=x, y=y, yaw=yaw))
    assert _colour_at(after, new_row, new_col - 6) == STYLE.vehicle
    assert _colour_at(after, old_row, old_col - 6) != STYLE.vehicle
    # Invalid slots are not drawn.
    valid = st.valid.copy()
    valid[0, 1] = False
    hidden = render_bev(road, replace(st, x=x, y=y, yaw=yaw, valid=valid))
    assert _colour_at(hidden, new_row, new_col - 6) != STYLE.vehicle


def test_route_polyline_and_overlay() -> None:
    road, st = _make()
    route = route_polyline(road, st, 0)
    assert route.dtype == np.float32
    assert route.shape == (101, 2)  # 200 m at 2 m spacing, both ends included
    np.testing.assert_allclose(route[0], [st.x[0, 0], st.y[0, 0]], atol=1e-3)
    np.testing.assert_allclose(np.diff(route[:, 0]), 2.0, atol=1e-3)
    np.testing.assert_allclose(route[:, 1], st.y[0, 0], atol=1e-3)

    plain = render_bev(road, st)
    shown = render_bev(road, st, route_xy=route)
    row, col = _pixel(st, float(st.x[0, 0]) + 25.0, float(st.y[0, 0]))
    assert _colour_at(plain, row, col) == STYLE.road
    tinted = shown[row, col].astype(int)
    # Translucent: strictly between the road grey and the route colour, on each channel.
    road_c, route_c = np.array(STYLE.road), np.array(STYLE.route)
    lo, hi = np.minimum(road_c, route_c), np.maximum(road_c, route_c)
    assert ((tinted >= lo) & (tinted <= hi)).all()
    assert not np.array_equal(tinted, road_c) and not np.array_equal(tinted, route_c)


def test_route_stops_at_road_end_and_wraps_on_ring() -> None:
    road, st = _make()
    s = st.s.copy()
    s[0, 0] = float(road.lane_length[st.lane[0, 0]]) - 15.0
    x = st.x.copy()
    x[0, 0] = s[0, 0]  # the straight road starts at x = 0
    route = route_polyline(road, replace(st, s=s, x=x), 0)
    assert route.shape[0] == 9  # 0, 2, ..., 14 m and the lane end at 15 m
    np.testing.assert_allclose(route[-1, 0], road.lane_length[st.lane[0, 0]], atol=1e-3)

    ring, st_r = _make(RoadSpec(kind="ring", radius=30))  # a lap is ~200 m: it must wrap
    route_r = route_polyline(ring, st_r, 0)
    assert route_r.shape == (101, 2)
    step = np.hypot(*np.diff(route_r, axis=0).T)
    assert step.max() < 2.1  # no jump at the lane seam


def test_bad_env_and_style() -> None:
    road, st = _make()
    with pytest.raises(IndexError, match="env 3"):
        render_bev(road, st, env=3)
    with pytest.raises(ValueError, match="pixels_per_metre"):
        BevStyle(pixels_per_metre=0)


def test_video_writer(tmp_path: Path) -> None:
    road, st = _make()
    path = tmp_path / "a.mp4"
    with VideoWriter(str(path), fps=10) as vw:
        for i in range(10):
            x = st.x.copy()
            x[0, 0] += i
            vw.write(render_bev(road, replace(st, x=x)))
        assert not path.exists()  # only the temporary file exists while writing
    assert path.exists() and path.stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 10
    assert all(f.shape == (480, 640, 3) for f in frames)


def test_video_writer_errors(tmp_path: Path) -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    bad = tmp_path / "missing_dir" / "b.mp4"
    with pytest.raises(RuntimeError, match=r"b\.mp4"):
        VideoWriter(str(bad), fps=5, size=(64, 48))
    path = tmp_path / "c.mp4"
    with pytest.raises(ValueError, match="frame size"), VideoWriter(str(path), fps=5) as vw:
        vw.write(frame)
        vw.write(np.zeros((40, 64, 3), np.uint8))
    # An exception inside the block leaves neither the final nor the temporary file.
    assert not list(tmp_path.glob("c.mp4*"))
