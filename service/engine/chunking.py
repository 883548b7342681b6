"""LLMLingua-2 chunking of one text's tokens and the word layout inside each chunk.

Chunk rule (method.md section 1): a chunk holds at most `max_tokens` (510) tokens, leaving
room for CLS and SEP in a 512-position window. While more than `max_tokens` tokens remain,
the chunk ends at the last chunk-end token ("." or "\\n", marker removed) inside the window,
scanning back from the window's end; without one it ends at the window's end. The rest of the
text (at most `max_tokens` tokens) is the last chunk.

Words: a word starts at a word-start token and takes the continuation tokens after it.
Special tokens are not part of any word. Two cases have no preceding word-start token inside
the same chunk, and there a continuation token **starts a word of its own**:
- the first token of a chunk (a chunk cut at 510 tokens can split a word; the classifier saw
  the two halves in different windows and min-max normalises them in different chunks, so
  they are counted as two words, each in its own chunk);
- the first token of a text, and the token after a special token.
"""

from __future__ import annotations

import numpy as np

MAX_CHUNK_TOKENS = 510


def chunk_spans(chunk_end: np.ndarray, max_tokens: int = MAX_CHUNK_TOKENS) -> list[tuple[int, int]]:
    """[start, end) spans of the chunks of a text whose chunk-end flags are `chunk_end`."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    n = int(chunk_end.shape[0])
    spans: list[tuple[int, int]] = []
    start = 0
    while n - start > max_tokens:
        hits = np.flatnonzero(chunk_end[start : start + max_tokens])
        end = start + (int(hits[-1]) + 1 if hits.size else max_tokens)
        spans.append((start, end))
        start = end
    if n > start:
        spans.append((start, n))
    return spans


def word_flags(
    word_start: np.ndarray, special: np.ndarray, spans: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """(in_word, new_word) flags for every token of a text.

    in_word: the token belongs to a word (it is not special).
    new_word: the token is the first token of a word (see the module docstring).
    """
    in_word = ~special
    new_word = in_word & word_start
    if in_word.size:
        after_special = np.empty_like(special)
        after_special[0] = True
        after_special[1:] = special[:-1]
        new_word |= in_word & after_special
        starts = np.fromiter((s for s, _ in spans), dtype=np.int64, count=len(spans))
        new_word[starts] |= in_word[starts]
    return in_word, new_word
