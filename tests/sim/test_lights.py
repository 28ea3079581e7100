"""Traffic lights (sim.lights): fixed-time states by hand, signals mapped to stop lines on the
urban intersection and on Town01, stop decisions and the red-light crossing test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim import road as R
from sim.lights import (
    LightState,
    LightTable,
    LightTiming,
    compile_lights,
    light_states,
    must_stop,
    next_stop_line,
    ran_red_light,
    state_of,
)
from sim.opendrive import build_lane_graph, read_opendrive
from sim.urban import intersection_model

ROOT = Path(__file__).resolve().parents[2]
TOWN01 = ROOT / ".." / "shared" / "data" / "maps" / "carla" / "Town01.xodr"
G, Y, RED = LightState.GREEN, LightState.YELLOW, LightState.RED


@pytest.fixture(scope="module")
def crossing() -> tuple[R.LaneGraph, LightTable]:
    model = intersection_model(num_lanes=1)
    g = build_lane_graph(model)
    return g, compile_lights(model, g, LightTiming(20.0, 3.0, 1.0))


def test_intersection_signals_guard_the_incoming_lanes_in_two_phases(
    crossing: tuple[R.LaneGraph, LightTable],
) -> None:
    g, t = crossing
    assert t.num_lights == 4
    assert set(g.odr_lane[t.lane].tolist()) == {1}  # the lanes coming into the junction
    np.testing.assert_allclose(t.stop_s, g.lane_length[t.lane])  # stop line at the lane end
    road = g.odr_road[t.lane]
    np.testing.assert_array_equal(t.start_s, np.where(road % 2 == 0, 0.0, 24.0))
    np.testing.assert_array_equal(t.cycle_s, 48.0)


def test_states_follow_the_fixed_time_plan_by_hand(
    crossing: tuple[R.LaneGraph, LightTable],
) -> None:
    g, t = crossing
    times = np.array([0.0, 19.9, 21.0, 23.5, 24.0, 45.0, 47.5, 48.0], np.float32)
    st = light_states(t, times)
    arm0 = int(np.nonzero(g.odr_road[t.lane] == 0)[0][0])
    arm1 = int(np.nonzero(g.odr_road[t.lane] == 1)[0][0])
    assert st[:, arm0].tolist() == [G, G, Y, RED, RED, RED, RED, G]
    assert st[:, arm1].tolist() == [RED, RED, RED, RED, G, Y, RED, RED]
    # never green on both phases at once; per-env offsets shift the plan
    assert not np.any((st[:, arm0] == G) & (st[:, arm1] == G))
    shifted = light_states(t, np.zeros(2, np.float32), np.array([0.0, 24.0], np.float32))
    assert shifted[1, arm1] == G and shifted[0, arm1] == RED


def test_next_stop_line_on_the_lane_and_one_lane_ahead(
    crossing: tuple[R.LaneGraph, LightTable],
) -> None:
    g, t = crossing
    lane, _ = g.lane_index(0, 1, 50.0)  # arm 0, coming in; lane s = 50 at the reference s 50
    ln = np.array([[lane, lane]], np.int32)
    k, d = next_stop_line(
        t, g, ln, np.array([[30.0, 99.9]], np.float32), np.zeros((1, 2), np.int32)
    )
    assert (k == t.lane_light[lane]).all()
    np.testing.assert_allclose(
        d[0], [g.lane_length[lane] - 30.0, g.lane_length[lane] - 99.9], atol=1e-4
    )
    conn = g.successors[lane, 0]
    k2, d2 = next_stop_line(
        t, g, np.array([[conn]], np.int32), np.zeros((1, 1), np.float32), np.zeros((1, 1), np.int32)
    )
    assert k2[0, 0] == -1 and np.isinf(d2[0, 0])  # past the stop line: nothing ahead


def test_state_of_gathers_per_env() -> None:
    states = np.array([[G, RED], [Y, G]], np.int8)
    light = np.array([[1, 0, -1], [0, 1, -1]], np.int32)
    assert state_of(states, light).tolist() == [[RED, G, G], [Y, G, G]]


def test_stop_decisions_red_if_possible_yellow_if_comfortable() -> None:
    state = np.array([RED, RED, Y, Y, G, RED], np.int8)
    gap = np.array([30.0, 5.0, 30.0, 10.0, 30.0, -2.0], np.float32)
    v = np.full(6, 14.0, np.float32)  # 50 km/h: 9.8 m/s^2 to stop in 10 m, 3.3 in 30 m
    out = must_stop(state, gap, v, np.full(6, 2.0, np.float32))
    assert out.tolist() == [True, False, False, False, False, False]
    slow = must_stop(state, gap, np.full(6, 8.0, np.float32), np.full(6, 2.0, np.float32))
    assert slow.tolist() == [True, False, True, False, False, False]


def test_red_light_crossing_by_hand(crossing: tuple[R.LaneGraph, LightTable]) -> None:
    g, t = crossing
    lane, _ = g.lane_index(0, 1, 50.0)
    end = float(g.lane_length[lane])
    conn = int(g.successors[lane, 0])
    k = int(t.lane_light[lane])
    red = np.full((4, t.num_lights), G, np.int8)
    red[:, k] = RED
    prev_lane = np.full(4, lane, np.int32)
    prev_s = np.array([end - 0.5, end - 0.5, end - 10.0, end + 0.0], np.float32)
    new_lane = np.array([conn, lane, lane, conn], np.int32)
    new_s = np.array([0.6, end, end - 9.0, 1.0], np.float32)
    out = ran_red_light(t, g, red, prev_lane, prev_s, new_lane, new_s)
    # onto the connector; reaching the line; still before it; already past it the step before
    assert out.tolist() == [True, True, False, False]
    green = np.full((4, t.num_lights), G, np.int8)
    assert not ran_red_light(t, g, green, prev_lane, prev_s, new_lane, new_s).any()


@pytest.mark.skipif(not TOWN01.is_file(), reason="map data absent: ../shared/data/maps/carla")
def test_town01_signals_become_lights_in_junction_phases() -> None:
    model = read_opendrive(TOWN01)
    g = build_lane_graph(model)
    t = compile_lights(model, g)
    dynamic = [s for s in model.signals if s.dynamic]
    assert len(dynamic) == 36 and t.num_lights >= 30
    assert (g.lane_type[t.lane] == R.LaneType.DRIVING).all()
    # every guarded lane leads into a junction
    succ = g.successors[t.lane, 0]
    junction_roads = {rd.num_id for rd in model.roads if rd.junction != "-1"}
    assert all(int(g.odr_road[s]) in junction_roads for s in succ if s >= 0)
    # at every moment some light is red; green except in the yellow and all-red clearances
    st = light_states(t, np.arange(0.0, 100.0, 1.0, dtype=np.float32))
    assert (st == RED).any(1).all() and (st == G).any(1).mean() > 0.8
