"""PPO hyperparameters: one typed dataclass, one docstring per field (CleanRL's ``Args``).

It is also the schema of the ``ppo`` config group (``configs/ppo/*.yaml``), so every field has a
type OmegaConf understands.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PPOConfig:
    """Hyperparameters of :class:`policy.ppo.trainer.PPOTrainer` (defaults: ``ppo=default``)."""

    num_envs: int = 256
    """B: environments stepped together (one :class:`sim.env.DriveVectorEnv`)."""
    num_steps: int = 64
    """T: steps per environment per rollout; one update consumes B * T transitions."""
    learning_rate: float = 3e-4
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run's updates."""
    gamma: float = 0.99
    """Discount per step (0.99 at dt = 0.1 s: a 10 s horizon)."""
    gae_lambda: float = 0.95
    """GAE lambda: bias/variance trade-off of the advantage estimate."""
    num_minibatches: int = 4
    """Minibatches per epoch; the minibatch size is B * T / num_minibatches."""
    update_epochs: int = 4
    """Passes over the rollout per update."""
    norm_adv: bool = True
    """Normalise advantages to zero mean, unit std within each minibatch."""
    clip_coef: float = 0.2
    """Surrogate clipping: the probability ratio is kept within 1 +- clip_coef."""
    clip_vloss: bool = True
    """Clip the value update around the rollout's value estimate (same clip_coef)."""
    ent_coef: float = 0.001
    """Entropy bonus weight (the Beta's differential entropy, nats per action)."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip."""
    target_kl: float | None = None
    """Stop the update's remaining minibatches once the approximate KL exceeds this (None: off)."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the hidden layers of both the actor and the critic MLP (tanh)."""
    norm_obs: bool = True
    """Normalise observations by a running mean/std (saved with the checkpoint)."""
    obs_clip: float = 10.0
    """Clip normalised observations to +- this many standard deviations."""
    scale_reward: bool = True
    """Divide rewards by the running std of the discounted return (no mean shift)."""
    reward_clip: float = 10.0
    """Clip scaled rewards to +- this."""
    guide_coef: float = 0.0
    """Weight of an auxiliary imitation loss: the negative log-likelihood of a guide driver's
    action (the rule-based driver, labelling every rollout state, DAgger-style) on the action
    dimensions ``guide_dims``, added to the PPO loss. 0: off (plain PPO)."""
    guide_dims: list[int] = field(default_factory=lambda: [0])
    """Action dimensions the guide loss covers: 0 steering (lane keeping and lane changes),
    1 acceleration. The default leaves the speed to the reward (eco-driving, docs/ppo.md)."""
    guide_executes: bool = False
    """Execute the guide's action on ``guide_dims`` in the rollouts (the rule-based driver
    steers and changes lanes while PPO learns the rest): PPO's surrogate and entropy cover only
    the other dimensions, and the guided ones are learnt by the guide loss alone, so the
    network still drives on its own afterwards. Needs ``guide_coef > 0``."""
    guide_shield: bool = False
    """A shield in the loop (Alshiekh et al. 2018): the executed acceleration never exceeds the
    guide's, so the policy may accelerate less or brake harder than the rule-based driver but
    never close in where it would brake. PPO's log-probabilities stay those of the sampled
    action (the cap is part of the environment). Applied in evaluations and when deployed
    too. Needs ``guide_coef > 0``."""
