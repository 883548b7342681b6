"""Flat ragged layout of a batch of texts: chunks -> model tokens -> words, as the kernel takes it.

Order everywhere is text, then chunk, then token position, so the word tokens of one chunk
are one contiguous run of the flat score vector and every offsets array is a plain cumsum.

Words (the published LLMLingua-2 rule): over the tokens the model saw, a special token (CLS,
SEP, PAD, UNK, MASK, ...) is skipped; a word-start token opens a word; any other token joins
the current word, across skipped special tokens too. A chunk whose first word token is not a
word start opens a word with it (the published code crashes there; docs/method.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sigreward.engine.tokenization import VocabTables


@dataclass(frozen=True)
class TextsLayout:
    ids: np.ndarray  # (P,) int64: the model-input tokens of all chunks, concatenated
    chunk_start: np.ndarray  # (C,) int64: position in `ids` where each chunk starts
    chunk_end: np.ndarray  # (C,) int64: exclusive end
    in_word: np.ndarray  # (P,) bool: token belongs to a word (not special, not masked)
    masked: np.ndarray  # (P,) bool: token is hidden from the model's attention
    word_token_offset: np.ndarray  # (C,) int64: index of the chunk's first word token
    cu_words: np.ndarray  # (W+1,) int32, over word tokens
    cu_segments: np.ndarray  # (C+1,) int32, over words (one segment per chunk)
    cu_samples: np.ndarray  # (N+1,) int32, over chunks

    @property
    def n_word_tokens(self) -> int:
        return int(self.cu_words[-1])

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_start.shape[0])

    def word_token_ids(self) -> np.ndarray:
        return self.ids[self.in_word]


def layout_chunks(chunks_per_text: list[list[np.ndarray]], tables: VocabTables) -> TextsLayout:
    """Layout of texts given, per text, the model-input token ids of each of its chunks."""
    chunks = [c for text_chunks in chunks_per_text for c in text_chunks]
    lengths = np.fromiter((c.shape[0] for c in chunks), dtype=np.int64, count=len(chunks))
    bounds = _cumsum0(lengths)
    chunk_start, chunk_end = bounds[:-1], bounds[1:]
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    masked = tables.masked[ids]
    in_word = ~(tables.special[ids] | masked)

    iw_cum = _cumsum0(in_word)
    word_token_offset = iw_cum[chunk_start]
    word_ids = ids[in_word]
    opens = tables.word_start[word_ids]
    # The first word token of every (non-empty) chunk opens a word: words never cross chunks.
    firsts = word_token_offset[iw_cum[chunk_end] > word_token_offset]
    opens[firsts] = True
    word_first = np.flatnonzero(opens)
    nw_cum = _cumsum0(opens)
    words_per_chunk = nw_cum[iw_cum[chunk_end]] - nw_cum[word_token_offset]
    chunks_per_text = np.fromiter((len(c) for c in chunks_per_text), dtype=np.int64)
    return TextsLayout(
        ids=ids,
        chunk_start=chunk_start,
        chunk_end=chunk_end,
        in_word=in_word,
        masked=masked,
        word_token_offset=word_token_offset,
        cu_words=np.append(word_first, word_ids.shape[0]).astype(np.int32),
        cu_segments=_cumsum0(words_per_chunk).astype(np.int32),
        cu_samples=_cumsum0(chunks_per_text).astype(np.int32),
    )


def _cumsum0(x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(x, out=out[1:])
    return out
