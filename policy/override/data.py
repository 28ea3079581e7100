"""Takeover data for learning: one ``.npz`` per drive session, and its loader.

Human-in-the-loop methods learn from two signals a takeover produces:

- **demonstrations**: the human's actions on the steps they controlled (behaviour cloning,
  the human branch of PVP/HACO);
- **a cost of being taken over**. HACO (Li et al. 2022) charges the policy once per takeover, at
  its start, ``1 - cos(a_policy, a_human)``: 0 when the policy already did what the human did, 2
  when it did the opposite. When either action is (almost) zero the angle is undefined and the
  cost is 1, "no agreement either way". PVP (Peng et al. 2023) instead labels every intervened
  step (:meth:`TakeoverData.pvp_cost`).

File format (``takeover_data.npz``, ``numpy.savez``, no pickles), T rows in time order, one per
tick of each environment that was running:

====================  ========  ======  ==================================================
key                   shape     dtype   meaning
====================  ========  ======  ==================================================
obs                   (T, D)    f32     observation before the step (:mod:`sim.observation`)
next_obs              (T, D)    f32     observation after it (before any reset)
policy_action         (T, 2)    f32     the policy's action (NaN: no policy)
human_action          (T, 2)    f32     the human's command as an action
executed_action       (T, 2)    f32     what the car did (after arbitration and shield)
intervened            (T,)      bool    the human was in control (HUMAN or ESTOP)
takeover_start        (T,)      bool    a takeover started this step
takeover_cost         (T,)      f32     HACO cost at takeover starts, 0 elsewhere
mode                  (T,)      i8      :class:`policy.override.arbiter.Mode`
shield                (T,)      bool    the shield changed the action
reward                (T,)      f32     the step's reward
terminated            (T,)      bool    the episode ended (collision, completion, ...)
truncated             (T,)      bool    the episode hit its time limit
episode               (T,)      i32     episode number in the session
env                   (T,)      i32     environment index
step                  (T,)      i32     step within the episode
meta                  ()        str     JSON: format, version, dt, scenario, policy, device
====================  ========  ======  ==================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # the supervisor imports this module; only the annotation needs it back
    from policy.override.supervisor import OverrideStep

DATA_FORMAT = "gendrive.takeover_data"
DATA_VERSION = 1
MIN_ACTION_NORM = 1e-6  # [-] below this an action has no direction: HACO cost 1

F32 = NDArray[np.float32]
BoolArr = NDArray[np.bool_]

# key -> (dtype, trailing shape); -1 is the observation size.
SCHEMA: dict[str, tuple[type, tuple[int, ...]]] = {
    "obs": (np.float32, (-1,)),
    "next_obs": (np.float32, (-1,)),
    "policy_action": (np.float32, (2,)),
    "human_action": (np.float32, (2,)),
    "executed_action": (np.float32, (2,)),
    "intervened": (np.bool_, ()),
    "takeover_start": (np.bool_, ()),
    "takeover_cost": (np.float32, ()),
    "mode": (np.int8, ()),
    "shield": (np.bool_, ()),
    "reward": (np.float32, ()),
    "terminated": (np.bool_, ()),
    "truncated": (np.bool_, ()),
    "episode": (np.int32, ()),
    "env": (np.int32, ()),
    "step": (np.int32, ()),
}


def haco_cost(policy_action: NDArray[np.floating], human_action: NDArray[np.floating]) -> F32:
    """``1 - cos`` of the angle between the actions, (B, 2) -> (B,); 1 where undefined."""
    p = np.asarray(policy_action, np.float64)
    h = np.asarray(human_action, np.float64)
    npn, nh = np.linalg.norm(p, axis=-1), np.linalg.norm(h, axis=-1)
    ok = np.isfinite(npn) & (npn > MIN_ACTION_NORM) & (nh > MIN_ACTION_NORM)
    cos = np.where(ok, (p * h).sum(-1) / np.where(ok, npn * nh, 1.0), 0.0)
    return (1.0 - np.clip(cos, -1.0, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class TakeoverData:
    """One or more sessions of takeover data (fields: the module table)."""

    obs: F32
    next_obs: F32
    policy_action: F32
    human_action: F32
    executed_action: F32
    intervened: BoolArr
    takeover_start: BoolArr
    takeover_cost: F32
    mode: NDArray[np.int8]
    shield: BoolArr
    reward: F32
    terminated: BoolArr
    truncated: BoolArr
    episode: NDArray[np.int32]
    env: NDArray[np.int32]
    step: NDArray[np.int32]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def demonstrations(self) -> tuple[F32, F32]:
        """(obs, human action) of the steps the human controlled: behaviour-cloning pairs."""
        m = self.intervened
        return self.obs[m], self.human_action[m]

    def pvp_cost(self) -> F32:
        """PVP's label: 1 on every intervened step, 0 elsewhere."""
        return self.intervened.astype(np.float32)

    @property
    def takeovers(self) -> int:
        return int(self.takeover_start.sum())


