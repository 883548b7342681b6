"""The contract of ``significance_postprocess``, shared by both backends: the types of its
inputs and outputs, and the checks of its arguments.

The public ops (dispatch.py) check their arguments once and pass a ``ScoresCall`` or a
``FusedCall`` on; the torch implementation (reference.py) and the Triton launchers
(significance.py) take that call and trust it.

Inputs are flat ragged tensors in cu_seqlens style (docs/architecture.md, "Kernels"):
tokens -> words (``cu_words``) -> segments (``cu_segments``, the min-max unit) -> samples
(``cu_samples``, the unit that is counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

INPUT_KINDS = ("logit_diff", "values")


class RaggedOffsets(NamedTuple):
    """The three int32 offset tensors of a batch, each starting at 0 and non-decreasing."""

    cu_words: Tensor  # (W+1,): word w = tokens cu_words[w]:cu_words[w+1]
    cu_segments: Tensor  # (G+1,): segment g = words cu_segments[g]:cu_segments[g+1]
    cu_samples: Tensor  # (N+1,): sample n = segments cu_samples[n]:cu_samples[n+1]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RaggedOffsets:
        return RaggedOffsets(*(t.to(device, non_blocking=non_blocking) for t in self))


class SignificanceOutput(NamedTuple):
    word_values: Tensor  # (W,) min-max normalised per segment: float32 logits, float64 values
    significant: Tensor  # (N,) int32
    insignificant: Tensor  # (N,) int32


@dataclass(frozen=True)
class ScoresCall:
    """A call on per-token scores: keep-logit differences or client values."""

    scores: Tensor  # (T,) float
    offsets: RaggedOffsets
    threshold: float
    input_kind: str = "logit_diff"  # one of INPUT_KINDS

    @property
    def dtype(self) -> torch.dtype:
        return compute_dtype(self.input_kind)

    @property
    def sigmoid(self) -> bool:
        """Logits become keep probabilities first; values are used as they are."""
        return self.input_kind == "logit_diff"


@dataclass(frozen=True)
class FusedCall:
    """A call on hidden states and the 2-label head: logit diff = hidden @ w_diff + b_diff,
    computed in float32."""

    hidden: Tensor  # (T, d) float
    w_diff: Tensor  # (d,) float: W[1] - W[0] of the head
    b_diff: float | Tensor  # b[1] - b[0], a number or a one-element tensor
    offsets: RaggedOffsets
    threshold: float

    def bias(self) -> Tensor:
        """``b_diff`` as a () float32 tensor on the device of ``hidden``."""
        if isinstance(self.b_diff, Tensor):
            return self.b_diff.reshape(()).float()
        return torch.tensor(float(self.b_diff), dtype=torch.float32, device=self.hidden.device)


def compute_dtype(input_kind: str) -> torch.dtype:
    """float32 for classifier logits, float64 for client values."""
    check_input_kind(input_kind)
    return torch.float32 if input_kind == "logit_diff" else torch.float64


def check_input_kind(input_kind: str) -> None:
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")


def check_threshold(threshold: float) -> None:
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")


def check_scores(scores: Tensor) -> None:
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (T,), got shape {tuple(scores.shape)}")
    if not scores.dtype.is_floating_point:
        raise ValueError(f"scores must be a float tensor, got {scores.dtype}")


def check_head(hidden: Tensor, w_diff: Tensor, b_diff: float | Tensor) -> None:
    if hidden.dim() != 2:
        raise ValueError(f"hidden must be 2-D (T, d), got shape {tuple(hidden.shape)}")
    if not hidden.dtype.is_floating_point:
        raise ValueError(f"hidden must be a float tensor, got {hidden.dtype}")
    if w_diff.dim() != 1 or w_diff.shape[0] != hidden.shape[1]:
        raise ValueError(
            f"w_diff must have shape ({hidden.shape[1]},) to match hidden, "
            f"got {tuple(w_diff.shape)}"
        )
    if not w_diff.dtype.is_floating_point:
        raise ValueError(f"w_diff must be a float tensor, got {w_diff.dtype}")
    if w_diff.device != hidden.device:
        raise ValueError(f"w_diff is on {w_diff.device}, hidden on {hidden.device}")
    if isinstance(b_diff, Tensor):
        if b_diff.numel() != 1:
            raise ValueError(f"b_diff must be a scalar, got shape {tuple(b_diff.shape)}")
        if b_diff.device != hidden.device:
            raise ValueError(f"b_diff is on {b_diff.device}, hidden on {hidden.device}")


def check_offsets(n_tokens: int, offsets: RaggedOffsets, device: torch.device) -> None:
    """Raise ValueError naming the first bad offsets tensor.

    The common case costs one device sync: every check is folded into one boolean, and only
    when that fails are the checks repeated one by one to name the culprit.
    """
    cu_words, cu_segments, cu_samples = offsets
    for name, cu in zip(RaggedOffsets._fields, offsets, strict=True):
        if cu.dim() != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(cu.shape)}")
        if cu.dtype != torch.int32:
            raise ValueError(f"{name} must be int32, got {cu.dtype}")
        if cu.numel() < 1:
            raise ValueError(f"{name} must hold at least one offset (the leading 0)")
        if cu.device != device:
            raise ValueError(f"{name} is on {cu.device}, scores on {device}")
    ends = (
        ("cu_words", cu_words, n_tokens, "the number of tokens T"),
        ("cu_segments", cu_segments, cu_words.numel() - 1, "the number of words W"),
        ("cu_samples", cu_samples, cu_segments.numel() - 1, "the number of segments G"),
    )
    checks = [_offsets_ok(cu, end) for _, cu, end, _ in ends]
    if bool(torch.stack(checks).all()):
        return
    for (name, cu, end, what), ok in zip(ends, checks, strict=True):
        if bool(ok):
            continue
        if int(cu[0]) != 0:
            raise ValueError(f"{name} must start at 0, got {int(cu[0])}")
        if int(cu[-1]) != end:
            raise ValueError(f"{name} must end at {what} ({end}), got {int(cu[-1])}")
        bad = int(torch.nonzero(cu[1:] < cu[:-1])[0, 0])
        raise ValueError(
            f"{name} must be non-decreasing, but {name}[{bad + 1}] = {int(cu[bad + 1])} "
            f"< {name}[{bad}] = {int(cu[bad])}"
        )


def _offsets_ok(cu: Tensor, end: int) -> Tensor:
    ok = (cu[0] == 0) & (cu[-1] == end)
    if cu.numel() > 1:
        ok = ok & (cu[1:] >= cu[:-1]).all()
    return ok
