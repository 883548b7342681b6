"""Backend choice, the environment override, and importing without triton."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sigreward.kernels import dispatch, kernel_backend, significance_postprocess
from sigreward.kernels.contract import ScoresCall, SignificanceOutput
from tests.kernels.backends import torch_postprocess
from tests.kernels.ragged import assert_same, ragged

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_tensors_use_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dispatch.BACKEND_ENV, raising=False)
    assert kernel_backend("cpu") == "torch"
    assert kernel_backend(torch.device("cpu")) == "torch"


def test_cuda_tensors_use_triton_when_it_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dispatch.BACKEND_ENV, raising=False)
    expected = "triton" if dispatch.triton_available() else "torch"
    assert kernel_backend("cuda") == expected
    monkeypatch.setenv(dispatch.BACKEND_ENV, "torch")
    assert kernel_backend("cuda") == "torch"


def test_bad_override_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dispatch.BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match="SIGREWARD_KERNEL_BACKEND must be one of"):
        kernel_backend("cpu")


def test_triton_override_on_cpu_needs_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dispatch.BACKEND_ENV, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        kernel_backend("cpu")


@pytest.mark.kernels
def test_triton_override_runs_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dispatch.BACKEND_ENV, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernel_backend("cpu") == "triton"
    calls = []
    import sigreward.kernels.significance as triton_impl

    real = triton_impl.postprocess_scores

    def spy(call: ScoresCall) -> SignificanceOutput:
        calls.append(1)
        return real(call)

    monkeypatch.setattr(triton_impl, "postprocess_scores", spy)
    b = ragged([[[1, 2], [3]], [[1, 1, 1, 1]]])
    scores = torch.randn(b.n_tokens)
    got = significance_postprocess(scores, b.offsets, 0.4)
    want = torch_postprocess(scores, b.offsets, 0.4)
    assert calls == [1]
    assert_same(got, want)


def test_package_imports_and_runs_without_triton() -> None:
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, sigreward.kernels\n"
        "assert sigreward.kernels.kernel_backend('cuda') == 'torch', 'triton must not be chosen'\n"
        "one = torch.tensor([0, 1], dtype=torch.int32)\n"
        "offsets = sigreward.kernels.RaggedOffsets(one, one, one)\n"
        "out = sigreward.kernels.significance_postprocess(torch.zeros(1), offsets, 0.5)\n"
        "assert out.significant.tolist() == [1]\n"
        "assert 'sigreward.kernels.significance' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != dispatch.BACKEND_ENV}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
