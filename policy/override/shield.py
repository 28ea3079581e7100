"""The safety shield: checks whatever action is about to be executed, in every mode.

It knows nothing of the policy or the human; it sees the world and the action.

**Invalid actions.** A row with a non-finite value, or a value outside ``[-1, 1]`` by more
than ``ACTION_TOLERANCE``, is never applied: it is replaced by braking (``invalid_brake``) with
the lane keeper's steering (:mod:`policy.override.failsafe`), not a locked-straight wheel that
would leave the road in a bend.

**Automatic emergency braking (AEB).** The ego's path is predicted as the arc of its current
wheel angle ``delta`` (curvature ``kappa = tan(delta) / wheelbase``): in the ego frame (x
forward, y left) the path is ``y_p(x) = kappa x^2 / 2``. An actor at ``(x, y)`` with relative
heading ``psi`` is *in the path* when ``x > 0`` and::

    |y - y_p(x)| < w_ego / 2 + (w |cos psi| + l |sin psi|) / 2 + path_margin_m

Its bumper gap is ``g = x - l_ego / 2 - (l |cos psi| + w |sin psi|) / 2`` and the closing speed
``c = v_ego - v cos psi``; ``TTC = g / c`` when closing, infinite otherwise, over actors within
``horizon_m``. An actor closer than ``standstill_gap_m`` that is not pulling away counts as
contact, ``TTC = 0``: without this a human holding the throttle behind a stopped car would creep
into it, one released-and-braked tick at a time. One pass over the N actors of each environment:
O(B N), no pair search. When the smallest TTC falls below ``aeb_ttc_s`` the shield brakes with
at least ``aeb_brake`` (the steering is left alone) and keeps braking until the TTC rises above
``release_ttc_s`` (hysteresis: no on/off chatter at the threshold).

Each intervention is an event on its rising edge: ``{"env": b, "type": "shield", "kind":
"aeb" | "invalid_action", ...}`` with the TTC and the action before and after.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.state import WorldState

F32 = NDArray[np.float32]
BoolArr = NDArray[np.bool_]
I64 = NDArray[np.int64]

ACTION_TOLERANCE = 1e-6  # [-] float round-off past +-1 is clipped, anything more is invalid
MIN_CLOSING_MPS = 1e-3  # [m/s] below this an actor is not approached: TTC is infinite


@dataclass
class ShieldParams:
    """The shield (``shield`` node of ``configs/drive.yaml``)."""

    enabled: bool = True
    # Production AEB brakes fully at a TTC of roughly 0.9-1.6 s (Euro NCAP AEB test reports);
    # 1.5 s lets the ego (8 m/s^2) stop from 24 m/s closing speed before contact.
    aeb_ttc_s: float = 1.5  # [s] brake below this TTC
    release_ttc_s: float = 2.5  # [s] stop braking above this TTC
    aeb_brake: float = 1.0  # [-] brake pedal of AEB (full)
    path_margin_m: float = 0.3  # [m] lateral margin around the two boxes
    standstill_gap_m: float = 1.0  # [m] closer than this is contact (below IDM's 2 m jam gap)
    horizon_m: float = 100.0  # [m] obstacles further ahead are ignored
    invalid_brake: float = 1.0  # [-] brake pedal instead of an invalid action

    def __post_init__(self) -> None:
        if not self.aeb_ttc_s > 0:
            raise ValueError(f"shield.aeb_ttc_s: expected > 0 s, got {self.aeb_ttc_s}")
        if not self.release_ttc_s >= self.aeb_ttc_s:
            raise ValueError(
                f"shield.release_ttc_s: expected >= aeb_ttc_s ({self.aeb_ttc_s}), got "
                f"{self.release_ttc_s}"
            )
        for name in ("aeb_brake", "invalid_brake"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"shield.{name}: expected in (0, 1], got {getattr(self, name)}")
        for name in ("path_margin_m", "standstill_gap_m"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"shield.{name}: expected >= 0 m, got {getattr(self, name)}")
        if not self.horizon_m > 0:
            raise ValueError(f"shield.horizon_m: expected > 0 m, got {self.horizon_m}")


@dataclass(frozen=True)
class ShieldState:
    """Interventions in progress last tick, (B,) each."""

    aeb: BoolArr
    invalid: BoolArr

    @staticmethod
    def initial(num_envs: int) -> ShieldState:
        return ShieldState(np.zeros(num_envs, np.bool_), np.zeros(num_envs, np.bool_))


@dataclass(frozen=True)
class ShieldResult:
    """One tick of the shield, (B,) unless noted."""

    action: F32  # (B, 2) what may be executed
    state: ShieldState
    aeb: BoolArr  # AEB brakes this tick
    invalid: BoolArr  # the action was invalid and replaced
    ttc: F32  # [s] path TTC (inf: nothing in the path)
    obstacle: I64  # actor index of the nearest-in-time obstacle, -1 none
    events: list[dict[str, Any]]


def path_ttc(
    world: WorldState,
    wheelbase: float,
    margin_m: float,
    horizon_m: float,
    standstill_gap_m: float = 0.0,
) -> tuple[F32, I64]:
    """TTC [s] to the first obstacle in the ego's predicted path (see the module docstring).

    Returns:
        (ttc (B,) float32, inf where none; obstacle actor index (B,), -1 where none).
    """
    yaw0 = world.yaw[:, :1]
    c, s = np.cos(yaw0), np.sin(yaw0)
    dx = world.x - world.x[:, :1]
    dy = world.y - world.y[:, :1]
    fx = c * dx + s * dy
    ly = -s * dx + c * dy
    kappa = np.tan(world.steer[:, :1]) / wheelbase
    dpsi = world.yaw - yaw0
    ca, sa = np.abs(np.cos(dpsi)), np.abs(np.sin(dpsi))
    half_w = 0.5 * (world.width * ca + world.length * sa)
    half_l = 0.5 * (world.length * ca + world.width * sa)
    in_path = (
        world.valid
        & (fx > 0)
        & (np.abs(ly - 0.5 * kappa * fx * fx) < 0.5 * world.width[:, :1] + half_w + margin_m)
    )
    in_path[:, 0] = False
    gap = fx - 0.5 * world.length[:, :1] - half_l
    closing = world.speed[:, :1] - world.speed * np.cos(dpsi)
    contact = (gap <= 0.0) | ((gap < standstill_gap_m) & (closing > -MIN_CLOSING_MPS))
    ttc = np.where(
        contact,
        0.0,
        np.where(closing > MIN_CLOSING_MPS, gap / np.maximum(closing, MIN_CLOSING_MPS), np.inf),
    )
    ttc = np.where(in_path & (gap < horizon_m), ttc, np.inf)
    j = np.argmin(ttc, axis=1)
    best = ttc[np.arange(ttc.shape[0]), j]
    return best.astype(np.float32), np.where(np.isfinite(best), j, -1).astype(np.int64)


def _json_action(a: NDArray[np.floating]) -> list[float | None]:
    return [round(float(v), 4) if math.isfinite(float(v)) else None for v in a]


def shield(
    action: NDArray[np.floating],
    world: WorldState,
    state: ShieldState,
    params: ShieldParams,
    wheelbase: float,
    fallback: Callable[[], F32] | None = None,
) -> ShieldResult:
    """Check and if needed replace the actions about to be executed (module docstring).

    Args:
        action: (B, 2) the arbitrated action.
        world: the state this tick (before the action).
        state: interventions in progress last tick.
        params: thresholds; ``enabled = False`` passes actions through (the simulator still
            brakes non-finite ones).
        wheelbase: the ego's [m], for the path curvature.
        fallback: the (B, 2) controlled stop, for the steering that replaces an invalid action;
            None steers straight.
    """
    a = np.array(action, np.float32, copy=True)
    B = a.shape[0]
    ttc, obstacle = path_ttc(
        world, wheelbase, params.path_margin_m, params.horizon_m, params.standstill_gap_m
    )
    no = np.zeros(B, np.bool_)
    if not params.enabled:
        return ShieldResult(a, ShieldState(no, no), no, no, ttc, obstacle, [])
    before = a.copy()
    finite = np.all(np.isfinite(a), axis=1)
    in_range = (np.abs(np.where(np.isfinite(a), a, 0.0)) <= 1.0 + ACTION_TOLERANCE).all(axis=1)
    invalid = np.logical_not(finite & in_range)
    a = np.clip(np.where(np.isfinite(a), a, 0.0), -1.0, 1.0).astype(np.float32)
    if invalid.any():
        steer = np.asarray(fallback(), np.float32)[:, 0] if fallback is not None else np.zeros(B)
        a[invalid, 0] = steer[invalid]
        a[invalid, 1] = -params.invalid_brake
    aeb: BoolArr = (ttc < params.aeb_ttc_s) | (state.aeb & ~(ttc > params.release_ttc_s))
    a[:, 1] = np.where(aeb, np.minimum(a[:, 1], -params.aeb_brake), a[:, 1])

    events: list[dict[str, Any]] = []
    for b in map(int, np.nonzero((aeb & ~state.aeb) | (invalid & ~state.invalid))[0]):
        common = {
            "env": b,
            "type": "shield",
            "ttc_s": round(float(ttc[b]), 3) if math.isfinite(ttc[b]) else None,
            "action_before": _json_action(before[b]),
            "action_after": _json_action(a[b]),
        }
        if invalid[b] and not state.invalid[b]:
            events.append({**common, "kind": "invalid_action"})
        if aeb[b] and not state.aeb[b]:
            events.append({**common, "kind": "aeb", "obstacle": int(obstacle[b])})
    return ShieldResult(a, ShieldState(aeb, invalid), aeb, invalid, ttc, obstacle, events)


__all__ = ["ShieldParams", "ShieldResult", "ShieldState", "path_ttc", "shield"]
