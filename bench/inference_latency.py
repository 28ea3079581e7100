"""Policy inference latency per runtime: one JSON line per runtime.

Runtimes, all on CPU with one thread (the deployment setting: the simulator or the vehicle
stack owns the other cores; see docs/ppo.md on threads):

- ``torch_eager``: :meth:`policy.export.LoadedPolicy.act`, the training-time path (float64
  normaliser + ``torch.distributions.Beta`` mean) under ``torch.no_grad``;
- ``torchscript``: :func:`policy.export.export_torchscript`, loaded with ``torch.jit.load``;
- ``onnxruntime``: :func:`policy.export.export_onnx` in an ``onnxruntime.InferenceSession``
  (``intra_op_num_threads = inter_op_num_threads = 1``); skipped, with a note, without it.

Each measures one call ``obs (B, D) -> action (B, 2)`` from a numpy array to a numpy array
(the boundary a controller has), at B = 1 and B = 1024, after warm-up; median and p95 over
``--iters`` calls, in microseconds. Without a checkpoint a fresh (untrained) policy with the
default 64x64 network and real normaliser statistics is used: latency depends only on shapes.

    python bench/inference_latency.py
    python bench/inference_latency.py --checkpoint outputs/train/2026-11-25/06-00-00
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policy.export import LoadedPolicy, export_onnx, export_torchscript, load_policy
from policy.ppo.checkpoint import save_checkpoint
from policy.ppo.config import PPOConfig
from policy.ppo.trainer import PPOTrainer
from sim.env import DriveVectorEnv

BATCHES = (1, 1024)


def fresh_checkpoint(path: Path) -> Path:
    """A default-size policy after one tiny update (normaliser statistics from real obs)."""
    cfg = PPOConfig(num_envs=8, num_steps=16)
    tr = PPOTrainer(DriveVectorEnv(8), cfg, seed=0)
    tr.start()
    tr.train_update(1)
    save_checkpoint(path, tr, {"ppo": asdict(cfg)})
    return path


def measure(fn: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, iters: int) -> dict[str, Any]:
    for _ in range(max(10, iters // 10)):  # warm-up: allocator, lazy init, JIT profiling runs
        fn(obs)
    times = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        fn(obs)
        times[i] = time.perf_counter_ns() - t0
    us = times / 1e3
    return {
        "median_us": round(float(np.median(us)), 1),
        "p95_us": round(float(np.percentile(us, 95)), 1),
    }


def runtimes(
    policy: LoadedPolicy, tmp: Path
) -> dict[str, Callable[[np.ndarray], np.ndarray] | str]:
    def eager(obs: np.ndarray) -> np.ndarray:
        out: np.ndarray = policy.act(torch.from_numpy(obs)).numpy()
        return out

    ts = torch.jit.load(str(export_torchscript(policy, tmp / "policy.ts")))  # type: ignore[no-untyped-call]

    def script(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = ts(torch.from_numpy(obs)).numpy()
        return out

    fns: dict[str, Callable[[np.ndarray], np.ndarray] | str] = {
        "torch_eager": eager,
        "torchscript": script,
    }
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError:
        fns["onnxruntime"] = "onnxruntime not installed"
        return fns
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        str(export_onnx(policy, tmp / "policy.onnx")), opts, providers=["CPUExecutionProvider"]
    )

    def onnx(obs: np.ndarray) -> np.ndarray:
        out: np.ndarray = sess.run(["action"], {"obs": obs})[0]
        return out

    fns["onnxruntime"] = onnx
    return fns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint or train run dir (default: a fresh policy)")
    ap.add_argument("--iters", type=int, default=2000, help="timed calls per batch size")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = args.checkpoint or fresh_checkpoint(tmp / "fresh.pt")
        policy = load_policy(src)
        rng = np.random.default_rng(0)
        env = DriveVectorEnv(max(BATCHES))
        real, _ = env.reset(seed=0)  # real observations: realistic value ranges
        for _ in range(5):
            real, *_ = env.step(rng.uniform(-1, 1, (max(BATCHES), 2)).astype(np.float32))
        common = {
            "obs_dim": policy.agent.obs_dim,
            "hidden": [
                m.out_features for m in policy.agent.actor if isinstance(m, torch.nn.Linear)
            ][:-1],
            "threads": 1,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        }
        for name, fn in runtimes(policy, tmp).items():
            if isinstance(fn, str):
                print(json.dumps({"runtime": name, "skipped": fn}), flush=True)
                continue
            row: dict[str, Any] = {"runtime": name}
            for b in BATCHES:
                obs = np.ascontiguousarray(real[:b])
                iters = args.iters if b == 1 else max(args.iters // 10, 50)
                for k, v in measure(fn, obs, iters).items():
                    row[f"b{b}_{k}"] = v
            if name == "onnxruntime":
                import onnxruntime as ort

                row["onnxruntime"] = ort.__version__
            print(json.dumps({**row, **common}), flush=True)


if __name__ == "__main__":
    main()
