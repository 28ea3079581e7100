"""Fail-safe: a device lost while the human drives stops the car in its lane, without a
collision, in every bundled scenario (configs/scenario/*.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from policy.override.arbiter import Mode
from policy.override.command import HumanCommand, HumanInputs
from policy.override.failsafe import FailsafeParams
from policy.override.supervisor import Supervisor
from policy.rule_based import RuleBasedDriver
from sim.env import DriveVectorEnv
from sim.scenario import spec_from_dict

SCENARIOS = sorted((Path(__file__).resolve().parents[3] / "configs" / "scenario").glob("*.yaml"))
DT = 0.05  # [s] the drive loop's tick
STOPPED_MPS = 0.05  # [m/s]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_disconnect_while_the_human_drives_stops_in_lane_without_collision(path: Path) -> None:
    spec = spec_from_dict(yaml.safe_load(path.read_text()), source=str(path))
    env = DriveVectorEnv(1, spec, dt=DT)
    env.reset(seed=3)
    policy = RuleBasedDriver()
    sup = Supervisor(1, env.road, vehicle=env.params.vehicle)
    events: list[dict] = []
    stopped_for = 0.0
    for k in range(int(40.0 / DT)):
        t = k * DT
        if t < 2.0:  # the policy drives
            cmd = HumanCommand(t=t)
        elif t < 4.0:  # the human takes over: a little throttle, a nudge of the wheel
            cmd = HumanCommand(t=t, throttle=0.2, steer=0.004 if t < 3.0 else 0.0)
        else:  # the pad is unplugged
            cmd = HumanCommand(t=t, alive=False)
        w = env.state
        assert w is not None
        step = sup.step(policy.act(w, env.road), HumanInputs.from_commands([cmd]), w)
        events += step.events
        st, out, _, _, _ = env.advance(step.executed_action)
        assert not out.collision[0], f"{spec.name}: collision at t = {t:.2f} s"
        assert not out.off_road[0], f"{spec.name}: off road at t = {t:.2f} s"
        assert not out.terminated[0], f"{spec.name}: episode ended at t = {t:.2f} s"
        if t >= 4.0:
            assert step.mode[0] == Mode.FAILSAFE
        stopped_for = stopped_for + DT if st.speed[0, 0] < STOPPED_MPS else 0.0
        if stopped_for >= 3.0:  # stopped, and stays stopped
            break
    assert stopped_for >= 3.0, f"{spec.name}: not stopped after {t:.1f} s"
    assert abs(float(st.d[0, 0])) < 0.5, "stopped off the lane centre"
    types = [e["type"] for e in events]
    assert types[:3] == ["takeover_start", "device_lost", "failsafe"]
    # Comfortable, not an emergency stop (the leader-following part may ask for more).
    assert t - 4.0 >= 0.8 * spec.ego.speed / (2 * FailsafeParams().decel_mps2)


def test_controlled_stop_brakes_at_the_configured_deceleration() -> None:
    spec = spec_from_dict(yaml.safe_load((SCENARIOS[0]).read_text()))
    env = DriveVectorEnv(1, spec.__class__(road=spec.road, ego=spec.ego), dt=DT)
    env.reset(seed=0)
    sup = Supervisor(1, env.road, failsafe=FailsafeParams(decel_mps2=2.0))
    dead = HumanInputs.from_commands([HumanCommand(alive=False)])
    sup.step(
        np.zeros((1, 2), np.float32),
        HumanInputs.from_commands([HumanCommand(brake=0.1)]),
        env.state,
    )  # type: ignore[arg-type]
    accels = []
    for _ in range(20):
        w = env.state
        assert w is not None
        step = sup.step(np.zeros((1, 2), np.float32), dead, w)
        st, *_ = env.advance(step.executed_action)
        accels.append(float(st.accel[0, 0]))
    np.testing.assert_allclose(accels[5:], -2.0, atol=0.05)


def test_bad_deceleration_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"failsafe\.decel_mps2"):
        FailsafeParams(decel_mps2=0.0)
