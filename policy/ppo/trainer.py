"""PPO trainer for :class:`sim.env.DriveVectorEnv`: rollout, GAE, update, in that order.

One call of :meth:`PPOTrainer.train_update` is one PPO iteration, in the stages of CleanRL's
``ppo_continuous_action.py``:

1. **rollout**: T steps of the B environments into preallocated :class:`RolloutStorage`. Each
   step crosses the numpy/torch boundary once each way: ``torch.from_numpy`` on what the env
   returned (no copy on CPU) and ``.cpu().numpy()`` on the action (no copy on CPU).
   Observations are normalised by a running mean/std before they are stored; rewards are
   scaled by the running std of discounted returns.
2. **GAE** (:func:`policy.ppo.gae.gae`): terminations and truncations apart, bootstrapping at
   truncation from the true final observation (NEXT_STEP autoreset; see that module).
3. **update** (:func:`policy.ppo.update.ppo_update`) on the valid transitions: the "ghost" step
   after each episode end, whose action the env ignores while resetting, is left out.
4. **log**: losses, KL, entropy, explained variance, episode statistics and the mean of every
   reward term per valid step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from policy.ppo.config import PPOConfig
from policy.ppo.gae import gae
from policy.ppo.networks import ActorCritic
from policy.ppo.normalize import RewardScaler, RunningMeanStd
from policy.ppo.storage import RolloutStorage
from policy.ppo.update import ppo_update
from sim.env import DriveVectorEnv
from sim.metrics import TERM_NAMES

ADAM_EPS = 1e-5  # CleanRL/SB3's PPO value; torch's 1e-8 makes early steps needlessly large


def shield_accel(action: Tensor, guide: Tensor) -> Tensor:
    """``action`` (B, 2) with its acceleration capped at ``guide``'s (``ppo.guide_shield``)."""
    out = action.clone()
    out[:, 1] = torch.minimum(action[:, 1], guide[:, 1])
    return out


def apply_guide(
    action: np.ndarray, guide: np.ndarray, dims: Sequence[int], shield: bool
) -> np.ndarray:
    """A deterministic action (B, 2) as a guided run drives: ``guide``'s values on ``dims``
    (``ppo.guide_executes``), then the acceleration capped at the guide's when ``shield``
    (``ppo.guide_shield``). In place; returns ``action``."""
    d = list(dims)
    action[:, d] = guide[:, d]
    if shield:
        np.minimum(action[:, 1], guide[:, 1], out=action[:, 1])
    return action


def route_completion(info: dict[str, Any], env: DriveVectorEnv, mask: np.ndarray) -> np.ndarray:
    """Route completion in [0, 1] of the environments in ``mask`` on their episode's last step.

    ``info["progress"]`` [m] over the route length; a completed route counts 1 (the Leaderboard
    completes a route within 10 m of its end). Valid on the ending step: with NEXT_STEP autoreset
    the world still holds the finished episode.
    """
    assert env.state is not None
    frac = info["progress"][mask] / np.maximum(env.state.route.length[mask], 1e-6)
    out: np.ndarray = np.where(info["route_completed"][mask], 1.0, np.clip(frac, 0.0, 1.0))
    return out


