"""The kernel compiles for NVIDIA GPUs (sm_80, sm_90) on a machine without one, and its PTX
has only correctly rounded float operations: no fused multiply-add, no approximate division,
exp or reciprocal, no flush-to-zero. That is what makes the compiled kernel give the CPU
reference's bits; on a machine with CUDA the gpu test checks the bits themselves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sigreward.kernels.reference import HEAD_TILE

ROOT = Path(__file__).resolve().parents[2]

SIGNATURE = {
    "scores_ptr": "*fp32",
    "hidden_ptr": "*bf16",
    "w_ptr": "*fp32",
    "b_ptr": "*fp32",
    "stride_h": "i32",
    "dim": "i32",
    "cu_words_ptr": "*i32",
    "cu_segments_ptr": "*i32",
    "cu_samples_ptr": "*i32",
    "word_values_ptr": "*fp32",
    "threshold_ptr": "*fp32",
    "significant_ptr": "*i32",
    "insignificant_ptr": "*i32",
}
FP64 = {"scores_ptr": "*fp64", "word_values_ptr": "*fp64", "threshold_ptr": "*fp64"}
VARIANTS = {
    "logits": ({}, {"SIGMOID": True, "FUSED": False, "FP64": False, "BLOCK": 128}),
    "values": (FP64, {"SIGMOID": False, "FUSED": False, "FP64": True, "BLOCK": 128}),
    "fused": ({}, {"SIGMOID": True, "FUSED": True, "FP64": False, "BLOCK": 32}),
}
INEXACT = re.compile(r"\b(fma\.\S+|mad\.\S+f\d\d|ex2\.\S+|lg2\.\S+|div\.(full|approx)\S*|"
                     r"rcp\.approx\S*|\w+\.ftz\S*)")  # fmt: skip


def compile_ptx(variant: str, capability: int) -> str:
    """PTX of one variant; needs TRITON_INTERPRET unset (see ``_ptx``)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    from sigreward.kernels.significance import LAUNCH_OPTIONS
    from sigreward.kernels.significance import _significance_kernel as kernel

    overrides, constants = VARIANTS[variant]
    constants = {**constants, "BLOCK_D": HEAD_TILE, "LOG2_D": HEAD_TILE.bit_length() - 1}
    signature = {**SIGNATURE, **overrides, **{name: "constexpr" for name in constants}}
    index = {name: kernel.arg_names.index(name) for name in constants}
    src = ASTSource(
        fn=kernel,
        signature=signature,
        constexprs={(index[name],): value for name, value in constants.items()},
    )
    target = GPUTarget("cuda", capability, 32)
    out = compile(src, target=target, options={**LAUNCH_OPTIONS, "num_warps": 4})
    return str(out.asm["ptx"])


def _ptx(variant: str, capability: int) -> str:
    # This process runs the kernel in the interpreter; compiling needs a fresh one without it.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, __file__, variant, str(capability)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.kernels
@pytest.mark.skipif(torch.cuda.is_available(), reason="the gpu tests run the real kernel")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ptx_has_only_correctly_rounded_float_ops(variant: str) -> None:
    ptx = _ptx(variant, 90)
    assert "div.rn.f" in ptx  # the divisions are there, and IEEE
    assert not INEXACT.findall(ptx), sorted({m[0] for m in INEXACT.findall(ptx)})


if __name__ == "__main__":
    print(compile_ptx(sys.argv[1], int(sys.argv[2])))
