"""Behaviour cloning warm start: imitate a driver (the rule-based one) before PPO.

A PPO policy learns driving from scratch slowly because the reward of staying on the road and
keeping distance is only discovered by exploration. Cloning the privileged rule-based driver
(:class:`policy.rule_based.RuleBasedDriver`) gives PPO a competent starting policy in seconds;
PPO then improves on it with the reward (fuel, comfort, ...), as in Roach's and CaRL's
pipelines of imitation followed by RL fine-tuning.

Data: DAgger (Ross, Gordon, Bagnell 2011). Round 0 drives with the expert and records
``(observation, expert action)``; each later round drives with the current clone (its mean
action) and still records the *expert's* action in the states the clone visits, so the clone
learns to recover from its own mistakes (plain cloning drifts off the states it was trained on).
The expert keeps its own lane-change bookkeeping from the world state, so it labels states it
did not choose.

Loss: the Beta policy's negative log-likelihood of the expert action, ``x = (a + 1) / 2``
clipped to ``[BC_X_MARGIN, 1 - BC_X_MARGIN]`` (full brake is ``a = -1``, where the Beta density
vanishes), plus ``value_coef`` times a regression of the critic on the discounted return
observed in the demonstrations, so PPO's first advantages are not pure critic noise. The
observation normaliser is fitted to the demonstrations first (and keeps updating in PPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from policy.ppo.networks import ActorCritic
from policy.ppo.normalize import RunningMeanStd
from sim.env import DriveVectorEnv
from sim.road import LaneGraph
from sim.state import WorldState

BC_X_MARGIN = 0.01  # Beta support margin for the cloned action (x in [0.01, 0.99])


class Expert(Protocol):
    def act(self, state: WorldState, road: LaneGraph) -> NDArray[np.float32]: ...

    def reset(self, mask: NDArray[np.bool_]) -> None: ...


@dataclass
class BCConfig:
    """Behaviour-cloning warm start of ``gendrive train`` (off when ``steps`` is 0)."""

    steps: int = 0
    """Environment steps of demonstrations per DAgger round (0: no warm start)."""
    rounds: int = 3
    """DAgger rounds: round 0 drives with the expert, later rounds with the clone."""
    epochs: int = 4
    """Passes over all the data collected so far after each round."""
    batch_size: int = 2048
    """Minibatch size of the cloning updates."""
    learning_rate: float = 1e-3
    """Adam step size of the cloning updates."""
    value_coef: float = 0.5
    """Weight of the critic's regression on the demonstrations' discounted returns."""
    expert_lane_change: bool = True
    """Whether the rule-based expert changes lanes (MOBIL). A lane change is a discrete
    choice a unimodal Beta policy can only average (half a change drifts onto the marking), so
    cloning a lane-keeping expert and leaving lane changes to PPO can clone more cleanly."""
    expert_speed_factor: float = 1.0
    """The expert's desired speed as a fraction of the limit (``RuleBasedParams.speed_factor``)."""
    expert_a_max: float = 2.0
    """The expert's IDM maximum acceleration [m/s^2] (``RuleBasedParams.a_max``): an eco start
    clones a gentler expert (1.0 uses about 16 % less fuel on the highway suite)."""
    guide_a_max: float | None = None
    """The PPO guide's ``a_max`` (``ppo.guide_coef``; the guide is this expert otherwise):
    e.g. clone a gentle expert but shield with the standard driver (2.0)."""


@dataclass
class Demonstrations:
    """Raw observations (M, D), expert actions (M, 2), discounted returns (M,)."""

    obs: Tensor
    actions: Tensor
    returns: Tensor


