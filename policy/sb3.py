"""Stable-Baselines3 adapter: SB3's ``VecEnv`` API over the natively batched DriveVectorEnv.

:class:`SB3VecEnv` wraps one :class:`sim.env.DriveVectorEnv` (B environments stepped by one
batched call), so SB3 algorithms train on the simulator without B Python env objects or
subprocesses::

    from stable_baselines3 import PPO
    from policy.sb3 import SB3VecEnv
    from sim.env import DriveVectorEnv

    venv = SB3VecEnv(DriveVectorEnv(16))
    PPO("MlpPolicy", venv, n_steps=128).learn(100_000)

**Autoreset.** The two APIs end episodes differently:

- ``DriveVectorEnv`` (gymnasium ``NEXT_STEP``): the step that ends an episode returns the true
  final observation with ``terminated``/``truncated`` set; the *next* step ignores its action,
  resets that environment and returns the first observation with reward 0 (a "ghost" step).
- SB3 (``SAME_STEP``): the ending step returns ``done = True``, the *reset* observation in the
  batch, and the final one in ``infos[b]["terminal_observation"]``; there are no ghost steps.

The adapter converts on the ending step: it takes the step's observation for environments that
ended as ``terminal_observation`` (a copy), then resets just those environments at once with
``DriveVectorEnv.reset(options={"reset_mask": done})`` (no seed, so each environment's own
generator continues: the sequence of episodes is the one NEXT_STEP would have produced) and
returns the reset observations in their rows. The reset clears the env's pending autoreset, so
no ghost step ever happens. ``infos[b]["TimeLimit.truncated"]`` is ``truncated and not
terminated``, which SB3 uses to bootstrap the value of time-limited episodes from the terminal
observation. ``infos[b]["episode"]`` carries ``r`` (return), ``l`` (length) and ``t`` (the
episode's simulated duration [s], not Monitor's wall-clock time), so SB3 logs
``rollout/ep_rew_mean`` and ``ep_len_mean`` without a ``VecMonitor``.

The cost of the conversion is one extra observation of all B environments on steps where some
episode ended (``reset`` observes the whole batch); the sim's reset of the ended environments
is paid either way.

``stable_baselines3`` is imported when this module is (it is an optional dependency: nothing
else in the project imports this module). Without it, importing still works and constructing
:class:`SB3VecEnv` raises an ImportError that says what to install.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sim.env import DriveVectorEnv

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv as _VecEnvBase
else:
    try:
        from stable_baselines3.common.vec_env import VecEnv as _VecEnvBase
    except ImportError:  # optional dependency: fail at construction, with the fix

        class _VecEnvBase:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise ImportError(
                    "policy.sb3.SB3VecEnv needs stable-baselines3: pip install stable-baselines3"
                )


Indices = None | int | Iterable[int]


class SB3VecEnv(_VecEnvBase):
    """SB3 ``VecEnv`` over a :class:`DriveVectorEnv` (SAME_STEP autoreset; module docstring).

    Args:
        env: the batched environments (B = ``env.num_envs``); the adapter owns it from here
            (``close`` closes it).
        info_keys: keys of the env's per-step ``info`` to copy into each environment's info
            dict every step (e.g. ``("collision", "route_completed")``). Default none: SB3 needs
            none of them, and B dicts of copies per step cost time at large B.
    """

    def __init__(self, env: DriveVectorEnv, info_keys: Sequence[str] = ()) -> None:
        self.env = env
        self.info_keys = tuple(info_keys)
        self._actions: NDArray[np.float32] = np.zeros((env.num_envs, 2), np.float32)
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    # -- stepping -------------------------------------------------------------------------------

    def reset(self) -> NDArray[np.float32]:
        """Reset all environments with the seeds of the last :meth:`seed` call (then forget them).

        SB3 calls ``seed(s)`` before the first reset (``PPO(seed=s)``): environment b is then
        seeded with ``s + b``, as ``DriveVectorEnv.reset(seed=s)`` would.
        """
        seeds: list[int | None] = list(self._seeds)
        options = self._options[0] if self._options and self._options[0] else None
        obs, _ = self.env.reset(seed=seeds if any(s is not None for s in seeds) else None,
                                options=options)  # fmt: skip
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, np.float32)

    def step_wait(self) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_],
                                 list[dict[str, Any]]]:  # fmt: skip
        """Step all B environments; reset those whose episode ended (SAME_STEP)."""
        obs, rew, term, trunc, info = self.env.step(self._actions)
        done = term | trunc
        infos: list[dict[str, Any]] = [
            {k: info[k][b] for k in self.info_keys} for b in range(self.num_envs)
        ]
        if done.any():
            ep = info.get("episode")
            for b in np.flatnonzero(done):
                d = infos[b]
                d["terminal_observation"] = obs[b].copy()
                d["TimeLimit.truncated"] = bool(trunc[b] and not term[b])
                if ep is not None:
                    d["episode"] = {"r": float(ep["r"][b]), "l": int(ep["l"][b]),
                                    "t": float(ep["t"][b])}  # fmt: skip
            # SB3 wants the first observation of the next episode now: reset only the ended
            # environments (their generators continue; see module docstring).
            obs, _ = self.env.reset(options={"reset_mask": done})
        return obs, rew, done, infos

    def close(self) -> None:
        self.env.close()

    # -- attribute access -------------------------------------------------------------------------
    # There is one env object behind all B "sub-environments": attributes are the vector env's,
    # repeated once per index asked for.

    def _indices(self, indices: Indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: Indices = None) -> list[Any]:
        value = getattr(self.env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Indices = None) -> None:
        # One object: setting for a subset would silently set it for all, so refuse.
        if len(self._indices(indices)) != self.num_envs:
            raise ValueError(f"set_attr({attr_name!r}): the B environments share one object")
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Indices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call ``method_name`` once on the vector env; its result is repeated per index."""
        out = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [out for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[Any], indices: Indices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[NDArray[np.uint8] | None]:
        frames = self.env.render()
        return [None] * self.num_envs if frames is None else list(frames)
