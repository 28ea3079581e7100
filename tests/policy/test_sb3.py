"""SB3VecEnv: SB3 PPO trains on it; its SAME_STEP autoreset keeps the true final observations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sim.env import DriveVectorEnv

pytest.importorskip("stable_baselines3")

from policy.sb3 import SB3VecEnv  # after the importorskip: it imports stable_baselines3

B = 4


def test_sb3_ppo_trains_on_the_adapter() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

    venv = SB3VecEnv(DriveVectorEnv(B))
    assert isinstance(venv, VecEnv)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    # Episodes ended (random policies leave the road fast) and reached SB3's episode logging.
    assert len(model.ep_info_buffer) > 0
    assert all({"r", "l", "t"} <= set(ep) for ep in model.ep_info_buffer)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (B, 2)
    venv.close()


def test_terminal_observations_are_the_true_final_observations() -> None:
    """Against B single-env references with NEXT_STEP autoreset, stepped with the same actions.

    Environment b of the adapter (seeded ``s``) must follow reference b (seeded ``s + b``): on
    an ending step, ``terminal_observation`` is the reference's final observation and the
    returned observation is the first one of the reference's next episode (after its ghost
    step), with the same reward, flags and episode statistics.
    """
    seed = 7
    venv = SB3VecEnv(DriveVectorEnv(B), info_keys=("collision",))
    venv.seed(seed)
    obs = venv.reset()
    refs = [DriveVectorEnv(1) for _ in range(B)]
    ref_obs = np.concatenate([r.reset(seed=seed + b)[0] for b, r in enumerate(refs)])
    np.testing.assert_array_equal(obs, ref_obs)

    rng = np.random.default_rng(0)
    ended = np.zeros(B, np.int64)
    for _ in range(60):
        actions = rng.uniform(-1, 1, (B, 2)).astype(np.float32)
        obs, rew, done, infos = venv.step(actions)
        for b, ref in enumerate(refs):
            r_obs, r_rew, r_term, r_trunc, r_info = ref.step(actions[b : b + 1])
            assert rew[b] == r_rew[0]
            assert done[b] == (r_term[0] or r_trunc[0])
            assert infos[b]["collision"] == r_info["collision"][0]
            if not done[b]:
                assert "terminal_observation" not in infos[b]
                np.testing.assert_array_equal(obs[b], r_obs[0])
                continue
            ended[b] += 1
            np.testing.assert_array_equal(infos[b]["terminal_observation"], r_obs[0])
            assert infos[b]["TimeLimit.truncated"] == bool(r_trunc[0] and not r_term[0])
            assert infos[b]["episode"]["r"] == pytest.approx(r_info["episode"]["r"][0])
            assert infos[b]["episode"]["l"] == r_info["episode"]["l"][0]
            # The reference's ghost step resets it (its action is ignored).
            g_obs, g_rew, g_term, g_trunc, _ = ref.step(np.zeros((1, 2), np.float32))
            assert g_rew[0] == 0.0 and not g_term[0] and not g_trunc[0]
            np.testing.assert_array_equal(obs[b], g_obs[0])
    assert (ended >= 2).all(), ended  # several episode ends per env were checked


def test_attribute_access() -> None:
    venv = SB3VecEnv(DriveVectorEnv(B))
    assert venv.get_attr("num_envs") == [B] * B
    assert venv.get_attr("render_mode", indices=[0, 2]) == [None, None]
    assert venv.env_is_wrapped(object) == [False] * B
    with pytest.raises(ValueError, match="share one object"):
        venv.set_attr("render_mode", None, indices=0)


def test_without_sb3_the_module_imports_and_construction_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['stable_baselines3'] = None\n"  # makes the import fail
        "from policy.sb3 import SB3VecEnv\n"
        "from sim.env import DriveVectorEnv\n"
        "try:\n"
        "    SB3VecEnv(DriveVectorEnv(1))\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install stable-baselines3" in res.stdout
