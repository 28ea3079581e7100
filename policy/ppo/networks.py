"""Actor-critic MLP with a Beta policy on the action box [-1, 1]^2 (steer, accel).

Why a Beta distribution (as in Roach, Zhang et al. 2021): its support is bounded, so all the
probability mass lies inside the action box and no sample is clipped by the environment (a
clipped Gaussian piles mass on the bounds, and its log-probabilities no longer describe the
executed action). Unlike a tanh-squashed Gaussian, the log-probability needs no change-of-
variables correction ``- sum log(1 - tanh(u)^2)``, which is numerically fragile near the bounds,
and the entropy is available in closed form. With ``x ~ Beta(alpha, beta)`` on [0, 1] the
action is ``a = 2 x - 1``; the affine map only shifts the log-density by ``-log 2`` per
dimension, a constant that cancels in PPO's probability ratio.

``alpha, beta = 1 + softplus(head)`` keeps both concentrations above 1, so the density is
unimodal and vanishes at the bounds. The deterministic action is the mean ``alpha / (alpha +
beta)`` (mapped to [-1, 1]).

Actor and critic are separate tanh MLPs (CleanRL's continuous-action layout): the value loss
cannot disturb the policy's features. Orthogonal initialisation with gain sqrt(2) on hidden
layers, 0.01 on the policy head (the initial policy is near Beta(1.69, 1.69): centred, wide) and
1 on the value head.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.distributions import Beta

ACTION_DIM = 2  # [steer, accel]
LOG2 = math.log(2.0)  # log |da/dx| of a = 2 x - 1
X_EPS = 1e-6  # keeps x off 0 and 1, where the Beta log-density is -inf in float32


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with ``gain``, constant bias (in place; returns the layer)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: list[int], out_dim: int, out_gain: float) -> nn.Sequential:
    """tanh MLP ``in_dim -> hidden... -> out_dim`` with orthogonal init."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [layer_init(nn.Linear(d, h)), nn.Tanh()]
        d = h
    layers.append(layer_init(nn.Linear(d, out_dim), gain=out_gain))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Beta policy and value function over the (normalised) vector observation.

    Args:
        obs_dim: D, the observation size.
        hidden_sizes: hidden widths of each MLP.
        action_dim: action size (2: steer, accel).
    """

    def __init__(self, obs_dim: int, hidden_sizes: list[int], action_dim: int = ACTION_DIM):
        super().__init__()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.actor = mlp(obs_dim, hidden_sizes, 2 * action_dim, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden_sizes, 1, out_gain=1.0)

    def value(self, obs: Tensor) -> Tensor:
        """V(obs): (B, D) -> (B,)."""
        v: Tensor = self.critic(obs)
        return v.squeeze(-1)

    def dist(self, obs: Tensor) -> Beta:
        """The Beta distribution of x = (a + 1) / 2 per action dimension, batch shape (B, A)."""
        alpha, beta = (1.0 + nn.functional.softplus(self.actor(obs))).chunk(2, dim=-1)
        return Beta(alpha, beta, validate_args=False)

    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Sample (or take the mean) action for a rollout step.

        Args:
            obs: (B, D) normalised observations.
            deterministic: use the distribution's mean instead of a sample.

        Returns:
            (action (B, A) in [-1, 1], log-prob of the action (B,), value (B,)).
        """
        d = self.dist(obs)
        x = d.mean if deterministic else d.sample()
        x = x.clamp(X_EPS, 1.0 - X_EPS)
        logp = d.log_prob(x).sum(-1) - self.action_dim * LOG2  # type: ignore[no-untyped-call]
        return 2.0 * x - 1.0, logp, self.value(obs)

    def evaluate(
        self, obs: Tensor, action: Tensor, dims: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Log-prob and entropy of given actions, and values, for the PPO loss.

        Args:
            obs: (M, D) normalised observations.
            action: (M, A) actions in [-1, 1] (as returned by :meth:`act`).
            dims: only these action dimensions count (None: all); the others are not the
                policy's (a guide drives them, ``ppo.guide_executes``).

        Returns:
            (log-prob (M,), entropy (M,) in nats of the action in [-1, 1], value (M,)).
        """
        d = self.dist(obs)
        x = ((action + 1.0) * 0.5).clamp(X_EPS, 1.0 - X_EPS)
        lp: Tensor = d.log_prob(x)  # type: ignore[no-untyped-call]
        ent: Tensor = d.entropy()  # type: ignore[no-untyped-call]
        if dims is not None:
            lp, ent = lp[:, dims], ent[:, dims]
        n = lp.shape[-1]
        return lp.sum(-1) - n * LOG2, ent.sum(-1) + n * LOG2, self.value(obs)

    def log_prob_dims(self, obs: Tensor, action: Tensor, dims: Tensor) -> Tensor:
        """Log-prob (M,) of the action dimensions ``dims`` of ``action`` (M, A) in [-1, 1]
        (the guide loss of :func:`policy.ppo.update.ppo_update`)."""
        return self.evaluate(obs, action, dims)[0]

    def forward(self, obs: Tensor) -> Tensor:
        """Deterministic action (B, A) in [-1, 1] (for export and evaluation)."""
        return 2.0 * self.dist(obs).mean - 1.0