def concat(parts: Sequence[TakeoverData]) -> TakeoverData:
    """Rows of several sessions one after the other (``meta`` of the first, plus ``sessions``)."""
    if not parts:
        raise ValueError("concat: no takeover data given")
    kw: dict[str, Any] = {k: np.concatenate([getattr(p, k) for p in parts]) for k in SCHEMA}
    return TakeoverData(**kw, meta={**parts[0].meta, "sessions": [p.meta for p in parts]})


class TakeoverDataWriter:
    """Collects rows during a session and writes the ``.npz`` atomically.

    Args:
        meta: JSON-able session description stored under ``meta``.
    """

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = {"format": DATA_FORMAT, "version": DATA_VERSION, **meta}
        self._rows: dict[str, list[NDArray[Any]]] = {k: [] for k in SCHEMA}

    def __len__(self) -> int:
        return sum(a.shape[0] for a in self._rows["obs"])

    def add(self, mask: BoolArr, **columns: NDArray[Any]) -> None:
        """Append the rows of the environments in ``mask`` (B,); one (B, ...) array per key.

        Raises:
            KeyError: a key of the module table is missing or unknown.
        """
        if set(columns) != set(SCHEMA):
            missing, extra = set(SCHEMA) - set(columns), set(columns) - set(SCHEMA)
            raise KeyError(f"takeover data row: missing {sorted(missing)}, unknown {sorted(extra)}")
        for k, (dtype, _) in SCHEMA.items():
            self._rows[k].append(np.asarray(columns[k], dtype)[mask])

    def add_step(
        self,
        mask: BoolArr,
        step: OverrideStep,
        obs: NDArray[Any],
        next_obs: NDArray[Any],
        reward: NDArray[Any],
        terminated: NDArray[Any],
        truncated: NDArray[Any],
        episode: NDArray[Any],
        env: NDArray[Any],
        step_index: NDArray[Any],
    ) -> None:
        """:meth:`add` one supervised tick: the step's actions, modes and costs with the
        transition around it (obs/next_obs (B, D), the rest (B,))."""
        self.add(
            mask,
            obs=obs,
            next_obs=next_obs,
            policy_action=step.policy_action,
            human_action=step.human_action,
            executed_action=step.executed_action,
            intervened=step.intervened,
            takeover_start=step.takeover_start,
            takeover_cost=step.takeover_cost,
            mode=step.mode,
            shield=step.shield_aeb | step.shield_invalid,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            episode=episode,
            env=env,
            step=step_index,
        )

    def save(self, path: str | Path) -> Path:
        """Write everything collected so far to ``path`` (via a temporary file)."""
        p = Path(path)
        arrays: dict[str, Any] = {}
        for k, (dtype, trail) in SCHEMA.items():
            rows = self._rows[k]
            if rows:
                arrays[k] = np.concatenate(rows).astype(dtype)
            else:
                arrays[k] = np.zeros((0, *(t if t >= 0 else 0 for t in trail)), dtype)
        arrays["meta"] = np.array(json.dumps(self.meta))
        tmp = p.with_name(p.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, p)
        return p


def load_takeover_data(path: str | Path) -> TakeoverData:
    """Read and check one session's ``.npz``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not takeover data of a known version, a missing key, a wrong dtype or shape;
            the message names the file and the key.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: takeover data not found")
    with np.load(p, allow_pickle=False) as z:
        if "meta" not in z:
            raise ValueError(f"{p}: no 'meta' key: not gendrive takeover data")
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != DATA_FORMAT or meta.get("version") != DATA_VERSION:
            raise ValueError(
                f"{p}: meta: expected format {DATA_FORMAT!r} version {DATA_VERSION}, got "
                f"{meta.get('format')!r} version {meta.get('version')!r}"
            )
        arrays: dict[str, Any] = {}
        T: int | None = None
        D: int | None = None
        for k, (dtype, trail) in SCHEMA.items():
            if k not in z:
                raise ValueError(f"{p}: missing key {k!r}")
            a = z[k]
            if a.dtype != np.dtype(dtype):
                raise ValueError(f"{p}: {k}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
            T = a.shape[0] if T is None else T
            if trail == (-1,):
                D = a.shape[1] if D is None and a.ndim == 2 else D
            want = (T, *(t if t >= 0 else D for t in trail))
            if a.shape != want:
                raise ValueError(f"{p}: {k}: expected shape {want}, got {a.shape}")
            arrays[k] = a
    return TakeoverData(**arrays, meta=meta)


__all__ = [
    "DATA_FORMAT",
    "DATA_VERSION",
    "SCHEMA",
    "TakeoverData",
    "TakeoverDataWriter",
    "concat",
    "haco_cost",
    "load_takeover_data",
]
