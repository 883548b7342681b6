"""Torch implementation of ``significance_postprocess``: the oracle and the CPU path.

Inputs are flat ragged tensors in cu_seqlens style (docs/architecture.md, "Kernels"):
tokens -> words (``cu_words``) -> segments (``cu_segments``, the min-max unit) -> samples
(``cu_samples``, the unit that is counted).

Both backends compute the same IEEE operations in the same order, so they give bit-identical
answers (docs/architecture.md, "One answer per input"):
- precision: classifier logits (``input_kind="logit_diff"``) in float32, the published
  LLMLingua-2 code's precision; client values (``"values"``) in float64, exactly as sent;
- keep probability: ``keep_probability`` below, built from +, -, *, / and exact power-of-two
  scaling only (a library ``exp`` differs between devices in the last bit);
- word mean: the word's tokens summed left to right from +0.0, then divided by its length;
- normalisation: (mean - min) / (max - min) per segment, 1.0 when max == min;
- count: ``value < threshold`` (threshold rounded to the compute dtype) is insignificant.

A word with no tokens is not a unit: it is left out of its segment's min/max and of the
counts, and its normalised value is 0.0. The engine never produces one; the rule only keeps
such input well defined.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

INPUT_KINDS = ("logit_diff", "values")

# The fused head's dot product: products accumulated per lane over tiles of HEAD_TILE hidden
# features, then the HEAD_TILE lanes summed pairwise. The kernel uses the same tile, so the
# order of the additions, and therefore the rounding, is the same on both backends.
HEAD_TILE = 64

# exp(t) for t <= 0 (Cephes expf): t = n ln2 + r with |r| <= ln2 / 2, a degree-7 polynomial
# in r, times 2**n. LN2_HI has 9 significant bits, so n * LN2_HI is exact.
LOG2E = 1.4426950408889634
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
EXP_COEFFS = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
              1.6666665459e-1, 5.0000001201e-1)  # fmt: skip
# exp(-86) * 2**-0.5 is still a normal float32, so 2**n and the product stay normal (no
# subnormals, which some devices flush); below -86 the keep probability is < 5e-38 anyway.
EXP_FLOOR = -86.0


# cu_words, cu_segments, cu_samples
Offsets = tuple[Tensor, Tensor, Tensor]


class SignificanceOutput(NamedTuple):
    word_values: Tensor  # (W,) min-max normalised per segment: float32 logits, float64 values
    significant: Tensor  # (N,) int32
    insignificant: Tensor  # (N,) int32


def compute_dtype(input_kind: str) -> torch.dtype:
    """float32 for classifier logits, float64 for client values."""
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    return torch.float32 if input_kind == "logit_diff" else torch.float64


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
    """Normalised word values and per-sample significant / insignificant counts."""
    offsets = (cu_words, cu_segments, cu_samples)
    dtype = check_scores_call(scores, offsets, threshold, input_kind, validate)
    values = scores.to(dtype)
    if input_kind == "logit_diff":
        values = keep_probability(values)
    return _postprocess(values, cu_words, cu_segments, cu_samples, threshold)


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
    """As ``significance_postprocess`` with logit diff = hidden @ w_diff + b_diff (fp32)."""
    offsets = (cu_words, cu_segments, cu_samples)
    check_fused_call(hidden, w_diff, b_diff, offsets, threshold, validate)
    scores = head_logit_diff(hidden, w_diff, b_diff)
    return _postprocess(keep_probability(scores), cu_words, cu_segments, cu_samples, threshold)


# --- the shared arithmetic ------------------------------------------------------------------


def keep_probability(x: Tensor) -> Tensor:
    """sigmoid(x) in float32 for logit differences x, as softmax([0, x])[1] computes it:
    1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) below; the kernel's op sequence."""
    e = _exp_nonpositive(torch.clamp(-x.abs(), min=EXP_FLOOR))
    one = torch.ones_like(e)
    return torch.where(x >= 0, one, e) / (one + e)


def _exp_nonpositive(t: Tensor) -> Tensor:
    """exp(t) for float32 t in [EXP_FLOOR, 0]; one rounded float32 op per line."""
    n = (t * LOG2E - 0.5).to(torch.int32)  # truncation: the integer nearest t * log2(e)
    nf = n.to(torch.float32)
    r = t - nf * LN2_HI
    r = r - nf * LN2_LO
    p = torch.full_like(r, EXP_COEFFS[0])
    for c in EXP_COEFFS[1:]:
        p = p * r + c
    e = p * (r * r) + r + 1.0
    return e * ((n + 127) << 23).view(torch.float32)  # exact: 2**n is a normal float32


