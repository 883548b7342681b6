"""LLMLingua-2 chunks of one text, and the tokens the model sees for each chunk.

Chunk rule (the published ``llmlingua`` 0.2.2 code, docs/method.md): with st = 0, while
more than 510 tokens remain, the window end is ed = st + 510 and the chunk ends at the *last*
token in st+1..ed whose text is literally "." or "\\n" (ed itself when there is none); the chunk
is st..ed *inclusive*, so it holds up to 511 tokens, and the next starts at ed + 1. At most 510
remaining tokens are the last chunk.

Model input: each chunk is turned back into text and that text is tokenized again; the model
sees CLS + those tokens + SEP cut to 512 positions, so a chunk of 511 or more tokens keeps its
first 511 and loses its SEP.
"""

from __future__ import annotations

import numpy as np

from sigreward.engine.tokenization import TextTokenizer

MAX_CHUNK_TOKENS = 510  # window of one chunk before its end token: 512 positions - CLS - SEP
WINDOW_POSITIONS = 512  # positions of one model input
MAX_INPUT_TOKENS = WINDOW_POSITIONS - 1  # chunk tokens that fit after CLS


def chunk_spans(chunk_end: np.ndarray, max_tokens: int = MAX_CHUNK_TOKENS) -> list[tuple[int, int]]:
    """[start, stop) spans of the chunks of a text whose chunk-end flags are `chunk_end`."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    n = int(chunk_end.shape[0])
    spans: list[tuple[int, int]] = []
    start = 0
    while n - start > max_tokens:
        window_end = start + max_tokens
        hits = np.flatnonzero(chunk_end[start + 1 : window_end + 1])
        end = start + 1 + int(hits[-1]) if hits.size else window_end
        spans.append((start, end + 1))
        start = end + 1
    if n > start:
        spans.append((start, n))
    return spans


def input_tokens(retokenized: np.ndarray) -> np.ndarray:
    """The chunk tokens that fit in one model input after CLS (SEP is added only if it fits)."""
    return retokenized[:MAX_INPUT_TOKENS]


def model_input_chunks(tok: TextTokenizer, texts: list[str]) -> list[list[np.ndarray]]:
    """Per text, the token ids the model sees for each of its chunks (CLS/SEP not included).

    Every chunk is detokenized and tokenized again, as the published code does: the second
    tokenization can differ from the first (a chunk that starts inside a word gets a fresh
    word-start marker, a decoder's clean-up can move spaces), and the model and the word rules
    see the second one.
    """
    chunk_texts: list[str] = []
    counts: list[int] = []
    for ids, tokens in tok.encode(texts):
        spans = chunk_spans(tok.tables.chunk_end[ids])
        counts.append(len(spans))
        chunk_texts.extend(tok.detokenize(tokens[s:e]) for s, e in spans)
    retokenized = iter(tok.ids(chunk_texts))
    return [[input_tokens(next(retokenized)) for _ in range(n)] for n in counts]
