"""IDM, MOBIL and the sorted neighbour search."""

import numpy as np
import pytest

from sim import road as R
from sim.traffic import FREE_GAP, find_follower, find_leader, idm_accel, sort_entries


def f(*v: float) -> np.ndarray:
    return np.array(v, np.float32)


def test_idm_free_road_acceleration_vanishes_at_desired_speed() -> None:
    a = idm_accel(
        f(0.0, 15.0, 30.0),
        f(30.0, 30.0, 30.0),
        f(FREE_GAP) * np.ones(3, np.float32),
        f(0, 0, 0),
        f(1.5, 1.5, 1.5),
        f(2, 2, 2),
        f(1.5, 1.5, 1.5),
        f(2, 2, 2),
    )
    assert a[0] == pytest.approx(1.5, abs=1e-3)
    assert a[1] == pytest.approx(1.5 * (1 - 0.5**4), abs=1e-3)
    assert a[2] == pytest.approx(0.0, abs=1e-3)


def test_idm_equilibrium_gap() -> None:
    v, v0, T, s0 = 20.0, 30.0, 1.5, 2.0
    s_eq = (s0 + v * T) / np.sqrt(1 - (v / v0) ** 4)
    a = idm_accel(f(v), f(v0), f(s_eq), f(0.0), f(T), f(s0), f(1.5), f(2.0))
    assert a[0] == pytest.approx(0.0, abs=1e-4)


def test_idm_stop_command_never_accelerates_from_rest() -> None:
    a = idm_accel(
        f(0.0, 5.0),
        f(0.0, 0.0),
        f(FREE_GAP, FREE_GAP),
        f(0, 0),
        f(1.5, 1.5),
        f(2, 2),
        f(1.5, 1.5),
        f(2, 2),
    )
    assert -1e-3 < a[0] <= 0.0 and a[1] < 0


def test_sorted_search_leaders_followers_and_ring_wrap() -> None:
    g = R.ring_road(100.0, num_lanes=2)
    L = float(g.lane_length[0])
    # env 0: lane 0 actors at s = 10, 50, L - 5 ; env 1: one actor on lane 1 (alone)
    lane = np.array([[0, 0, 0], [1, 0, 0]], np.int32)
    s = np.array([[10, 50, L - 5], [20, 0, 0]], np.float32)
    valid = np.array([[True, True, True], [True, False, False]])
    none = np.full_like(lane, -1)
    ent, _ = sort_entries(g, lane, s, valid, none, s)
    flat = np.arange(6, dtype=np.int64)
    env = flat // 3
    lead, dist = find_leader(
        ent, g, env, lane.reshape(-1), s.reshape(-1), flat, np.zeros(6, np.int32)
    )
    assert lead[:3].tolist() == [1, 2, 0]  # the last one wraps around the ring to the first
    np.testing.assert_allclose(dist[:3], [40.0, L - 55.0, 15.0], atol=1e-3)
    assert lead[3] == -1 and dist[3] == FREE_GAP  # alone: no leader, not itself
    fol, fd = find_follower(ent, g, env, lane.reshape(-1), s.reshape(-1), flat)
    assert fol[:3].tolist() == [2, 0, 1]
    np.testing.assert_allclose(fd[:3], [15.0, 40.0, L - 55.0], atol=1e-3)


def test_secondary_entries_make_lane_changers_visible() -> None:
    g = R.straight_highway(500.0, num_lanes=2)
    # actor 1 on lane 0 is changing into lane 1 ahead of actor 0 on lane 1
    lane = np.array([[1, 0]], np.int32)
    s = np.array([[100, 130]], np.float32)
    lane2 = np.array([[-1, 1]], np.int32)
    ent, _ = sort_entries(g, lane, s, np.ones((1, 2), bool), lane2, s)
    lead, dist = find_leader(
        ent,
        g,
        np.zeros(1, np.int64),
        lane[0, :1],
        s[0, :1],
        np.zeros(1, np.int64),
        np.zeros(1, np.int32),
    )
    assert lead[0] == 1 and dist[0] == pytest.approx(30.0)
