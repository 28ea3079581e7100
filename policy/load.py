"""Turn a policy string into a :class:`policy.rule_based.Driver`: built-ins or a PPO checkpoint.

``load_driver(spec, seed)`` accepts:

- ``"rule_based"``: IDM + pure pursuit + MOBIL (:class:`policy.rule_based.RuleBasedDriver`);
- ``"random"``: uniform actions, re-seeded per episode (:class:`EpisodeRandomDriver`) so that an
  evaluation episode can be replayed alone from its seed;
- a checkpoint: a ``.pt`` file written by ``gendrive train``, or a train run directory
  (``checkpoints/best.pt``, else ``checkpoints/last.pt``). It becomes a :class:`PPODriver` that
  builds the vector observation with :func:`sim.observation.observe` and the checkpoint's
  observation config, normalises it with the saved running statistics and returns the
  deterministic action (the Beta mean), exactly as ``gendrive train`` evaluates.

Every problem raises :class:`PolicyError` (a ``ValueError``) naming the string or the file and
what does not match (observation size, missing keys, tensor shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray

from policy.rule_based import BoolArr, Driver, RuleBasedDriver
from sim.observation import ObsConfig, obs_dim, observe
from sim.road import LaneGraph
from sim.state import WorldState

F32 = NDArray[np.float32]
BUILTIN = ("rule_based", "random")


class PolicyError(ValueError):
    """A policy string or checkpoint that cannot become a driver; the message says why."""


@runtime_checkable
class EpisodeSeeded(Protocol):
    """A driver with its own randomness, seeded per episode so episodes replay alone."""

    def seed_episodes(self, seeds: Sequence[int | None], mask: BoolArr) -> None: ...


class EpisodeRandomDriver:
    """Uniform random actions in [-1, 1]^2 from one generator per environment.

    :class:`policy.rule_based.RandomDriver` draws the whole batch from one generator, so an
    episode's actions depend on which other episodes run beside it; here environment ``b``'s
    generator is re-seeded from its episode seed at every episode start, so replaying a seed
    alone reproduces the episode exactly.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._rngs: list[np.random.Generator] = []

    def seed_episodes(self, seeds: Sequence[int | None], mask: BoolArr) -> None:
        """Re-seed the generators of the environments in ``mask`` from their episode seeds."""
        if len(self._rngs) != len(seeds):
            self._rngs = [np.random.default_rng(self.seed) for _ in seeds]
        base = 0 if self.seed is None else self.seed
        for b in np.nonzero(np.asarray(mask, np.bool_))[0]:
            s = seeds[int(b)]
            # Mix the driver seed in so that two random policies differ on the same episode.
            self._rngs[int(b)] = np.random.default_rng(None if s is None else [base, s])

    def act(self, state: WorldState, road: LaneGraph) -> F32:
        """Actions (B, 2) float32, one row from each environment's generator."""
        B = state.num_envs
        if len(self._rngs) != B:
            self._rngs = [np.random.default_rng([self.seed or 0, b]) for b in range(B)]
        return np.stack([g.uniform(-1.0, 1.0, 2) for g in self._rngs]).astype(np.float32)

    def reset(self, mask: BoolArr) -> None:
        """Nothing to forget (seeding happens in :meth:`seed_episodes`)."""


