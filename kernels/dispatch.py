"""The public ops: a call is checked once (contract.py), then run by Triton on CUDA tensors
and by torch elsewhere.

``SIGREWARD_KERNEL_BACKEND`` overrides the choice: ``torch`` always works; ``triton`` needs
CUDA tensors, or ``TRITON_INTERPRET=1`` for CPU tensors (the tests run the kernel that way);
``auto`` (or unset) is the default rule. Triton is imported lazily so this package imports
on machines without it.
"""

from __future__ import annotations

import functools
import os
from typing import Literal, Protocol

import torch
from torch import Tensor

from sigreward.kernels import reference
from sigreward.kernels.contract import (
    FusedCall,
    RaggedOffsets,
    ScoresCall,
    SignificanceOutput,
    check_head,
    check_input_kind,
    check_offsets,
    check_scores,
    check_threshold,
)

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
    offsets: RaggedOffsets,
    threshold: float,
    input_kind: str = "logit_diff",
    *,
    validate: bool = True,
) -> SignificanceOutput:
    """Normalised word values and per-sample significant / insignificant counts of per-token
    ``scores``: keep-logit differences (``input_kind="logit_diff"``) or client values
    (``"values"``, no sigmoid). Raises ValueError naming a bad argument; ``validate=False``
    skips the checks that read the tensors (they cost a device sync), for callers that checked
    the offsets on the host."""
    check_input_kind(input_kind)
    check_threshold(threshold)
    if validate:
        check_scores(scores)
        check_offsets(scores.shape[0], offsets, scores.device)
    call = ScoresCall(scores, offsets, threshold, input_kind)
    return _backend(scores.device).postprocess_scores(call)


def significance_postprocess_fused(
    hidden: Tensor,
    w_diff: Tensor,
    b_diff: float | Tensor,
    offsets: RaggedOffsets,
    threshold: float,
    *,
    validate: bool = True,
) -> SignificanceOutput:
    """As ``significance_postprocess`` on the logit differences hidden @ w_diff + b_diff of the
    2-label head, which never reach memory on the Triton backend."""
    check_threshold(threshold)
    if validate:
        check_head(hidden, w_diff, b_diff)
        check_offsets(hidden.shape[0], offsets, hidden.device)
    call = FusedCall(hidden, w_diff, b_diff, offsets, threshold)
    return _backend(hidden.device).postprocess_fused(call)


class _Implementation(Protocol):
    """What reference.py and significance.py each provide (the launchers add tuning keywords)."""

    def postprocess_scores(self, call: ScoresCall) -> SignificanceOutput: ...

    def postprocess_fused(self, call: FusedCall) -> SignificanceOutput: ...


def _backend(device: torch.device) -> _Implementation:
    """The module that runs a checked call: both give the same bits (see reference.py)."""
    if kernel_backend(device) == "triton":
        from sigreward.kernels import significance  # triton is imported only here

        return significance
    return reference
