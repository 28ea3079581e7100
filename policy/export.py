"""Export a trained PPO policy as a self-contained inference graph (TorchScript or ONNX).

The exported graph maps raw observations to deterministic actions::

    obs (B, D) float32 -> action (B, 2) float32 in [-1, 1]

with everything the policy needs inside it:

1. the observation normaliser of training, ``clip((obs - mean) / sqrt(var + 1e-8), -c, c)``
   with the checkpoint's running statistics and ``ppo.obs_clip`` (skipped when the run trained
   with ``ppo.norm_obs=false``, as the trainer skips it);
2. the actor MLP;
3. the deterministic action: the Beta mean ``alpha / (alpha + beta)`` mapped to [-1, 1], the
   action :func:`policy.ppo.trainer.evaluate` takes.

The critic is left out (inference does not need it). The batch axis is dynamic. Files are
written to a temporary name next to the target and renamed, so a reader never sees a partial
file.

Why the normaliser runs in float32 here while training normalises in float64: ONNX Runtime's
float64 kernels are slower and not every runtime has them; the statistics are rounded to
float32 once (``std = sqrt(var + eps)`` computed in float64 first), which keeps the exported
action within about 1e-6 of the training-time computation (tested at 1e-5).

CLI::

    python -m policy.export outputs/train/2026-11-25/06-00-00 --format onnx --out policy.onnx
    python -m policy.export run/checkpoints/last.pt --format torchscript --out policy.pt
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from policy.ppo.checkpoint import CheckpointError, load_checkpoint
from policy.ppo.config import PPOConfig
from policy.ppo.networks import ActorCritic
from policy.ppo.normalize import EPS, RunningMeanStd

Format = Literal["onnx", "torchscript"]
ONNX_OPSET = 18  # the dynamo exporter's default in torch 2.13; ORT >= 1.14 runs it


@dataclass
class LoadedPolicy:
    """A checkpoint's policy, as the trainer uses it at evaluation.

    Attributes:
        agent: the actor-critic (eval mode, CPU).
        obs_rms: the observation normaliser, or None when the run trained without one.
        obs_clip: the normalised-observation clip of training.
        path: the checkpoint file it came from.
        guided: the run trained with the rule-based guide steering or shielding
            (``ppo.guide_executes`` / ``ppo.guide_shield``): the exported graph is the network
            alone, without them.
    """

    agent: ActorCritic
    obs_rms: RunningMeanStd | None
    obs_clip: float
    path: Path
    guided: bool = False

    def act(self, obs: Tensor) -> Tensor:
        """Deterministic action (B, 2) for raw observations (B, D), exactly as training does."""
        if self.obs_rms is not None:
            obs = self.obs_rms.normalize(obs, self.obs_clip)
        with torch.no_grad():
            action: Tensor = self.agent(obs)
        return action


class ExportablePolicy(nn.Module):
    """Normaliser + actor + Beta mean as plain tensor ops (no ``torch.distributions``).

    ``torch.distributions.Beta`` validates and broadcasts in Python; tracing and ONNX export
    need a graph of tensor ops only, so the mean is written out here.

    Args:
        policy: the loaded checkpoint policy (its actor is copied).
    """

    def __init__(self, policy: LoadedPolicy) -> None:
        super().__init__()
        agent = policy.agent
        d = agent.obs_dim
        self.actor = _copy_actor(agent.actor)
        self.action_dim = agent.action_dim
        if policy.obs_rms is None:
            mean = torch.zeros(d, dtype=torch.float32)
            std = torch.ones(d, dtype=torch.float32)
            clip = math.inf
        else:
            mean = policy.obs_rms.mean.detach().cpu().to(torch.float32)
            # sqrt in float64 before the rounding: one rounding instead of two.
            std = torch.sqrt(policy.obs_rms.var.detach().cpu() + EPS).to(torch.float32)
            clip = float(policy.obs_clip)
        # nn.Buffer (not register_buffer): typed attributes for mypy, saved with the module.
        self.obs_mean = nn.Buffer(mean)
        self.obs_std = nn.Buffer(std)
        self.clip = clip
        self.normalize = policy.obs_rms is not None

    def forward(self, obs: Tensor) -> Tensor:
        """Raw observations (B, D) float32 -> deterministic actions (B, 2) in [-1, 1]."""
        if self.normalize:
            obs = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
        h = self.actor(obs)
        ab = 1.0 + nn.functional.softplus(h)
        alpha = ab[:, : self.action_dim]
        beta = ab[:, self.action_dim :]
        return 2.0 * (alpha / (alpha + beta)) - 1.0


def _copy_actor(actor: nn.Sequential) -> nn.Sequential:
    """A detached copy of the actor MLP (the export must not hold the training graph)."""
    layers: list[nn.Module] = []
    for m in actor:
        if isinstance(m, nn.Linear):
            lin = nn.Linear(m.in_features, m.out_features)
            lin.load_state_dict(m.state_dict())
            layers.append(lin)
        elif isinstance(m, nn.Tanh):
            layers.append(nn.Tanh())
        else:  # the trainer builds only Linear/Tanh; anything else is a new network type
            raise TypeError(f"cannot export actor layer {type(m).__name__}")
    seq = nn.Sequential(*layers)
    seq.eval()
    seq.requires_grad_(False)
    return seq


# -- loading --------------------------------------------------------------------------------------


def resolve_checkpoint(source: str | os.PathLike[str]) -> Path:
    """A ``.pt`` file, or a train run directory's ``checkpoints/best.pt`` (else ``last.pt``).

    ``best.pt`` first: it is the checkpoint with the best deterministic evaluation return, the
    one to deploy; runs that never evaluated have only ``last.pt``.

    Raises:
        CheckpointError: the path does not exist or the directory has no checkpoint.
    """
    p = Path(source)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            for cand in (p / "checkpoints" / name, p / name):
                if cand.is_file():
                    return cand
        raise CheckpointError(
            f"{p}: no checkpoints/best.pt or checkpoints/last.pt in this directory"
        )
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    return p


def _hidden_sizes(model: dict[str, Any], path: Path) -> list[int]:
    """The actor's hidden widths, read off the weights (the config may be absent or edited)."""
    sizes: list[int] = []
    i = 0
    while f"actor.{i}.weight" in model:
        sizes.append(int(model[f"actor.{i}.weight"].shape[0]))
        i += 2  # Linear, Tanh, Linear, ...
    if not sizes:
        raise CheckpointError(f"{path}: model: no actor weights")
    return sizes[:-1]  # the last Linear is the policy head


