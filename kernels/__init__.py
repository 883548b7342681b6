"""Fused post-processing of significance scores: flat ragged tensors in, normalised word values
and per-sample counts out."""

from sigreward.kernels.contract import RaggedOffsets, SignificanceOutput
from sigreward.kernels.dispatch import (
    kernel_backend,
    significance_postprocess,
    significance_postprocess_fused,
    triton_available,
)

__all__ = [
    "RaggedOffsets",
    "SignificanceOutput",
    "kernel_backend",
    "significance_postprocess",
    "significance_postprocess_fused",
    "triton_available",
]
