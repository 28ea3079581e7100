"""Gymnasium environments over the embedded simulator.

:class:`DriveVectorEnv` is a native ``gymnasium.vector.VectorEnv``: one object owns all B
environments as arrays and steps them with one call of the batched kernels. Autoreset is
``NEXT_STEP``: the step after an episode ends resets that environment and returns its first
observation with reward 0 and ``terminated = truncated = False``. Environment ``b`` of a vector
env reset with ``seed=s`` behaves exactly like :class:`DriveEnv` reset with ``seed=s + b``.

:class:`DriveEnv` (``gymnasium.make("gendrive/Drive-v0")``) is the single-environment view (no
autoreset), for interactive driving and ``check_env``.

Scenarios come from a *source*: one :class:`ScenarioSpec` (random background traffic is redrawn
at every reset from the env's generator unless the spec fixes ``seed``), a list of specs (one
drawn per episode) or a path to a spec file. All specs of one env share one road.

``info`` per step carries ``reward_terms`` (a dict of (B,) arrays, see :mod:`sim.metrics`),
``collision``, ``off_road``, ``route_completed``, ``collided_with`` (B, N), ``progress`` [m],
``action_executed`` (B, 2) and ``action_replaced`` (non-finite actions braked), and, for
environments whose episode ended, ``episode`` = {``r``: return, ``l``: length, ``t``: time}
with the usual ``_episode`` mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from sim import metrics as M
from sim import world
from sim.backend import EmbeddedBackend, SimBackend
from sim.dynamics import VehicleParams, sanitize_action
from sim.observation import OBS_BOUND, ObsConfig, obs_dim, observe
from sim.road import LaneGraph
from sim.road_union import shift_spec, union
from sim.scenario import ScenarioSpec, SpecError, build_road, check_on_road, load_spec
from sim.state import WorldState

ScenarioSource = ScenarioSpec | Sequence[ScenarioSpec] | str | Path | None
_ONE = np.array(1, np.int64)


def resolve_specs(source: ScenarioSource) -> list[ScenarioSpec]:
    """Normalise a scenario source into a non-empty list of specs."""
    if source is None:
        return [ScenarioSpec()]
    if isinstance(source, ScenarioSpec):
        return [source]
    if isinstance(source, str | Path):
        return [load_spec(source)]
    specs = list(source)
    if not specs:
        raise SpecError("scenario: expected at least one spec, got an empty list")
    for i, sp in enumerate(specs):
        if not isinstance(sp, ScenarioSpec):
            raise SpecError(f"scenario[{i}]: expected a ScenarioSpec, got {type(sp).__name__}")
    return specs


class DriveVectorEnv(VectorEnv[NDArray[np.float32], NDArray[np.float32], NDArray[Any]]):
    """B driving environments stepped together (see module docstring).

    Args:
        num_envs: B.
        scenario: scenario source.
        dt: step [s].
        num_actors: actor slots N per env (default: what the largest spec needs).
        obs: observation contents.
        reward: reward weights.
        metrics: thresholds of the safety measures and which events end an episode.
        vehicle: ego vehicle parameters.
        render_mode: None or "rgb_array".
    """

    metadata = {  # noqa: RUF012  (gymnasium reads it from the class)
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": ["rgb_array"],
        "render_fps": 10,
    }

    def __init__(
        self,
        num_envs: int = 1,
        scenario: ScenarioSource = None,
        dt: float = 0.1,
        num_actors: int | None = None,
        obs: ObsConfig | None = None,
        reward: M.RewardWeights | None = None,
        metrics: M.MetricsConfig | None = None,
        vehicle: VehicleParams | None = None,
        render_mode: str | None = None,
        mobil_interval_s: float = 1.0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs: expected >= 1, got {num_envs}")
        if not dt > 0:
            raise ValueError(f"dt: expected > 0 s, got {dt}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        self.specs = resolve_specs(scenario)
        # Specs on different roads share one graph: the union of their roads, each spec shifted
        # onto its part (sim.road_union). One road: the graph is that road, specs unchanged.
        roads = list(dict.fromkeys(sp.road for sp in self.specs))
        self.road: LaneGraph
        self.road, offsets = union([build_road(r) for r in roads])
        offset_of = dict(zip(roads, offsets, strict=True))
        self._placed = [shift_spec(sp, offset_of[sp.road]) for sp in self.specs]
        for sp in self._placed:
            check_on_road(sp, self.road, source=sp.name)
        self.spec_index = np.zeros(num_envs, np.int64)  # which spec each env's episode runs
        need = max(sp.max_actors() for sp in self.specs)
        self.num_actors = need if num_actors is None else int(num_actors)
        if need > self.num_actors:
            raise SpecError(f"num_actors={self.num_actors} but the scenario needs {need} slots")
        self.num_envs = num_envs
        self.params = world.SimParams(
            dt=dt, vehicle=vehicle or VehicleParams(), mobil_interval_s=mobil_interval_s
        )
        self.obs_cfg = obs or ObsConfig()
        self.weights = reward or M.RewardWeights()
        self.metrics_cfg = metrics or M.MetricsConfig()
        self.render_mode = render_mode
        d = obs_dim(self.obs_cfg)
        self.single_observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (d,), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator] = []
        self.backend: SimBackend = EmbeddedBackend(self.road, self.params, self.num_actors)
        self._autoreset = np.zeros(num_envs, np.bool_)
        self._ep_return = np.zeros(num_envs, np.float64)
        self._ep_length = np.zeros(num_envs, np.int64)

    # -- episodes -------------------------------------------------------------------------------

    @property
    def state(self) -> WorldState | None:
        """The backend's current world (None before the first reset)."""
        return self.backend.state

    def get_env_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (checkpoints): the world, each environment's
        generator state, the pending autoresets and the running episodes' counters."""
        if self.state is None:
            raise RuntimeError("get_env_state: reset the env first")
        return {
            "world": self.state,
            "rngs": [g.bit_generator.state for g in self._rngs],
            "autoreset": self._autoreset.copy(),
            "ep_return": self._ep_return.copy(),
            "ep_length": self._ep_length.copy(),
            "spec_index": self.spec_index.copy(),
        }

    def set_env_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`get_env_state`; errors name the field that does not fit."""
        B = self.num_envs
        if len(state["rngs"]) != B:
            raise ValueError(f"env state 'rngs': expected {B} generators, got {len(state['rngs'])}")
        for key in ("autoreset", "ep_return", "ep_length"):
            if np.shape(state[key]) != (B,):
                raise ValueError(
                    f"env state '{key}': expected shape ({B},), got {np.shape(state[key])}"
                )
        world: WorldState = state["world"]
        if world.x.shape[0] != B:
            raise ValueError(
                f"env state 'world': expected {B} environments, got {world.x.shape[0]}"
            )
        self._rngs = [np.random.default_rng() for _ in range(B)]
        for g, st in zip(self._rngs, state["rngs"], strict=True):
            g.bit_generator.state = st
        self.backend.restore(world)
        self._autoreset = np.asarray(state["autoreset"], np.bool_).copy()
        self._ep_return = np.asarray(state["ep_return"], np.float64).copy()
        self._ep_length = np.asarray(state["ep_length"], np.int64).copy()
        # Saved before multi-road envs existed: every episode ran spec 0 or a draw not recorded.
        self.spec_index = np.asarray(state.get("spec_index", np.zeros(B)), np.int64).copy()

    def _start(self, mask: NDArray[np.bool_], spec_index: NDArray[np.int64] | None = None) -> None:
        """New episodes where ``mask``: pick each env's spec (drawn from its generator unless
        ``spec_index`` (B,) fixes it) and traffic generator, reset."""
        specs, rngs = [], []
        for b in np.nonzero(mask)[0]:
            rng = self._rngs[b]
            if spec_index is not None:
                k = int(spec_index[b])
            else:
                k = int(rng.integers(len(self.specs))) if len(self.specs) > 1 else 0
            self.spec_index[b] = k
            sp = self._placed[k]
            specs.append(sp)
            rngs.append(np.random.default_rng(sp.seed) if sp.seed is not None else rng)
        self.backend.reset(mask, specs, rngs)

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset all environments, or those in ``options["reset_mask"]``.

        ``options["spec_index"]`` (B,) runs spec ``k`` of the source in each reset environment
        instead of drawing one (evaluations that cover every spec evenly).

        ``seed``: an int seeds env b with ``seed + b``; a list gives one seed per env.
        """
        mask = np.ones(self.num_envs, np.bool_)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], np.bool_)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask: expected shape ({self.num_envs},), got {mask.shape}")
        if isinstance(seed, int):
            seeds: list[int | None] = [seed + b for b in range(self.num_envs)]
        elif seed is None:
            seeds = [None] * self.num_envs
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: expected {self.num_envs} seeds, got {len(seeds)}")
        if not self._rngs:
            self._rngs = [np.random.default_rng(s) for s in seeds]
        else:
            for b in np.nonzero(mask)[0]:
                if seeds[b] is not None:
                    self._rngs[b] = np.random.default_rng(seeds[b])
        forced = None
        if options and options.get("spec_index") is not None:
            forced = np.asarray(options["spec_index"], np.int64)
            if (
                forced.shape != (self.num_envs,)
                or not ((forced >= 0) & (forced < len(self.specs))).all()
            ):
                raise ValueError(
                    f"spec_index: expected shape ({self.num_envs},) of ints in "
                    f"[0, {len(self.specs)}), got {forced.tolist()}"
                )
        self._start(mask, forced)
        assert self.state is not None
        self._autoreset[mask] = False
        self._ep_return[mask] = 0.0
        self._ep_length[mask] = 0
        return observe(self.state, self.road, self.obs_cfg), {}

    def advance(
        self, actions: NDArray[np.floating]
    ) -> tuple[WorldState, M.Outcome, NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
        """Step every environment without autoreset (the single env and runners use this).

        Returns:
            (next state, outcome, reward (B,), executed action (B, 2), replaced (B,)).
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs, 2):
            raise ValueError(f"actions: expected shape ({self.num_envs}, 2), got {a.shape}")
        executed, replaced = sanitize_action(a)
        prev = self.state
        nxt = self.backend.step(executed)
        out = M.evaluate(prev, executed, nxt, self.road, self.metrics_cfg)
        rew = M.reward(out.terms, self.weights)
        return nxt, out, rew, executed, replaced

    def step(
        self, actions: NDArray[np.floating]
    ) -> tuple[
        NDArray[np.float32],
        NDArray[np.float32],
        NDArray[np.bool_],
        NDArray[np.bool_],
        dict[str, Any],
    ]:
        _, out, rew, executed, replaced = self.advance(actions)
        term, trunc = out.terminated, out.truncated  # fresh arrays, ours to return
        was = self._autoreset  # replaced below, never written in place during a step
        # Nothing ended last step is the usual case: then every env counts and nothing resets.
        any_was = np.count_nonzero(was) > 0
        if any_was:
            self._ep_return += np.where(was, 0.0, rew)
            self._ep_length += np.where(was, 0, 1)
        else:
            self._ep_return += rew
            self._ep_length += _ONE  # a Python int operand costs a conversion per call
        info = self._info(out, executed, replaced)
        done = term | trunc
        if np.count_nonzero(done):
            ended = done & ~was
            if np.count_nonzero(ended):
                assert self.state is not None
                info["episode"] = {
                    "r": np.where(ended, self._ep_return, 0.0),
                    "l": np.where(ended, self._ep_length, 0),
                    "t": np.where(ended, self.state.time, 0.0),
                }
                info["_episode"] = ended
        if any_was:
            self._start(was)
            rew, term, trunc = rew.copy(), term.copy(), trunc.copy()
            rew[was] = 0.0
            term[was] = False
            trunc[was] = False
            self._ep_return[was] = 0.0
            self._ep_length[was] = 0
            # The step that resets reports nothing about the finished episode's ghost step.
            for key in ("collision", "off_road", "route_completed", "action_replaced"):
                info[key] = np.where(was, False, info[key])
            info["collided_with"] = np.where(was[:, None], False, info["collided_with"])
            info["reward_terms"] = {
                k: np.where(was, 0.0, v).astype(np.float32) for k, v in info["reward_terms"].items()
            }
            done = term | trunc
        self._autoreset = done
        assert self.state is not None
        # The metrics looked the road up at this state's ego already, unless some env reset.
        at_ego = None if any_was else out.road_at_ego
        obs = observe(self.state, self.road, self.obs_cfg, road_at_ego=at_ego)
        return obs, rew, term, trunc, info

    def _info(
        self, out: M.Outcome, executed: NDArray[np.float32], replaced: NDArray[np.bool_]
    ) -> dict[str, Any]:
        assert self.state is not None
        return {
            "reward_terms": out.terms,
            "collision": out.collision,
            "off_road": out.off_road,
            "route_completed": out.route_completed,
            "ttc": out.ttc,
            "fuel_rate": out.fuel_rate,
            "collided_with": out.collided_with,
            "progress": self.state.progress.copy(),
            "action_executed": executed,
            "action_replaced": replaced,
        }

    def render(self) -> tuple[NDArray[np.uint8], ...] | None:
        """One RGB bird's-eye frame per environment (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        from sim.render import render_bev, route_polyline

        assert self.state is not None
        return tuple(
            render_bev(self.road, self.state, b, route_xy=route_polyline(self.road, self.state, b))
            for b in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        self.backend.close()


class DriveEnv(gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """One driving environment (``gendrive/Drive-v0``); see :class:`DriveVectorEnv` for args."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self._vec = DriveVectorEnv(num_envs=1, render_mode=render_mode, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self._vec.params.dt)}

    @property
    def road(self) -> LaneGraph:
        return self._vec.road

    @property
    def state(self) -> WorldState | None:
        return self._vec.state

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed, options=options)
        return obs[0], info

    def step(
        self, action: NDArray[np.floating]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, np.float32).reshape(1, 2)
        st, out, rew, executed, replaced = self._vec.advance(a)
        info = {
            k: (v[0] if isinstance(v, np.ndarray) else {n: float(x[0]) for n, x in v.items()})
            for k, v in self._vec._info(out, executed, replaced).items()
        }
        obs = observe(st, self._vec.road, self._vec.obs_cfg, road_at_ego=out.road_at_ego)[0]
        return obs, float(rew[0]), bool(out.terminated[0]), bool(out.truncated[0]), info

    def render(self) -> NDArray[np.uint8] | None:  # type: ignore[override]
        frames = self._vec.render()
        return None if frames is None else frames[0]
