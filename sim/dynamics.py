"""Ego vehicle dynamics: a kinematic bicycle model with actuator limits.

Model (rear-axle reference, front-wheel steering, no tyre slip)::

    x_r' = v cos(psi)          y_r' = v sin(psi)
    psi' = v tan(delta) / L    v'   = a

with ``(x_r, y_r)`` the rear-axle centre, ``psi`` yaw, ``delta`` front-wheel angle, ``L``
wheelbase. At constant ``delta`` the rear axle moves on a circle of radius ``L / tan(delta)``.
Over one step of ``dt`` the arc is integrated exactly at the step's mean speed. The state pose
is the bounding-box centre, ``L / 2`` ahead of the rear axle (axles symmetric about the centre).

Actuators. The action is ``[steer, accel]`` in ``[-1, 1]^2``, one-to-one with CARLA's
``VehicleControl``: ``steer`` -> target wheel angle ``steer * max_steer`` approached at no more
than ``max_steer_rate``; ``accel > 0`` is throttle, ``accel < 0`` brake. Longitudinal::

    a = throttle * min(a_max, P_max / (m max(v, 1 m/s))) - brake * b_max
        - g c_rr - rho C_d A v^2 / (2 m)          (driving resistance when moving)

and the speed never goes negative (no reverse). A non-finite action is never applied: it is
replaced by full braking with the wheel held straight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

GRAVITY = 9.81  # [m/s^2]
AIR_DENSITY = 1.2  # [kg/m^3] sea level, 20 C
MIN_POWER_SPEED = 1.0  # [m/s] below this the power limit would exceed grip: cap by a_max


@dataclass(frozen=True)
class VehicleParams:
    """Ego actuator and body parameters. Defaults: a mid-size petrol sedan (CARLA's
    vehicle.tesla.model3 has a 2.875 m wheelbase; 110 kW and 1600 kg give 0-100 km/h in ~9 s).
    """

    wheelbase: float = 2.875  # [m]
    max_steer: float = 0.6  # [rad] front-wheel angle at full lock (~34 deg)
    max_steer_rate: float = 1.2  # [rad/s] full lock to full lock in 1 s (hand-over-hand)
    max_accel: float = 3.5  # [m/s^2] traction-limited launch
    max_power: float = 110e3  # [W] engine power at the wheels
    mass: float = 1600.0  # [kg]
    max_decel: float = 8.0  # [m/s^2] emergency braking on dry asphalt
    rolling_coef: float = 0.012  # [-] passenger-car tyres on asphalt
    drag_area: float = 0.62  # [m^2] C_d * A for a sedan (0.28 * 2.2 m^2)


def sanitize_action(action: NDArray[np.floating]) -> tuple[F32, NDArray[np.bool_]]:
    """Clip to ``[-1, 1]^2``; rows with any non-finite value become full brake, wheel straight.

    Returns:
        (action (B, 2) float32, replaced (B,) bool).
    """
    a = np.asarray(action, np.float32)
    finite = np.isfinite(a)
    out = np.minimum(np.maximum(np.where(finite, a, 0.0), -1.0), 1.0)
    bad = ~finite.all(axis=-1)
    if bad.any():
        out[bad] = (0.0, -1.0)
    return out.astype(np.float32, copy=False), np.asarray(bad, np.bool_)


def longitudinal_accel(accel_cmd: F32, speed: F32, p: VehicleParams) -> F32:
    """Acceleration [m/s^2] from the pedal command in [-1, 1] at ``speed`` [m/s]."""
    throttle = np.maximum(accel_cmd, 0.0)
    brake = np.maximum(-accel_cmd, 0.0)
    traction = np.minimum(p.max_accel, p.max_power / (p.mass * np.maximum(speed, MIN_POWER_SPEED)))
    resist = np.where(
        speed > 0.0,
        GRAVITY * p.rolling_coef + 0.5 * AIR_DENSITY * p.drag_area * speed * speed / p.mass,
        0.0,
    )
    return (throttle * traction - brake * p.max_decel - resist).astype(np.float32, copy=False)


def bicycle_step(
    x: F32,
    y: F32,
    yaw: F32,
    speed: F32,
    steer: F32,
    action: F32,
    dt: float,
    p: VehicleParams,
) -> tuple[F32, F32, F32, F32, F32, F32]:
    """Advance the ego by one step.

    Args:
        x, y, yaw: box-centre pose [m, m, rad], shape (B,).
        speed: [m/s] (B,). steer: current wheel angle [rad] (B,).
        action: (B, 2) sanitized ``[steer, accel]`` in [-1, 1].
        dt: step [s].

    Returns:
        (x, y, yaw, speed, steer, accel), each (B,) float32; ``accel`` is the realised
        acceleration (0 when held at standstill).
    """
    target = action[:, 0] * p.max_steer
    dmax = p.max_steer_rate * dt
    new_steer = steer + np.minimum(np.maximum(target - steer, -dmax), dmax)
    a = longitudinal_accel(action[:, 1], speed, p)
    new_speed = np.maximum(speed + a * dt, 0.0)
    realised = (new_speed - speed) / dt
    # Distance over the step: exact for constant a, and stops where the speed reaches zero.
    dist = np.where(
        new_speed > 0.0,
        0.5 * (speed + new_speed) * dt,
        speed * speed / np.maximum(2.0 * np.abs(a), 1e-6),
    )
    half = 0.5 * p.wheelbase
    xr = x - half * np.cos(yaw)
    yr = y - half * np.sin(yaw)
    curv = np.tan(new_steer) / p.wheelbase
    dpsi = dist * curv
    small = np.abs(dpsi) < 1e-6
    safe = np.where(small, 1.0, dpsi)
    # Chord of the circular arc; for tiny turns the straight-line limit.
    fwd = np.where(small, dist, np.sin(safe) / np.where(small, 1.0, curv))
    side = np.where(small, 0.5 * dist * dpsi, (1.0 - np.cos(safe)) / np.where(small, 1.0, curv))
    c, s = np.cos(yaw), np.sin(yaw)
    xr = xr + fwd * c - side * s
    yr = yr + fwd * s + side * c
    new_yaw = (yaw + dpsi + np.pi) % (2 * np.pi) - np.pi
    nx = xr + half * np.cos(new_yaw)
    ny = yr + half * np.sin(new_yaw)
    f = np.float32
    return (
        nx.astype(f),
        ny.astype(f),
        new_yaw.astype(f),
        new_speed.astype(f),
        new_steer.astype(f),
        realised.astype(f),
    )
