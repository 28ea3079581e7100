"""The traffic network: two conditional mixture-density heads on small MLPs (torch, CPU).

``placement``: p(y | x), y = (log gap, speed / limit, log length, width) of the next vehicle
given the placement features x (:data:`generative.model.dataset.FEATURES`): a mixture of K
diagonal Gaussians (Bishop 1994; TrafficGen's placement head, Feng et al. 2023)::

    p(y | x) = sum_k pi_k(x) prod_j N(y_j; mu_kj(x), sigma_kj(x)^2)

Dimensions that are not observed (the front vehicle's gap) are left out of the product, so
one head learns both the front vehicle and the followers. Correlations between the dimensions
(slow vehicles keep short gaps) come from the mixture.

``behavior``: p(z | bx), z = the logits of the fitted IDM parameters (v0 / limit, T, s0, a, b)
given the vehicle's sampled state, the same mixture form.

Both heads are trained by maximum likelihood (mean negative log-likelihood per vehicle).
Inputs and targets are standardised with the training set's mean and std, stored with the
weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)
MIN_LOG_SIGMA = -5.0  # [log std units] floor: a component may not collapse onto one sample


@dataclass(frozen=True)
class NetConfig:
    """Sizes of one mixture-density head."""

    n_in: int
    n_out: int
    hidden: int = 64
    layers: int = 2
    components: int = 8


class MixtureHead(nn.Module):
    """MLP -> (logits (.., K), mean (.., K, D), log std (.., K, D)), in standardised units."""

    x_mean: Tensor
    x_std: Tensor
    y_mean: Tensor
    y_std: Tensor

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mods: list[nn.Module] = []
        width = cfg.n_in
        for _ in range(cfg.layers):
            mods += [nn.Linear(width, cfg.hidden), nn.SiLU()]
            width = cfg.hidden
        self.body = nn.Sequential(*mods)
        k, d = cfg.components, cfg.n_out
        self.out = nn.Linear(width, k + 2 * k * d)
        self.register_buffer("x_mean", torch.zeros(cfg.n_in))
        self.register_buffer("x_std", torch.ones(cfg.n_in))
        self.register_buffer("y_mean", torch.zeros(cfg.n_out))
        self.register_buffer("y_std", torch.ones(cfg.n_out))

    def set_scaling(self, x: Tensor, y: Tensor, y_mask: Tensor) -> None:
        """Standardisation statistics from training inputs/targets (masked targets ignored)."""
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-3))
        m = y_mask.float()
        cnt = m.sum(0).clamp_min(1.0)
        mean = (y * m).sum(0) / cnt
        var = (((y - mean) ** 2) * m).sum(0) / cnt
        self.y_mean.copy_(mean)
        self.y_std.copy_(var.sqrt().clamp_min(1e-3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture parameters for inputs ``x`` (.., n_in) in raw units."""
        h = self.body((x - self.x_mean) / self.x_std)
        o = self.out(h)
        k, d = self.cfg.components, self.cfg.n_out
        logits = o[..., :k]
        mu = o[..., k : k + k * d].reshape(*o.shape[:-1], k, d)
        log_sigma = o[..., k + k * d :].reshape(*o.shape[:-1], k, d).clamp_min(MIN_LOG_SIGMA)
        return logits, mu, log_sigma

    def nll(self, x: Tensor, y: Tensor, y_mask: Tensor) -> Tensor:
        """Negative log-likelihood per row (N,) of raw targets ``y`` with observed ``y_mask``.

        In standardised target units (the log-det of the scaling is a constant per dimension).
        """
        logits, mu, log_sigma = self(x)
        z = ((y - self.y_mean) / self.y_std).unsqueeze(-2)  # (N, 1, D)
        lp = -0.5 * ((z - mu) / log_sigma.exp()) ** 2 - log_sigma - 0.5 * LOG_2PI
        lp = (lp * y_mask.unsqueeze(-2).float()).sum(-1)  # (N, K)
        return -torch.logsumexp(torch.log_softmax(logits, -1) + lp, -1)


class TrafficNet(nn.Module):
    """The placement head and the behaviour head (see module docstring)."""

    def __init__(self, placement: NetConfig, behavior: NetConfig) -> None:
        super().__init__()
        self.placement = MixtureHead(placement)
        self.behavior = MixtureHead(behavior)


class NumpyHead:
    """A trained :class:`MixtureHead` evaluated in numpy (float64) for sampling.

    The heads are tiny (two layers of 32 units): a numpy forward pass costs microseconds, while
    a torch call costs ~10 us of dispatch and, on a loaded machine, milliseconds of thread-pool
    contention. All randomness comes from the caller's numpy generator.
    """

    def __init__(self, head: MixtureHead) -> None:
        lin = [m for m in head.body if isinstance(m, nn.Linear)] + [head.out]
        self.weights = [m.weight.detach().double().numpy().T.copy() for m in lin]
        self.biases = [m.bias.detach().double().numpy().copy() for m in lin]
        self.x_mean = head.x_mean.double().numpy().copy()
        self.x_std = head.x_std.double().numpy().copy()
        self.y_mean = head.y_mean.double().numpy().copy()
        self.y_std = head.y_std.double().numpy().copy()
        self.k = head.cfg.components
        self.d = head.cfg.n_out

    def __call__(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
        """(log mixture weights (N, K), means (N, K, D), log stds (N, K, D)), standardised."""
        h = (x - self.x_mean) / self.x_std
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = h @ w + b
            h = h / (1.0 + np.exp(-h))  # SiLU
        o = h @ self.weights[-1] + self.biases[-1]
        k, d = self.k, self.d
        logits = o[:, :k]
        logw = logits - logits.max(1, keepdims=True)
        logw = logw - np.log(np.exp(logw).sum(1, keepdims=True))
        mu = o[:, k : k + k * d].reshape(-1, k, d)
        log_sigma = np.maximum(o[:, k + k * d :].reshape(-1, k, d), MIN_LOG_SIGMA)
        return logw, mu, log_sigma

    def sample(
        self, x: NDArray[np.float64], rng: np.random.Generator, temperature: float = 1.0
    ) -> NDArray[np.float64]:
        """One draw per row of ``x`` (N, n_in) in raw target units (N, D)."""
        logw, mu, log_sigma = self(x)
        n = x.shape[0]
        cdf = np.cumsum(np.exp(logw), 1)
        u = rng.uniform(0.0, 1.0, (n, 1)) * cdf[:, -1:]
        comp = np.minimum((cdf < u).sum(1), self.k - 1)
        rows = np.arange(n)
        eps = rng.standard_normal((n, self.d))
        z = mu[rows, comp] + np.exp(log_sigma[rows, comp]) * temperature * eps
        out: NDArray[np.float64] = z * self.y_std + self.y_mean
        return out
