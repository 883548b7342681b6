"""Backend choice for ``significance_postprocess``: Triton on CUDA tensors, torch elsewhere.

``SIGREWARD_KERNEL_BACKEND`` overrides the choice: ``torch`` always works; ``triton`` needs
CUDA tensors, or ``TRITON_INTERPRET=1`` for CPU tensors (the tests run the kernel that way);
``auto`` (or unset) is the default rule. Triton is imported lazily so this package imports
on machines without it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import torch
from torch import Tensor

from sigreward.kernels import reference
from sigreward.kernels.reference import SignificanceOutput

Backend = Literal["triton", "torch"]
BACKEND_ENV = "SIGREWARD_KERNEL_BACKEND"
Op = TypeVar("Op", bound=Callable[..., SignificanceOutput])


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


def _dispatching(torch_impl: Op, triton_name: str) -> Op:
    """``torch_impl``'s signature and contract, run by the Triton launcher ``triton_name`` of
    kernels/significance.py when ``kernel_backend`` picks Triton for the first tensor's device
    (both give the same bits; see reference.py)."""

    @functools.wraps(torch_impl)
    def call(first: Tensor, *args: Any, **kwargs: Any) -> SignificanceOutput:
        if kernel_backend(first.device) == "triton":
            from sigreward.kernels import significance  # triton is imported only here

            return getattr(significance, triton_name)(first, *args, **kwargs)
        return torch_impl(first, *args, **kwargs)

    return cast(Op, call)


significance_postprocess = _dispatching(
    reference.significance_postprocess, "significance_postprocess_triton"
)
significance_postprocess_fused = _dispatching(
    reference.significance_postprocess_fused, "significance_postprocess_fused_triton"
)
