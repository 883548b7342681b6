"""Smoke test of bench/bench_kernel.py: it runs on a tiny batch and times every case this
machine has (the torch reference on a machine without CUDA; the Triton kernel too on CUDA)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_bench_kernel_runs_every_case() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_kernel", "--samples", "3", "--words", "40",
         "--dim", "24"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = ["torch  logit_diff", "torch  values fp64", "torch  fused bf16"]
    if torch.cuda.is_available():
        names += ["triton logit_diff", "triton values fp64", "triton fused bf16"]
    for name in names:
        assert any(line.startswith(name) and " ms " in line for line in done.stdout.splitlines()), (
            name,
            done.stdout,
        )
