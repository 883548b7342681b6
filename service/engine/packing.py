"""Pack chunks into padded forward batches under a budget of padded positions.

Chunks are sorted by length (longest first) so each batch holds chunks of similar length and
little padding; a batch of B chunks whose longest input has n positions (CLS and, where it
fits in 512 positions, SEP included) costs B * n positions, which must stay within
`max_batch_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sigreward.engine.chunking import WINDOW_POSITIONS
from sigreward.engine.layout import TextsLayout


@dataclass(frozen=True)
class ForwardBatch:
    input_ids: torch.Tensor  # (B, L) int64, CLS + chunk (+ SEP), right-padded
    attention_mask: torch.Tensor | None  # (B, L) int64; None when no row is padded
    rows: torch.Tensor  # (K,) int64: batch row of each word token of these chunks
    cols: torch.Tensor  # (K,) int64: its position in the row
    dest: torch.Tensor  # (K,) int64: its index in the flat word-token score vector
    real_tokens: int  # non-padding positions, CLS/SEP included
    # (T,) int64 flat indices (row * L + column) of the positions the mask keeps; None when
    # the mask keeps them all (the unpadded forward, service/engine/unpadded.py, takes them)
    keep: torch.Tensor | None = None

    @property
    def positions(self) -> int:
        """Positions the forward computes, padding included."""
        return int(self.input_ids.numel())


def input_positions(lengths: np.ndarray) -> np.ndarray:
    """Positions of each chunk's model input: CLS + tokens + SEP, cut to one window."""
    return np.minimum(lengths + 2, WINDOW_POSITIONS)


def plan_batches(lengths: np.ndarray, max_batch_tokens: int) -> list[np.ndarray]:
    """Chunk indices of each batch, longest chunks first."""
    order = np.argsort(-lengths, kind="stable")
    positions = input_positions(lengths)
    batches: list[np.ndarray] = []
    i = 0
    n = order.shape[0]
    while i < n:
        width = int(positions[order[i]])
        rows = max(1, max_batch_tokens // width)
        batches.append(order[i : i + rows])
        i += rows
    return batches


def build_batches(
    layout: TextsLayout,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    max_batch_tokens: int,
    pin: bool = False,
) -> Iterator[ForwardBatch]:
    """The forward batches of `layout`; with `pin`, their tensors live in pinned (page-locked)
    host memory, so the copies to a CUDA device run asynchronously."""
    lengths = layout.chunk_end - layout.chunk_start
    for chunk_ids in plan_batches(lengths, max_batch_tokens):
        yield _build(layout, chunk_ids, lengths, cls_id, sep_id, pad_id, pin)


def host_tensor(array: np.ndarray, pin: bool) -> torch.Tensor:
    """`array` as a CPU tensor: shared with numpy, or copied once into pinned memory."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.pin_memory() if pin else tensor


def _build(
    layout: TextsLayout,
    chunk_ids: np.ndarray,
    lengths: np.ndarray,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    pin: bool,
) -> ForwardBatch:
    positions = input_positions(lengths[chunk_ids])
    width = int(positions.max())
    ids = np.full((chunk_ids.shape[0], width), pad_id, dtype=np.int64)
    mask = np.zeros((chunk_ids.shape[0], width), dtype=np.int64)
    rows, cols, dest = [], [], []
    for r, c in enumerate(chunk_ids):
        s, e = int(layout.chunk_start[c]), int(layout.chunk_end[c])
        n = e - s
        ids[r, 0] = cls_id
        ids[r, 1 : n + 1] = layout.ids[s:e]
        if positions[r] == n + 2:  # SEP only where it fits in the window
            ids[r, n + 1] = sep_id
        mask[r, : positions[r]] = 1
        mask[r, 1 : n + 1][layout.masked[s:e]] = 0
        local = np.flatnonzero(layout.in_word[s:e])
        rows.append(np.full(local.shape[0], r, dtype=np.int64))
        cols.append(local + 1)
        first = int(layout.word_token_offset[c])
        dest.append(np.arange(first, first + local.shape[0], dtype=np.int64))
    full = bool(mask.all())
    return ForwardBatch(
        input_ids=host_tensor(ids, pin),
        # Without padding the encoder needs no mask, and SDPA takes its unmasked fast path.
        attention_mask=None if full else host_tensor(mask, pin),
        rows=host_tensor(np.concatenate(rows), pin),
        cols=host_tensor(np.concatenate(cols), pin),
        dest=host_tensor(np.concatenate(dest), pin),
        real_tokens=int(positions.sum()),
        keep=None if full else host_tensor(np.flatnonzero(mask.reshape(-1)), pin),
    )
