"""Running observation statistics match numpy over the concatenated batches."""

from __future__ import annotations

import numpy as np
import torch

from policy.ppo.normalize import RewardScaler, RunningMeanStd


def test_running_mean_std_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 4)) * [1, 10, 0.1, 1] for n in (1, 7, 128, 0, 33)]
    rms = RunningMeanStd((4,))
    for b in batches:
        rms.update(torch.from_numpy(b).float())
    data = np.concatenate(batches).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(rms.mean.numpy(), data.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rms.var.numpy(), data.var(0), rtol=1e-9)
    assert rms.count.item() == len(data)
    z = rms.normalize(torch.from_numpy(data).float(), clip=10.0)
    assert z.dtype == torch.float32
    np.testing.assert_allclose(z.numpy().mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.numpy().std(0), 1.0, atol=1e-4)


def test_reward_scaler_tracks_discounted_returns_and_resets_at_episode_ends() -> None:
    sc = RewardScaler(num_envs=2, gamma=0.5)
    valid = torch.tensor([True, False])  # env 1 is on a ghost step: untouched
    sc(torch.tensor([1.0, 0.0], dtype=torch.float64), valid, clip=10.0)
    sc(torch.tensor([1.0, 0.0], dtype=torch.float64), valid, clip=10.0)
    np.testing.assert_allclose(sc.ret.numpy(), [1.5, 0.0])
    np.testing.assert_allclose(sc.rms.mean.item(), 1.25)  # mean of the returns 1.0 and 1.5
    sc.episode_end(torch.tensor([True, False]))
    assert sc.ret[0].item() == 0.0
