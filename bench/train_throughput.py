"""End-to-end PPO training throughput: one JSON line per trainer.

Both trainers train on the same :class:`sim.env.DriveVectorEnv`: B environments of a 3-lane,
1.5 km highway with 32 vehicles each (the ego and 31 IDM/MOBIL cars), episodes ending and
resetting as in real training. Each is timed over whole PPO iterations (rollout + GAE + update),
after one warm-up iteration:

- ``gendrive``: :class:`policy.ppo.trainer.PPOTrainer` with ``configs/ppo/default.yaml``
  hyperparameters (64x64 tanh MLPs, 4 epochs x 4 minibatches) except B;
- ``sb3``: stable-baselines3's ``PPO("MlpPolicy")`` with the same B, T, epochs, minibatch size
  and network widths, on the same env through :class:`SB3VecEnv` (a thin adapter from our
  NEXT_STEP-autoreset VectorEnv to SB3's ``VecEnv`` API). Skipped, with a note, when
  ``stable_baselines3`` is not installed (it is not a project dependency).

    python bench/train_throughput.py                    # B = 256, T = 128, 3 iterations
    python bench/train_throughput.py --B 1024 --T 64 --threads 2

Each line: trainer, B, T, N, threads, env_steps_per_s (end to end), rollout_s and update_s per
iteration (SB3 reports only the total).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from policy.ppo.config import PPOConfig
from policy.ppo.trainer import PPOTrainer
from sim.env import DriveVectorEnv
from sim.metrics import MetricsConfig
from sim.scenario import EgoSpec, RoadSpec, ScenarioSpec, TrafficSpec

LANE_CONC = 400.0  # Beta concentration of the "lane" start's steer: std ~0.05, keeps the lane
VEHICLES = 32  # per env: the ego + 31 traffic cars, ~7 veh/km/lane on 1.5 km x 3 lanes

SPEC = ScenarioSpec(
    name="highway_n32",
    road=RoadSpec(kind="straight", num_lanes=3, lane_width=3.5, speed_limit=36.1, length=1500.0),
    ego=EgoSpec(lane=-2, s=100.0, speed=25.0, route_length=1000.0),
    traffic=TrafficSpec(count=VEHICLES - 1, s_range=(0.0, 1300.0), speed_frac=(0.6, 0.95)),
    time_limit_s=90.0,
)


def make_env(B: int, ends: str) -> DriveVectorEnv:
    """``ends="all"``: the default episode ends; ``"time"``: only the time limit and the route
    (collisions and off-road do not end episodes), so episodes are as long as a trained policy's
    and the simulator's reset cost, paid per episode, drops out."""
    metrics = MetricsConfig(
        terminate_on_collision=ends == "all", terminate_on_off_road=ends == "all"
    )
    return DriveVectorEnv(B, scenario=SPEC, metrics=metrics)


def bench_ours(ends: str, start: str, B: int, T: int, iters: int) -> dict[str, Any]:
    cfg = PPOConfig(num_envs=B, num_steps=T)
    tr = PPOTrainer(make_env(B, ends), cfg, seed=0)
    if start == "lane":
        with torch.no_grad():  # steer ~ Beta(LANE_CONC, LANE_CONC), accel ~ Beta(3, 2)
            head = tr.agent.actor[-1]
            assert isinstance(head, torch.nn.Linear)
            head.bias.copy_(torch.tensor([LANE_CONC - 1.0, 2.0, LANE_CONC - 1.0, 1.0]))
    env_s = 0.0
    env_step = tr.env.step

    def timed_step(actions: np.ndarray) -> Any:
        nonlocal env_s
        t0 = time.perf_counter()
        out = env_step(actions)
        env_s += time.perf_counter() - t0
        return out

    tr.env.step = timed_step  # type: ignore[method-assign]
    tr.start()
    tr.train_update(iters + 1)  # warm-up
    t_roll = t_learn = 0.0
    episodes = 0.0
    env_s = 0.0
    for _ in range(iters):  # train_update = collect (rollout) + learn (GAE + update)
        t0 = time.perf_counter()
        episodes += tr.collect()["episodes"]
        t1 = time.perf_counter()
        tr.learn()
        t_roll += t1 - t0
        t_learn += time.perf_counter() - t1
    return {
        "trainer": "gendrive",
        "env_steps_per_s": round(iters * B * T / (t_roll + t_learn), 1),
        "rollout_s": round(t_roll / iters, 3),
        "update_s": round(t_learn / iters, 3),
        "env_step_s": round(env_s / iters, 3),
        "trainer_us_per_env_step": round(1e6 * (t_roll - env_s) / (iters * B * T), 2),
        "episodes_per_1k_steps": round(1000 * episodes / (iters * B * T), 2),
    }


