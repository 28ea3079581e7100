"""Lane graph: procedural geometry, uniform sampling, links and batched projection."""

import math

import numpy as np
import pytest

from sim import road as R


def test_straight_highway_layout() -> None:
    g = R.straight_highway(500.0, num_lanes=4, lane_width=3.5)
    assert g.num_lanes == 4
    np.testing.assert_allclose(g.lane_length, 500.0, atol=1e-3)
    # lane -1 is next to the median (y = -1.75), lane -4 the rightmost (y = -12.25)
    np.testing.assert_allclose(g.y[g.lane_start], [-1.75, -5.25, -8.75, -12.25], atol=1e-5)
    assert list(g.odr_lane) == [-1, -2, -3, -4]
    assert list(g.left) == [-1, 0, 1, 2] and list(g.right) == [1, 2, 3, -1]
    # edges: lane -2 has one lane to its left and two to its right
    i = g.lane_start[1]
    assert g.left_edge[i] == pytest.approx(5.25) and g.right_edge[i] == pytest.approx(8.75)


@pytest.mark.parametrize(
    "graph",
    [R.straight_highway(300.0), R.curved_highway(1200.0, 250.0, 60.0), R.ring_road(80.0, 5)],
    ids=["straight", "curved", "ring"],
)
def test_uniform_spacing_and_arc_length(graph: R.LaneGraph) -> None:
    for ln in range(graph.num_lanes):
        a, n = graph.lane_start[ln], graph.lane_npoints[ln]
        step = np.hypot(np.diff(graph.x[a : a + n]), np.diff(graph.y[a : a + n]))
        assert step.max() <= R.LANE_SPACING_M + 1e-3
        np.testing.assert_allclose(step, graph.lane_ds[ln], rtol=0, atol=2e-3)


def test_ring_lane_length_and_curvature() -> None:
    radius, w = 150.0, 3.5
    g = R.ring_road(radius, num_lanes=3, lane_width=w)
    for k in range(3):
        r_lane = radius + (k + 0.5) * w  # right-hand lanes lie outside the reference circle
        assert g.lane_length[k] == pytest.approx(2 * math.pi * r_lane, rel=1e-4)
        a = g.lane_start[k]
        assert g.curvature[a + 10] == pytest.approx(1.0 / r_lane, rel=1e-3)
        assert g.successors[k, 0] == k  # a loop: each lane is its own successor


def test_clothoid_curvature_rate() -> None:
    # spiral from 0 to 1/200 over 80 m, then check the heading at its end: k1 * L / 2
    g = R.build_highway([R.Segment.spiral(80.0, 0.0, 1 / 200.0)], num_lanes=1)
    a, n = g.lane_start[0], g.lane_npoints[0]
    assert float(g.heading[a + n - 1] - g.heading[a]) == pytest.approx(80.0 / 200.0 / 2, rel=1e-3)


def test_curved_highway_turns_and_returns() -> None:
    g = R.curved_highway(1200.0, 300.0, 60.0)
    a, n = g.lane_start[0], g.lane_npoints[0]
    assert abs(float(g.heading[a + n - 1] - g.heading[a])) < 1e-3  # S-bend: net turn zero
    assert float(np.abs(g.heading[a : a + n]).max()) == pytest.approx(math.pi / 4, abs=1e-3)


def test_projection_round_trip() -> None:
    g = R.curved_highway(1200.0, 250.0, 60.0)
    rng = np.random.default_rng(0)
    lane = rng.integers(0, g.num_lanes, 500).astype(np.int32)
    s = (rng.random(500) * (g.lane_length[lane] - 2) + 1).astype(np.float32)
    d = rng.uniform(-1.2, 1.2, 500).astype(np.float32)
    x, y, h = R.lane_pose(g, lane, s, d)
    p = R.project_global(g, x, y, h)
    assert (p.lane == lane).all()
    np.testing.assert_allclose(p.s, s, atol=0.01)
    np.testing.assert_allclose(p.d, d, atol=0.01)
    t = R.project_tracking(g, x, y, h, lane, s + 1.5)
    np.testing.assert_array_equal(t.lane, p.lane)
    np.testing.assert_allclose(t.s, p.s, atol=1e-3)
    np.testing.assert_allclose(t.d, p.d, atol=1e-3)


def test_tracking_crosses_lane_boundary_and_ring_seam() -> None:
    g = R.ring_road(100.0, num_lanes=2)
    # a point on lane 1 near the seam, guessed as lane 0 near its end
    x, y, h = R.lane_pose(
        g, np.array([1], np.int32), np.array([0.5], np.float32), np.array([0.0], np.float32)
    )
    p = R.project_tracking(
        g, x, y, h, np.array([0], np.int32), np.array([g.lane_length[0] - 0.5], np.float32)
    )
    assert p.lane[0] == 1 and p.s[0] == pytest.approx(0.5, abs=0.02)


def test_advance_follows_successors() -> None:
    g = R.ring_road(100.0, num_lanes=1)
    L = float(g.lane_length[0])
    lane, s, ended = R.advance(
        g, np.array([0], np.int32), np.array([L + 3.0], np.float32), np.zeros(1, np.int32)
    )
    assert lane[0] == 0 and s[0] == pytest.approx(3.0, abs=1e-3) and not ended[0]
    g2 = R.straight_highway(100.0, num_lanes=1)
    _, _, ended2 = R.advance(
        g2, np.array([0], np.int32), np.array([101.0], np.float32), np.zeros(1, np.int32)
    )
    assert ended2[0]


def test_lane_index_errors_name_what_exists() -> None:
    g = R.straight_highway(200.0, num_lanes=2)
    with pytest.raises(KeyError, match="lanes on road 0"):
        g.lane_index(0, -3, 10.0)
    with pytest.raises(KeyError, match="outside road 0"):
        g.lane_index(0, -1, 250.0)


def test_builder_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="num_lanes"):
        R.straight_highway(100.0, num_lanes=6)
    with pytest.raises(ValueError, match="closed road"):
        R.build_highway([R.Segment.line(100.0)], closed=True)
