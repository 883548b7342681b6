"""The engine's fused-head path through the Triton kernel (interpreted on the CPU).

On CUDA the engine hands the encoder's hidden states of word tokens and the 2-label head to
the fused Triton kernel. Here the same wiring runs with TRITON_INTERPRET=1 and is compared
with the torch path. A subprocess keeps the interpreter setting out of this test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from sigreward.engine import SignificanceEngine
texts = ["First, we add the numbers. Then we check.", "", "word " * 600]
e = SignificanceEngine(sys.argv[1], device="cpu")
d = e.inspect_texts(texts, 0.5)
print(json.dumps({"backend": e.kernel_backend, "fused": e._classifier.fused,
                  "details": [[x.units, x.values, x.significant, x.insignificant] for x in d]}))
"""


def run_engine(model_dir: Path, backend: str) -> dict:
    env = dict(os.environ, SIGREWARD_KERNEL_BACKEND=backend, TRITON_INTERPRET="1")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.kernels
def test_fused_triton_path_matches_torch_path(tiny_xlmr_dir: Path) -> None:
    pytest.importorskip("triton")
    triton = run_engine(tiny_xlmr_dir, "triton")
    torch_ = run_engine(tiny_xlmr_dir, "torch")
    assert (triton["backend"], triton["fused"]) == ("triton", True)
    assert (torch_["backend"], torch_["fused"]) == ("torch", False)
    for a, b in zip(triton["details"], torch_["details"], strict=True):
        assert a[0] == b[0]
        assert (a[2], a[3]) == (b[2], b[3])
        assert a[1] == pytest.approx(b[1], abs=1e-5)
