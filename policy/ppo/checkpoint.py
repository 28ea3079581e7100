"""Checkpoints: everything an exact resume needs, in one file written atomically.

A checkpoint (``torch.save`` of plain containers of tensors and Python values, loadable with
``weights_only=True``) holds:

- ``model``, ``optimizer``: the actor-critic and Adam state;
- ``obs_rms``, ``reward_scaler``: normaliser statistics (the policy is useless without them);
- ``global_step``, ``update``, ``obs``, ``ghost``: the trainer's counters and current input;
- ``rng``: torch's CPU (and CUDA) generator state;
- ``env``: the vector env's world state (every array of :class:`sim.state.WorldState`), each
  environment's numpy ``Generator`` state (all the simulator's randomness) and its episode
  bookkeeping, so the next rollout continues the same episodes;
- ``config``: the run's full config as a plain dict, ``obs_dim``, ``format``, ``version``.

:func:`load_checkpoint` and :func:`restore` check the file and every tensor's shape against the
live objects and raise :class:`CheckpointError` naming the file, the key and expected vs found.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policy.ppo.trainer import PPOTrainer
from sim.env import DriveVectorEnv

FORMAT = "gendrive.ppo"
VERSION = 1
REQUIRED = ("model", "optimizer", "obs_rms", "reward_scaler", "global_step", "update", "obs",
            "ghost", "rng", "env", "config", "obs_dim")  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the trainer; the message says why."""


# -- env state ----------------------------------------------------------------------------------


def _flatten(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            out[f.name] = torch.from_numpy(v.copy())
        elif dataclasses.is_dataclass(v):
            out[f.name] = _flatten(v)
        else:
            out[f.name] = v
    return out


def _unflatten(template: Any, data: dict[str, Any], where: str, num_envs: int) -> Any:
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(template):
        v = getattr(template, f.name)
        key = f"{where}.{f.name}"
        if f.name not in data:
            raise CheckpointError(f"missing key {key!r}")
        saved = data[f.name]
        if isinstance(v, np.ndarray):
            if not isinstance(saved, torch.Tensor):
                raise CheckpointError(f"{key}: expected a tensor, found {type(saved).__name__}")
            arr = saved.numpy()
            if arr.dtype != v.dtype or arr.shape[:1] != (num_envs,):
                raise CheckpointError(
                    f"{key}: expected dtype {v.dtype} with {num_envs} envs first, "
                    f"found {arr.dtype} of shape {tuple(arr.shape)}"
                )
            kw[f.name] = arr
        elif dataclasses.is_dataclass(v):
            kw[f.name] = _unflatten(v, saved, key, num_envs)
        else:
            kw[f.name] = saved
    return dataclasses.replace(template, **kw)


def env_state_dict(env: DriveVectorEnv) -> dict[str, Any]:
    """The vector env's complete mutable state (world, generators, episode counters)."""
    if env.state is None:
        raise ValueError("env_state_dict: reset the env first")
    st = env.get_env_state()
    return {
        "world": _flatten(st["world"]),
        "rngs": st["rngs"],
        "autoreset": torch.from_numpy(st["autoreset"]),
        "ep_return": torch.from_numpy(st["ep_return"]),
        "ep_length": torch.from_numpy(st["ep_length"]),
    }


def load_env_state(env: DriveVectorEnv, state: dict[str, Any]) -> None:
    """Inverse of :func:`env_state_dict`; the env must have been reset once (the template)."""
    if env.state is None:
        raise ValueError("load_env_state: reset the env first")
    B = env.num_envs
    if len(state["rngs"]) != B:
        raise CheckpointError(f"env.rngs: expected {B} generators, found {len(state['rngs'])}")
    world = _unflatten(env.state, state["world"], "env.world", B)
    env.set_env_state(
        {
            "world": world,
            "rngs": state["rngs"],
            "autoreset": state["autoreset"].numpy(),
            "ep_return": state["ep_return"].numpy(),
            "ep_length": state["ep_length"].numpy(),
        }
    )


# -- save / load --------------------------------------------------------------------------------


def save_checkpoint(path: Path, trainer: PPOTrainer, config: dict[str, Any], **extra: Any) -> None:
    """Write the trainer, its env and ``config`` to ``path`` atomically (tmp file + rename).

    ``extra`` entries (e.g. ``best_eval``) are stored alongside.
    """
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(trainer.device)
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        **trainer.state_dict(),
        "rng": rng,
        "env": env_state_dict(trainer.env),
        "config": config,
        "obs_dim": trainer.obs_dim,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        torch.save(ckpt, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint file and check its format and keys (not yet its shapes)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: format: expected {FORMAT!r}, found {found!r}")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: version: expected {VERSION}, found {ckpt.get('version')}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: missing keys {missing}")
    return ckpt


def _check_tensors(path: Path, where: str, expected: dict[str, Any], found: Any) -> None:
    if not isinstance(found, dict):
        raise CheckpointError(f"{path}: {where}: expected a dict, found {type(found).__name__}")
    for k, v in expected.items():
        if k not in found:
            raise CheckpointError(f"{path}: {where}.{k}: missing")
        f = found[k]
        if isinstance(v, torch.Tensor):
            if not isinstance(f, torch.Tensor):
                raise CheckpointError(f"{path}: {where}.{k}: expected a tensor, found {f!r}")
            if f.shape != v.shape:
                raise CheckpointError(
                    f"{path}: {where}.{k}: expected shape {tuple(v.shape)}, found {tuple(f.shape)}"
                )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise CheckpointError(f"{path}: {where}: unexpected keys {extra}")


def restore(trainer: PPOTrainer, ckpt: dict[str, Any], path: Path, with_env: bool = True) -> None:
    """Load a checkpoint into ``trainer`` (and its env, after a reset) and the torch RNG.

    Raises:
        CheckpointError: a tensor's shape or a key does not match; the message names them.
    """
    if ckpt["obs_dim"] != trainer.obs_dim:
        raise CheckpointError(
            f"{path}: obs_dim: expected {trainer.obs_dim}, found {ckpt['obs_dim']}"
        )
    _check_tensors(path, "model", trainer.agent.state_dict(), ckpt["model"])
    _check_tensors(path, "obs_rms", trainer.obs_rms.state_dict(), ckpt["obs_rms"])
    _check_tensors(path, "reward_scaler", trainer.reward_scaler.state_dict(), ckpt["reward_scaler"])
    _check_tensors(path, "trainer", {"obs": trainer.obs.cpu(), "ghost": trainer.ghost.cpu()},
                   {"obs": ckpt["obs"], "ghost": ckpt["ghost"]})  # fmt: skip
    try:
        trainer.load_state_dict(ckpt)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: optimizer: {e}") from e
    if with_env:
        try:
            load_env_state(trainer.env, ckpt["env"])
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from e
    torch.set_rng_state(ckpt["rng"]["torch"])
    if "cuda" in ckpt["rng"] and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], trainer.device)
