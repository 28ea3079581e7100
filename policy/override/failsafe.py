"""The controlled stop in lane: what the car does when nobody can drive it.

Used when the device is lost while the human drives (FAILSAFE), for the steering of an
emergency stop (ESTOP) and for the steering while the shield brakes instead of an invalid
action. Lateral: pure pursuit to the centre line of the lane the ego is on (the rule-based
driver's lateral controller, :mod:`policy.rule_based`, with lane changes off), so a car the
human left between two lanes settles into the nearer one. Longitudinal: a constant comfortable
deceleration ``decel_mps2``, turned into a pedal by inverting the vehicle model
(:func:`policy.rule_based.pedal_command`), or harder when the car-following model (IDM behind
the leader) asks for more::

    accel_pedal = min(pedal(-decel_mps2, v), pedal(a_IDM, v))

At standstill the same pedal holds the car (no creeping). The default 3 m/s^2 is firm but not
alarming (ISO 15622 lets adaptive cruise control brake at up to 3.5 m/s^2), and it leaves
following traffic (IDM, comfortable deceleration 1.5-3 m/s^2, emergency 9 m/s^2) room to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from policy.rule_based import RuleBasedDriver, RuleBasedParams, pedal_command
from sim.dynamics import VehicleParams
from sim.road import LaneGraph
from sim.state import WorldState

F32 = NDArray[np.float32]

MAX_COMFORT_DECEL = 6.0  # [m/s^2] beyond this a "controlled" stop is an emergency stop


@dataclass
class FailsafeParams:
    """The controlled stop (``failsafe`` node of ``configs/drive.yaml``)."""

    decel_mps2: float = 3.0  # [m/s^2] see the module docstring

    def __post_init__(self) -> None:
        if not 0 < self.decel_mps2 <= MAX_COMFORT_DECEL:
            raise ValueError(
                f"failsafe.decel_mps2: expected in (0, {MAX_COMFORT_DECEL}] m/s^2, got "
                f"{self.decel_mps2}"
            )


def lane_keeper(vehicle: VehicleParams | None = None) -> RuleBasedDriver:
    """The lateral controller of the stop: the rule-based driver without lane changes."""
    return RuleBasedDriver(RuleBasedParams(lane_change=False), vehicle or VehicleParams())


def controlled_stop(
    world: WorldState,
    road: LaneGraph,
    keeper: RuleBasedDriver,
    params: FailsafeParams,
) -> F32:
    """(B, 2) ``[steer, accel]``: keep the lane, brake at ``params.decel_mps2`` or harder.

    Args:
        world: the state this tick.
        road: its lane graph.
        keeper: from :func:`lane_keeper` (its vehicle parameters invert the pedal).
        params: the deceleration.
    """
    out = keeper.act(world, road)
    v = world.speed[:, 0]
    brake = pedal_command(np.full_like(v, -params.decel_mps2), v, keeper.vehicle)
    out[:, 1] = np.minimum(out[:, 1], brake)
    return out


__all__ = ["FailsafeParams", "controlled_stop", "lane_keeper"]
