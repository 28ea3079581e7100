"""The PPO update (Schulman et al. 2017): clipped surrogate, clipped value loss, entropy bonus.

Per minibatch, with ``ratio = pi(a | s) / pi_old(a | s)`` and advantages ``A``::

    L_pi  = mean(max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)))
    L_V   = 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))
    loss  = L_pi - ent_coef * mean(entropy) + vf_coef * L_V

followed by a global gradient-norm clip and an Adam step. The update stops early once the
approximate KL ``mean((ratio - 1) - log ratio)`` (Schulman's k3 estimator) exceeds
``target_kl``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from policy.ppo.config import PPOConfig
from policy.ppo.networks import ActorCritic


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    cfg: PPOConfig,
    obs: Tensor,
    actions: Tensor,
    logprobs: Tensor,
    values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    guide_actions: Tensor | None = None,
) -> dict[str, float]:
    """Run ``cfg.update_epochs`` epochs of minibatch PPO over a flat batch of M transitions.

    Args:
        agent: the actor-critic, updated in place.
        optimizer: its optimiser.
        cfg: hyperparameters.
        obs: (M, D) normalised observations.
        actions: (M, A) actions taken.
        logprobs: (M,) their log-probabilities at collection time.
        values: (M,) V(s) at collection time.
        advantages: (M,) GAE advantages.
        returns: (M,) value targets.
        guide_actions: (M, A) a guide driver's actions; with ``cfg.guide_coef > 0`` their
            negative log-likelihood on ``cfg.guide_dims`` is added to the loss (weighted).

    Returns:
        Means over the minibatches done: ``policy_loss``, ``value_loss``, ``entropy``,
        ``approx_kl``, ``old_approx_kl``, ``clipfrac``, ``guide_loss`` (0 when off), plus
        ``epochs`` (fractional when the KL stop hit mid-epoch) and ``explained_variance`` of
        the collected values.
    """
    M = obs.shape[0]
    mb_size = max(1, M // cfg.num_minibatches)
    sums = torch.zeros(7, dtype=torch.float64, device=obs.device)
    guided = guide_actions is not None and cfg.guide_coef > 0
    gdims = torch.as_tensor(list(cfg.guide_dims), dtype=torch.long, device=obs.device)
    # With guide_executes the guided dims were the guide's, not sampled: not in the surrogate.
    free = [d for d in range(actions.shape[1]) if d not in cfg.guide_dims]
    pdims = (
        torch.as_tensor(free, dtype=torch.long, device=obs.device)
        if guided and cfg.guide_executes
        else None
    )
    zero = torch.zeros((), device=obs.device)
    n_mb = 0
    stop = False
    for _epoch in range(cfg.update_epochs):
        perm = torch.randperm(M, device=obs.device)
        for start in range(0, M - mb_size + 1, mb_size):
            mb = perm[start : start + mb_size]
            new_logp, entropy, new_value = agent.evaluate(obs[mb], actions[mb], pdims)
            logratio = new_logp - logprobs[mb]
            ratio = logratio.exp()
            with torch.no_grad():
                old_approx_kl = (-logratio).mean()
                approx_kl = ((ratio - 1.0) - logratio).mean()
                clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()

            mb_adv = advantages[mb]
            if cfg.norm_adv:
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)

            # Clipped surrogate: the pessimistic (max of negatives) of the two objectives.
            pg_loss = torch.max(
                -mb_adv * ratio,
                -mb_adv * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef),
            ).mean()

            if cfg.clip_vloss:
                v_clipped = values[mb] + (new_value - values[mb]).clamp(
                    -cfg.clip_coef, cfg.clip_coef
                )
                v_err = torch.max(
                    (new_value - returns[mb]).square(), (v_clipped - returns[mb]).square()
                )
                v_loss = 0.5 * v_err.mean()
            else:
                v_loss = 0.5 * (new_value - returns[mb]).square().mean()

            ent = entropy.mean()
            loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
            g_loss = zero
            if guided:
                assert guide_actions is not None
                g_loss = -agent.log_prob_dims(obs[mb], guide_actions[mb], gdims).mean()
                loss = loss + cfg.guide_coef * g_loss

            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            optimizer.step()

            mb_stats = torch.stack(
                [pg_loss, v_loss, ent, approx_kl, old_approx_kl, clipfrac, g_loss.detach()]
            )
            sums += mb_stats.detach().double()
            n_mb += 1
            if cfg.target_kl is not None and approx_kl.item() > cfg.target_kl:
                stop = True
                break
        if stop:
            break

    means = (sums / max(n_mb, 1)).tolist()
    var_y = returns.var()
    explained_var = float("nan") if var_y == 0 else float(1.0 - (returns - values).var() / var_y)
    per_epoch = max(1, M // mb_size)
    return {
        "policy_loss": means[0],
        "value_loss": means[1],
        "entropy": means[2],
        "approx_kl": means[3],
        "old_approx_kl": means[4],
        "clipfrac": means[5],
        "guide_loss": means[6],
        "epochs": n_mb / per_epoch,
        "explained_variance": explained_var,
    }