def bench_sb3(ends: str, start: str, B: int, T: int, iters: int) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

    class SB3VecEnv(VecEnv):  # type: ignore[misc]
        """SB3's VecEnv API over a DriveVectorEnv: SAME_STEP resets via ``reset_mask``."""

        def __init__(self, env: DriveVectorEnv) -> None:
            self.env = env
            super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
            self._actions = np.zeros((env.num_envs, 2), np.float32)
            self.episodes = 0

        def reset(self) -> np.ndarray:
            obs, _ = self.env.reset(seed=0)
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
            obs, rew, term, trunc, _ = self.env.step(self._actions)
            done = term | trunc
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            if done.any():
                self.episodes += int(done.sum())
                for b in np.nonzero(done)[0]:
                    infos[b] = {
                        "terminal_observation": obs[b].copy(),
                        "TimeLimit.truncated": bool(trunc[b] and not term[b]),
                    }
                # SB3 expects the reset observation now (SAME_STEP); reset just those envs.
                obs, _ = self.env.reset(options={"reset_mask": done})
            return obs, rew, done, infos

        def close(self) -> None:
            self.env.close()

        def get_attr(self, name: str, indices: Any = None) -> list[Any]:
            return [getattr(self.env, name)] * self.num_envs

        def set_attr(self, name: str, value: Any, indices: Any = None) -> None:
            setattr(self.env, name, value)

        def env_method(self, name: str, *args: Any, indices: Any = None, **kw: Any) -> list[Any]:
            return [getattr(self.env, name)(*args, **kw)]

        def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
            return [False] * self.num_envs

    cfg = PPOConfig()
    venv = SB3VecEnv(make_env(B, ends))
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=T,
        batch_size=B * T // cfg.num_minibatches,
        n_epochs=cfg.update_epochs,
        learning_rate=cfg.learning_rate,
        policy_kwargs={
            "net_arch": {"pi": cfg.hidden_sizes, "vf": cfg.hidden_sizes},
            # "lane": a narrow Gaussian around (0, 0) stays in its lane like our "lane" start.
            "log_std_init": -3.0 if start == "lane" else 0.0,
        },
        device="cpu",
        seed=0,
        verbose=0,
    )
    model.learn(total_timesteps=B * T)  # warm-up
    venv.episodes = 0
    t0 = time.perf_counter()
    model.learn(total_timesteps=iters * B * T, reset_num_timesteps=False)
    wall = time.perf_counter() - t0
    return {
        "trainer": "sb3",
        "env_steps_per_s": round(iters * B * T / wall, 1),
        "episodes_per_1k_steps": round(1000 * venv.episodes / (iters * B * T), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--B", type=int, default=256, help="environments")
    ap.add_argument("--T", type=int, default=128, help="steps per env per iteration")
    ap.add_argument("--iters", type=int, default=3, help="timed PPO iterations")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument(
        "--start",
        nargs="+",
        default=["lane", "init"],
        choices=["lane", "init"],
        help="policy at the start: lane (keeps its lane, like a trained policy) or init",
    )
    ap.add_argument(
        "--ends",
        nargs="+",
        default=["all"],
        choices=["all", "time"],
        help="episode ends: all (default env) or time (no collision/off-road ends; see make_env)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import stable_baselines3  # noqa: F401

        have_sb3 = not args.skip_sb3
    except ImportError:
        print(json.dumps({"trainer": "sb3", "skipped": "stable_baselines3 not installed"}))
        have_sb3 = False
    for start in args.start:
        for ends in args.ends:
            common = {"B": args.B, "T": args.T, "N": VEHICLES, "threads": args.threads,
                      "start": start, "ends": ends}  # fmt: skip
            run = (ends, start, args.B, args.T, args.iters)
            print(json.dumps({**bench_ours(*run), **common}), flush=True)
            if have_sb3:
                print(json.dumps({**bench_sb3(*run), **common}), flush=True)


if __name__ == "__main__":
    main()
