"""Generalised advantage estimation (Schulman et al. 2016) with termination and truncation apart.

For one environment and step ``t``::

    delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - terminated_t) * (1 - truncated_t) * A_{t+1}
    R_t     = A_t + V(s_t)                                      (the value target)

``V(s_{t+1})`` is ``next_values[t]``: the value of the observation the step returned. At a
*termination* it is ignored (the episode's future is worth 0). At a *truncation* (time limit)
the episode could have gone on, so the value of the true final observation is bootstrapped;
only the recursion is cut, so the next episode's advantages do not leak back.

With Gymnasium's NEXT_STEP autoreset (:class:`sim.env.DriveVectorEnv`) the observation returned
on the ending step *is* the true final observation, and it is also the input of the following
step, whose action the env ignores while it resets (reward 0, both flags False, the reset
observation comes back). So ``next_values[t] = values[t + 1]`` always holds and no extra forward
pass is needed for final observations; the following "ghost" step carries no transition of the
agent and is masked out of the loss by the trainer. Its advantage is never propagated backwards
because the ending step's flags cut the recursion.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Advantages and value targets of a rollout (formulas in the module docstring).

    Args:
        rewards: (T, B) reward of each step.
        values: (T, B) V(s_t) of the step's input observation.
        next_values: (T, B) V(s_{t+1}) of the observation the step returned (the true final
            observation when the episode ended there).
        terminated: (T, B) bool, the episode ended in a terminal state at this step.
        truncated: (T, B) bool, the episode was cut at this step (time limit).
        gamma: discount per step.
        lam: GAE lambda.

    Returns:
        (advantages (T, B), returns (T, B)), both in the dtype of ``values``.
    """
    not_term = 1.0 - terminated.to(values.dtype)
    not_end = not_term * (1.0 - truncated.to(values.dtype))
    deltas = rewards + gamma * not_term * next_values - values
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[0])
    for t in reversed(range(values.shape[0])):
        last = deltas[t] + gamma * lam * not_end[t] * last
        advantages[t] = last
    return advantages, advantages + values
