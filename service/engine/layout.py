"""Flat ragged layout of a batch of texts: tokens -> chunks -> words, as the kernel takes it.

Order everywhere is text, then chunk, then token position, so the word tokens of one chunk
are one contiguous run of the flat score vector and every offsets array is a plain cumsum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.engine.chunking import MAX_CHUNK_TOKENS, chunk_spans
from service.engine.tokenization import VocabTables


@dataclass(frozen=True)
class TextsLayout:
    ids: np.ndarray  # (P,) int64: the token ids of all texts, concatenated
    chunk_start: np.ndarray  # (C,) int64: position in `ids` where each chunk starts
    chunk_end: np.ndarray  # (C,) int64: exclusive end
    in_word: np.ndarray  # (P,) bool: token belongs to a word (not special)
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


def layout_texts(
    ids_per_text: list[np.ndarray], tables: VocabTables, max_tokens: int = MAX_CHUNK_TOKENS
) -> TextsLayout:
    lengths = np.fromiter((a.shape[0] for a in ids_per_text), dtype=np.int64)
    text_start = np.zeros(len(ids_per_text) + 1, dtype=np.int64)
    np.cumsum(lengths, out=text_start[1:])
    ids = np.concatenate(ids_per_text) if ids_per_text else np.zeros(0, dtype=np.int64)
    special = tables.special[ids]
    ends_chunk = tables.chunk_end[ids]

    starts: list[int] = []
    stops: list[int] = []
    chunks_per_text = np.zeros(len(ids_per_text), dtype=np.int64)
    for t in range(len(ids_per_text)):
        base = int(text_start[t])
        spans = chunk_spans(ends_chunk[base : int(text_start[t + 1])], max_tokens)
        chunks_per_text[t] = len(spans)
        for s, e in spans:
            starts.append(base + s)
            stops.append(base + e)
    chunk_start = np.asarray(starts, dtype=np.int64)
    chunk_end = np.asarray(stops, dtype=np.int64)

    in_word = ~special
    opens = tables.word_start[ids].copy()  # a continuation token opens a word when it has
    opens[chunk_start] = True  # no word-start before it in its chunk: chunk (so text) start,
    opens[1:] |= special[:-1]  # or right after a special token
    new_word = in_word & opens

    iw_cum = _cumsum0(in_word)
    nw_cum = _cumsum0(new_word)
    words_per_chunk = nw_cum[chunk_end] - nw_cum[chunk_start]
    word_tokens = in_word.nonzero()[0]
    word_first = np.flatnonzero(new_word[word_tokens])
    cu_words = np.append(word_first, word_tokens.shape[0]).astype(np.int32)
    return TextsLayout(
        ids=ids,
        chunk_start=chunk_start,
        chunk_end=chunk_end,
        in_word=in_word,
        word_token_offset=iw_cum[chunk_start],
        cu_words=cu_words,
        cu_segments=_cumsum0(words_per_chunk).astype(np.int32),
        cu_samples=_cumsum0(chunks_per_text).astype(np.int32),
    )


def _cumsum0(x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(x, out=out[1:])
    return out
