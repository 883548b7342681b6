"""scripts/gpu-check: the dry run on the CPU writes one report that says what it skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_writes_a_report_with_what_it_skipped(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "gpu-check"),
            "--dry-run",
            "--out",
            str(out),
            "--only",
            "varlen-attention,kernel-bandwidth,engine-xlmr-large",
            "--model-cache",
            str(tmp_path / "models"),
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = out.read_text()
    assert "dry run on the CPU" in report
    assert "| varlen-attention | ok |" in report
    assert "| kernel-bandwidth | ok |" in report
    assert "| engine-xlmr-large | skipped |" in report
    skipped = report.split("## Skipped", 1)[1]
    assert "engine-xlmr-large: needs a CUDA device" in skipped
    assert "kernel-bandwidth: Triton kernel bandwidth against HBM: needs a GPU run" in skipped
    assert "torch.nn.attention.varlen.varlen_attn" in report  # the probe's own output


def test_gpu_steps_compile_kernels_and_cpu_steps_interpret() -> None:
    on_gpu = {s.name: s for s in gpu_check.steps("/tmp/models", "/tmp/xlmr", cuda=True)}
    on_cpu = {s.name: s for s in gpu_check.steps("/tmp/models", None, cuda=False)}
    assert "TRITON_INTERPRET" not in on_gpu["kernel-tests"].env
    assert on_cpu["kernel-tests"].env["TRITON_INTERPRET"] == "1"
    assert on_gpu["engine-xlmr-large"].gpu is not None
    assert on_cpu["engine-xlmr-large"].gpu is None
    assert all(s.gpu is not None for s in on_gpu.values())


def test_a_step_without_budget_or_packages_is_skipped() -> None:
    step = gpu_check.Step("x", "y", gpu=["-c", "pass"], cpu=["-c", "pass"], timeout_s=60)
    assert gpu_check.run_step(step, step.cpu, budget_left=5, cuda=False).status == "skipped"
    ran = gpu_check.run_step(step, step.cpu, budget_left=100, cuda=False)
    assert ran.status == "ok"
    step.needs = ("no_such_module_sigreward",)
    result = gpu_check.run_step(step, step.cpu, budget_left=100, cuda=False)
    assert result.status == "skipped" and "no_such_module_sigreward" in result.note
