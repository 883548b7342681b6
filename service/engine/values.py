"""Client-supplied values (values mode): one unit per value, one min-max segment per response,
float64 throughout so the values count exactly as the client's numbers say."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sigreward.domain.samples import SPAN_ERROR
from sigreward.kernels.contract import RaggedOffsets


@dataclass(frozen=True)
class ValuesLayout:
    scores: torch.Tensor  # (T,) float64, all values concatenated, exactly as sent
    # one unit per value, one segment per response, one segment per sample
    offsets: RaggedOffsets


def layout_values(values: list[list[float]]) -> ValuesLayout:
    """Flat float64 tensors for the kernel (values mode computes in float64 end to end).

    Raises ValueError naming the first non-finite value, or the first response whose span
    max - min overflows a double (its normalised values would not be numbers).
    """
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
    nonempty = lengths > 0
    if total:
        starts = cu[:-1][nonempty]
        with np.errstate(over="ignore"):
            spans = np.maximum.reduceat(flat, starts) - np.minimum.reduceat(flat, starts)
        if not np.isfinite(spans).all():
            sample = int(np.flatnonzero(nonempty)[int(np.flatnonzero(~np.isfinite(spans))[0])])
            raise ValueError(f"values[{sample}]: {SPAN_ERROR}")
    return ValuesLayout(
        scores=torch.from_numpy(flat),
        offsets=RaggedOffsets(
            cu_words=torch.arange(total + 1, dtype=torch.int32),
            cu_segments=torch.from_numpy(cu),
            cu_samples=torch.arange(len(values) + 1, dtype=torch.int32),
        ),
    )


def check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not math.isfinite(value):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    return value
