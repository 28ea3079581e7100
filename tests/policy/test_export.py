"""Policy export: TorchScript and ONNX graphs match the torch policy, normaliser included."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from policy.export import (
    export_onnx,
    export_torchscript,
    load_policy,
    resolve_checkpoint,
)
from policy.ppo.checkpoint import CheckpointError, save_checkpoint
from policy.ppo.config import PPOConfig
from policy.ppo.trainer import PPOTrainer
from sim.env import DriveVectorEnv

# torch.jit.load warns that TorchScript is deprecated (torch 2.13); the format is what we test.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
TOL = 1e-5
B = 8


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train run directory whose checkpoint has a non-trivial normaliser and actor.

    One short PPO update fills the normaliser's statistics from real observations. The policy
    head is then scaled up: a fresh head (gain 0.01) maps every input to about the same action,
    which would hide a wrong normaliser or a wrong Beta mean.
    """
    run = tmp_path_factory.mktemp("run")
    cfg = PPOConfig(num_envs=B, num_steps=16, hidden_sizes=[32, 32])
    tr = PPOTrainer(DriveVectorEnv(B), cfg, seed=0)
    tr.start()
    tr.train_update(1)
    with torch.no_grad():
        head = tr.agent.actor[-1]
        assert isinstance(head, torch.nn.Linear)
        head.weight.mul_(100.0)
    save_checkpoint(run / "checkpoints" / "last.pt", tr, {"ppo": asdict(cfg)})
    return run


@pytest.fixture(scope="module")
def real_obs() -> torch.Tensor:
    """Raw observations from rollouts with random actions (episodes end, envs reset)."""
    env = DriveVectorEnv(B)
    obs, _ = env.reset(seed=123)
    rng = np.random.default_rng(0)
    out = [obs]
    for _ in range(40):
        obs, *_ = env.step(rng.uniform(-1, 1, (B, 2)).astype(np.float32))
        out.append(obs)
    return torch.from_numpy(np.concatenate(out))


def _random_obs(d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(257, d, generator=g) * 5.0  # odd batch; far from the stats too


def test_torchscript_matches_policy(run_dir: Path, real_obs: torch.Tensor, tmp_path: Path) -> None:
    policy = load_policy(run_dir)
    path = export_torchscript(run_dir, tmp_path / "p.ts")
    module = torch.jit.load(str(path))
    for obs in (real_obs, _random_obs(policy.agent.obs_dim), real_obs[:1]):
        got = module(obs)
        assert got.shape == (obs.shape[0], 2) and got.dtype == torch.float32
        torch.testing.assert_close(got, policy.act(obs), atol=TOL, rtol=0)


def test_onnx_matches_policy(run_dir: Path, real_obs: torch.Tensor, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    policy = load_policy(run_dir)
    path = export_onnx(run_dir, tmp_path / "p.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["obs"]
    assert [o.name for o in sess.get_outputs()] == ["action"]
    assert not isinstance(sess.get_inputs()[0].shape[0], int)  # dynamic batch axis
    for obs in (real_obs, _random_obs(policy.agent.obs_dim), real_obs[:1]):
        (got,) = sess.run(["action"], {"obs": obs.numpy()})
        assert got.shape == (obs.shape[0], 2) and got.dtype == np.float32
        np.testing.assert_allclose(got, policy.act(obs).numpy(), atol=TOL, rtol=0)


def test_graph_includes_the_normaliser(
    run_dir: Path, real_obs: torch.Tensor, tmp_path: Path
) -> None:
    """Raw observations into the graph == the actor's mean action on normalised observations."""
    policy = load_policy(run_dir)
    assert policy.obs_rms is not None
    normalised = policy.obs_rms.normalize(real_obs, policy.obs_clip)
    with torch.no_grad():
        expected = 2.0 * policy.agent.dist(normalised).mean - 1.0
        unnormalised = policy.agent(real_obs)
    # The normaliser matters for this checkpoint, so the comparison below can tell.
    assert (unnormalised - expected).abs().max() > 1e-2
    ts = torch.jit.load(str(export_torchscript(policy, tmp_path / "p.ts")))
    torch.testing.assert_close(ts(real_obs), expected, atol=TOL, rtol=0)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(export_onnx(policy, tmp_path / "p.onnx")))
    (got,) = sess.run(["action"], {"obs": real_obs.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)
    assert np.abs(got).max() <= 1.0


def test_run_dir_resolves_to_best_then_last(run_dir: Path, tmp_path: Path) -> None:
    assert resolve_checkpoint(run_dir) == run_dir / "checkpoints" / "last.pt"
    (tmp_path / "checkpoints").mkdir()
    for name in ("last.pt", "best.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    assert resolve_checkpoint(tmp_path) == tmp_path / "checkpoints" / "best.pt"


def test_bad_checkpoint_paths_error_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint not found"):
        load_policy(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match=r"no checkpoints/best\.pt or checkpoints/last\.pt"):
        load_policy(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable checkpoint"):
        export_onnx(bad, tmp_path / "x.onnx")
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable checkpoint"):
        export_torchscript(bad, tmp_path / "x.ts")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.ts").exists()


def test_cli_exports_and_reports_errors(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.ts"
    cmd = [sys.executable, "-m", "policy.export", str(run_dir), "--format", "torchscript",
           "--out", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "normaliser included" in res.stdout and out.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["cli.ts"]  # no temporary file left
    cmd = [sys.executable, "-m", "policy.export", str(tmp_path / "missing"), "--out", "x.onnx"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2 and "missing: checkpoint not found" in res.stderr


def test_run_without_observation_normaliser(tmp_path: Path, real_obs: torch.Tensor) -> None:
    """``ppo.norm_obs=false``: the graph feeds observations to the actor unchanged."""
    cfg = PPOConfig(num_envs=2, num_steps=4, hidden_sizes=[16], norm_obs=False)
    tr = PPOTrainer(DriveVectorEnv(2), cfg, seed=0)
    tr.start()
    save_checkpoint(tmp_path / "raw.pt", tr, {"ppo": asdict(cfg)})
    policy = load_policy(tmp_path / "raw.pt")
    assert policy.obs_rms is None
    with torch.no_grad():
        expected = tr.agent(real_obs)
    ts = torch.jit.load(str(export_torchscript(policy, tmp_path / "p.ts")))
    torch.testing.assert_close(ts(real_obs), expected, atol=TOL, rtol=0)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(export_onnx(policy, tmp_path / "p.onnx")))
    (got,) = sess.run(["action"], {"obs": real_obs.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)
