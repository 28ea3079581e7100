"""The Beta policy: actions inside the box, a normalised density, entropy and log-prob agree."""

from __future__ import annotations

import math

import torch

from policy.ppo.networks import ActorCritic


def _agent(scale: float = 1.0) -> ActorCritic:
    torch.manual_seed(0)
    agent = ActorCritic(obs_dim=5, hidden_sizes=[16, 16])
    with torch.no_grad():  # larger head weights: concentrated, skewed Betas
        agent.actor[-1].weight.mul_(scale / 0.01)
    return agent


def test_actions_stay_inside_the_box_even_for_extreme_concentrations() -> None:
    agent = _agent(scale=30.0)
    obs = torch.randn(4096, 5) * 5
    with torch.no_grad():
        a, logp, v = agent.act(obs)
        a_det, _, _ = agent.act(obs, deterministic=True)
    assert a.shape == (4096, 2) and logp.shape == (4096,) and v.shape == (4096,)
    assert a.abs().max() < 1.0 and a_det.abs().max() < 1.0
    assert torch.isfinite(logp).all()


def test_density_integrates_to_one_on_the_action_box() -> None:
    agent = _agent(scale=1.0)
    n = 400
    g = (torch.arange(n) + 0.5) / n * 2 - 1  # cell centres on [-1, 1]
    steer, accel = torch.meshgrid(g, g, indexing="ij")
    a = torch.stack([steer.flatten(), accel.flatten()], -1)
    obs = torch.randn(1, 5).expand(a.shape[0], 5)
    with torch.no_grad():
        logp, entropy, _ = agent.evaluate(obs, a)
    cell = (2.0 / n) ** 2
    assert math.isclose(float(logp.exp().sum() * cell), 1.0, rel_tol=1e-2)
    # The closed-form entropy is the density-weighted -log p.
    assert math.isclose(float(-(logp.exp() * logp).sum() * cell), float(entropy[0]), rel_tol=1e-2)


def test_logprob_of_sampled_actions_matches_act_and_entropy_by_monte_carlo() -> None:
    agent = _agent(scale=5.0)
    obs = torch.randn(1, 5).expand(20000, 5)
    with torch.no_grad():
        a, logp_act, _ = agent.act(obs)
        logp, entropy, _ = agent.evaluate(obs, a)
    torch.testing.assert_close(logp, logp_act, rtol=1e-4, atol=1e-4)
    assert math.isclose(float(-logp.mean()), float(entropy[0]), abs_tol=0.05)


def test_initial_policy_is_centred() -> None:
    agent = _agent(scale=0.01)
    with torch.no_grad():
        a = agent(torch.randn(64, 5))
    assert a.abs().max() < 0.05
