"""GAE against a hand-computed rollout with a truncation and a termination."""

from __future__ import annotations

import pytest
import torch

from policy.ppo.gae import gae


def test_gae_hand_computed_truncation_and_termination() -> None:
    # One env, 4 steps: truncated at t=1 (time limit), terminated at t=3.
    # gamma = 0.9, lambda = 0.5, so gamma * lambda = 0.45.
    r = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    v = torch.tensor([[0.5], [1.0], [1.5], [2.0]])
    nv = torch.tensor([[1.0], [3.0], [2.0], [9.0]])  # nv[1] = V(true final obs), nv[3] unused
    term = torch.tensor([[False], [False], [False], [True]])
    trunc = torch.tensor([[False], [True], [False], [False]])
    adv, ret = gae(r, v, nv, term, trunc, gamma=0.9, lam=0.5)
    # delta = [1 + .9*1 - .5, 2 + .9*3 - 1, 3 + .9*2 - 1.5, 4 - 2] = [1.4, 3.7, 3.3, 2.0]
    # A3 = 2.0; A2 = 3.3 + .45*2 = 4.2; A1 = 3.7 (cut at the truncation); A0 = 1.4 + .45*3.7
    expected = torch.tensor([[3.065], [3.7], [4.2], [2.0]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + v)


def test_truncation_bootstraps_but_termination_does_not() -> None:
    r = torch.zeros(1, 1)
    v = torch.zeros(1, 1)
    nv = torch.full((1, 1), 10.0)
    no = torch.zeros(1, 1, dtype=torch.bool)
    yes = torch.ones(1, 1, dtype=torch.bool)
    adv_trunc, _ = gae(r, v, nv, no, yes, gamma=0.5, lam=1.0)
    adv_term, _ = gae(r, v, nv, yes, no, gamma=0.5, lam=1.0)
    assert adv_trunc.item() == pytest.approx(5.0)  # gamma * V(final obs)
    assert adv_term.item() == 0.0


def test_gae_without_ends_is_discounted_sum_of_deltas_per_env() -> None:
    torch.manual_seed(0)
    T, B, gamma, lam = 6, 3, 0.97, 0.9
    r, v, nv = torch.randn(T, B), torch.randn(T, B), torch.randn(T, B)
    no = torch.zeros(T, B, dtype=torch.bool)
    adv, _ = gae(r, v, nv, no, no, gamma, lam)
    delta = r + gamma * nv - v
    for t in range(T):
        want = sum((gamma * lam) ** (k - t) * delta[k] for k in range(t, T))
        torch.testing.assert_close(adv[t], want)
