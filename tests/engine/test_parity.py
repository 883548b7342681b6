"""Differential tests: the engine against the published LLMLingua-2 code (`llmlingua` 0.2.2).

The published pipeline runs one text per call, exactly as the paper's server drives it
(tests/support/published.py); the engine runs all texts in one batch. On every text the counts
must be equal (a word whose normalised value lies within TOLERANCE of the threshold may fall
either way: fp32 rounding differs between a padded 512-position batch and a packed one), and
every chunk must hold the same words with the same normalised values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.published_pipeline import PublishedPipeline, bare_word, count, normalised
from sigreward.engine import SignificanceEngine
from tests.support.reasoning_texts import parity_texts

THRESHOLD = 0.5
TOLERANCE = 1e-4

CHECKPOINTS = [
    "real_xlmr_dir",  # real XLM-R SentencePiece tokenizer (the paper's default checkpoint)
    "real_mbert_dir",  # real mBERT WordPiece tokenizer
    "tiny_xlmr_dir",  # trained Unigram tokenizer that keeps "\n" tokens (line-break chunk ends)
    "tiny_bert_dir",  # trained WordPiece tokenizer that keeps "\n" tokens
    "minilm_dir",  # real MiniLM encoder, uncased WordPiece
]


@pytest.fixture(scope="module", params=CHECKPOINTS)
def pair(request) -> tuple[SignificanceEngine, PublishedPipeline, Path]:
    model_dir: Path = request.getfixturevalue(request.param)
    engine = SignificanceEngine(str(model_dir), device="cpu")
    assert engine.word_family is not None
    return engine, PublishedPipeline(model_dir, engine.word_family), model_dir


def test_counts_words_and_values_equal_the_published_pipeline(pair) -> None:
    engine, published, model_dir = pair
    # MiniLM is a real 6-layer encoder: its share is the shorter texts, to keep the test short.
    texts = parity_texts()[:9] if "minilm" in model_dir.name else parity_texts()
    details = engine.inspect_texts(texts, THRESHOLD)
    counts = engine.count_texts(texts, THRESHOLD)
    n_tokens = engine.count_tokens(texts)
    assert max(n_tokens) > 500 and min(n_tokens) <= 3  # 1 to thousands of tokens
    multi_chunk = 0
    for i, (text, d, c) in enumerate(zip(texts, details, counts, strict=True)):
        chunks = published.word_probs(text)
        want = count(chunks, THRESHOLD, TOLERANCE)
        where = f"text {i} ({n_tokens[i]} tokens)"
        assert d.chunk_units == [len(ch.words) for ch in chunks], where
        multi_chunk += len(chunks) > 1
        ours = iter(d.units)
        for k, ch in enumerate(chunks):
            got = [bare_word(next(ours)) for _ in ch.words]
            assert got == [bare_word(w) for w in ch.words], f"{where}, chunk {k}"
        want_values = [v for ch in chunks if ch.probs for v in normalised(ch.probs)]
        np.testing.assert_allclose(d.values, want_values, atol=TOLERANCE, err_msg=where)
        assert d.significant + d.insignificant == want.significant + want.insignificant, where
        assert abs(d.significant - want.significant) <= want.ambiguous, where
        assert (c.significant, c.insignificant) == (d.significant, d.insignificant), where
    assert multi_chunk >= 1  # texts really span several chunks


def test_punctuation_pieces_start_words_on_xlmr(real_xlmr_dir: Path) -> None:
    # "x+1=3." is "▁x" "+1" "=3" "." on the real XLM-R vocabulary: "." is in
    # string.punctuation and starts a word, "+1" and "=3" are not and join "x".
    engine = SignificanceEngine(str(real_xlmr_dir), device="cpu")
    text = "Let x+1=3. Then x = 2, so the answer is \\boxed{2}."
    published = PublishedPipeline(real_xlmr_dir, "sentencepiece")
    (chunk,) = published.word_probs(text)
    got = engine.inspect_texts([text], THRESHOLD)[0]
    assert [bare_word(w) for w in chunk.words][:4] == ["Let", "x+1=3", ".", "Then"]
    assert [bare_word(u) for u in got.units] == [bare_word(w) for w in chunk.words]


def test_xlmr_model_input_uses_the_literal_bert_markers(real_xlmr_dir: Path) -> None:
    # llmlingua's dataset writes "[CLS]"/"[SEP]"/"[PAD]" for every checkpoint; the XLM-R
    # vocabulary has none of them, so the model sees the unknown-token id there.
    engine = SignificanceEngine(str(real_xlmr_dir), device="cpu")
    tables = engine._tokenizer.tables
    unk = engine._tokenizer.tokenizer.unk_token_id
    assert (tables.cls_id, tables.sep_id, tables.pad_id) == (unk, unk, unk)


def test_results_do_not_depend_on_batching(pair) -> None:
    engine, _, _ = pair
    texts = parity_texts()[:9]
    together = engine.inspect_texts(texts, THRESHOLD)
    one_by_one = [engine.inspect_texts([t], THRESHOLD)[0] for t in texts]
    for a, b in zip(together, one_by_one, strict=True):
        assert a.units == b.units and a.chunk_units == b.chunk_units
        np.testing.assert_allclose(a.values, b.values, atol=TOLERANCE)