class PPOTrainer:
    """Owns the agent, optimiser, normalisers and rollout storage for one vector env.

    Args:
        env: the training environments; ``env.num_envs`` must equal ``cfg.num_envs``.
        cfg: hyperparameters.
        device: where the networks and the rollout storage live.
        seed: the environments are reset with ``seed`` (env b: ``seed + b``) by :meth:`start`.
        guide: a driver with ``act(state, road)`` and ``reset(mask)`` (the rule-based driver)
            that labels every rollout state for the guide loss (``cfg.guide_coef > 0``); its
            lane-change memory is saved with the trainer when it has ``state_dict``.
    """

    def __init__(
        self,
        env: DriveVectorEnv,
        cfg: PPOConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
        guide: Any = None,
    ) -> None:
        if cfg.guide_coef > 0 and guide is None:
            raise ValueError("ppo.guide_coef > 0 needs a guide driver (gendrive train builds one)")
        if cfg.guide_executes and cfg.guide_coef <= 0:
            raise ValueError("ppo.guide_executes needs ppo.guide_coef > 0 (the guided dims learn "
                             "from the guide loss alone)")  # fmt: skip
        if cfg.guide_shield and cfg.guide_coef <= 0:
            raise ValueError("ppo.guide_shield needs ppo.guide_coef > 0 (a guide to cap by)")
        if any(d not in (0, 1) for d in cfg.guide_dims):
            raise ValueError(f"ppo.guide_dims: expected a subset of [0, 1], got {cfg.guide_dims}")
        if env.num_envs != cfg.num_envs:
            raise ValueError(f"ppo.num_envs={cfg.num_envs} but the env has {env.num_envs}")
        if cfg.num_steps < 1 or cfg.num_minibatches < 1 or cfg.update_epochs < 1:
            raise ValueError("ppo.num_steps, num_minibatches and update_epochs must be >= 1")
        shape = env.single_observation_space.shape
        assert shape is not None
        self.env = env
        self.cfg = cfg
        self.device = torch.device(device)
        self.seed = seed
        self.guide: Any = guide if cfg.guide_coef > 0 else None
        self._guided_dims = torch.as_tensor(
            list(cfg.guide_dims), dtype=torch.long, device=self.device
        )
        free = [d for d in range(2) if d not in cfg.guide_dims]
        # The policy's own dims when the guide drives the others (None: the policy drives all).
        self._free_dims = (torch.as_tensor(free, dtype=torch.long, device=self.device)
                           if cfg.guide_executes and self.guide is not None else None)  # fmt: skip
        self.obs_dim = int(shape[0])
        self.agent = ActorCritic(self.obs_dim, list(cfg.hidden_sizes)).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.agent.parameters(), lr=cfg.learning_rate, eps=ADAM_EPS
        )
        self.obs_rms = RunningMeanStd((self.obs_dim,), self.device)
        self.reward_scaler = RewardScaler(env.num_envs, cfg.gamma, self.device)
        self.storage = RolloutStorage.allocate(
            cfg.num_steps, env.num_envs, self.obs_dim, self.agent.action_dim, self.device
        )
        self.global_step = 0  # env steps taken (B per vector step, ghost steps included)
        self.update = 0  # PPO updates done
        self.obs = torch.zeros(env.num_envs, self.obs_dim, device=self.device)
        # True where the last step ended an episode: the next step is the autoreset ghost.
        self.ghost = torch.zeros(env.num_envs, dtype=torch.bool, device=self.device)

    @property
    def steps_per_update(self) -> int:
        return self.cfg.num_envs * self.cfg.num_steps

    def start(self) -> None:
        """Reset the environments with the trainer's seed and observe."""
        obs_np, _ = self.env.reset(seed=self.seed)
        self.obs = self._observe(obs_np)
        self.ghost.zero_()
        if self.guide is not None:
            self.guide.reset(np.ones(self.env.num_envs, np.bool_))

    def _observe(self, obs_np: np.ndarray) -> Tensor:
        obs = torch.from_numpy(obs_np).to(self.device, non_blocking=True)
        if not self.cfg.norm_obs:
            return obs
        self.obs_rms.update(obs)
        return self.obs_rms.normalize(obs, self.cfg.obs_clip)

    # -- 1. rollout -----------------------------------------------------------------------------

    def collect(self) -> dict[str, float]:
        """Fill the storage with T steps; returns episode and reward-term statistics."""
        cfg, env, s = self.cfg, self.env, self.storage
        term_sums = np.zeros(len(TERM_NAMES), np.float64)
        ep_r: list[np.ndarray] = []
        ep_l: list[np.ndarray] = []
        ep_rc: list[np.ndarray] = []
        ep_col: list[np.ndarray] = []
        ep_done: list[np.ndarray] = []
        for t in range(cfg.num_steps):
            valid = ~self.ghost
            s.obs[t] = self.obs
            s.valid[t] = valid
            with torch.no_grad():
                action, logp, value = self.agent.act(self.obs)
                if self.guide is not None:
                    assert env.state is not None
                    g = torch.from_numpy(self.guide.act(env.state, env.road)).to(self.device)
                    s.guide_actions[t] = g
                    if self._free_dims is not None:  # the guide drives its dims
                        action[:, self._guided_dims] = g[:, self._guided_dims]
                        logp = self.agent.log_prob_dims(self.obs, action, self._free_dims)
            s.actions[t] = action
            s.logprobs[t] = logp
            s.values[t] = value
            executed = action
            if self.cfg.guide_shield:  # the cap is the environment's: the policy's action is stored
                executed = shield_accel(action, s.guide_actions[t])

            obs_np, rew_np, term_np, trunc_np, info = env.step(executed.cpu().numpy())

            reward = torch.from_numpy(rew_np).to(self.device, non_blocking=True)
            term = torch.from_numpy(term_np).to(self.device, non_blocking=True)
            trunc = torch.from_numpy(trunc_np).to(self.device, non_blocking=True)
            if cfg.scale_reward:
                reward = self.reward_scaler(reward, valid, cfg.reward_clip)
                self.reward_scaler.episode_end(term | trunc)
            s.rewards[t] = reward
            s.terminated[t] = term
            s.truncated[t] = trunc
            if self.guide is not None and bool(self.ghost.any()):
                # The env reset these on this step: the guide forgets their lane changes.
                self.guide.reset(self.ghost.cpu().numpy())
            self.ghost = term | trunc
            self.obs = self._observe(obs_np)

            # Statistics (the env zeroes the terms of ghost steps, so plain sums are right).
            for i, name in enumerate(TERM_NAMES):
                term_sums[i] += float(info["reward_terms"][name].sum())
            if "_episode" in info:
                m = info["_episode"]
                ep_r.append(info["episode"]["r"][m])
                ep_l.append(info["episode"]["l"][m])
                ep_rc.append(route_completion(info, env, m))
                ep_col.append(info["collision"][m])
                ep_done.append(info["route_completed"][m])
        self.global_step += self.steps_per_update

        stats: dict[str, float] = {"episodes": float(sum(len(x) for x in ep_r))}
        for key, parts in (
            ("episode_return", ep_r),
            ("episode_length", ep_l),
            ("route_completion", ep_rc),
            ("collision_rate", ep_col),
            ("success_rate", ep_done),
        ):
            stats[key] = float(np.concatenate(parts).mean()) if parts else math.nan
        n = max(int(s.valid.sum()), 1)
        for i, name in enumerate(TERM_NAMES):
            stats[f"term/{name}"] = term_sums[i] / n
        return stats

    # -- 2. GAE + 3. update ---------------------------------------------------------------------

    def train_update(self, num_updates: int) -> dict[str, float]:
        """One PPO iteration: rollout, GAE, update. ``num_updates``: the run's total (for lr)."""
        lr = self.cfg.learning_rate
        if self.cfg.anneal_lr:
            lr *= max(0.0, 1.0 - self.update / max(num_updates, 1))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stats = self.collect()
        losses = self.learn()
        return {
            "update": float(self.update),
            "global_step": float(self.global_step),
            "learning_rate": lr,
            **losses,
            **stats,
        }

    def learn(self) -> dict[str, float]:
        """GAE and the PPO update on the collected rollout; returns the update's statistics."""
        cfg, s = self.cfg, self.storage
        with torch.no_grad():
            # NEXT_STEP autoreset: the observation a step returned is the next step's input,
            # so V(s_{t+1}) is values[t + 1] (the true final observation at episode ends).
            last_value = self.agent.value(self.obs)
            next_values = torch.cat([s.values[1:], last_value[None]], dim=0)
            advantages, returns = gae(
                s.rewards,
                s.values,
                next_values,
                s.terminated,
                s.truncated,
                cfg.gamma,
                cfg.gae_lambda,
            )

        idx = s.valid.flatten().nonzero().squeeze(-1)  # ghost steps are not transitions
        losses = ppo_update(
            self.agent,
            self.optimizer,
            cfg,
            s.obs.flatten(0, 1)[idx],
            s.actions.flatten(0, 1)[idx],
            s.logprobs.flatten()[idx],
            s.values.flatten()[idx],
            advantages.flatten()[idx],
            returns.flatten()[idx],
            s.guide_actions.flatten(0, 1)[idx] if self.guide is not None else None,
        )
        self.update += 1
        return losses

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything of the trainer that a resume needs (the env's state is saved apart)."""
        return {
            "model": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs_rms": self.obs_rms.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict(),
            "global_step": self.global_step,
            "update": self.update,
            "obs": self.obs.cpu(),
            "ghost": self.ghost.cpu(),
            **({"guide": self.guide.state_dict()} if hasattr(self.guide, "state_dict") else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (shapes are checked by :mod:`policy.ppo.checkpoint`)."""
        self.agent.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.global_step = int(state["global_step"])
        self.update = int(state["update"])
        self.obs = state["obs"].to(self.device)
        self.ghost = state["ghost"].to(self.device)
        if "guide" in state and hasattr(self.guide, "load_state_dict"):
            self.guide.load_state_dict(state["guide"])


def evaluate(
    agent: ActorCritic,
    obs_rms: RunningMeanStd | None,
    env: DriveVectorEnv,
    seed: int,
    obs_clip: float = 10.0,
    guide: Any = None,
    guide_dims: Sequence[int] = (),
    shield: bool = False,
) -> dict[str, float]:
    """One episode per environment with deterministic actions (the Beta mean).

    Environment b is reset with ``seed + b``; nothing of the trainer's state changes.

    Args:
        agent: the actor-critic.
        obs_rms: the observation normaliser (not updated), or None for raw observations.
        env: the evaluation environments (B = episodes).
        seed: first seed (use seeds the training never resets with).
        obs_clip: as in training.
        guide: a driver (``act(state, road)``, ``reset(mask)``) that drives ``guide_dims``, as
            in training with ``ppo.guide_executes``; None: the network drives every dimension.
        guide_dims: the action dimensions the guide drives.
        shield: cap the acceleration at the guide's (``ppo.guide_shield``).

    Returns:
        See :func:`evaluate_actions`.
    """
    device = next(agent.parameters()).device

    def act(obs_np: np.ndarray) -> np.ndarray:
        obs = torch.from_numpy(obs_np).to(device)
        if obs_rms is not None:
            obs = obs_rms.normalize(obs, obs_clip)
        with torch.no_grad():
            action: np.ndarray = agent(obs).cpu().numpy()
        if guide is not None:
            assert env.state is not None
            apply_guide(action, guide.act(env.state, env.road), guide_dims, shield)
        return action

    if guide is not None:
        guide.reset(np.ones(env.num_envs, np.bool_))
    return evaluate_actions(act, env, seed)


def evaluate_driver(driver: Any, env: DriveVectorEnv, seed: int) -> dict[str, float]:
    """:func:`evaluate_actions` for a driver that acts on the world state (``act(state, road)``,
    ``reset(mask)``: the rule-based driver), on the same episodes as :func:`evaluate`."""

    def act(_obs: np.ndarray) -> np.ndarray:
        assert env.state is not None
        return np.asarray(driver.act(env.state, env.road))

    driver.reset(np.ones(env.num_envs, np.bool_))
    return evaluate_actions(act, env, seed)


def evaluate_actions(
    act: Callable[[np.ndarray], np.ndarray], env: DriveVectorEnv, seed: int
) -> dict[str, float]:
    """One episode per environment, actions from ``act(observation)``; env b uses ``seed + b``.

    Returns:
        Means over the B episodes: ``return``, ``route_completion``, ``collision_rate``,
        ``success_rate``, ``length`` [steps], ``travel_time_s`` (the episode's duration, as
        ``gendrive evaluate``'s column up to the completing step's fraction) and
        ``fuel_l_per_100km`` (per episode, over the episodes that moved at least 1 m, as
        ``gendrive evaluate``'s mean), ``pace_s_per_km`` (all episodes' time over all their
        route progress: a speed measure that failed episodes do not shorten); for a mixture of
        specs also ``<spec name>/route_completion`` and ``<spec name>/collision_rate`` per spec.
    """
    B = env.num_envs
    K = len(env.specs)
    # A mixture of scenarios is covered evenly (env b runs spec b mod K), not by random draws.
    cover = {"spec_index": np.arange(B) % K} if K > 1 else None
    obs_np, _ = env.reset(seed=seed, options=cover)
    spec = env.spec_index.copy()
    dt = float(env.params.dt)
    done = np.zeros(B, np.bool_)
    ret = np.zeros(B)
    rc = np.zeros(B)
    col = np.zeros(B)
    ok = np.zeros(B)
    length = np.zeros(B)
    fuel_ml = np.zeros(B)
    dist_m = np.zeros(B)
    progress = np.zeros(B)
    while not done.all():
        obs_np, _, _, _, info = env.step(act(obs_np))
        assert env.state is not None  # NEXT_STEP autoreset: still the step's world
        live = ~done
        fuel_ml += np.where(live, info["reward_terms"]["fuel"], 0.0)
        dist_m += np.where(live, env.state.speed[:, 0] * dt, 0.0)
        if "_episode" in info:
            m = info["_episode"] & live
            ret[m] = info["episode"]["r"][m]
            length[m] = info["episode"]["l"][m]
            rc[m] = route_completion(info, env, m)
            progress[m] = info["progress"][m]
            col[m] = info["collision"][m]
            ok[m] = info["route_completed"][m]
            done |= m
    moved = dist_m >= 1.0
    fuel = 100.0 * fuel_ml[moved] / dist_m[moved]  # ml/m x 100 = l/100 km
    out = {
        "return": float(ret.mean()),
        "route_completion": float(rc.mean()),
        "collision_rate": float(col.mean()),
        "success_rate": float(ok.mean()),
        "length": float(length.mean()),
        "travel_time_s": float(length.mean() * dt),
        "fuel_l_per_100km": float(fuel.mean()) if fuel.size else math.nan,
        "pace_s_per_km": float(length.sum() * dt / max(progress.sum() / 1000.0, 1e-9)),
    }
    if K > 1:
        for k, sp in enumerate(env.specs):
            m = spec == k
            if m.any():
                out[f"{sp.name}/route_completion"] = float(rc[m].mean())
                out[f"{sp.name}/collision_rate"] = float(col[m].mean())
    return out
