"""Triton kernel and launchers for ``significance_postprocess`` (same contract as reference.py).

One program per sample, so every count is written by exactly one program: no atomics, and the
result does not depend on scheduling. A program walks its segments; per segment it walks the
words in tiles of BLOCK words twice:
  pass 1: word means (an inner loop over token position j < the tile's longest word, so each
          word's tokens are added left to right) and the segment's min/max; the raw means
          are parked in ``word_values``;
  pass 2: reads the means back, normalises them in place and counts.
The fused variant computes each token's logit difference (hidden . w_diff + b_diff) inside
pass 1, so no logits reach memory.

Every step is the reference's IEEE operation in the reference's order (divisions are
``div_rn``, the keep probability is the reference's polynomial, the head's dot product is
summed per lane then pairwise) and the launch disables multiply-add contraction, so the two
backends agree bit for bit. The compute dtype is that of ``word_values``: float32 for logits,
float64 for client values. Only long-standing ``tl`` APIs are used so the same source runs
under triton 3.6 on the GPU machine and the interpreter of triton 3.9 here.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sigreward.kernels.contract import FusedCall, RaggedOffsets, ScoresCall, SignificanceOutput
from sigreward.kernels.reference import (
    EXP_COEFFS,
    EXP_FLOOR,
    HEAD_TILE,
    LN2_HI,
    LN2_LO,
    LOG2E,
)

# a * b + c must stay two rounded operations, as in the reference (Triton's default contracts
# them into one fused multiply-add on the GPU in some versions)
LAUNCH_OPTIONS = {"enable_fp_fusion": False}

_LOG2E = tl.constexpr(LOG2E)
_LN2_HI = tl.constexpr(LN2_HI)
_LN2_LO = tl.constexpr(LN2_LO)
_FLOOR = tl.constexpr(EXP_FLOOR)
_C0, _C1, _C2, _C3, _C4, _C5 = (tl.constexpr(c) for c in EXP_COEFFS)


@triton.jit
def _keep_probability(x):
    """reference.keep_probability, op for op (float32)."""
    t = tl.maximum(-tl.abs(x), _FLOOR)
    n = (t * _LOG2E - 0.5).to(tl.int32)
    nf = n.to(tl.float32)
    r = t - nf * _LN2_HI
    r = r - nf * _LN2_LO
    p = tl.zeros_like(r) + _C0
    p = p * r + _C1
    p = p * r + _C2
    p = p * r + _C3
    p = p * r + _C4
    p = p * r + _C5
    e = p * (r * r) + r + 1.0
    e = e * ((n + 127) << 23).to(tl.float32, bitcast=True)
    return tl.math.div_rn(tl.where(x >= 0, 1.0, e), 1.0 + e)


@triton.jit
def _div(a, b, FP64: tl.constexpr):
    """IEEE a / b: ``div_rn`` for float32 (Triton's plain ``/`` is approximate there);
    float64 ``/`` is already IEEE (div.rn.f64)."""
    if FP64:
        return a / b
    else:
        return tl.math.div_rn(a, b)


@triton.jit
def _pairwise_lanes(acc, BLOCK: tl.constexpr, LOG2_LANES: tl.constexpr):
    """(BLOCK, 2**LOG2_LANES) -> (BLOCK,): lanes 2i and 2i+1 added, halving the width until
    one lane is left (the reference's order)."""
    for _ in tl.static_range(LOG2_LANES):
        a, b = tl.split(tl.reshape(acc, [BLOCK, acc.shape[1] // 2, 2]))
        acc = a + b
    return tl.reshape(acc, [BLOCK])


@triton.jit
def _significance_kernel(
    scores_ptr,
    hidden_ptr,
    w_ptr,
    b_ptr,
    stride_h,
    dim,
    cu_words_ptr,
    cu_segments_ptr,
    cu_samples_ptr,
    word_values_ptr,
    threshold_ptr,
    significant_ptr,
    insignificant_ptr,
    SIGMOID: tl.constexpr,
    FUSED: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_D: tl.constexpr,
    LOG2_D: tl.constexpr,
):
    ACC = word_values_ptr.dtype.element_ty  # float32 (logits) or float64 (values): FP64
    n = tl.program_id(0)
    seg_lo = tl.load(cu_samples_ptr + n)
    seg_hi = tl.load(cu_samples_ptr + n + 1)
    threshold = tl.load(threshold_ptr)
    lanes = tl.arange(0, BLOCK)
    sig_acc = tl.zeros([BLOCK], dtype=tl.int32)
    insig_acc = tl.zeros([BLOCK], dtype=tl.int32)
    if FUSED:
        bias = tl.load(b_ptr).to(tl.float32)

    for g in range(seg_lo, seg_hi):
        w_lo = tl.load(cu_segments_ptr + g)
        w_hi = tl.load(cu_segments_ptr + g + 1)
        vmin = tl.full([BLOCK], float("inf"), dtype=ACC)
        vmax = tl.full([BLOCK], float("-inf"), dtype=ACC)

        # pass 1: word means and the segment's min / max over non-empty words
        for w0 in range(w_lo, w_hi, BLOCK):
            word = w0 + lanes
            in_seg = word < w_hi
            t_lo = tl.load(cu_words_ptr + word, mask=in_seg, other=0)
            n_tok = tl.load(cu_words_ptr + word + 1, mask=in_seg, other=0) - t_lo
            total = tl.zeros([BLOCK], dtype=ACC)
            for j in range(0, tl.max(n_tok, axis=0)):
                live = j < n_tok
                if FUSED:
                    row = (t_lo + j).to(tl.int64) * stride_h
                    acc = tl.zeros([BLOCK, BLOCK_D], dtype=tl.float32)
                    for d0 in range(0, dim, BLOCK_D):
                        cols = d0 + tl.arange(0, BLOCK_D)
                        in_d = cols < dim
                        wv = tl.load(w_ptr + cols, mask=in_d, other=0.0).to(tl.float32)
                        h = tl.load(
                            hidden_ptr + row[:, None] + cols[None, :],
                            mask=live[:, None] & in_d[None, :],
                            other=0.0,
                        ).to(tl.float32)
                        acc = acc + h * wv[None, :]
                    x = _pairwise_lanes(acc, BLOCK, LOG2_D) + bias
                else:
                    x = tl.load(scores_ptr + t_lo + j, mask=live, other=0.0).to(ACC)
                if SIGMOID:
                    x = _keep_probability(x)
                total += tl.where(live, x, 0.0)
            mean = _div(total, tl.maximum(n_tok, 1).to(ACC), FP64)
            tl.store(word_values_ptr + word, mean, mask=in_seg)
            has = in_seg & (n_tok > 0)
            vmin = tl.minimum(vmin, tl.where(has, mean, float("inf")))
            vmax = tl.maximum(vmax, tl.where(has, mean, float("-inf")))

        lo = tl.min(vmin, axis=0)
        hi = tl.max(vmax, axis=0)
        span = tl.where(hi > lo, hi - lo, 1.0)
        # pass 2 reads what pass 1 wrote; the barrier makes those stores visible to every
        # thread of the program whatever the layouts of the two passes
        tl.debug_barrier()

        # pass 2: normalise in place and count
        for w0 in range(w_lo, w_hi, BLOCK):
            word = w0 + lanes
            in_seg = word < w_hi
            t_lo = tl.load(cu_words_ptr + word, mask=in_seg, other=0)
            n_tok = tl.load(cu_words_ptr + word + 1, mask=in_seg, other=0) - t_lo
            has = in_seg & (n_tok > 0)
            mean = tl.load(word_values_ptr + word, mask=in_seg, other=0.0)
            norm = tl.where(hi > lo, _div(mean - lo, span, FP64), 1.0)
            norm = tl.where(has, norm, 0.0)
            tl.store(word_values_ptr + word, norm, mask=in_seg)
            below = norm < threshold  # strict: a value equal to the threshold is significant
            sig_acc += tl.where(has & ~below, 1, 0)
            insig_acc += tl.where(has & below, 1, 0)

    tl.store(significant_ptr + n, tl.sum(sig_acc, axis=0))
    tl.store(insignificant_ptr + n, tl.sum(insig_acc, axis=0))


def postprocess_scores(
    call: ScoresCall, *, block: int = 128, num_warps: int = 4
) -> SignificanceOutput:
    """Triton launcher of ``reference.postprocess_scores``; ``block`` words per tile (a power
    of two)."""
    return _launch(call.scores.contiguous(), None, None, None, call.offsets, call.threshold,
                   call.dtype, call.sigmoid, block, num_warps)  # fmt: skip


def postprocess_fused(
    call: FusedCall, *, block: int = 32, num_warps: int = 4
) -> SignificanceOutput:
    """Triton launcher of ``reference.postprocess_fused``."""
    hidden = call.hidden if call.hidden.stride(1) == 1 else call.hidden.contiguous()
    return _launch(None, hidden, call.w_diff.contiguous(), call.bias().reshape(1), call.offsets,
                   call.threshold, torch.float32, True, block, num_warps)  # fmt: skip


def _launch(
    scores: Tensor | None,
    hidden: Tensor | None,
    w_diff: Tensor | None,
    bias: Tensor | None,
    offsets: RaggedOffsets,
    threshold: float,
    dtype: torch.dtype,
    sigmoid: bool,
    block: int,
    num_warps: int,
) -> SignificanceOutput:
    if block < 1 or block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    data = scores if scores is not None else hidden
    assert data is not None
    device = data.device
    cu_words, cu_segments, cu_samples = offsets
    n_samples = cu_samples.numel() - 1
    n_words = cu_words.numel() - 1

    # Triton wants a real address for every pointer, so empty buffers get one spare element.
    word_values = torch.empty(max(n_words, 1), dtype=dtype, device=device)
    significant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    insignificant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    if n_samples == 0:
        return SignificanceOutput(word_values[:0], significant, insignificant)

    spare = torch.zeros(1, dtype=torch.float32, device=device)
    fused = hidden is not None
    stride_h, dim = (data.stride(0), data.shape[1]) if fused else (0, 0)
    if data.numel() == 0:  # no tokens: never read, but the pointer must be real
        data = data.new_zeros(1)
    # A tensor, not a scalar argument: Triton passes Python floats as float32, and values
    # mode compares in float64.
    threshold_t = torch.tensor([threshold], dtype=dtype, device=device)
    _significance_kernel[(n_samples,)](
        data if not fused else spare,
        data if fused else spare,
        w_diff if fused else spare,
        bias if fused else spare,
        stride_h,
        dim,
        cu_words.contiguous(),
        cu_segments.contiguous(),
        cu_samples.contiguous(),
        word_values,
        threshold_t,
        significant,
        insignificant,
        SIGMOID=sigmoid,
        FUSED=fused,
        FP64=dtype == torch.float64,
        BLOCK=block,
        BLOCK_D=HEAD_TILE,
        LOG2_D=HEAD_TILE.bit_length() - 1,
        num_warps=num_warps,
        **LAUNCH_OPTIONS,
    )
    return SignificanceOutput(word_values[:n_words], significant, insignificant)
