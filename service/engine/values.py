"""Client-supplied values (method.md section 1, "values"): one unit per value, one min-max
segment per response."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ValuesLayout:
    scores: torch.Tensor  # (T,) float32, all values concatenated
    cu_words: torch.Tensor  # (T+1,) int32: one unit per value
    cu_segments: torch.Tensor  # (N+1,) int32: one segment per response
    cu_samples: torch.Tensor  # (N+1,) int32: one segment per sample


def layout_values(values: list[list[float]]) -> ValuesLayout:
    """Flat tensors for the kernel; raises ValueError naming the first non-finite value."""
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    flat = np.fromiter((x for v in values for x in v), dtype=np.float64, count=int(lengths.sum()))
    bad = ~np.isfinite(flat)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        sample = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
        index = first - int(lengths[:sample].sum())
        raise ValueError(f"values[{sample}][{index}] must be a finite number, got {flat[first]}")
    cu = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=cu[1:])
    total = int(cu[-1])
    # Min-max is shift invariant: subtracting each response's minimum in float64 first keeps
    # values like 1e6 + 0.1 and 1e6 + 0.2 apart after the float32 cast.
    nonempty = lengths > 0
    if total:
        mins = np.minimum.reduceat(flat, cu[:-1][nonempty])
        flat = flat - np.repeat(mins, lengths[nonempty])
    if total and flat.max() > np.finfo(np.float32).max:
        raise ValueError("values of one response span more than the float32 range")
    return ValuesLayout(
        scores=torch.from_numpy(flat.astype(np.float32)),
        cu_words=torch.arange(total + 1, dtype=torch.int32),
        cu_segments=torch.from_numpy(cu),
        cu_samples=torch.arange(len(values) + 1, dtype=torch.int32),
    )


def check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not math.isfinite(value):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    return value
