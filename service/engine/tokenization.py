"""Batch tokenization and per-vocabulary lookup tables (word starts, specials, chunk ends).

Token properties depend only on the token id, so they are computed once per vocabulary into
boolean tables; a text's tokens are then classified with one numpy gather instead of a Python
loop over token strings. Every rule compares the token's *text* the way the published
LLMLingua-2 code (``llmlingua`` 0.2.2) does (docs/method.md#classifier-mode-llmlingua-2).
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

WORDPIECE = "wordpiece"  # continuation tokens start with "##"
SENTENCEPIECE = "sentencepiece"  # word-start tokens start with "▁"
SP_MARKER = "▁"
WP_MARKER = "##"
# LLMLingua-2's chunk_end_tokens, compared with the token text as it is ("▁." is no chunk end).
CHUNK_END_TEXTS = frozenset({".", "\n"})
# LLMLingua-2's TokenClfDataset builds every model input from these literal token strings (it is
# constructed without a model name, so it takes its BERT defaults for every checkpoint): the
# input is `[CLS] chunk [SEP]` padded with `[PAD]`, converted to ids with the tokenizer, and
# positions whose token text is `[PAD]` are masked out. For a SentencePiece vocabulary without
# these strings they become the unknown-token id.
INPUT_CLS, INPUT_SEP, INPUT_PAD = "[CLS]", "[SEP]", "[PAD]"


@dataclass(frozen=True)
class VocabTables:
    """Per-token-id properties, indexed by token id."""

    family: str  # WORDPIECE or SENTENCEPIECE
    marker: str  # "##" or "▁"
    word_start: np.ndarray  # bool (V,): token starts a word (if it is not special)
    special: np.ndarray  # bool (V,): text is one of the tokenizer's special tokens: no word
    chunk_end: np.ndarray  # bool (V,): text is literally "." or "\n"
    masked: np.ndarray  # bool (V,): text is "[PAD]": masked out of the model's attention
    cls_id: int  # model-input ids of "[CLS]", "[SEP]", "[PAD]"
    sep_id: int
    pad_id: int

    def strip(self, token: str) -> str:
        """Token text without its marker (the piece it contributes to its word's text)."""
        if token.startswith(self.marker):
            return token[len(self.marker) :]
        return token


def detect_family(tokenizer: Any) -> str:
    """WordPiece or SentencePiece word marking, from the tokenizer's model (vocab as fallback).

    The published code picks the rule from the checkpoint's *name*; the tokenizer's own model
    says the same for the published checkpoints and works for any other name.
    """
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


def special_texts(tokenizer: Any) -> frozenset[str]:
    """CLS, SEP, PAD, UNK, MASK, BOS, EOS: the special tokens that are never part of a word."""
    named = tokenizer.special_tokens_map
    return frozenset(
        str(v) for k, v in named.items() if k != "additional_special_tokens" and v is not None
    )


def build_tables(tokenizer: Any) -> VocabTables:
    family = detect_family(tokenizer)
    marker = WP_MARKER if family == WORDPIECE else SP_MARKER
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    specials = special_texts(tokenizer)
    word_start = np.zeros(size, dtype=bool)
    chunk_end = np.zeros(size, dtype=bool)
    special = np.zeros(size, dtype=bool)
    masked = np.zeros(size, dtype=bool)
    for i, tok in enumerate(tokens):
        if tok is None:
            continue
        if family == WORDPIECE:
            word_start[i] = not tok.startswith(WP_MARKER)
        else:
            # `token in string.punctuation` is a substring test in the published code: "()",
            # "./" and ":" start words as well as ",".
            word_start[i] = tok.startswith(SP_MARKER) or tok in string.punctuation
        chunk_end[i] = tok in CHUNK_END_TEXTS
        special[i] = tok in specials
        masked[i] = tok == INPUT_PAD
    return VocabTables(
        family=family,
        marker=marker,
        word_start=word_start,
        special=special,
        chunk_end=chunk_end,
        masked=masked,
        cls_id=_input_id(tokenizer, INPUT_CLS),
        sep_id=_input_id(tokenizer, INPUT_SEP),
        pad_id=_input_id(tokenizer, INPUT_PAD),
    )


def _input_id(tokenizer: Any, text: str) -> int:
    value = tokenizer.convert_tokens_to_ids(text)
    if value is None:
        raise ValueError(
            f"the tokenizer maps neither {text!r} nor an unknown token to an id, which the "
            "LLMLingua-2 model input needs"
        )
    return int(value)


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
        size = self.tables.word_start.shape[0]
        texts = tokenizer.convert_ids_to_tokens(list(range(size)))
        self._token_texts = np.array([t if t is not None else "" for t in texts], dtype=object)
        unk = getattr(tokenizer, "unk_token_id", None)
        self._unk_id = int(unk) if unk is not None else None

    def ids(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, one int64 array per text."""
        return [ids for ids, _ in self.encode(texts)]

    def encode(self, texts: list[str]) -> list[tuple[np.ndarray, list[str]]]:
        """Token ids and token texts of each text.

        The token texts are what `tokenizer.tokenize` returns: for a piece outside the
        vocabulary that is the piece's own text (the id is the unknown token's), which is what
        a chunk turns back into when it is detokenized.
        """
        if not texts:
            return []
        encoded = self._backend.encode_batch_fast(texts, add_special_tokens=False)
        out = []
        for text, e in zip(texts, encoded, strict=True):
            ids = np.asarray(e.ids, dtype=np.int64)
            if self._unk_id is not None and bool((ids == self._unk_id).any()):
                # Only the full encoding knows the text of an unknown piece (the fast one
                # skips token texts and offsets); texts without one take the vocabulary's.
                tokens = self._backend.encode(text, add_special_tokens=False).tokens
            else:
                tokens = self._token_texts[ids].tolist()
            out.append((ids, tokens))
        return out

    def detokenize(self, tokens: list[str]) -> str:
        """The text of a run of token texts, exactly as LLMLingua-2 turns a chunk into text."""
        return self.tokenizer.convert_tokens_to_string(tokens)

    def tokens(self, ids: np.ndarray) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids.tolist())
