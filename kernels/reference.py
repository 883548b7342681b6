"""Torch implementation of ``significance_postprocess``: the oracle and the CPU path. It runs
a call whose arguments the public op (dispatch.py) has checked; the types are in contract.py.

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

import torch
from torch import Tensor

from sigreward.kernels.contract import FusedCall, RaggedOffsets, ScoresCall, SignificanceOutput

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


def postprocess_scores(call: ScoresCall) -> SignificanceOutput:
    """Normalised word values and per-sample significant / insignificant counts."""
    values = call.scores.to(call.dtype)
    if call.sigmoid:
        values = keep_probability(values)
    return _postprocess(values, call.offsets, call.threshold)


def postprocess_fused(call: FusedCall) -> SignificanceOutput:
    """As ``postprocess_scores`` on the logit differences hidden @ w_diff + b_diff (float32)."""
    scores = head_logit_diff(call.hidden, call.w_diff, call.bias())
    return _postprocess(keep_probability(scores), call.offsets, call.threshold)


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


def head_logit_diff(hidden: Tensor, w_diff: Tensor, b_diff: Tensor) -> Tensor:
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
    return lanes[:, 0] + b_diff.float()


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


def _postprocess(values: Tensor, offsets: RaggedOffsets, threshold: float) -> SignificanceOutput:
    cu_words, cu_segments, cu_samples = offsets
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
