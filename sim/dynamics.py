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
from functools import lru_cache

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


_F0 = np.array(0.0, np.float32)
_F1 = np.array(1.0, np.float32)
_NEG1 = np.array(-1.0, np.float32)
_HALF = np.array(0.5, np.float32)
_PI = np.array(np.pi, np.float32)
_TWO_PI = np.array(2 * np.pi, np.float32)
_SMALL_TURN = np.array(1e-6, np.float32)


def sanitize_action(action: NDArray[np.floating]) -> tuple[F32, NDArray[np.bool_]]:
    """Clip to ``[-1, 1]^2``; rows with any non-finite value become full brake, wheel straight.

    Returns:
        (action (B, 2) float32, replaced (B,) bool).
    """
    a = np.asarray(action, np.float32)
    finite = np.isfinite(a)
    if np.count_nonzero(finite) == finite.size:  # the usual case: a plain clip
        return np.minimum(np.maximum(a, _NEG1), _F1), np.zeros(a.shape[:-1], np.bool_)
    out = np.minimum(np.maximum(np.where(finite, a, 0.0), -1.0), 1.0)
    bad = ~finite.all(axis=-1)
    if bad.any():
        out[bad] = (0.0, -1.0)
    return out.astype(np.float32, copy=False), np.asarray(bad, np.bool_)


@lru_cache(maxsize=16)
def _constants(p: VehicleParams, dt: float) -> dict[str, F32]:
    """0-d float32 versions of the Python-float expressions the kernels below combine with
    float32 arrays (NEP 50 casts those to float32 too: same bits, no per-call conversion)."""
    values = {
        "max_steer": p.max_steer,
        "dmax": p.max_steer_rate * dt,
        "neg_dmax": -(p.max_steer_rate * dt),
        "max_accel": p.max_accel,
        "max_power": p.max_power,
        "mass": p.mass,
        "max_decel": p.max_decel,
        "min_power_speed": MIN_POWER_SPEED,
        "rolling": GRAVITY * p.rolling_coef,
        "drag": 0.5 * AIR_DENSITY * p.drag_area,
        "dt": dt,
        "half_wheelbase": 0.5 * p.wheelbase,
        "wheelbase": p.wheelbase,
        "min_dist_div": 1e-6,
    }
    out = {k: np.array(v, np.float32) for k, v in values.items()}
    for arr in out.values():
        arr.flags.writeable = False
    return out


def longitudinal_accel(accel_cmd: F32, speed: F32, p: VehicleParams) -> F32:
    """Acceleration [m/s^2] from the pedal command in [-1, 1] at ``speed`` [m/s]."""
    c = _constants(p, 0.0)
    throttle = np.maximum(accel_cmd, _F0)
    brake = np.maximum(-accel_cmd, _F0)
    traction = np.minimum(
        c["max_accel"], c["max_power"] / (c["mass"] * np.maximum(speed, c["min_power_speed"]))
    )
    resist = c["rolling"] + c["drag"] * speed * speed / c["mass"]
    if np.count_nonzero(speed > _F0) < speed.size:  # standing still: no resistance
        resist = np.where(speed > 0.0, resist, 0.0)
    out: F32 = np.asarray(throttle * traction - brake * c["max_decel"] - resist, np.float32)
    return out


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
    c = _constants(p, dt)
    dt32 = c["dt"]
    target = action[:, 0] * c["max_steer"]
    new_steer = steer + np.minimum(np.maximum(target - steer, c["neg_dmax"]), c["dmax"])
    a = longitudinal_accel(action[:, 1], speed, p)
    new_speed = np.maximum(speed + a * dt32, _F0)
    realised = (new_speed - speed) / dt32
    # Distance over the step: exact for constant a, and stops where the speed reaches zero.
    dist = _HALF * (speed + new_speed) * dt32
    if np.count_nonzero(new_speed > _F0) < new_speed.size:
        dist = np.where(
            new_speed > 0.0,
            dist,
            speed * speed / np.maximum(2.0 * np.abs(a), c["min_dist_div"]),
        )
    half = c["half_wheelbase"]
    cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
    xr = x - half * cos_yaw
    yr = y - half * sin_yaw
    curv = np.tan(new_steer) / c["wheelbase"]
    dpsi = dist * curv
    small = np.abs(dpsi) < _SMALL_TURN
    n_small = np.count_nonzero(small)
    # Chord of the circular arc; for tiny turns the straight-line limit.
    if not n_small:
        fwd = np.sin(dpsi) / curv
        side = (_F1 - np.cos(dpsi)) / curv
    elif n_small == small.size:
        fwd = dist
        side = _HALF * dist * dpsi
    else:
        safe = np.where(small, 1.0, dpsi)
        fwd = np.where(small, dist, np.sin(safe) / np.where(small, 1.0, curv))
        side = np.where(small, 0.5 * dist * dpsi, (1.0 - np.cos(safe)) / np.where(small, 1.0, curv))
    xr = xr + fwd * cos_yaw - side * sin_yaw
    yr = yr + fwd * sin_yaw + side * cos_yaw
    new_yaw = (yaw + dpsi + _PI) % _TWO_PI - _PI
    nx = xr + half * np.cos(new_yaw)
    ny = yr + half * np.sin(new_yaw)
    f = np.float32
    return (
        nx.astype(f, copy=False),
        ny.astype(f, copy=False),
        new_yaw.astype(f, copy=False),
        new_speed.astype(f, copy=False),
        new_steer.astype(f, copy=False),
        realised.astype(f, copy=False),
    )