def load_policy(source: str | os.PathLike[str]) -> LoadedPolicy:
    """Load the policy (actor-critic, normaliser, clip) of a checkpoint or train run directory.

    Raises:
        CheckpointError: missing, unreadable or inconsistent checkpoint; the message names the
            file and what is wrong.
    """
    path = resolve_checkpoint(source)
    ckpt = load_checkpoint(path)
    model = ckpt["model"]
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: model: expected a state dict, found {type(model).__name__}")
    ppo = ckpt["config"].get("ppo", {}) if isinstance(ckpt["config"], dict) else {}
    defaults = PPOConfig()
    norm_obs = bool(ppo.get("norm_obs", defaults.norm_obs))
    obs_clip = float(ppo.get("obs_clip", defaults.obs_clip))
    agent = ActorCritic(int(ckpt["obs_dim"]), _hidden_sizes(model, path))
    try:
        agent.load_state_dict(model)
    except RuntimeError as e:  # shape or key mismatch: torch lists them all
        raise CheckpointError(f"{path}: model: {e}") from e
    agent.eval()
    obs_rms: RunningMeanStd | None = None
    if norm_obs:
        obs_rms = RunningMeanStd((agent.obs_dim,))
        st = ckpt["obs_rms"]
        shapes = {"mean": (agent.obs_dim,), "var": (agent.obs_dim,), "count": ()}
        for key, shape in shapes.items():
            t = st.get(key) if isinstance(st, dict) else None
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                found = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise CheckpointError(
                    f"{path}: obs_rms.{key}: expected shape {shape}, found {found}"
                )
        obs_rms.load_state_dict(st)
    guided = bool(ppo.get("guide_executes", False) or ppo.get("guide_shield", False))
    return LoadedPolicy(agent, obs_rms, obs_clip, path, guided)


