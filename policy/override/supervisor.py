"""The override between the policy and the world, one tick at a time (the stateful edge).

:class:`Supervisor` holds what the pure functions need between ticks (the arbiter's and the
shield's state, the lane keeper) and runs, for B environments::

    executed, state = arbitrate(policy_action, human, state)      # who drives
    executed        = shield(executed, world)                      # AEB, invalid actions
    -> OverrideStep: policy, human and executed actions, mode, intervention flags, HACO cost

The controlled stop (:func:`policy.override.failsafe.controlled_stop`) is computed lazily, at
most once per tick, and only when an environment needs it. The caller steps the simulator with
``OverrideStep.executed_action``; :meth:`OverrideStep.info` is what goes into a step's ``info``
and episode log.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from policy.override.arbiter import (
    ArbiterParams,
    Mode,
    OverrideState,
    arbitrate,
    human_control,
    initial_state,
    reset_state,
)
from policy.override.command import HumanInputs
from policy.override.data import haco_cost
from policy.override.failsafe import FailsafeParams, controlled_stop, lane_keeper
from policy.override.shield import ShieldParams, ShieldState, shield
from sim.dynamics import VehicleParams
from sim.road import LaneGraph
from sim.state import WorldState

F32 = NDArray[np.float32]
BoolArr = NDArray[np.bool_]


@dataclass(frozen=True)
class OverrideStep:
    """One tick of the override, (B,) unless noted.

    Attributes:
        policy_action: (B, 2) what the policy asked for (NaN: no policy).
        human_action: (B, 2) the human's command as an action (in ESTOP: the stop it commands).
        executed_action: (B, 2) what the simulator must execute (arbitrated and shielded).
        prev_mode, mode: :class:`Mode` before and after this tick's arbitration.
        intervened: the human is in control (HUMAN or ESTOP).
        takeover_start, takeover_end: control passed to / from the human this tick.
        takeover_cost: HACO's ``1 - cos(policy, human)`` where a takeover starts, else 0.
        shield_aeb, shield_invalid: the shield braked for a close obstacle / an invalid action.
        ttc: [s] time to collision in the ego's path (inf: none).
        events: arbiter and shield events (dicts with ``env`` and ``type``).
    """

    policy_action: F32
    human_action: F32
    executed_action: F32
    prev_mode: NDArray[np.int8]
    mode: NDArray[np.int8]
    intervened: BoolArr
    takeover_start: BoolArr
    takeover_end: BoolArr
    takeover_cost: F32
    shield_aeb: BoolArr
    shield_invalid: BoolArr
    ttc: F32
    events: list[dict[str, Any]]

    @property
    def failsafe(self) -> BoolArr:
        out: BoolArr = self.mode == Mode.FAILSAFE
        return out

    def info(self) -> dict[str, NDArray[Any]]:
        """The per-step ``info`` entries (MetaDrive-style takeover reporting), (B, ...) each."""
        return {
            "action_policy": self.policy_action,
            "action_human": self.human_action,
            "action_executed": self.executed_action,
            "override_mode": self.mode,
            "intervened": self.intervened,
            "takeover_start": self.takeover_start,
            "takeover_cost": self.takeover_cost,
            "shield_aeb": self.shield_aeb,
            "shield_invalid": self.shield_invalid,
            "failsafe": self.failsafe,
            "ttc_path": self.ttc,
        }


class Supervisor:
    """Arbiter + shield + fail-safe for B environments (see the module docstring).

    Args:
        num_envs: B.
        road: the lane graph (for the lane keeper).
        arbiter, shield, failsafe: parameters.
        vehicle: the ego's parameters (wheelbase for the path, pedal inversion).
    """

    def __init__(
        self,
        num_envs: int,
        road: LaneGraph,
        arbiter: ArbiterParams | None = None,
        shield: ShieldParams | None = None,
        failsafe: FailsafeParams | None = None,
        vehicle: VehicleParams | None = None,
    ) -> None:
        self.road = road
        self.arbiter = arbiter or ArbiterParams()
        self.shield_params = shield or ShieldParams()
        self.failsafe = failsafe or FailsafeParams()
        self.vehicle = vehicle or VehicleParams()
        self.keeper = lane_keeper(self.vehicle)
        self.state: OverrideState = initial_state(num_envs, self.arbiter)
        self.shield_state = ShieldState.initial(num_envs)

    @property
    def mode(self) -> NDArray[np.int8]:
        return self.state.mode

    def reset(self, mask: BoolArr) -> None:
        """New episodes where ``mask`` (B,): start mode, no shield intervention in progress."""
        self.state = reset_state(self.state, mask, self.arbiter)
        self.shield_state = ShieldState(
            self.shield_state.aeb & ~mask, self.shield_state.invalid & ~mask
        )
        self.keeper.reset(mask)

    def step(
        self, policy_action: NDArray[np.floating], human: HumanInputs, world: WorldState
    ) -> OverrideStep:
        """Arbitrate and shield this tick's actions for ``world`` (the state before the step)."""
        pa = np.asarray(policy_action, np.float32)

        @functools.cache
        def fallback() -> F32:
            return controlled_stop(world, self.road, self.keeper, self.failsafe)

        prev = self.state.mode
        arbitrated, self.state, events = arbitrate(pa, human, self.state, self.arbiter, fallback)
        sh = shield(
            arbitrated,
            world,
            self.shield_state,
            self.shield_params,
            self.vehicle.wheelbase,
            fallback,
        )
        self.shield_state = sh.state
        mode = self.state.mode
        was, now = human_control(prev), human_control(mode)
        human_action = human.actions()
        estop = mode == Mode.ESTOP
        human_action[estop] = arbitrated[estop]
        start = now & ~was
        return OverrideStep(
            policy_action=pa,
            human_action=human_action,
            executed_action=sh.action,
            prev_mode=prev,
            mode=mode,
            intervened=now,
            takeover_start=start,
            takeover_end=was & ~now,
            takeover_cost=np.where(start, haco_cost(pa, human_action), 0.0).astype(np.float32),
            shield_aeb=sh.aeb,
            shield_invalid=sh.invalid,
            ttc=sh.ttc,
            events=events + sh.events,
        )


__all__ = ["OverrideStep", "Supervisor"]
