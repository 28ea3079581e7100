"""Running statistics for observation normalisation and reward scaling.

:class:`RunningMeanStd` merges each batch with Chan et al.'s parallel form of Welford's
algorithm (numerically safe for millions of samples, one update per batch)::

    delta = mean_b - mean;  n' = n + n_b
    mean' = mean + delta n_b / n'
    M2'   = var n + var_b n_b + delta^2 n n_b / n'; var' = M2' / n'

Statistics are float64 so that the count can reach 1e9 steps without drift.

:class:`RewardScaler` divides each reward by the running std of the discounted return
``G_t = r_t + gamma G_{t-1}`` (reset at episode ends), as Gymnasium's ``NormalizeReward`` and
CleanRL do: the scale of returns, not rewards, is what the value loss sees.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-8  # variance floor: keeps a constant feature (e.g. a speed limit) finite


class RunningMeanStd:
    """Running mean and (population) variance of vectors of shape ``shape``."""

    def __init__(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> None:
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def update(self, x: Tensor) -> None:
        """Merge a batch ``x`` of shape (n, *shape) (n may be 0)."""
        n = x.shape[0]
        if n == 0:
            return
        x = x.to(torch.float64)
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        tot = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (n / tot)
        m2 = self.var * self.count + b_var * n + delta.square() * (self.count * n / tot)
        self.var = m2 / tot
        self.count = tot

    def normalize(self, x: Tensor, clip: float) -> Tensor:
        """``clip((x - mean) / sqrt(var + EPS), -clip, clip)`` in float32."""
        z = (x - self.mean) / torch.sqrt(self.var + EPS)
        return z.clamp_(-clip, clip).to(torch.float32)

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.cpu(), "var": self.var.cpu(), "count": self.count.cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        dev = self.mean.device
        self.mean = state["mean"].to(dev, torch.float64)
        self.var = state["var"].to(dev, torch.float64)
        self.count = state["count"].to(dev, torch.float64)


class RewardScaler:
    """Scale rewards by the running std of the per-environment discounted return."""

    def __init__(self, num_envs: int, gamma: float, device: torch.device | str = "cpu") -> None:
        self.gamma = gamma
        self.rms = RunningMeanStd((), device)
        self.ret = torch.zeros(num_envs, dtype=torch.float64, device=device)

    def __call__(self, reward: Tensor, valid: Tensor, clip: float) -> Tensor:
        """Update with this step's rewards (B,) where ``valid`` and return the scaled rewards.

        Call :meth:`episode_end` with the step's end flags afterwards.
        """
        self.ret = torch.where(valid, self.ret * self.gamma + reward, self.ret)
        self.rms.update(self.ret[valid])
        scaled = reward / torch.sqrt(self.rms.var + EPS)
        return scaled.clamp_(-clip, clip).to(torch.float32)

    def episode_end(self, ended: Tensor) -> None:
        """Restart the discounted return of environments whose episode ended (B,) bool."""
        self.ret = torch.where(ended, torch.zeros_like(self.ret), self.ret)

    def state_dict(self) -> dict[str, Tensor]:
        return {**self.rms.state_dict(), "ret": self.ret.cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.rms.load_state_dict(state)
        self.ret = state["ret"].to(self.ret.device, torch.float64)