@dataclass
class PPODriver:
    """A trained PPO policy as a driver: observe -> normalise -> Beta mean.

    Attributes:
        agent: the actor-critic (evaluation mode, on the CPU).
        obs_cfg: the observation the policy was trained on.
        obs_mean, obs_var: the saved running statistics (None: the policy used raw obs).
        obs_clip: clip of normalised observations, as in training.
        path: the checkpoint file (for messages and labels).
        config: the train run's saved config.
        guide: for a run trained with ``ppo.guide_executes``, the rule-based driver (the cloned
            expert's settings) that drives ``guide_dims`` (steering: lane keeping and lane
            changes) as it did in training; None: the network drives every dimension.
        guide_dims: the action dimensions the guide drives.
        shield: cap the acceleration at the guide's (a run trained with ``ppo.guide_shield``).
    """

    agent: Any
    obs_cfg: ObsConfig
    obs_mean: torch.Tensor | None
    obs_var: torch.Tensor | None
    obs_clip: float
    path: Path
    config: dict[str, Any]
    guide: RuleBasedDriver | None = None
    guide_dims: tuple[int, ...] = ()
    shield: bool = False

    def act(self, state: WorldState, road: LaneGraph) -> F32:
        """Deterministic actions (B, 2) float32 in [-1, 1]."""
        from policy.ppo.normalize import EPS

        obs = torch.from_numpy(observe(state, road, self.obs_cfg))
        if self.obs_mean is not None and self.obs_var is not None:
            # Same arithmetic as RunningMeanStd.normalize (float64, then float32).
            z = (obs - self.obs_mean) / torch.sqrt(self.obs_var + EPS)
            obs = z.clamp_(-self.obs_clip, self.obs_clip).to(torch.float32)
        with torch.no_grad():
            a = self.agent(obs)
        out: F32 = a.numpy().astype(np.float32)
        if self.guide is not None:
            from policy.ppo.trainer import apply_guide

            apply_guide(out, self.guide.act(state, road), self.guide_dims, self.shield)
        return out

    def reset(self, mask: BoolArr) -> None:
        """The network is memoryless; a guide forgets its lane changes."""
        if self.guide is not None:
            self.guide.reset(mask)


def resolve_checkpoint(spec: str) -> Path:
    """The checkpoint file of ``spec``: a ``.pt`` file, or a run dir's best.pt, else last.pt.

    Raises:
        PolicyError: nothing there; the message names the path(s) looked at.
    """
    p = Path(spec).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / "checkpoints" / name).is_file():
                return p / "checkpoints" / name
        raise PolicyError(
            f"{p}: no checkpoints/best.pt or checkpoints/last.pt in this directory "
            "(expected a 'gendrive train' run directory)"
        )
    if p.suffix == ".pt":
        if not p.is_file():
            raise PolicyError(f"{p}: checkpoint not found")
        return p
    raise PolicyError(
        f"policy {spec!r}: expected one of {', '.join(BUILTIN)}, a .pt checkpoint "
        "or a train run directory; no such file or directory"
    )


def _obs_config(saved: dict[str, Any]) -> ObsConfig:
    """The observation config a run trained on (``config.obs`` when saved, else the default).

    ``gendrive train`` builds its env with the default :class:`ObsConfig`; a future run that
    stores an ``obs`` node gets exactly its own layout back.
    """
    node = saved.get("obs")
    if not isinstance(node, dict):
        return ObsConfig()
    d = ObsConfig()
    return ObsConfig(
        num_actors=int(node.get("num_actors", d.num_actors)),
        curvature_ahead_m=tuple(
            float(x) for x in node.get("curvature_ahead_m", d.curvature_ahead_m)
        ),
        urban=bool(node.get("urban", d.urban)),  # absent in older checkpoints: off
    )


