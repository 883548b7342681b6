"""Encoder forward that computes projections and feed-forward on attended positions only.

Why: a forward batch pads every chunk to its longest one. On the benchmark texts a third of
the positions of CUDA-sized forwards are padding (docs/perf.md, "Padding"), and most of an
encoder's FLOPs are per-position GEMMs (24 d^2 of 24 d^2 + 4 L d per position and layer: 92%
for XLM-R large at 512 positions).
This forward gathers the positions the attention mask keeps into one (T, d) matrix, runs the
Q/K/V, output and feed-forward GEMMs, GELU, residual adds and LayerNorms on those T rows
only, and scatters back to the padded layout just for the attention itself (scaled dot
product attention with the boolean key mask, as transformers runs it). Padding therefore
costs only its share of the attention, in fp32 and bf16 alike, with no variable-length
attention kernel (torch's `varlen_attn` is flash attention: no fp32, so not for the exact
mode).

The structure taken is that of BERT, RoBERTa and XLM-RoBERTa (absolute positions, erf GELU,
post-LayerNorm; the same check as the CPU encoder). Every position's result is the same
function of the same inputs as in transformers' forward; only floating-point rounding can
differ, because the GEMMs see a different number of rows. `UnpaddedEncoder.build` checks the
hidden states against transformers' forward on a small padded batch before it is used.
Opt-in (`SignificanceEngine(..., unpad=True)`): `scripts/gpu-check` measures its speed and
counts against the padded forward on a GPU before it can become the default there.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sigreward.engine.cpu_encoder import _fuse_layer, _Layer, _supported, check_batch

# fp32 rounding of hidden states of size ~1 is ~1e-6; a wrong structure gives order 1.
_FP32_ATOL = 1e-4
_REDUCED_MEAN_ATOL = 5e-2


class UnpaddedEncoder:
    """Callable (input_ids (B, L), mask (B, L) or None, keep (T,) or None) -> (B, L, d).

    `keep`: flat indices (row * L + column) of the positions the mask keeps, computed on the
    host with the batch, so the forward needs no device-to-host synchronisation. Positions
    outside `keep` come back as zeros."""

    def __init__(self, encoder: Any) -> None:
        self._embeddings = encoder.embeddings
        self._heads = int(encoder.config.num_attention_heads)
        self._layers: list[_Layer] = [_fuse_layer(layer) for layer in encoder.encoder.layer]
        first = encoder.encoder.layer[0].attention.self
        self._scale = float(getattr(first, "scaling", first.attention_head_size**-0.5))

    @classmethod
    def build(cls, encoder: Any) -> UnpaddedEncoder | None:
        """The unpadded forward for `encoder`, or None where its structure is not the one
        taken or the check forward does not match transformers'."""
        if not _supported(encoder):
            return None
        fast = cls(encoder)
        return fast if fast._matches(encoder) else None

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, keep: torch.Tensor
    ) -> torch.Tensor:
        b, n = input_ids.shape
        emb = self._embeddings(input_ids=input_ids)
        d = emb.shape[-1]
        x = emb.reshape(b * n, d).index_select(0, keep)  # (T, d)
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        heads = self._heads
        for ly in self._layers:
            qkv = F.linear(x, ly.qkv_w, ly.qkv_b)
            full = qkv.new_zeros(b * n, 3 * d).index_copy_(0, keep, qkv)
            q, k, v = full.view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self._scale)
            ctx = ctx.transpose(1, 2).reshape(b * n, d).index_select(0, keep)
            x = _norm(F.linear(ctx, ly.attn_out_w, ly.attn_out_b) + x, ly.attn_norm)
            h = F.gelu(F.linear(x, ly.ffn_in_w, ly.ffn_in_b))
            x = _norm(F.linear(h, ly.ffn_out_w, ly.ffn_out_b) + x, ly.ffn_norm)
        return x.new_zeros(b * n, d).index_copy_(0, keep, x).view(b, n, d)

    def _matches(self, encoder: Any) -> bool:
        param = next(encoder.parameters())
        ids, mask = check_batch(encoder)
        ids, mask = ids.to(param.device), mask.to(param.device)
        keep = mask.reshape(-1).nonzero().squeeze(1)
        with torch.inference_mode():
            want = encoder(input_ids=ids, attention_mask=mask)[0]
            got = self(ids, mask, keep)
        real = mask.bool()
        diff = (got[real].float() - want[real].float()).abs()
        if param.dtype == torch.float32:
            return bool(diff.max() <= _FP32_ATOL)
        # Reduced precision: rounding differs element by element through the layers, so the
        # mean difference is what tells a wrong structure (order 1) from rounding.
        return bool(diff.mean() <= _REDUCED_MEAN_ATOL)


def _norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
