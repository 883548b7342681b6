"""Word starts for both tokenizer families, special tokens, unknown tokens, empty texts."""

from __future__ import annotations

import numpy as np

from sigreward.engine.layout import layout_chunks
from sigreward.engine.tokenization import SENTENCEPIECE, WORDPIECE


def test_families_are_detected(bert_engine, xlmr_engine, minilm_engine) -> None:
    assert bert_engine.word_family == WORDPIECE
    assert minilm_engine.word_family == WORDPIECE
    assert xlmr_engine.word_family == SENTENCEPIECE


def test_wordpiece_continuations_join_the_previous_word(bert_engine) -> None:
    tok = bert_engine._tokenizer
    text = "unbelievable tokenization"
    tokens = tok.tokens(tok.ids([text])[0])
    assert any(t.startswith("##") for t in tokens)  # the tiny vocabulary splits these words
    n_starts = sum(1 for t in tokens if not t.startswith("##"))
    d = bert_engine.inspect_texts([text], 0.5)[0]
    assert d.units == ["unbelievable", "tokenization"]
    assert len(d.units) == n_starts == d.significant + d.insignificant


def test_sentencepiece_marker_starts_words(xlmr_engine) -> None:
    tok = xlmr_engine._tokenizer
    text = "Unbelievable tokenization works"
    tokens = tok.tokens(tok.ids([text])[0])
    assert sum(1 for t in tokens if t.startswith("▁")) == 3
    assert len(tokens) > 3
    d = xlmr_engine.inspect_texts([text], 0.5)[0]
    assert d.units == ["Unbelievable", "tokenization", "works"]


def test_punctuation_tokens_start_words_in_sentencepiece(xlmr_engine) -> None:
    # A token that is a substring of string.punctuation starts a word ("." here), as in the
    # published code's `token in string.punctuation`.
    tok = xlmr_engine._tokenizer
    tokens = tok.tokens(tok.ids(["the numbers."])[0])
    assert tokens[-1] == "."
    d = xlmr_engine.inspect_texts(["the numbers."], 0.5)[0]
    assert d.units == ["the", "numbers", "."]


def test_punctuation_rule_is_a_substring_test(xlmr_engine) -> None:
    tables = xlmr_engine._tokenizer.tables
    vocab = xlmr_engine._tokenizer.tokenizer.get_vocab()
    for piece in (",", ".", "(", "-"):
        if piece in vocab:
            assert tables.word_start[vocab[piece]], piece


def test_special_tokens_are_not_words(bert_engine, xlmr_engine, minilm_engine) -> None:
    for engine, special in (
        (bert_engine, "[SEP]"),
        (minilm_engine, "[CLS]"),
        (xlmr_engine, "</s>"),
    ):
        plain = engine.inspect_texts(["alpha beta"], 0.5)[0]
        with_special = engine.inspect_texts([f"alpha {special} beta"], 0.5)[0]
        assert (
            engine.count_tokens([f"alpha {special} beta"])[0]
            > engine.count_tokens(["alpha beta"])[0]
        )
        units = [u for u in with_special.units if u]  # SentencePiece may add a bare "▁" word
        assert units == [u for u in plain.units if u]
        assert all(special not in u for u in with_special.units)


def test_continuation_after_a_special_token_joins_the_word_before_it(bert_engine) -> None:
    # Real tokenizers rarely emit this, so the token ids are written by hand:
    # "the" [SEP] "##s" "the" "##s" -> words: "the ##s" (across the skipped [SEP]) | "the ##s"
    tok = bert_engine._tokenizer
    vocab = tok.tokenizer.get_vocab()
    ids = np.array([vocab["the"], vocab["[SEP]"], vocab["##s"], vocab["the"], vocab["##s"]])
    lay = layout_chunks([[ids]], tok.tables)
    assert lay.in_word.tolist() == [True, False, True, True, True]
    assert lay.cu_words.tolist() == [0, 2, 4]
    assert lay.cu_segments.tolist() == [0, 2]


def test_continuation_opening_a_chunk_starts_a_word(bert_engine) -> None:
    # The published code raises IndexError here; the service lets it open a word.
    tok = bert_engine._tokenizer
    vocab = tok.tokenizer.get_vocab()
    ids = np.array([vocab["##s"], vocab["the"]])
    lay = layout_chunks([[ids]], tok.tables)
    assert lay.cu_words.tolist() == [0, 1, 2]


def test_unknown_tokens_are_not_words(bert_engine) -> None:
    tok = bert_engine._tokenizer
    assert "[UNK]" in tok.tokens(tok.ids(["alpha ☃ beta"])[0])
    d = bert_engine.inspect_texts(["alpha ☃ beta"], 0.5)[0]
    assert d.units == ["alpha", "beta"]
    assert d.significant + d.insignificant == 2


def test_empty_text_counts_zero(bert_engine, xlmr_engine) -> None:
    for engine in (bert_engine, xlmr_engine):
        counts = engine.count_texts(["", "   ", "word"], 0.5)
        assert (counts[0].significant, counts[0].insignificant) == (0.0, 0.0)
        assert (counts[1].significant, counts[1].insignificant) == (0.0, 0.0)
        assert counts[2].total == 1.0
        assert engine.inspect_texts([""], 0.5)[0].units == []
    assert bert_engine.count_texts([], 0.5) == []


def test_normalised_values_are_min_max_per_chunk(minilm_engine) -> None:
    d = minilm_engine.inspect_texts(["The quick brown fox jumps over the lazy dog."], 0.5)[0]
    v = np.array(d.values)
    assert v.min() == 0.0 and v.max() == 1.0
    assert d.insignificant == int((v < 0.5).sum())
    assert d.significant == int((v >= 0.5).sum())
    # threshold 0 makes everything significant, above 1 everything insignificant
    c0 = minilm_engine.count_texts(["The quick brown fox."], 0.0)[0]
    c2 = minilm_engine.count_texts(["The quick brown fox."], 1.01)[0]
    assert c0.insignificant == 0 and c2.significant == 0
