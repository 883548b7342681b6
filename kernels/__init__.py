"""Fused post-processing of significance scores: flat ragged tensors in, counts and rewards out."""

from kernels.dispatch import (
    kernel_backend,
    significance_postprocess,
    significance_postprocess_fused,
    triton_available,
)
from kernels.reference import SignificanceOutput

__all__ = [
    "SignificanceOutput",
    "kernel_backend",
    "significance_postprocess",
    "significance_postprocess_fused",
    "triton_available",
]
