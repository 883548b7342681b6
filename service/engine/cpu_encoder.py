"""fp32 CPU forward of BERT-family encoders on oneDNN, with fused bias, GELU and residual adds.

Why: on the CPU, transformers' encoder runs each Linear as MKL addmm (bias copied into the
output first), then GELU, residual add and the attention mask as separate passes. oneDNN's
fused linear (bias + GELU, or bias + residual add, in the GEMM's epilogue) and one Q/K/V
GEMM per layer cut those passes, and oneDNN's fp32 GEMM is itself faster than MKL's on the
AMD EPYC CPUs measured during development (docs/perf.md has the end-to-end effect). Memory:
the four GEMM weights of every layer are held a second time, reordered for oneDNN
(transformers' model keeps its own copy). Numerics stay fp32 (no reduced-precision math): the
result matches transformers' forward to rounding, and `OneDnnEncoder.build` checks that on a
small padded batch before it is used.

Only the exact layer structure of BERT, RoBERTa and XLM-RoBERTa (absolute positions, erf
GELU, post-LayerNorm) is taken; anything else keeps the transformers forward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Largest difference to transformers' forward accepted when checking a model (fp32 rounding
# of hidden states of size ~1 is ~1e-6; a wrong structure gives differences of order 1).
_CHECK_ATOL = 1e-4
# Rows (positions) per forward the packed weights are laid out for: the engine's CPU forwards
# hold at most one 512-position window (engine.CPU_FORWARD_TOKENS).
PACK_ROWS = 512


@dataclass(frozen=True)
class _Layer:
    qkv_w: torch.Tensor  # (3d, d): query, key and value rows, one GEMM
    qkv_b: torch.Tensor
    attn_out_w: torch.Tensor
    attn_out_b: torch.Tensor
    attn_norm: nn.LayerNorm
    ffn_in_w: torch.Tensor
    ffn_in_b: torch.Tensor
    ffn_out_w: torch.Tensor
    ffn_out_b: torch.Tensor
    ffn_norm: nn.LayerNorm


class OneDnnEncoder:
    """Callable (input_ids, attention_mask or None) -> last hidden states (B, L, d)."""

    def __init__(self, encoder: Any) -> None:
        self._embeddings = encoder.embeddings
        config = encoder.config
        self._heads = int(config.num_attention_heads)
        self._layers = [_fuse_layer(layer) for layer in encoder.encoder.layer]
        # Weights pre-reordered once into oneDNN's blocked layout for forwards of about
        # PACK_ROWS rows, instead of on every call (measured 5% faster end to end).
        self._layers = [_pack(layer) for layer in self._layers]
        first = encoder.encoder.layer[0].attention.self
        self._scale = float(getattr(first, "scaling", first.attention_head_size**-0.5))

    @classmethod
    def build(cls, encoder: Any, device: torch.device, dtype: torch.dtype) -> OneDnnEncoder | None:
        """The fused forward for `encoder`, or None where it does not apply (the caller then
        keeps transformers' forward): not the CPU, not fp32, no oneDNN, another layer structure,
        or a check forward that does not match."""
        if device.type != "cpu" or dtype != torch.float32 or not _onednn_available():
            return None
        if not _supported(encoder):
            return None
        fast = cls(encoder)
        return fast if fast._matches(encoder) else None

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = self._embeddings(input_ids=input_ids)
        b, n, d = x.shape
        heads = self._heads
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        linear = torch.ops.mkldnn._linear_pointwise
        for ly in self._layers:
            qkv = linear(x, ly.qkv_w, ly.qkv_b, "none", [], "")
            q, k, v = qkv.view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self._scale)
            ctx = ctx.transpose(1, 2).reshape(b, n, d)
            x = _norm(linear.binary(ctx, x, ly.attn_out_w, ly.attn_out_b, "add"), ly.attn_norm)
            h = linear(x, ly.ffn_in_w, ly.ffn_in_b, "gelu", [], "none")  # "none": erf GELU
            x = _norm(linear.binary(h, x, ly.ffn_out_w, ly.ffn_out_b, "add"), ly.ffn_norm)
        return x

    def _matches(self, encoder: Any) -> bool:
        ids, mask = check_batch(encoder)
        with torch.inference_mode():
            want = encoder(input_ids=ids, attention_mask=mask)[0]
            got = self(ids, mask)
        real = mask.bool()
        return bool(torch.allclose(got[real], want[real], atol=_CHECK_ATOL, rtol=0.0))


def _pack(layer: _Layer) -> _Layer:
    pack = torch.ops.mkldnn._reorder_linear_weight
    return replace(
        layer,
        qkv_w=pack(layer.qkv_w, PACK_ROWS),
        attn_out_w=pack(layer.attn_out_w, PACK_ROWS),
        ffn_in_w=pack(layer.ffn_in_w, PACK_ROWS),
        ffn_out_w=pack(layer.ffn_out_w, PACK_ROWS),
    )


def _norm(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _fuse_layer(layer: Any) -> _Layer:
    att = layer.attention.self
    # One (3d, d) Q/K/V weight; the model's own query/key/value then view into it, so the
    # weights are not held twice and transformers' forward still reads the same values.
    with torch.no_grad():
        w = torch.cat([att.query.weight, att.key.weight, att.value.weight]).contiguous()
        bias = torch.cat([att.query.bias, att.key.bias, att.value.bias]).contiguous()
    d = att.query.weight.shape[0]
    for i, lin in enumerate((att.query, att.key, att.value)):
        lin.weight = nn.Parameter(w[i * d : (i + 1) * d], requires_grad=False)
        lin.bias = nn.Parameter(bias[i * d : (i + 1) * d], requires_grad=False)
    out, inter, ffn_out = layer.attention.output, layer.intermediate, layer.output
    return _Layer(
        qkv_w=w,
        qkv_b=bias,
        attn_out_w=out.dense.weight,
        attn_out_b=out.dense.bias,
        attn_norm=out.LayerNorm,
        ffn_in_w=inter.dense.weight,
        ffn_in_b=inter.dense.bias,
        ffn_out_w=ffn_out.dense.weight,
        ffn_out_b=ffn_out.dense.bias,
        ffn_norm=ffn_out.LayerNorm,
    )


def _onednn_available() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._linear_pointwise.binary  # noqa: B018 (resolves the op or raises)
        torch.ops.mkldnn._reorder_linear_weight  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


def _supported(encoder: Any) -> bool:
    config = getattr(encoder, "config", None)
    if config is None or getattr(config, "model_type", "") not in {
        "bert",
        "roberta",
        "xlm-roberta",
        "camembert",
    }:
        return False
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return False
    if getattr(config, "hidden_act", None) != "gelu":  # erf GELU, what oneDNN's "gelu"/"none" is
        return False
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not layers or not hasattr(encoder, "embeddings"):
        return False
    try:
        for layer in layers:
            att = layer.attention.self
            linears = (
                att.query,
                att.key,
                att.value,
                layer.attention.output.dense,
                layer.intermediate.dense,
                layer.output.dense,
            )
            norms = (layer.attention.output.LayerNorm, layer.output.LayerNorm)
            if not all(type(m) is nn.Linear and m.bias is not None for m in linears):
                return False
            if not all(type(m) is nn.LayerNorm for m in norms):
                return False
    except AttributeError:
        return False
    return True


def check_batch(encoder: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A small seeded batch with one padded row, to check a custom forward against the
    encoder's own (ids and attention mask, on the CPU)."""
    vocab = int(encoder.config.vocab_size)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(min(5, vocab - 1), vocab, (2, 24), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    pad = getattr(encoder.config, "pad_token_id", None)
    if pad is not None:
        ids[1, 15:] = int(pad)
    return ids, mask
