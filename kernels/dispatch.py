"""Backend choice for ``significance_postprocess``: Triton on CUDA tensors, torch elsewhere.

``SIGREWARD_KERNEL_BACKEND`` overrides the choice: ``torch`` always works; ``triton`` needs
CUDA tensors, or ``TRITON_INTERPRET=1`` for CPU tensors (the tests run the kernel that way);
``auto`` (or unset) is the default rule. Triton is imported lazily so this package imports
on machines without it.
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch
from torch import Tensor

from sigreward.kernels import reference
from sigreward.kernels.reference import SignificanceOutput

Backend = Literal["triton", "torch"]
BACKEND_ENV = "SIGREWARD_KERNEL_BACKEND"


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when triton is installed and imports."""
    try:
        import triton  # noqa: F401
    except Exception:  # absent, or a broken install (driver, ABI): the torch path still works
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def kernel_backend(device: torch.device | str) -> Backend:
    """The backend ``significance_postprocess`` uses for tensors on ``device``."""
    device = torch.device(device)
    choice = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice == "torch":
        return "torch"
    if choice == "triton":
        if not triton_available():
            raise RuntimeError(f"{BACKEND_ENV}=triton but triton is not importable")
        if device.type != "cuda" and not _interpreting():
            raise RuntimeError(
                f"{BACKEND_ENV}=triton needs CUDA tensors (got {device}) or TRITON_INTERPRET=1"
            )
        return "triton"
    if choice != "auto":
        raise ValueError(f"{BACKEND_ENV} must be one of auto, torch, triton; got {choice!r}")
    return "triton" if device.type == "cuda" and triton_available() else "torch"


def significance_postprocess(
    scores: Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    input_kind: str = "logit_diff",
    *,
    validate: bool = True,
) -> SignificanceOutput:
    """Normalised word values and per-sample counts (see reference); same bits on both backends."""
    args = (scores, cu_words, cu_segments, cu_samples, threshold, input_kind)
    if kernel_backend(scores.device) == "triton":
        from sigreward.kernels.significance import significance_postprocess_triton

        return significance_postprocess_triton(*args, validate=validate)
    return reference.significance_postprocess(*args, validate=validate)


def significance_postprocess_fused(
    hidden: Tensor,
    w_diff: Tensor,
    b_diff: float | Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    *,
    validate: bool = True,
) -> SignificanceOutput:
    """Fused-head variant: keep-logit difference = hidden @ w_diff + b_diff, never stored."""
    args = (hidden, w_diff, b_diff, cu_words, cu_segments, cu_samples, threshold)
    if kernel_backend(hidden.device) == "triton":
        from sigreward.kernels.significance import significance_postprocess_fused_triton

        return significance_postprocess_fused_triton(*args, validate=validate)
    return reference.significance_postprocess_fused(*args, validate=validate)
