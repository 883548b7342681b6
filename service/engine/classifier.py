"""Forward passes of the token classifier over packed chunk batches.

Output per word token: the keep-logit difference (logit1 - logit0) on the CPU path, or the
encoder's hidden state on the fused path (CUDA), where the Triton kernel applies the 2-label
head itself so per-token logits are never materialised. Only word tokens are gathered; CLS,
SEP, padding and special tokens never leave the forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sigreward.engine.cpu_encoder import OneDnnEncoder
from sigreward.engine.layout import TextsLayout
from sigreward.engine.packing import ForwardBatch, build_batches
from sigreward.engine.tokenization import VocabTables
from sigreward.engine.unpadded import UnpaddedEncoder


@dataclass(frozen=True)
class WordTokenOutputs:
    scores: torch.Tensor | None  # (T,) float32 logit differences (unfused path)
    hidden: torch.Tensor | None  # (T, d) hidden states (fused path)
    w_diff: torch.Tensor | None  # (d,) float32 head row 1 - row 0 (fused path)
    b_diff: torch.Tensor | None  # () float32 bias 1 - bias 0 (fused path)
    forward_tokens: int  # real (non-padding) positions run through the model


class ChunkClassifier:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        tables: VocabTables,
        device: torch.device,
        fused: bool,
        unpad: bool = False,
    ) -> None:
        self.model = model
        self.device = device
        # CLS/SEP as the published code builds its input (see tokenization.INPUT_CLS); padding
        # is masked out, so any id works there: the tokenizer's own keeps RoBERTa's position
        # ids of padded positions at the padding index.
        self.cls_id = tables.cls_id
        self.sep_id = tables.sep_id
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else tables.pad_id
        encoder = getattr(model, "base_model", model)
        head = getattr(model, "classifier", None)
        self._split = (
            encoder is not model and isinstance(head, torch.nn.Linear) and head.out_features == 2
        )
        self._encoder = encoder
        self._head = head if self._split else None
        dtype = next(model.parameters()).dtype
        # fp32 on the CPU: the fused oneDNN forward where the architecture allows it.
        self._fast = OneDnnEncoder.build(encoder, device, dtype) if self._split else None
        self.fused = fused and self._split
        # Projections and feed-forward on attended positions only (service/engine/unpadded.py).
        self._unpadded = UnpaddedEncoder.build(encoder) if unpad and self._split else None
        # A stand-in for the encoder, (ids, mask) -> hidden states: the simulated device of
        # bench/bench_pipeline.py (service/engine/simulated.py) plugs in here.
        self.encoder_override: (
            Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None
        ) = None
        if self._head is not None:
            w = self._head.weight.detach().float()
            b = self._head.bias.detach().float() if self._head.bias is not None else None
            self._w_diff = (w[1] - w[0]).contiguous()
            self._b_diff = (b[1] - b[0]) if b is not None else torch.zeros((), device=w.device)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def pack(self, layout: TextsLayout, max_batch_tokens: int, pin: bool) -> list[ForwardBatch]:
        """Host side: the padded forward batches of `layout` (in pinned memory with `pin`)."""
        return list(
            build_batches(layout, self.cls_id, self.sep_id, self.pad_id, max_batch_tokens, pin)
        )

    def run(self, layout: TextsLayout, max_batch_tokens: int) -> WordTokenOutputs:
        return self.run_batches(
            self.pack(layout, max_batch_tokens, pin=False), layout.n_word_tokens
        )

    def run_batches(self, batches: list[ForwardBatch], n_word_tokens: int) -> WordTokenOutputs:
        """Device side: the forwards of `batches`, word-token outputs scattered in order.

        Host tensors in pinned memory are copied without blocking, so on CUDA this returns
        once the work is queued, not when it is done."""
        n = n_word_tokens
        dev = self.device
        forward_tokens = 0
        with torch.inference_mode():
            if self.fused:
                dtype = next(self.model.parameters()).dtype
                out = torch.empty((n, self.hidden_size), dtype=dtype, device=dev)
            else:
                out = torch.empty((n,), dtype=torch.float32, device=dev)
            for batch in batches:
                ids = batch.input_ids.to(dev, non_blocking=True)
                mask = batch.attention_mask
                if mask is not None:
                    mask = mask.to(dev, non_blocking=True)
                rows = batch.rows.to(dev, non_blocking=True)
                cols = batch.cols.to(dev, non_blocking=True)
                dest = batch.dest.to(dev, non_blocking=True)
                forward_tokens += batch.real_tokens
                if self._split:
                    keep = None if batch.keep is None else batch.keep.to(dev, non_blocking=True)
                    hidden = self._hidden(ids, mask, keep)[rows, cols]
                    if self.fused:
                        out[dest] = hidden
                    else:
                        logits = self._head(hidden).float()
                        out[dest] = logits[:, 1] - logits[:, 0]
                else:
                    logits = self.model(input_ids=ids, attention_mask=mask).logits
                    picked = logits[rows, cols].float()
                    out[dest] = picked[:, 1] - picked[:, 0]
        if self.fused:
            return WordTokenOutputs(None, out, self._w_diff, self._b_diff, forward_tokens)
        return WordTokenOutputs(out, None, None, None, forward_tokens)

    @property
    def onednn(self) -> bool:
        """Whether forwards run on the fused oneDNN encoder (CPU, fp32, BERT family)."""
        return self._fast is not None

    @property
    def unpadded(self) -> bool:
        """Whether forwards skip padding in their GEMMs (service/engine/unpadded.py)."""
        return self._unpadded is not None

    def _hidden(
        self, ids: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor | None
    ) -> torch.Tensor:
        if self.encoder_override is not None:
            return self.encoder_override(ids, mask)
        if self._unpadded is not None and keep is not None:
            return self._unpadded(ids, mask, keep)
        if self._fast is not None:
            return self._fast(ids, mask)
        return self._encoder(input_ids=ids, attention_mask=mask)[0]