def collect(
    env: DriveVectorEnv,
    expert: Expert,
    steps: int,
    seed: int,
    gamma: float,
    learner: ActorCritic | None = None,
    obs_rms: RunningMeanStd | None = None,
    obs_clip: float = 10.0,
) -> Demonstrations:
    """Drive ``steps`` env steps (rounded up to whole vector steps) and record the expert.

    Args:
        env: the environments (reset here with ``seed``).
        expert: labels every state with its action.
        steps: env steps to record.
        seed: env b is reset with ``seed + b``.
        gamma: discount of the recorded returns.
        learner: when given, its mean action is executed instead of the expert's (DAgger).
        obs_rms: the learner's observation normaliser (needed with ``learner``).
        obs_clip: as in training.

    Returns:
        The valid steps (autoreset ghost steps, whose action the env ignores, are left out).
    """
    B = env.num_envs
    T = max(1, math.ceil(steps / B))
    obs_np, _ = env.reset(seed=seed)
    expert.reset(np.ones(B, np.bool_))
    obs_buf = np.zeros((T, B, obs_np.shape[1]), np.float32)
    act_buf = np.zeros((T, B, 2), np.float32)
    rew_buf = np.zeros((T, B), np.float64)
    end_buf = np.zeros((T, B), np.bool_)
    valid = np.zeros((T, B), np.bool_)
    ghost = np.zeros(B, np.bool_)
    device = next(learner.parameters()).device if learner is not None else torch.device("cpu")
    for t in range(T):
        assert env.state is not None
        a_exp = expert.act(env.state, env.road)
        obs_buf[t], act_buf[t], valid[t] = obs_np, a_exp, ~ghost
        if learner is None:
            a_run = a_exp
        else:
            x = torch.from_numpy(obs_np).to(device)
            if obs_rms is not None:
                x = obs_rms.normalize(x, obs_clip)
            with torch.no_grad():
                a_run = learner(x).cpu().numpy()
        obs_np, rew, term, trunc, _ = env.step(a_run)
        rew_buf[t] = rew
        end = term | trunc
        end_buf[t] = end
        if ghost.any():  # the env reset these envs on this step: forget their lane changes
            expert.reset(ghost)
        ghost = end
    # Discounted returns, cut at episode ends; the rollout's last steps see a truncated sum
    # (a slight underestimate, fine for a warm start of the critic).
    ret = np.zeros((T, B), np.float64)
    acc = np.zeros(B, np.float64)
    for t in range(T - 1, -1, -1):
        acc = rew_buf[t] + gamma * acc * ~end_buf[t]
        ret[t] = acc
    m = valid.reshape(-1)
    return Demonstrations(
        torch.from_numpy(obs_buf.reshape(T * B, -1)[m]),
        torch.from_numpy(act_buf.reshape(T * B, 2)[m]),
        torch.from_numpy(ret.reshape(-1)[m].astype(np.float32)),
    )


def fit(
    agent: ActorCritic,
    obs_rms: RunningMeanStd | None,
    data: Demonstrations,
    cfg: BCConfig,
    generator: torch.Generator,
    obs_clip: float = 10.0,
    return_scale: float = 1.0,
) -> dict[str, float]:
    """Clone the expert's actions into ``agent`` (in place); returns the last epoch's losses.

    ``return_scale`` divides the returns the critic regresses on (PPO's reward scaling makes
    the critic predict scaled returns).
    """
    device = next(agent.parameters()).device
    obs = data.obs.to(device)
    if obs_rms is not None:
        obs = obs_rms.normalize(obs, obs_clip)
    x = ((data.actions.to(device) + 1.0) * 0.5).clamp(BC_X_MARGIN, 1.0 - BC_X_MARGIN)
    ret = data.returns.to(device) / return_scale
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)
    M = obs.shape[0]
    nll_sum = v_sum = 0.0
    for _ in range(cfg.epochs):
        perm = torch.randperm(M, generator=generator).to(device)
        nll_sum = v_sum = 0.0
        batches = 0
        for i in range(0, M, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            d = agent.dist(obs[idx])
            nll = -d.log_prob(x[idx]).sum(-1).mean()  # type: ignore[no-untyped-call]
            v_loss = (agent.value(obs[idx]) - ret[idx]).square().mean()
            loss = nll + cfg.value_coef * v_loss
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
            opt.step()
            nll_sum += float(nll.detach())
            v_sum += float(v_loss.detach())
            batches += 1
        nll_sum /= max(batches, 1)
        v_sum /= max(batches, 1)
    with torch.no_grad():
        mean_a = agent(obs)
        mae = (mean_a - data.actions.to(device)).abs().mean(0)
    return {
        "bc/nll": nll_sum,
        "bc/value_loss": v_sum,
        "bc/steer_mae": float(mae[0]),
        "bc/accel_mae": float(mae[1]),
        "bc/samples": float(M),
    }


def warm_start(
    agent: ActorCritic,
    obs_rms: RunningMeanStd | None,
    env: DriveVectorEnv,
    expert: Expert,
    cfg: BCConfig,
    seed: int,
    gamma: float,
    obs_clip: float = 10.0,
    log: list[dict[str, float]] | None = None,
) -> None:
    """DAgger rounds of :func:`collect` and :func:`fit` (see the module docstring).

    Environments are reset with seeds ``seed + r * 10_000_000 + b`` in round r, away from the
    seeds PPO and its evaluation use.
    """
    gen = torch.Generator().manual_seed(seed)
    parts: list[Demonstrations] = []
    scale = 1.0
    for r in range(cfg.rounds):
        learner = agent if r > 0 else None
        demo = collect(env, expert, cfg.steps, seed + r * 10_000_000 + 1, gamma, learner,
                       obs_rms, obs_clip)  # fmt: skip
        if r == 0:
            if obs_rms is not None:
                obs_rms.update(demo.obs.to(obs_rms.mean.device))
            scale = max(float(demo.returns.std()), 1e-3)
        parts.append(demo)
        data = Demonstrations(
            torch.cat([p.obs for p in parts]),
            torch.cat([p.actions for p in parts]),
            torch.cat([p.returns for p in parts]),
        )
        stats = fit(agent, obs_rms, data, cfg, gen, obs_clip, return_scale=scale)
        stats["bc/round"] = float(r)
        if log is not None:
            log.append(stats)