def exportable(source: str | os.PathLike[str] | LoadedPolicy) -> ExportablePolicy:
    """The export module (eval mode, CPU) of a checkpoint, run directory or loaded policy."""
    policy = source if isinstance(source, LoadedPolicy) else load_policy(source)
    module = ExportablePolicy(policy)
    module.eval()
    return module


# -- writers --------------------------------------------------------------------------------------


def _tmp_for(path: Path) -> Path:
    # Same directory as the target: os.replace is atomic only within one filesystem.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _commit(tmp: Path, path: Path) -> None:
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def export_torchscript(checkpoint: str | os.PathLike[str] | LoadedPolicy, path: str | Path) -> Path:
    """Write a TorchScript module ``obs (B, D) -> action (B, 2)``; load with ``torch.jit.load``.

    Scripted, not traced: ``torch.jit.script`` keeps the batch axis symbolic by construction.
    ``torch.jit`` is deprecated as of torch 2.13 (still working); ONNX is the long-lived format.

    Returns:
        The written path.
    """
    path = Path(path)
    module = exportable(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    try:
        # torch 2.13 marks torch.jit deprecated (in favour of torch.export), but TorchScript is
        # still what C++ deployments (libtorch) load; the warning says nothing about this file.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
            scripted = torch.jit.script(module)
            torch.jit.save(scripted, str(tmp))
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Silence the exporter's notes that do not concern this graph.

    torch 2.13's ONNX exporter logs a warning per torchvision operator it cannot register when
    torchvision is absent, and trips a FutureWarning inside torch's own pytree code; neither is
    about the exported policy, and a user of the CLI cannot act on them.
    """
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        log.setLevel(level)


def export_onnx(checkpoint: str | os.PathLike[str] | LoadedPolicy, path: str | Path) -> Path:
    """Write an ONNX model with input ``obs`` (B, D) and output ``action`` (B, 2), B dynamic.

    Uses torch's dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``, the default
    since torch 2.9; it needs ``onnxscript``), opset 18, weights embedded in the file.

    Returns:
        The written path.
    """
    path = Path(path)
    module = exportable(checkpoint)
    d = int(module.obs_mean.shape[0])
    example = torch.zeros(2, d, dtype=torch.float32)  # 2, not 1: a size-1 axis gets specialised
    batch = torch.export.Dim("batch", min=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    try:
        with _quiet_onnx_exporter():
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                input_names=["obs"],
                output_names=["action"],
                dynamic_shapes={"obs": {0: batch}},
                opset_version=ONNX_OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export(
    checkpoint: str | os.PathLike[str] | LoadedPolicy, path: str | Path, fmt: Format
) -> Path:
    """Dispatch to :func:`export_onnx` or :func:`export_torchscript`."""
    if fmt == "onnx":
        return export_onnx(checkpoint, path)
    if fmt == "torchscript":
        return export_torchscript(checkpoint, path)
    raise ValueError(f"format: expected 'onnx' or 'torchscript', got {fmt!r}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on a bad checkpoint)."""
    ap = argparse.ArgumentParser(
        prog="python -m policy.export",
        description="Export a PPO checkpoint (or a train run directory) as an inference graph.",
    )
    ap.add_argument("checkpoint", help="a .pt checkpoint or a train run directory")
    ap.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    ap.add_argument("--out", required=True, type=Path, help="output file")
    args = ap.parse_args(argv)
    try:
        policy = load_policy(args.checkpoint)
        out = export(policy, args.out, args.format)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{policy.path} -> {out} ({args.format}; obs (B, {policy.agent.obs_dim}) -> "
        f"action (B, {policy.agent.action_dim}), normaliser "
        f"{'included' if policy.obs_rms is not None else 'none (trained without)'})"
    )
    if policy.guided:
        print(
            "note: this run trained with the rule-based driver steering or capping the "
            "acceleration (ppo.guide_executes / ppo.guide_shield); the exported graph is the "
            "network alone (its steering head imitates the guide), so pair it with the "
            "rule-based driver as gendrive evaluate does (docs/ppo.md)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
