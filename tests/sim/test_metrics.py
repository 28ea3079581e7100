"""Safety, comfort and time metrics, episode counting rules and reward presets."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim import world
from sim.episode import EpisodeTracker
from sim.metrics import TERM_NAMES, MetricsConfig, RewardWeights, ego_leader, evaluate, reward
from sim.scenario import (
    ActorSpec,
    BehaviorSpec,
    EgoSpec,
    RoadSpec,
    ScenarioSpec,
    TrafficSpec,
    build_road,
)

P = world.SimParams()
REPO = Path(__file__).resolve().parents[2]


def _episode(
    spec: ScenarioSpec,
    action: np.ndarray,
    steps: int,
    cfg: MetricsConfig | None = None,
    stop_at_end: bool = True,
):
    cfg = cfg or MetricsConfig()
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(0)])
    tr = EpisodeTracker(1, co2_g_per_l=2347.7)
    events = []
    out = None
    for k in range(steps):
        a = action(st, k) if callable(action) else action
        nxt = world.step(st, a, P, g)
        out = evaluate(st, a, nxt, g, cfg)
        events += tr.update(st, nxt, out, np.zeros(1), np.ones(1, bool))
        st = nxt
        if stop_at_end and (out.terminated[0] or out.truncated[0]):
            break
    assert out is not None
    return tr.finish(0, st, out), events, out


def test_leader_gap_and_ttc_hand_computed() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=2),
        ego=EgoSpec(lane=-2, s=50.0, speed=20.0, length=4.0),
        actors=(
            ActorSpec(lane=-2, s=84.0, speed=10.0, length=4.0),
            ActorSpec(lane=-1, s=60.0, speed=0.0),
        ),
    )
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(0)])
    gap, closing, leader = ego_leader(st, g)
    assert leader[0] == 1 and gap[0] == pytest.approx(30.0) and closing[0] == pytest.approx(10.0)
    out = evaluate(st, np.zeros((1, 2)), st, g)
    assert out.ttc[0] == pytest.approx(3.0) and out.headway[0] == pytest.approx(1.5)


def test_collision_with_the_same_actor_counts_once() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1),
        ego=EgoSpec(lane=-1, s=10.0, speed=8.0),
        actors=(ActorSpec(lane=-1, s=30.0, speed=0.0, behavior=BehaviorSpec(v0=0.0)),),
    )
    cfg = MetricsConfig(terminate_on_collision=False)
    row, events, _ = _episode(spec, np.array([[0.0, 0.3]], np.float32), 60, cfg)
    hits = [e for e in events if e["type"] == "collision"]
    assert len(hits) == 1 and hits[0]["actors"] == [1] and hits[0]["collision"] == "vehicle"
    assert row["collisions_vehicle"] == 1
    assert row["driving_score_lb20"] == pytest.approx(row["route_completion_pct"] * 0.6, abs=1e-3)


def test_near_miss_hard_brake_and_jerk() -> None:
    # Coast towards a stopped car until TTC < 1.5 s, then brake hard and stop short of it:
    # one hard-braking event, one near miss (TTC recovers to infinity once stopped).
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1),
        ego=EgoSpec(lane=-1, s=10.0, speed=20.0),
        actors=(ActorSpec(lane=-1, s=60.0, speed=0.0, behavior=BehaviorSpec(v0=0.0)),),
        time_limit_s=8.0,
    )

    def act(st, k):
        return np.array([[0.0, 0.0 if k < 8 else -1.0]], np.float32)

    row, events, _ = _episode(spec, act, 80)
    assert row["collision"] == 0 and row["hard_brakes"] == 1
    assert row["min_ttc_s"] < 1.5 and row["near_misses"] == 1
    assert row["max_abs_jerk"] > 50.0  # 0 -> -8 m/s^2 in one 0.1 s step
    kinds = [e["type"] for e in events]
    assert kinds.count("hard_brake") == 1 and kinds.count("near_miss") == 1


def test_no_near_miss_when_it_ends_in_a_collision() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1),
        ego=EgoSpec(lane=-1, s=10.0, speed=20.0),
        actors=(ActorSpec(lane=-1, s=60.0, speed=0.0, behavior=BehaviorSpec(v0=0.0)),),
    )
    row, _events, _ = _episode(spec, np.array([[0.0, 0.0]], np.float32), 80)
    assert row["collision"] == 1 and row["near_misses"] == 0
    assert row["end_reason"] == "collision"


def test_min_speed_infraction_in_fast_traffic() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=3, length=2000.0),
        ego=EgoSpec(lane=-3, s=20.0, speed=5.0, route_length=300.0),
        traffic=TrafficSpec(count=30, speed_frac=(0.8, 0.9)),
        time_limit_s=80.0,
    )

    def crawl(st, k):
        return np.array([[0.0, 0.05 if st.speed[0, 0] < 5.0 else -0.05]], np.float32)

    row, events, _ = _episode(spec, crawl, 900)
    assert row["min_speed_infractions"] >= 1
    pct = [e["percentage"] for e in events if e["type"] == "min_speed"]
    assert all(0 < p < 100 for p in pct)
    assert row["driving_score_lb21"] < row["route_completion_pct"]


def test_blocked_and_route_deviation_end_the_route() -> None:
    spec = ScenarioSpec(ego=EgoSpec(speed=0.0), time_limit_s=400.0)
    row, _, out = _episode(
        spec, np.array([[0.0, -1.0]], np.float32), 2000, MetricsConfig(blocked_s=20.0)
    )
    assert out.blocked[0] and out.terminated[0] and row["end_reason"] == "blocked"
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(0)])
    far = replace(st, off_route_m=np.array([31.0], np.float32))
    assert evaluate(st, np.zeros((1, 2)), far, g).route_deviation[0]


def test_route_completion_and_travel_time() -> None:
    spec = ScenarioSpec(
        road=RoadSpec(num_lanes=1), ego=EgoSpec(lane=-1, speed=20.0, route_length=200.0)
    )
    row, _, _out = _episode(spec, np.array([[0.0, 0.2]], np.float32), 200)
    assert row["end_reason"] == "completed" and row["route_completion_pct"] == 100.0
    assert row["driving_score_lb20"] == 100.0 and row["driving_score_lb21"] == 100.0
    assert 8.0 < row["travel_time_s"] < 10.0  # 190 m from 20 m/s, gently accelerating
    assert row["fuel_l_per_100km"] > 0 and row["co2_g_per_km"] > 0


def test_road_edge_contact_is_a_layout_collision() -> None:
    spec = ScenarioSpec(road=RoadSpec(num_lanes=1), ego=EgoSpec(lane=-1, speed=10.0))
    row, events, out = _episode(spec, np.array([[0.3, 0.0]], np.float32), 100)
    assert out.off_road[0] and row["end_reason"] == "off_road"
    assert row["collisions_layout"] == 1
    assert [e["type"] for e in events].count("off_road") == 1


def test_presets_cover_every_term_and_weight_sums() -> None:
    files = sorted((REPO / "configs" / "reward").glob("*.yaml"))
    assert {f.stem for f in files} >= {"balanced", "eco", "fast", "safe", "carl"}
    for f in files:
        w = RewardWeights(**yaml.safe_load(f.read_text()))
        assert set(w.as_dict()) == set(TERM_NAMES), f
    terms = {n: np.array([1.0, 2.0], np.float32) for n in TERM_NAMES}
    w = RewardWeights()
    expected = sum(getattr(w, n) for n in TERM_NAMES)
    np.testing.assert_allclose(reward(terms, w), [expected, 2 * expected], rtol=1e-5)
