"""Fused post-processing of significance scores: flat ragged tensors in, normalised word values
and per-sample counts out."""

from sigreward.kernels.dispatch import (
    kernel_backend,
    significance_postprocess,
    significance_postprocess_fused,
    triton_available,
)
from sigreward.kernels.reference import SignificanceOutput

__all__ = [
    "SignificanceOutput",
    "kernel_backend",
    "significance_postprocess",
    "significance_postprocess_fused",
    "triton_available",
]
