"""The arbiter: takeover in the tick that sees the input, axis by axis; explicit hand-back only;
device loss, emergency stop; batched equals one environment at a time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.override.arbiter import (
    ArbiterParams,
    Mode,
    OverrideState,
    arbitrate,
    initial_state,
)
from policy.override.command import HumanCommand, HumanInputs

POLICY = np.array([[0.1, 0.4]], np.float32)
FALLBACK = np.array([[0.05, -0.3]], np.float32)
DT = 0.05  # [s] tick


def _fb() -> np.ndarray:
    return FALLBACK.copy()


def _run(
    cmds: list[HumanCommand], params: ArbiterParams | None = None
) -> tuple[list[np.ndarray], list[int], list[list[dict]]]:
    """Arbitrate one environment over a command sequence; executed, modes, events per tick."""
    p = params or ArbiterParams()
    state = initial_state(1, p)
    executed, modes, events = [], [], []
    for c in cmds:
        a, state, ev = arbitrate(POLICY, HumanInputs.from_commands([c]), state, p, _fb)
        executed.append(a[0])
        modes.append(int(state.mode[0]))
        events.append(ev)
    return executed, modes, events


def _at(k: int, **kw: object) -> HumanCommand:
    """A command at tick k (device time k * DT)."""
    return HumanCommand(t=k * DT, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kw", "action"),
    [
        ("steer", {"steer": 0.2}, (0.2, 0.0)),
        ("throttle", {"throttle": 0.3}, (0.0, 0.3)),
        ("brake", {"brake": 0.4}, (0.0, -0.4)),
        ("takeover", {"takeover": True}, (0.0, 0.0)),
    ],
)
def test_takeover_executes_the_human_command_in_the_same_tick(
    name: str, kw: dict[str, object], action: tuple[float, float]
) -> None:
    k = 5
    cmds = [_at(i) for i in range(k)] + [_at(k, **kw), _at(k + 1, **kw)]
    executed, modes, events = _run(cmds)
    for i in range(k):  # the policy drives until the input appears ...
        assert modes[i] == Mode.AUTONOMOUS
        np.testing.assert_array_equal(executed[i], POLICY[0])
    # ... and the human's command is what the very tick that reads it executes: 0 added ticks.
    assert modes[k] == Mode.HUMAN
    np.testing.assert_array_equal(executed[k], np.array(action, np.float32))
    (start,) = [e for e in events[k] if e["type"] == "takeover_start"]
    assert start["trigger"] == [name]


@pytest.mark.parametrize(
    "kw",
    [
        {"steer": -0.3, "throttle": 0.3},  # [steer, accel] sums to 0
        {"steer": 0.5, "brake": 0.5},  # action (0.5, -0.5): sums to 0
        {"steer": -0.2, "brake": 0.1, "throttle": 0.1},
    ],
)
def test_opposite_inputs_never_cancel(kw: dict[str, object]) -> None:
    _, modes, events = _run([_at(0, **kw)])
    assert modes[0] == Mode.HUMAN
    (start,) = [e for e in events[0] if e["type"] == "takeover_start"]
    assert len(start["trigger"]) == len(kw)


def test_inputs_inside_the_deadzone_and_a_dead_device_do_not_take_over() -> None:
    # Inside a deadzone the device reports exactly 0; a dead device's values are not trusted.
    cmds = [_at(0), _at(1, hand_back=True), _at(2, steer=0.9, throttle=1.0, alive=False)]
    _, modes, _ = _run(cmds)
    assert modes == [Mode.AUTONOMOUS] * 3


def test_brake_dominates_throttle() -> None:
    executed, _, _ = _run([_at(0, throttle=0.8, brake=0.2)])
    np.testing.assert_allclose(executed[0], [0.0, -0.2])


def test_hand_back_needs_a_press_with_no_input_for_the_quiet_time() -> None:
    p = ArbiterParams(hand_back_quiet_s=1.0)
    # Take over with the brake at tick 0, release at tick 10 (t = 0.5 s).
    cmds = [_at(i, brake=0.5) for i in range(10)]
    cmds += [_at(10, brake=0.5, hand_back=True)]  # press while braking: refused
    cmds += [_at(11)]
    cmds += [_at(12, steer=0.1, hand_back=True)]  # press while steering: refused
    cmds += [_at(i) for i in range(13, 20)]
    cmds += [_at(20, hand_back=True)]  # 0.4 s after the last input (t 0.6): refused
    cmds += [_at(i, hand_back=True) for i in range(21, 40)]  # held, quiet time passes: no
    cmds += [_at(40)]
    cmds += [_at(41, hand_back=True)]  # a fresh press 1.45 s after the last input: accepted
    _, modes, events = _run(cmds, p)
    refusals = [e for ev in events for e in ev if e["type"] == "hand_back_refused"]
    assert [r["reason"].split(":")[0] for r in refusals] == [
        "input active",
        "input active",
        "inputs quiet for 0.40 s < 1 s",
    ]
    assert "brake" in refusals[0]["reason"] and "steer" in refusals[1]["reason"]
    assert all(m == Mode.HUMAN for m in modes[:41])  # holding the button never hands back
    assert modes[41] == Mode.AUTONOMOUS
    assert [e["type"] for e in events[41]] == ["hand_back"]


def test_never_hands_back_automatically() -> None:
    cmds = [_at(0, steer=0.3)] + [_at(i) for i in range(1, 400)]  # 20 s of hands off
    _, modes, events = _run(cmds)
    assert all(m == Mode.HUMAN for m in modes)
    assert not [e for ev in events[1:] for e in ev]


def test_no_hand_back_without_a_policy() -> None:
    p = ArbiterParams(start_mode="human", allow_hand_back=False)
    _, modes, events = _run([_at(0), _at(40, hand_back=True)], p)
    assert modes == [Mode.HUMAN, Mode.HUMAN]
    assert events[1][0]["reason"] == "no policy to hand back to"


def test_device_loss_while_the_human_drives_stops_the_car() -> None:
    cmds = [_at(0, throttle=0.5), _at(1, alive=False), _at(2, alive=False)]
    executed, modes, events = _run(cmds)
    assert modes == [Mode.HUMAN, Mode.FAILSAFE, Mode.FAILSAFE]
    np.testing.assert_array_equal(executed[1], FALLBACK[0])
    types = [e["type"] for e in events[1]]
    assert types == ["device_lost", "failsafe"]
    assert events[1][0]["cause"] == "disconnected"
    # Back and touched: a new, explicit takeover; the failsafe never hands itself back.
    _, modes2, events2 = _run([*cmds, _at(3), _at(4, brake=0.2)])
    assert modes2[3:] == [Mode.FAILSAFE, Mode.HUMAN]
    assert [e["type"] for e in events2[3]] == ["device_restored"]
    assert events2[4][0]["type"] == "takeover_start"


def test_a_stale_device_stops_the_car_but_an_idle_one_raises_no_alert() -> None:
    stale = {"alive": False, "stale": True}
    _, modes, events = _run([_at(0, **stale), _at(1, steer=0.1), _at(2, **stale)])
    assert modes == [Mode.AUTONOMOUS, Mode.HUMAN, Mode.FAILSAFE]
    assert events[0] == []  # the policy drives, an untouched pad goes quiet: nothing to say
    assert [e["type"] for e in events[2]] == ["device_lost", "failsafe"]
    assert events[2][1]["cause"] == "stale"


def test_a_disconnect_while_autonomous_is_an_alert_and_the_policy_keeps_driving() -> None:
    executed, modes, events = _run([_at(0), _at(1, alive=False), _at(2, alive=False)])
    assert modes == [Mode.AUTONOMOUS] * 3
    np.testing.assert_array_equal(executed[2], POLICY[0])
    assert [e["type"] for e in events[1]] == ["device_lost"] and events[2] == []


def test_emergency_stop_latches_until_the_takeover_button() -> None:
    cmds = [_at(0), _at(1, emergency_stop=True), _at(2), _at(3, steer=0.2), _at(4, takeover=True)]
    executed, modes, events = _run(cmds)
    assert modes == [Mode.AUTONOMOUS, Mode.ESTOP, Mode.ESTOP, Mode.ESTOP, Mode.HUMAN]
    np.testing.assert_array_equal(executed[1], [FALLBACK[0, 0], -1.0])  # lane keeper steers
    np.testing.assert_array_equal(executed[3], np.array([0.2, -1.0], np.float32))  # human steers
    assert [e["type"] for e in events[1]] == ["emergency_stop", "takeover_start"]
    assert [e["type"] for e in events[4]] == ["estop_released"]


def test_arbitrate_is_pure() -> None:
    p = ArbiterParams()
    s0 = initial_state(1, p)
    before = replace(s0, mode=s0.mode.copy(), last_active_t=s0.last_active_t.copy())
    h = HumanInputs.from_commands([_at(3, steer=0.4)])
    a1, s1, e1 = arbitrate(POLICY, h, s0, p, _fb)
    a2, s2, e2 = arbitrate(POLICY, h, s0, p, _fb)
    np.testing.assert_array_equal(s0.mode, before.mode)
    np.testing.assert_array_equal(s0.last_active_t, before.last_active_t)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(s1.mode, s2.mode)
    assert e1 == e2


def test_fallback_is_only_computed_when_needed() -> None:
    def boom() -> np.ndarray:
        raise AssertionError("fallback evaluated in AUTONOMOUS/HUMAN")

    p = ArbiterParams()
    s = initial_state(1, p)
    for c in (_at(0), _at(1, steer=0.3)):
        _, s, _ = arbitrate(POLICY, HumanInputs.from_commands([c]), s, p, boom)


def test_environments_without_a_human_never_take_over() -> None:
    p = ArbiterParams()
    h = HumanInputs.from_commands([None, _at(0, brake=1.0)])
    a, s, _ = arbitrate(np.repeat(POLICY, 2, 0), h, initial_state(2, p), p, _fb)
    assert list(s.mode) == [Mode.AUTONOMOUS, Mode.HUMAN]
    np.testing.assert_array_equal(a[0], POLICY[0])


_cmd = st.builds(
    HumanCommand,
    steer=st.sampled_from([0.0, 0.0, 0.3, -0.7]),
    throttle=st.sampled_from([0.0, 0.0, 0.5]),
    brake=st.sampled_from([0.0, 0.0, 0.0, 1.0]),
    takeover=st.booleans(),
    hand_back=st.booleans(),
    emergency_stop=st.sampled_from([False, False, False, True]),
    alive=st.sampled_from([True, True, True, False]),
    stale=st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_cmd, min_size=3, max_size=3), min_size=1, max_size=25))
def test_batched_equals_one_environment_at_a_time(ticks: list[list[HumanCommand]]) -> None:
    p = ArbiterParams(hand_back_quiet_s=0.1)
    B = 3
    rng = np.random.default_rng(0)
    policy = rng.uniform(-1, 1, (len(ticks), B, 2)).astype(np.float32)
    fb = rng.uniform(-1, 1, (B, 2)).astype(np.float32)
    batch = initial_state(B, p)
    singles = [initial_state(1, p) for _ in range(B)]
    for k, row in enumerate(ticks):
        cmds = [replace(c, t=k * DT) for c in row]
        a, batch, ev = arbitrate(policy[k], HumanInputs.from_commands(cmds), batch, p, lambda: fb)
        for b in range(B):
            ab, singles[b], evb = arbitrate(
                policy[k, b : b + 1],
                HumanInputs.from_commands([cmds[b]]),
                singles[b],
                p,
                lambda b=b: fb[b : b + 1],
            )
            np.testing.assert_array_equal(a[b], ab[0])
            assert batch.mode[b] == singles[b].mode[0]
            mine = [{**e, "env": 0} for e in ev if e["env"] == b]
            assert mine == evb
    assert isinstance(batch, OverrideState)
