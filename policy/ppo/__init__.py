"""PPO driving policy: Beta actor-critic, GAE, clipped update, trainer and checkpoints.

Where to look: :func:`policy.ppo.gae.gae` (advantages), :func:`policy.ppo.update.ppo_update`
(the clipped loss and the minibatch loop), :meth:`policy.ppo.trainer.PPOTrainer.train_update`
(rollout -> GAE -> update), :class:`policy.ppo.config.PPOConfig` (every hyperparameter).
"""

from policy.ppo.config import PPOConfig
from policy.ppo.gae import gae
from policy.ppo.networks import ActorCritic
from policy.ppo.normalize import RewardScaler, RunningMeanStd
from policy.ppo.trainer import PPOTrainer, evaluate

__all__ = [
    "ActorCritic",
    "PPOConfig",
    "PPOTrainer",
    "RewardScaler",
    "RunningMeanStd",
    "evaluate",
    "gae",
]
