"""The safety shield: path TTC by hand, AEB with hysteresis, invalid actions never applied,
active in every mode; and a closed loop: a human on full throttle at a stopped car."""

from __future__ import annotations

import numpy as np
import pytest

from policy.override.arbiter import Mode
from policy.override.command import HumanCommand, HumanInputs
from policy.override.shield import ShieldParams, ShieldState, path_ttc, shield
from policy.override.supervisor import Supervisor
from sim import world
from sim.dynamics import VehicleParams
from sim.metrics import evaluate
from sim.road import LaneGraph
from sim.scenario import ActorSpec, BehaviorSpec, EgoSpec, RoadSpec, ScenarioSpec, build_road
from sim.state import WorldState

WHEELBASE = VehicleParams().wheelbase
EGO_LEN, CAR_LEN = 4.7, 4.5  # [m] spec defaults


def _world(gap_centre: float, lane: int = -2, speed: float = 20.0) -> tuple[WorldState, LaneGraph]:
    """Ego on lane -2 at 20 m/s; a stopped car ``gap_centre`` m ahead on ``lane``."""
    spec = ScenarioSpec(
        road=RoadSpec(kind="straight", num_lanes=2, length=600.0),
        ego=EgoSpec(lane=-2, s=50.0, speed=speed),
        actors=(
            ActorSpec(lane=lane, s=50.0 + gap_centre, speed=0.0, behavior=BehaviorSpec(v0=0.0)),
        ),
    )
    road = build_road(spec.road)
    return world.reset([spec], road, [np.random.default_rng(0)]), road


def test_path_ttc_by_hand() -> None:
    w, _ = _world(40.0)
    ttc, who = path_ttc(w, WHEELBASE, 0.3, 100.0)
    gap = 40.0 - EGO_LEN / 2 - CAR_LEN / 2
    assert ttc[0] == pytest.approx(gap / 20.0, rel=1e-5) and who[0] == 1
    beside, _ = _world(40.0, lane=-1)  # same distance, next lane: not in the path
    assert np.isinf(path_ttc(beside, WHEELBASE, 0.3, 100.0)[0][0])
    far, _ = _world(150.0)
    assert np.isinf(path_ttc(far, WHEELBASE, 0.3, 100.0)[0][0])


def test_aeb_brakes_below_the_threshold_and_leaves_the_steering() -> None:
    w, _ = _world(30.0)  # TTC (30 - 4.6) / 20 = 1.27 s < 1.5 s
    a = np.array([[0.2, 0.8]], np.float32)
    r = shield(a, w, ShieldState.initial(1), ShieldParams(), WHEELBASE)
    assert r.aeb[0] and not r.invalid[0]
    np.testing.assert_array_equal(r.action, np.float32([[0.2, -1.0]]))
    (ev,) = r.events
    assert ev["kind"] == "aeb" and ev["obstacle"] == 1 and ev["ttc_s"] == pytest.approx(1.27)
    assert ev["action_before"] == [0.2, 0.8] and ev["action_after"] == [0.2, -1.0]


def test_aeb_hysteresis() -> None:
    w, _ = _world(45.0)  # TTC 2.02 s: between aeb_ttc_s 1.5 and release_ttc_s 2.5
    a = np.array([[0.0, 0.5]], np.float32)
    idle = shield(a, w, ShieldState.initial(1), ShieldParams(), WHEELBASE)
    assert not idle.aeb[0]
    braking = ShieldState(np.ones(1, np.bool_), np.zeros(1, np.bool_))
    held = shield(a, w, braking, ShieldParams(), WHEELBASE)
    assert held.aeb[0] and held.action[0, 1] == -1.0 and held.events == []  # no new event


@pytest.mark.parametrize(
    "bad", [[np.nan, 0.0], [0.0, np.inf], [1.5, 0.0], [0.0, -1.01], [np.nan, np.nan]]
)
def test_invalid_actions_are_never_applied(bad: list[float]) -> None:
    w, _ = _world(300.0)
    fb = np.array([[0.07, -0.3]], np.float32)
    r = shield(
        np.array([bad], np.float32),
        w,
        ShieldState.initial(1),
        ShieldParams(),
        WHEELBASE,
        lambda: fb,
    )
    assert r.invalid[0]
    np.testing.assert_array_equal(
        r.action, np.float32([[0.07, -1.0]])
    )  # lane keeper steers, full brake
    assert r.events[0]["kind"] == "invalid_action"
    assert np.isfinite(r.action).all()


def test_round_off_past_one_is_clipped_not_braked() -> None:
    w, _ = _world(300.0)
    r = shield(
        np.array([[1.0 + 1e-7, -1.0]], np.float32),
        w,
        ShieldState.initial(1),
        ShieldParams(),
        WHEELBASE,
    )
    assert not r.invalid[0] and r.action[0, 0] == 1.0


def test_disabled_shield_passes_actions_through() -> None:
    w, _ = _world(30.0)
    a = np.array([[0.2, 0.8]], np.float32)
    r = shield(a, w, ShieldState.initial(1), ShieldParams(enabled=False), WHEELBASE)
    np.testing.assert_array_equal(r.action, a)
    assert not r.aeb[0] and r.events == []


def test_bad_parameters_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"shield\.release_ttc_s"):
        ShieldParams(aeb_ttc_s=2.0, release_ttc_s=1.0)
    with pytest.raises(ValueError, match=r"shield\.aeb_brake"):
        ShieldParams(aeb_brake=0.0)


def test_aeb_saves_a_human_on_full_throttle_at_a_stopped_car() -> None:
    w, road = _world(70.0)
    sup = Supervisor(1, road)
    p = world.SimParams(dt=0.05)
    full_throttle = HumanInputs.from_commands([HumanCommand(throttle=1.0)])
    interventions = 0
    for k in range(300):  # 15 s
        step = sup.step(np.array([[0.0, 0.0]], np.float32), full_throttle, w)
        assert step.mode[0] == Mode.HUMAN  # the shield is active in HUMAN mode too
        interventions += sum(e["type"] == "shield" for e in step.events)
        nxt = world.step(w, step.executed_action, p, road)
        out = evaluate(w, step.executed_action, nxt, road)
        assert not out.collision[0], f"collision at t = {k * 0.05:.2f} s"
        w = nxt
    assert interventions >= 1
    assert float(w.s[0, 1] - w.s[0, 0]) < 10.0  # it did drive up to the car, then held
