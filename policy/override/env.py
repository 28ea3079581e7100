"""A vector environment with a safety driver in the loop (MetaDrive-style takeover reporting).

:class:`OverrideVectorEnv` wraps a :class:`sim.env.DriveVectorEnv`: ``step(policy_actions)``
polls each environment's device (``None``: no human there), runs the :class:`Supervisor`
(arbitration, shield, fail-safe) and steps the simulator with the executed actions. Its
``info`` carries, per environment, everything the override decided (:meth:`OverrideStep.info`):
``action_policy``, ``action_human``, ``action_executed``, ``override_mode``, ``intervened``,
``takeover_start``, ``takeover_cost``, ``shield_aeb``, ``shield_invalid``, ``failsafe``,
``ttc_path``, and ``override_events``. The reward gets the ``takeover`` term
(``reward_terms["takeover"]``, weighted by the env's ``RewardWeights.takeover``) at each takeover
start.

Autoreset is the wrapped env's ``NEXT_STEP``: on the step that resets an environment its action
is ignored, so the override does not run for it there (no human input is read into it, its flags
are False) and starts over in its start mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from policy.override.arbiter import ArbiterParams
from policy.override.command import HumanInputs, InputDevice
from policy.override.failsafe import FailsafeParams
from policy.override.shield import ShieldParams
from policy.override.supervisor import Supervisor
from sim.env import DriveVectorEnv

F32 = NDArray[np.float32]


class OverrideVectorEnv:
    """``DriveVectorEnv`` + safety driver (see the module docstring).

    Args:
        env: the environment to wrap (B environments).
        devices: one per environment, ``None`` where no human supervises.
        arbiter, shield, failsafe: override parameters.

    Raises:
        ValueError: ``devices`` does not hold one entry per environment.
    """

    def __init__(
        self,
        env: DriveVectorEnv,
        devices: Sequence[InputDevice | None],
        arbiter: ArbiterParams | None = None,
        shield: ShieldParams | None = None,
        failsafe: FailsafeParams | None = None,
    ) -> None:
        if len(devices) != env.num_envs:
            raise ValueError(f"devices: expected {env.num_envs} entries, got {len(devices)}")
        self.env = env
        self.devices = list(devices)
        self.num_envs = env.num_envs
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.supervisor = Supervisor(
            env.num_envs, env.road, arbiter, shield, failsafe, env.params.vehicle
        )
        self._resetting = np.zeros(env.num_envs, np.bool_)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[F32, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        mask = np.ones(self.num_envs, np.bool_)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], np.bool_)
        self.supervisor.reset(mask)
        self._resetting &= ~mask
        return obs, info

    def step(
        self, actions: NDArray[np.floating]
    ) -> tuple[F32, F32, NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        """One tick: read the humans, arbitrate and shield, step; ``info`` as documented."""
        world = self.env.state
        if world is None:
            raise RuntimeError("call reset() before step()")
        was = self._resetting
        self.supervisor.reset(was)
        cmds = [d.poll() if d is not None else None for d in self.devices]
        human = HumanInputs.from_commands([None if was[b] else c for b, c in enumerate(cmds)])
        step = self.supervisor.step(actions, human, world)
        obs, rew, term, trunc, info = self.env.step(step.executed_action)
        info.update(step.info())
        for key in ("intervened", "takeover_start", "shield_aeb", "shield_invalid", "failsafe"):
            info[key] = info[key] & ~was
        info["takeover_cost"] = np.where(was, 0.0, step.takeover_cost).astype(np.float32)
        start = info["takeover_start"].astype(np.float32)
        info["reward_terms"]["takeover"] = start
        rew = (rew + np.float32(self.env.weights.takeover) * start).astype(np.float32)
        info["override_events"] = [e for e in step.events if not was[e["env"]]]
        self._resetting = term | trunc
        return obs, rew, term, trunc, info

    def close(self) -> None:
        for d in self.devices:
            if d is not None:
                d.close()
        self.env.close()


__all__ = ["OverrideVectorEnv"]
