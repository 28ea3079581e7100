"""Kinematic bicycle model: hand-computed circles, limits, NaN safety, batching."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.dynamics import VehicleParams, bicycle_step, longitudinal_accel, sanitize_action

P = VehicleParams()


def _drive(
    steer_cmd: float,
    accel_cmd: float,
    steps: int,
    v0: float,
    dt: float = 0.05,
    p: VehicleParams = P,
) -> list[np.ndarray]:
    x = np.zeros(1, np.float32)
    y = np.zeros(1, np.float32)
    yaw = np.zeros(1, np.float32)
    v = np.full(1, v0, np.float32)
    d = np.full(1, steer_cmd * p.max_steer, np.float32)  # already at the target angle
    a = np.array([[steer_cmd, accel_cmd]], np.float32)
    traj = []
    for _ in range(steps):
        x, y, yaw, v, d, _acc = bicycle_step(x, y, yaw, v, d, a, dt, p)
        traj.append(np.array([x[0], y[0], yaw[0], v[0]]))
    return traj


def test_constant_steer_drives_a_circle_of_radius_L_over_tan_delta() -> None:
    p = VehicleParams(rolling_coef=0.0, drag_area=0.0)
    delta = 0.5 * p.max_steer
    traj = np.array(_drive(0.5, 0.0, 400, 5.0, p=p))
    # the rear axle (centre - L/2 heading) stays on a circle of radius L / tan(delta)
    rx = traj[:, 0] - 0.5 * p.wheelbase * np.cos(traj[:, 2])
    ry = traj[:, 1] - 0.5 * p.wheelbase * np.sin(traj[:, 2])
    radius = p.wheelbase / math.tan(delta)
    # circle centre: start rear axle (-L/2, 0) shifted left by R
    cx, cy = -0.5 * p.wheelbase, radius
    np.testing.assert_allclose(np.hypot(rx - cx, ry - cy), radius, rtol=1e-4)


def test_steering_rate_limit() -> None:
    x = y = yaw = np.zeros(1, np.float32)
    v = np.full(1, 10.0, np.float32)
    d = np.zeros(1, np.float32)
    _, _, _, _, d1, _ = bicycle_step(x, y, yaw, v, d, np.array([[1.0, 0.0]], np.float32), 0.1, P)
    assert d1[0] == pytest.approx(P.max_steer_rate * 0.1)


def test_braking_stops_without_reversing() -> None:
    traj = _drive(0.0, -1.0, 100, 10.0, dt=0.1)
    speeds = np.array([t[3] for t in traj])
    assert speeds.min() == 0.0 and (np.diff(speeds) <= 0).all()
    xs = np.array([t[0] for t in traj])
    assert (np.diff(xs) >= -1e-6).all()
    # stopping distance from 10 m/s at ~8 m/s^2 (+ resistance): v^2 / (2 b) ~ 6.25 m
    assert xs[-1] == pytest.approx(10.0**2 / (2 * P.max_decel), rel=0.05)


def test_power_limit_reduces_acceleration_at_speed() -> None:
    low = longitudinal_accel(np.array([1.0], np.float32), np.array([3.0], np.float32), P)
    high = longitudinal_accel(np.array([1.0], np.float32), np.array([35.0], np.float32), P)
    assert low[0] == pytest.approx(
        P.max_accel - 9.81 * P.rolling_coef - 0.5 * 1.2 * P.drag_area * 9.0 / P.mass, rel=1e-4
    )
    assert high[0] < P.max_power / (P.mass * 35.0)


def test_nan_action_brakes() -> None:
    a, bad = sanitize_action(np.array([[np.nan, 1.0], [0.2, np.inf], [0.3, 0.5], [3.0, -4.0]]))
    assert bad.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(a[:2], [[0.0, -1.0], [0.0, -1.0]])
    np.testing.assert_array_equal(a[3], [1.0, -1.0])


finite = st.floats(-50, 50, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            finite,
            finite,
            st.floats(-3.0, 3.0, width=32),
            st.floats(0, 40, width=32),
            st.floats(-0.5, 0.5, width=32),
            st.floats(-1, 1, width=32),
            st.floats(-1, 1, width=32),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_batched_equals_single_no_nan_speed_nonnegative(rows: list[tuple[float, ...]]) -> None:
    arr = np.array(rows, np.float32)
    args = [arr[:, i] for i in range(5)]
    act = arr[:, 5:7]
    out = bicycle_step(*args, act, 0.1, P)
    for i in range(len(rows)):
        single = bicycle_step(*[a[i : i + 1] for a in args], act[i : i + 1], 0.1, P)
        for o, s in zip(out, single, strict=True):
            np.testing.assert_allclose(o[i : i + 1], s, rtol=1e-6, atol=1e-5)
    assert all(np.isfinite(o).all() for o in out)
    assert (out[3] >= 0).all()
    assert (np.abs(out[2]) <= np.pi + 1e-6).all()
