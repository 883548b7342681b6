"""Triton kernel and launchers for ``significance_postprocess`` (same contract as reference.py).

One program per sample, so every count and reward is written by exactly one program: no
atomics, and the result does not depend on scheduling. A program walks its segments; per
segment it walks the words in tiles of BLOCK words twice:
  pass 1: word means (an inner loop over token position j < the tile's longest word) and the
          segment's min/max; the raw means are parked in ``word_values``;
  pass 2: reads the means back, normalises them in place and counts.
The sample's reward comes last, in the same program. The fused variant computes each token's
logit difference (hidden . w_diff + b_diff) inside pass 1, so no logits reach memory.
All arithmetic is fp32 whatever the input dtype. Only long-standing ``tl`` APIs are used so the
same source runs under triton 3.6 on the GPU machine and the interpreter of triton 3.9 here.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.reference import (
    INPUT_KINDS,
    SignificanceOutput,
    check_head,
    check_offsets,
    check_reward_inputs,
    check_scores,
    check_threshold,
)

HALF_PI = tl.constexpr(1.5707963267948966)


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
    significant_ptr,
    insignificant_ptr,
    correct_ptr,
    ref_s_ptr,
    ref_i_ptr,
    reward_ptr,
    threshold,
    lambda_c,
    lambda_w_n,
    lambda_w_e,
    k,
    SIGMOID: tl.constexpr,
    FUSED: tl.constexpr,
    REWARD: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    n = tl.program_id(0)
    seg_lo = tl.load(cu_samples_ptr + n)
    seg_hi = tl.load(cu_samples_ptr + n + 1)
    lanes = tl.arange(0, BLOCK)
    sig_acc = tl.zeros([BLOCK], dtype=tl.int32)
    insig_acc = tl.zeros([BLOCK], dtype=tl.int32)
    if FUSED:
        bias = tl.load(b_ptr).to(tl.float32)

    for g in range(seg_lo, seg_hi):
        w_lo = tl.load(cu_segments_ptr + g)
        w_hi = tl.load(cu_segments_ptr + g + 1)
        vmin = tl.full([BLOCK], float("inf"), dtype=tl.float32)
        vmax = tl.full([BLOCK], float("-inf"), dtype=tl.float32)

        # pass 1: word means and the segment's min / max over non-empty words
        for w0 in range(w_lo, w_hi, BLOCK):
            word = w0 + lanes
            in_seg = word < w_hi
            t_lo = tl.load(cu_words_ptr + word, mask=in_seg, other=0)
            n_tok = tl.load(cu_words_ptr + word + 1, mask=in_seg, other=0) - t_lo
            total = tl.zeros([BLOCK], dtype=tl.float32)
            for j in range(0, tl.max(n_tok, axis=0)):
                live = j < n_tok
                if FUSED:
                    row = (t_lo + j).to(tl.int64) * stride_h
                    x = tl.zeros([BLOCK], dtype=tl.float32)
                    for d0 in range(0, dim, BLOCK_D):
                        cols = d0 + tl.arange(0, BLOCK_D)
                        in_d = cols < dim
                        wv = tl.load(w_ptr + cols, mask=in_d, other=0.0).to(tl.float32)
                        h = tl.load(
                            hidden_ptr + row[:, None] + cols[None, :],
                            mask=live[:, None] & in_d[None, :],
                            other=0.0,
                        ).to(tl.float32)
                        x += tl.sum(h * wv[None, :], axis=1)
                    x = x + bias
                else:
                    x = tl.load(scores_ptr + t_lo + j, mask=live, other=0.0).to(tl.float32)
                if SIGMOID:
                    x = tl.sigmoid(x)
                total += tl.where(live, x, 0.0)
            mean = tl.math.div_rn(total, tl.maximum(n_tok, 1).to(tl.float32))
            tl.store(word_values_ptr + word, mean, mask=in_seg)
            has = in_seg & (n_tok > 0)
            vmin = tl.minimum(vmin, tl.where(has, mean, float("inf")))
            vmax = tl.maximum(vmax, tl.where(has, mean, float("-inf")))

        lo = tl.min(vmin, axis=0)
        hi = tl.max(vmax, axis=0)
        spread = tl.where(hi > lo, hi - lo, 1.0)
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
            norm = tl.where(hi > lo, tl.math.div_rn(mean - lo, spread), 1.0)
            norm = tl.where(has, norm, 0.0)
            tl.store(word_values_ptr + word, norm, mask=in_seg)
            below = norm < threshold  # strict: a value equal to the threshold is significant
            sig_acc += tl.where(has & (norm >= threshold), 1, 0)
            insig_acc += tl.where(has & below, 1, 0)

    n_sig = tl.sum(sig_acc, axis=0)
    n_insig = tl.sum(insig_acc, axis=0)
    tl.store(significant_ptr + n, n_sig)
    tl.store(insignificant_ptr + n, n_insig)

    if REWARD:
        s = n_sig.to(tl.float32)
        i = n_insig.to(tl.float32)
        ref_s = tl.load(ref_s_ptr + n)
        ref_i = tl.load(ref_i_ptr + n)
        units = n_sig + n_insig
        usable = (units > 0) & (ref_s > 0.0) & (ref_i > 0.0)
        r_i = tl.where(usable, tl.math.div_rn(i, tl.where(usable, ref_i, 1.0)), 0.0)
        r_s = tl.where(usable, tl.math.div_rn(s, tl.where(usable, ref_s, 1.0)), 0.0)
        c = tl.cos(tl.minimum(tl.maximum(r_i, 0.0), HALF_PI))
        right = lambda_c * c
        wrong = tl.minimum(lambda_w_n * (c - 1.0) + k * r_s - lambda_w_e, 0.0)
        is_correct = tl.load(correct_ptr + n) != 0
        out = tl.where(is_correct, right, wrong)
        tl.store(reward_ptr + n, tl.where(units > 0, out, 0.0))


def significance_postprocess_triton(
    scores: Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    input_kind: str = "logit_diff",
    correct: Tensor | None = None,
    ref_significant: Tensor | None = None,
    ref_insignificant: Tensor | None = None,
    lambda_c: float = 5.0,
    lambda_w_n: float = 2.0,
    lambda_w_e: float = 5.0,
    k: float = 0.0,
    *,
    validate: bool = True,
    block: int = 128,
    num_warps: int = 4,
) -> SignificanceOutput:
    """Triton launcher of ``significance_postprocess``; ``block`` words per tile (power of 2)."""
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    check_threshold(threshold)
    if validate:
        check_scores(scores)
        check_offsets(scores.shape[0], cu_words, cu_segments, cu_samples, scores.device)
    return _launch(
        scores.contiguous(), None, None, None, cu_words, cu_segments, cu_samples, threshold,
        input_kind == "logit_diff", correct, ref_significant, ref_insignificant,
        (lambda_c, lambda_w_n, lambda_w_e, k), block, 16, num_warps,
    )  # fmt: skip


def significance_postprocess_fused_triton(
    hidden: Tensor,
    w_diff: Tensor,
    b_diff: float | Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    correct: Tensor | None = None,
    ref_significant: Tensor | None = None,
    ref_insignificant: Tensor | None = None,
    lambda_c: float = 5.0,
    lambda_w_n: float = 2.0,
    lambda_w_e: float = 5.0,
    k: float = 0.0,
    *,
    validate: bool = True,
    block: int = 32,
    block_d: int = 128,
    num_warps: int = 4,
) -> SignificanceOutput:
    """Triton launcher of the fused-head variant: logit diff = hidden @ w_diff + b_diff."""
    check_threshold(threshold)
    if validate:
        check_head(hidden, w_diff, b_diff)
        check_offsets(hidden.shape[0], cu_words, cu_segments, cu_samples, hidden.device)
    if hidden.stride(1) != 1:
        hidden = hidden.contiguous()
    if isinstance(b_diff, Tensor):
        bias = b_diff.reshape(1).to(torch.float32)
    else:
        bias = torch.tensor([float(b_diff)], dtype=torch.float32, device=hidden.device)
    return _launch(
        None, hidden, w_diff.contiguous(), bias, cu_words, cu_segments, cu_samples, threshold,
        True, correct, ref_significant, ref_insignificant,
        (lambda_c, lambda_w_n, lambda_w_e, k), block, block_d, num_warps,
    )  # fmt: skip


def _launch(
    scores: Tensor | None,
    hidden: Tensor | None,
    w_diff: Tensor | None,
    bias: Tensor | None,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    sigmoid: bool,
    correct: Tensor | None,
    ref_significant: Tensor | None,
    ref_insignificant: Tensor | None,
    params: tuple[float, float, float, float],
    block: int,
    block_d: int,
    num_warps: int,
) -> SignificanceOutput:
    for name, size in (("block", block), ("block_d", block_d)):
        if size < 1 or size & (size - 1):
            raise ValueError(f"{name} must be a power of two, got {size}")
    data = scores if scores is not None else hidden
    assert data is not None
    device = data.device
    n_samples = cu_samples.numel() - 1
    n_words = cu_words.numel() - 1
    reward = check_reward_inputs(correct, ref_significant, ref_insignificant, n_samples, device)

    # Triton wants a real address for every pointer, so empty buffers get one spare element.
    word_values = torch.empty(max(n_words, 1), dtype=torch.float32, device=device)
    significant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    insignificant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    length_reward = None
    if reward is not None:
        length_reward = torch.zeros(n_samples, dtype=torch.float32, device=device)
    if n_samples == 0:
        return SignificanceOutput(word_values[:0], significant, insignificant, length_reward)

    spare = torch.zeros(1, dtype=torch.float32, device=device)
    fused = hidden is not None
    stride_h, dim = (data.stride(0), data.shape[1]) if fused else (0, 0)
    if data.numel() == 0:  # no tokens: never read, but the pointer must be real
        data = data.new_zeros(1)
    if reward is not None:
        correct_t = reward.correct.to(torch.int32)
        ref_s = reward.ref_significant.to(torch.float32).contiguous()
        ref_i = reward.ref_insignificant.to(torch.float32).contiguous()
    else:
        correct_t, ref_s, ref_i = significant, spare, spare
    lambda_c, lambda_w_n, lambda_w_e, k = (float(p) for p in params)
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
        significant,
        insignificant,
        correct_t,
        ref_s,
        ref_i,
        length_reward if length_reward is not None else spare,
        float(threshold),
        lambda_c,
        lambda_w_n,
        lambda_w_e,
        k,
        SIGMOID=sigmoid,
        FUSED=fused,
        REWARD=reward is not None,
        BLOCK=block,
        BLOCK_D=block_d,
        num_warps=num_warps,
    )
    return SignificanceOutput(word_values[:n_words], significant, insignificant, length_reward)
