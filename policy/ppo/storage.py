"""Preallocated rollout storage: one (T, B, ...) tensor per quantity, written in place."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RolloutStorage:
    """One rollout of T steps of B environments, on the training device.

    ``valid`` is False on the "ghost" step after each episode end (NEXT_STEP autoreset: the env
    ignores that step's action while it resets, see :mod:`policy.ppo.gae`); those steps are left
    out of the loss.
    """

    obs: Tensor  # (T, B, D) float32 normalised observation, the step's input
    actions: Tensor  # (T, B, A) float32 in [-1, 1]
    logprobs: Tensor  # (T, B) float32 log pi(a | s) at collection time
    values: Tensor  # (T, B) float32 V(s) at collection time
    rewards: Tensor  # (T, B) float32 scaled reward
    terminated: Tensor  # (T, B) bool
    truncated: Tensor  # (T, B) bool
    valid: Tensor  # (T, B) bool, False on ghost steps
    guide_actions: Tensor  # (T, B, A) float32: a guide driver's action (guide_coef > 0 only)

    @classmethod
    def allocate(
        cls, num_steps: int, num_envs: int, obs_dim: int, action_dim: int, device: torch.device
    ) -> RolloutStorage:
        """Zeroed storage for T = ``num_steps`` steps of B = ``num_envs`` environments."""
        T, B = num_steps, num_envs

        def z(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            obs=z(T, B, obs_dim),
            actions=z(T, B, action_dim),
            logprobs=z(T, B),
            values=z(T, B),
            rewards=z(T, B),
            terminated=z(T, B, dtype=torch.bool),
            truncated=z(T, B, dtype=torch.bool),
            valid=z(T, B, dtype=torch.bool),
            guide_actions=z(T, B, action_dim),
        )