def load_ppo_driver(path: Path) -> PPODriver:
    """A :class:`PPODriver` from a checkpoint file; every mismatch is a :class:`PolicyError`."""
    from policy.ppo.checkpoint import CheckpointError, load_checkpoint
    from policy.ppo.networks import ActorCritic

    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise PolicyError(str(e)) from None
    config = ckpt["config"] if isinstance(ckpt["config"], dict) else {}
    ppo = config.get("ppo")
    if not isinstance(ppo, dict) or "hidden_sizes" not in ppo:
        raise PolicyError(f"{path}: config.ppo.hidden_sizes: missing (not a PPO run's checkpoint)")
    obs_cfg = _obs_config(config)
    want = obs_dim(obs_cfg)
    if int(ckpt["obs_dim"]) != want:
        raise PolicyError(
            f"{path}: obs_dim: the simulator's observation has {want} values "
            f"({obs_cfg}), the checkpoint was trained on {ckpt['obs_dim']}"
        )
    model = ckpt["model"]
    if not isinstance(model, dict):
        raise PolicyError(f"{path}: model: expected a state dict, found {type(model).__name__}")
    first = model.get("actor.0.weight")
    if isinstance(first, torch.Tensor) and first.ndim == 2 and first.shape[1] != want:
        raise PolicyError(
            f"{path}: model.actor.0.weight: expects observations of size {first.shape[1]}, "
            f"the simulator's observation has {want} values"
        )
    agent = ActorCritic(want, [int(h) for h in ppo["hidden_sizes"]])
    try:
        agent.load_state_dict(model)
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise PolicyError(f"{path}: model: does not fit ActorCritic ({msg})") from None
    agent.eval()
    mean = var = None
    if bool(ppo.get("norm_obs", True)):
        rms = ckpt["obs_rms"]
        for k in ("mean", "var"):
            t = rms.get(k) if isinstance(rms, dict) else None
            if not isinstance(t, torch.Tensor):
                raise PolicyError(f"{path}: obs_rms.{k}: missing")
            if tuple(t.shape) != (want,):
                raise PolicyError(
                    f"{path}: obs_rms.{k}: expected shape ({want},), found {tuple(t.shape)}"
                )
        mean = rms["mean"].to(torch.float64)
        var = rms["var"].to(torch.float64)
    guide = None
    dims: tuple[int, ...] = ()
    executes = bool(ppo.get("guide_executes", False))
    shield = bool(ppo.get("guide_shield", False))
    if (executes or shield) and float(ppo.get("guide_coef", 0.0)) > 0:
        bc = config.get("bc") if isinstance(config.get("bc"), dict) else {}
        guide = expert_driver(bc, guide=True)
        dims = tuple(int(d) for d in ppo.get("guide_dims", [0])) if executes else ()
    return PPODriver(
        agent=agent,
        obs_cfg=obs_cfg,
        obs_mean=mean,
        obs_var=var,
        obs_clip=float(ppo.get("obs_clip", 10.0)),
        path=path,
        config=config,
        guide=guide,
        guide_dims=dims,
        shield=shield and guide is not None,
    )


def expert_driver(bc: Any, vehicle: Any = None, guide: bool = False) -> RuleBasedDriver:
    """The rule-based driver a run clones (``bc``'s ``expert_*`` settings, a config node or a
    dict) or, with ``guide``, its PPO guide (the same, with ``bc.guide_a_max`` when set), with
    ``vehicle``'s limits (None: the default car)."""
    from policy.rule_based import RuleBasedParams

    def get(k: str, default: Any) -> Any:
        return bc.get(k, default) if isinstance(bc, dict) else getattr(bc, k, default)

    d = RuleBasedParams()
    a_max = get("guide_a_max", None) if guide else None
    params = RuleBasedParams(lane_change=bool(get("expert_lane_change", d.lane_change)),
                             speed_factor=float(get("expert_speed_factor", d.speed_factor)),
                             a_max=float(get("expert_a_max", d.a_max) if a_max is None
                                         else a_max))  # fmt: skip
    return RuleBasedDriver(params) if vehicle is None else RuleBasedDriver(params, vehicle=vehicle)


def load_driver(spec: str, seed: int | None = None) -> Driver:
    """A driver from a policy string (see the module docstring).

    Args:
        spec: ``rule_based``, ``random``, a ``.pt`` checkpoint or a train run directory.
        seed: seeds the random driver.

    Raises:
        PolicyError: unknown string, missing file or a checkpoint that does not fit.
    """
    if spec == "rule_based":
        return RuleBasedDriver()
    if spec == "random":
        return EpisodeRandomDriver(seed)
    return load_ppo_driver(resolve_checkpoint(spec))


def policy_label(spec: str) -> str:
    """A short name for tables and plots: the built-in's name or ``ppo:<run>[/<file>]``."""
    if spec in BUILTIN:
        return spec
    p = Path(spec).expanduser()
    if p.suffix == ".pt":
        run = p.parent.parent.name if p.parent.name == "checkpoints" else p.parent.name
        return f"ppo:{run}/{p.stem}"
    return f"ppo:{p.name}"
