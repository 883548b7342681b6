"""Word starts for both tokenizer families, special tokens, unknown tokens, empty texts."""

from __future__ import annotations

import numpy as np

from service.engine.layout import layout_texts
from service.engine.tokenization import SENTENCEPIECE, WORDPIECE


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


def test_punctuation_joins_the_word_in_sentencepiece(xlmr_engine) -> None:
    d = xlmr_engine.inspect_texts(["the numbers."], 0.5)[0]
    assert d.units == ["the", "numbers."]


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


def test_continuation_after_a_special_token_starts_a_word(bert_engine) -> None:
    # Real tokenizers rarely emit this, so the token ids are written by hand:
    # "the" [SEP] "##s" "the" "##s" -> words: "the" | "##s" (opens a word) | "the ##s"
    tok = bert_engine._tokenizer
    vocab = tok.tokenizer.get_vocab()
    ids = np.array([vocab["the"], vocab["[SEP]"], vocab["##s"], vocab["the"], vocab["##s"]])
    lay = layout_texts([ids], tok.tables)
    assert lay.in_word.tolist() == [True, False, True, True, True]
    assert lay.cu_words.tolist() == [0, 1, 2, 4]
    assert lay.cu_segments.tolist() == [0, 3]


def test_unknown_tokens_are_ordinary_words(bert_engine) -> None:
    d = bert_engine.inspect_texts(["alpha zqxj beta"], 0.5)[0]
    assert "[UNK]" in d.units
    assert d.significant + d.insignificant == len(d.units)


def test_continuation_at_a_chunk_start_starts_a_word(minilm_engine) -> None:
    tok = minilm_engine._tokenizer
    # 509 one-token words then a 3-token word: the chunk cut at 510 splits that word.
    long_word = "unbelievablenesses"
    pieces = tok.tokens(tok.ids([long_word])[0])
    assert len(pieces) >= 2
    text = "the " * 509 + long_word
    d = minilm_engine.inspect_texts([text], 0.5)[0]
    assert len(d.units) == 511
    assert d.units[509] == pieces[0]
    assert d.units[510] == "".join(p.removeprefix("##") for p in pieces[1:])


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