def head_logit_diff(hidden: Tensor, w_diff: Tensor, b_diff: float | Tensor) -> Tensor:
    """(T,) float32 hidden @ w_diff + b_diff in the kernel's order (see HEAD_TILE)."""
    n_tok, dim = hidden.shape
    tiles = max(1, -(-dim // HEAD_TILE))
    products = hidden.float() * w_diff.float()
    padded = products.new_zeros(n_tok, tiles * HEAD_TILE)
    padded[:, :dim] = products
    lanes = padded.new_zeros(n_tok, HEAD_TILE)
    for tile in padded.view(n_tok, tiles, HEAD_TILE).unbind(1):
        lanes = lanes + tile
    while lanes.shape[1] > 1:
        pairs = lanes.view(n_tok, lanes.shape[1] // 2, 2)
        lanes = pairs[..., 0] + pairs[..., 1]
    return lanes[:, 0] + _as_float_tensor(b_diff, hidden.device)


def word_means(values: Tensor, cu_words: Tensor) -> Tensor:
    """(W,) each word's tokens summed left to right from +0.0, divided by its length."""
    starts = cu_words[:-1].long()
    lengths = (cu_words[1:] - cu_words[:-1]).long()
    total = torch.zeros(lengths.numel(), dtype=values.dtype, device=values.device)
    # Longest words first, so the words still summing at token j are a prefix of `order`.
    order = torch.argsort(lengths, descending=True, stable=True)
    still = torch.bincount(lengths, minlength=1).flip(0).cumsum(0).flip(0).tolist()
    for j in range(1, len(still)):  # still[j]: the number of words with at least j tokens
        words = order[: still[j]]
        total[words] = total[words] + values[starts[words] + (j - 1)]
    return total / lengths.clamp(min=1).to(values.dtype)


def _postprocess(
    values: Tensor, cu_words: Tensor, cu_segments: Tensor, cu_samples: Tensor, threshold: float
) -> SignificanceOutput:
    device, dtype = values.device, values.dtype
    n_segments = cu_segments.numel() - 1
    n_samples = cu_samples.numel() - 1
    word_len = (cu_words[1:] - cu_words[:-1]).long()
    seg_len = (cu_segments[1:] - cu_segments[:-1]).long()
    sample_len = (cu_samples[1:] - cu_samples[:-1]).long()

    mean = word_means(values, cu_words)
    nonempty = word_len > 0
    word_seg = torch.repeat_interleave(torch.arange(n_segments, device=device), seg_len)
    inf = torch.tensor(math.inf, dtype=dtype, device=device)
    seg_min = torch.full((n_segments,), math.inf, dtype=dtype, device=device)
    seg_max = torch.full((n_segments,), -math.inf, dtype=dtype, device=device)
    seg_min.scatter_reduce_(0, word_seg, torch.where(nonempty, mean, inf), "amin")
    seg_max.scatter_reduce_(0, word_seg, torch.where(nonempty, mean, -inf), "amax")
    spread = seg_max > seg_min
    seg_span = torch.where(spread, seg_max - seg_min, 1.0)
    lo, span = seg_min[word_seg], seg_span[word_seg]
    normalised = torch.where(spread[word_seg], (mean - lo) / span, 1.0)
    word_values = torch.where(nonempty, normalised, 0.0)

    below = word_values < torch.tensor(threshold, dtype=dtype, device=device)
    seg_sample = torch.repeat_interleave(torch.arange(n_samples, device=device), sample_len)
    word_sample = seg_sample[word_seg]
    significant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    insignificant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    significant.index_add_(0, word_sample, (nonempty & ~below).int())
    insignificant.index_add_(0, word_sample, (nonempty & below).int())
    return SignificanceOutput(word_values, significant, insignificant)


# --- validation -----------------------------------------------------------------------------


def check_scores_call(
    scores: Tensor, offsets: Offsets, threshold: float, input_kind: str, validate: bool
) -> torch.dtype:
    """The checks of a ``significance_postprocess`` call (both backends); its compute dtype.

    ``validate=False`` skips the checks that read the tensors (they cost a device sync)."""
    dtype = compute_dtype(input_kind)
    check_threshold(threshold)
    if validate:
        check_scores(scores)
        check_offsets(scores.shape[0], *offsets, scores.device)
    return dtype


def check_fused_call(
    hidden: Tensor,
    w_diff: Tensor,
    b_diff: float | Tensor,
    offsets: Offsets,
    threshold: float,
    validate: bool,
) -> None:
    """The checks of a ``significance_postprocess_fused`` call (both backends)."""
    check_threshold(threshold)
    if validate:
        check_head(hidden, w_diff, b_diff)
        check_offsets(hidden.shape[0], *offsets, hidden.device)


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


def check_offsets(
    n_tokens: int, cu_words: Tensor, cu_segments: Tensor, cu_samples: Tensor, device: torch.device
) -> None:
    """Raise ValueError naming the first bad offsets tensor.

    The common case costs one device sync: every check is folded into one boolean, and only
    when that fails are the checks repeated one by one to name the culprit.
    """
    named = (("cu_words", cu_words), ("cu_segments", cu_segments), ("cu_samples", cu_samples))
    for name, cu in named:
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


def _as_float_tensor(b: float | Tensor, device: torch.device) -> Tensor:
    if isinstance(b, Tensor):
        return b.reshape(()).float()
    return torch.tensor(float(b), dtype=torch.float32, device=device)
