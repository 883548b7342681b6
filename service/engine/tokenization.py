"""Batch tokenization and per-vocabulary lookup tables (word starts, specials, chunk ends).

Token properties depend only on the token id, so they are computed once per vocabulary into
boolean tables; a text's tokens are then classified with one numpy gather instead of a Python
loop over token strings.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

WORDPIECE = "wordpiece"  # continuation tokens start with "##"
SENTENCEPIECE = "sentencepiece"  # word-start tokens start with "▁"
SP_MARKER = "▁"
WP_MARKER = "##"
# LLMLingua-2's chunk_end_tokens, compared after the word-start/continuation marker is removed.
CHUNK_END_TEXTS = frozenset({".", "\n"})


@dataclass(frozen=True)
class VocabTables:
    """Per-token-id properties, indexed by token id."""

    family: str  # WORDPIECE or SENTENCEPIECE
    marker: str  # "##" or "▁"
    word_start: np.ndarray  # bool (V,): token starts a word (if it is not special)
    special: np.ndarray  # bool (V,): CLS/SEP/PAD/... are never part of a word
    chunk_end: np.ndarray  # bool (V,): "." or "\n" (marker removed)

    def strip(self, token: str) -> str:
        """Token text without its marker (the piece it contributes to its word's text)."""
        if token.startswith(self.marker):
            return token[len(self.marker) :]
        return token


def detect_family(tokenizer: Any) -> str:
    """WordPiece or SentencePiece word marking, from the tokenizer's model (vocab as fallback)."""
    model = tokenizer.backend_tokenizer.model
    kind = type(model).__name__
    if kind == "WordPiece":
        return WORDPIECE
    if kind == "Unigram":
        return SENTENCEPIECE
    vocab = tokenizer.get_vocab()
    n_sp = sum(1 for t in vocab if t.startswith(SP_MARKER))
    n_wp = sum(1 for t in vocab if t.startswith(WP_MARKER))
    if n_sp == 0 and n_wp == 0:
        raise ValueError(
            f"cannot tell word starts for a {kind} tokenizer: its vocabulary has neither "
            f"'{SP_MARKER}' word-start nor '{WP_MARKER}' continuation tokens"
        )
    return SENTENCEPIECE if n_sp >= n_wp else WORDPIECE


def build_tables(tokenizer: Any) -> VocabTables:
    family = detect_family(tokenizer)
    marker = WP_MARKER if family == WORDPIECE else SP_MARKER
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    word_start = np.zeros(size, dtype=bool)
    chunk_end = np.zeros(size, dtype=bool)
    for i, tok in enumerate(tokens):
        if tok is None:
            continue
        starts = tok.startswith(marker)
        word_start[i] = starts if family == SENTENCEPIECE else not starts
        body = tok[len(marker) :] if starts else tok
        chunk_end[i] = body in CHUNK_END_TEXTS
    special = np.zeros(size, dtype=bool)
    # The unknown-word token stands for real text: it is an ordinary token, not a special one.
    unk = getattr(tokenizer, "unk_token_id", None)
    special_ids = [
        i for i in tokenizer.all_special_ids if i is not None and 0 <= i < size and i != unk
    ]
    special[special_ids] = True
    word_start[special] = False
    chunk_end[special] = False
    return VocabTables(family, marker, word_start, special, chunk_end)


class TextTokenizer:
    """Tokenizes whole texts with the checkpoint's fast tokenizer: no special tokens added,
    no truncation and no padding (some checkpoints ship a tokenizer.json that pads/truncates)."""

    def __init__(self, tokenizer: Any) -> None:
        backend = copy.deepcopy(tokenizer.backend_tokenizer)
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self.tokenizer = tokenizer
        self.tables = build_tables(tokenizer)

    def ids(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, one int64 array per text."""
        if not texts:
            return []
        encoded = self._backend.encode_batch_fast(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encoded]

    def tokens(self, ids: np.ndarray) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids.tolist())
