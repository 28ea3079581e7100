"""Leaderboard 2.0 and 2.1 driving scores against hand-computed cases."""

import pytest

from sim.scores import (
    RouteRecord,
    driving_scores,
    penalty_lb20,
    penalty_lb21,
    route_completion,
)


def test_route_completion_rule() -> None:
    assert route_completion(500.0, 1000.0) == pytest.approx(50.0)
    assert route_completion(985.0, 1000.0) == pytest.approx(98.5)
    assert route_completion(991.0, 1000.0) == 100.0  # within 10 m of the end
    assert route_completion(495.1, 500.0) == 100.0  # >= 99 %
    assert route_completion(-3.0, 100.0) == 0.0


def test_clean_route_scores_its_completion() -> None:
    s = driving_scores(RouteRecord(1000.0, 600.0))
    assert s["driving_score_lb20"] == pytest.approx(60.0)
    assert s["driving_score_lb21"] == pytest.approx(60.0)


def test_lb20_is_multiplicative() -> None:
    r = RouteRecord(
        1000.0, 1000.0, {"collisions_vehicle": 2, "collisions_pedestrian": 1, "red_light": 1}
    )
    assert penalty_lb20(r) == pytest.approx(0.6 * 0.6 * 0.5 * 0.7)  # 0.126
    assert driving_scores(r)["driving_score_lb20"] == pytest.approx(12.6)


def test_lb21_is_additive() -> None:
    r = RouteRecord(
        1000.0, 1000.0, {"collisions_vehicle": 2, "collisions_pedestrian": 1, "red_light": 1}
    )
    assert penalty_lb21(r) == pytest.approx(1 / (1 + 0.7 * 2 + 1.0 + 0.4))  # 1 / 3.8
    assert driving_scores(r)["driving_score_lb21"] == pytest.approx(100 / 3.8)


def test_every_infraction_weight() -> None:
    lb20 = {
        "collisions_pedestrian": 0.50,
        "collisions_vehicle": 0.60,
        "collisions_layout": 0.65,
        "red_light": 0.70,
        "stop_infraction": 0.80,
        "scenario_timeouts": 0.70,
        "yield_emergency_vehicle_infractions": 0.70,
    }
    lb21 = {
        "collisions_pedestrian": 1.0,
        "collisions_vehicle": 0.7,
        "collisions_layout": 0.6,
        "red_light": 0.4,
        "stop_infraction": 0.25,
        "scenario_timeouts": 0.4,
        "yield_emergency_vehicle_infractions": 0.4,
    }
    for name in lb20:
        r = RouteRecord(100.0, 100.0, {name: 1})
        assert penalty_lb20(r) == pytest.approx(lb20[name]), name
        assert penalty_lb21(r) == pytest.approx(1 / (1 + lb21[name])), name


def test_min_speed_per_checkpoint() -> None:
    # two checkpoints at 50 % and 80 % of the traffic's speed
    r = RouteRecord(1000.0, 1000.0, min_speed_pcts=(50.0, 80.0))
    assert penalty_lb20(r) == pytest.approx((1 - 0.3 * 0.5) * (1 - 0.3 * 0.2))  # 0.85 * 0.94
    assert penalty_lb21(r) == pytest.approx(1 / (1 + 0.4 * 0.5 + 0.4 * 0.2))


def test_off_road_share_is_removed() -> None:
    r = RouteRecord(1000.0, 1000.0, {"collisions_layout": 1}, off_road_pct=25.0)
    assert penalty_lb20(r) == pytest.approx(0.65 * 0.75)
    assert penalty_lb21(r) == pytest.approx(0.75 / 1.6)


def test_unknown_infraction_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown infraction"):
        RouteRecord(100.0, 10.0, {"collision": 1})
