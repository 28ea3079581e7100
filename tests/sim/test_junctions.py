"""Junction right of way (sim.junctions): conflict tables on the urban layouts, priority ranks,
the yield rule by hand, dead ends; and the traffic-rule hooks (sim.traffic_rules)."""

from __future__ import annotations

import numpy as np
import pytest

from sim import road as R
from sim.junctions import CRITICAL_GAP_S, JunctionTable, compile_junctions, dead_end_gap, yield_gap
from sim.opendrive import build_lane_graph
from sim.traffic_rules import next_choice
from sim.urban import intersection_model, on_ramp_model, roundabout_model


@pytest.fixture(scope="module")
def cross() -> tuple[R.LaneGraph, JunctionTable]:
    model = intersection_model(num_lanes=1, signalised=False)
    g = build_lane_graph(model)
    return g, compile_junctions(model, g)


def _conn(g: R.LaneGraph, arm_from: int, arm_to: int) -> int:
    lane, _ = g.lane_index(arm_from, 1, 50.0)
    for c in g.successors[lane]:
        if c >= 0 and g.lane_index(arm_to, -1, 50.0)[0] in g.successors[c]:
            return int(c)
    raise AssertionError((arm_from, arm_to))


def test_conflicts_crossings_and_merges_not_diverges(
    cross: tuple[R.LaneGraph, JunctionTable],
) -> None:
    g, t = cross
    assert t.num_connectors == 12
    s02, s13, s20 = _conn(g, 0, 2), _conn(g, 1, 3), _conn(g, 2, 0)
    r01, l03, r30 = _conn(g, 0, 1), _conn(g, 0, 3), _conn(g, 3, 0)

    def conflicts(c: int) -> set[int]:
        return {int(o) for o in t.conflicts[c] if o >= 0}

    assert s13 in conflicts(s02) and s02 in conflicts(s13)  # crossing straights
    assert s20 not in conflicts(s02)  # opposite directions, side by side
    assert r01 not in conflicts(s02) and l03 not in conflicts(s02)  # same approach lane
    assert r30 in conflicts(_conn(g, 2, 0))  # both end on arm 0's outgoing lane: a merge
    # the merge clears only at the connector's end; crossings a car length past the crossing
    k = list(t.conflicts[s20]).index(r30)
    assert t.clear_s[s20, k] > g.lane_length[r30]
    k = list(t.conflicts[s02]).index(s13)
    assert t.clear_s[s02, k] < g.lane_length[s13]
    # straight > right > left
    assert t.rank[s02] > t.rank[r01] > t.rank[l03]


def test_roundabout_entries_yield_to_the_ring() -> None:
    model = roundabout_model()
    g = build_lane_graph(model)
    t = compile_junctions(model, g)
    name = {rd.num_id: rd.name for rd in model.roads}
    for c in np.nonzero(t.connector)[0]:
        if name[int(g.odr_road[c])].startswith("entry"):
            (o,) = [int(x) for x in t.conflicts[c] if x >= 0]
            assert name[int(g.odr_road[o])].startswith("through")
            assert t.rank[o] > t.rank[c]


def _yield(
    g: R.LaneGraph,
    t: JunctionTable,
    lanes: list[int],
    s: list[float],
    v: list[float],
    held: np.ndarray | None = None,
) -> np.ndarray:
    lane = np.array([lanes], np.int32)
    n = lane.shape[1]
    f32 = np.float32
    out: np.ndarray = yield_gap(
        t,
        g,
        lane,
        np.array([s], f32),
        np.array([v], f32),
        np.full((1, n), 4.5, f32),
        np.ones((1, n), np.bool_),
        np.zeros((1, n), np.int32),
        np.ones((1, n), np.bool_),
        np.full((1, n), 2.0, f32),
        held,
    )[0]
    return out


def test_lower_rank_yields_to_a_near_higher_rank_arrival(
    cross: tuple[R.LaneGraph, JunctionTable],
) -> None:
    g, t = cross
    # arm 0's lane 1 takes its first successor; arm 1's too: find two that conflict
    a, _ = g.lane_index(0, 1, 50.0)
    b, _ = g.lane_index(1, 1, 50.0)
    ca, cb = int(g.successors[a, 0]), int(g.successors[b, 0])
    assert cb in t.conflicts[ca]
    lo, hi = (a, b) if t.rank[ca] < t.rank[cb] else (b, a)
    end_lo, end_hi = float(g.lane_length[lo]), float(g.lane_length[hi])
    # both 20 m out at 5 m/s: the lower rank stops at its lane end, the higher goes
    gap = _yield(g, t, [lo, hi], [end_lo - 22.25, end_hi - 22.25], [5.0, 5.0])
    assert gap[0] == pytest.approx(20.0 - 1.0, abs=1e-3) and np.isinf(gap[1])
    # the higher-ranked car far away (arrives after eta + critical gap): the lower goes
    far = 5.0 * (4.0 + CRITICAL_GAP_S) + 10.0
    gap = _yield(g, t, [lo, hi], [end_lo - 22.25, end_hi - far - 2.25], [5.0, 5.0])
    assert np.isinf(gap).all()
    # a higher-ranked car held by a red light claims nothing
    gap = _yield(
        g, t, [lo, hi], [end_lo - 22.25, end_hi - 22.25], [5.0, 5.0], held=np.array([[False, True]])
    )
    assert np.isinf(gap[0])
    # an occupant of the conflicting connector blocks even the higher rank until it clears
    gap = _yield(g, t, [hi, ca if lo == a else cb], [end_hi - 22.25, 2.0], [5.0, 5.0])
    assert np.isfinite(gap[0])
    gap = _yield(
        g,
        t,
        [hi, ca if lo == a else cb],
        [end_hi - 22.25, float(g.lane_length[ca if lo == a else cb])],
        [5.0, 5.0],
    )
    assert np.isinf(gap[0])


def test_a_car_too_close_to_stop_is_committed_and_blocks_others(
    cross: tuple[R.LaneGraph, JunctionTable],
) -> None:
    g, t = cross
    a, _ = g.lane_index(0, 1, 50.0)
    b, _ = g.lane_index(1, 1, 50.0)
    ca, cb = int(g.successors[a, 0]), int(g.successors[b, 0])
    lo, hi = (a, b) if t.rank[ca] < t.rank[cb] else (b, a)
    # the low-ranked car 3 m out at 10 m/s cannot stop (16.7 m/s^2): it goes, the high one waits
    gap = _yield(
        g,
        t,
        [lo, hi],
        [float(g.lane_length[lo]) - 5.25, float(g.lane_length[hi]) - 30.0],
        [10.0, 5.0],
    )
    assert np.isinf(gap[0]) and np.isfinite(gap[1])


def test_dead_end_only_where_a_lane_tapers_out() -> None:
    model = on_ramp_model(num_lanes=2)
    g = build_lane_graph(model)
    t = compile_junctions(model, g)
    (dead,) = np.nonzero(t.dead_end)[0]
    assert g.odr_road[dead] == 1 and g.odr_lane[dead] == -3
    lane = np.array([[dead, 0]], np.int32)
    gap = dead_end_gap(
        t, g, lane, np.array([[10.0, 10.0]], np.float32), np.full((1, 2), 4.5, np.float32)
    )
    assert 0.0 < t.dead_end_s[dead] < g.lane_length[dead]  # where the taper gets too narrow
    assert gap[0, 0] == pytest.approx(float(t.dead_end_s[dead]) - 10.0 - 2.25 - 1.0, abs=1e-3)
    assert np.isinf(gap[0, 1])


def test_route_choices_change_at_every_new_lane_but_the_egos() -> None:
    choice = np.arange(12, dtype=np.int32).reshape(2, 6)
    moved = np.ones((2, 6), np.bool_)
    moved[1, 3] = False
    out = next_choice(choice, moved)
    assert (out[:, 0] == choice[:, 0]).all() and out[1, 3] == choice[1, 3]
    assert (out >= 0).all() and len(set(out[:, 1:].ravel().tolist())) == 10
    # successive draws take both branches of a two-way fork about equally often
    x = np.zeros((1, 2000), np.int32)
    x[0, 1:] = np.arange(1999)
    picks = []
    for _ in range(6):
        x = next_choice(x, np.ones_like(x, np.bool_))
        picks.append(x[0, 1:] % 2)
    share = np.mean(picks)
    assert 0.45 < share < 0.55
    assert np.mean(picks[0] != picks[1]) > 0.4  # a vehicle does not keep one branch
