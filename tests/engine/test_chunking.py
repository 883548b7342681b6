"""LLMLingua-2 chunk boundaries, by hand-worked cases and on real tokenizers."""

from __future__ import annotations

import numpy as np
import pytest

from sigreward.engine.chunking import MAX_CHUNK_TOKENS, chunk_spans, model_input_chunks
from sigreward.engine.layout import layout_chunks
from sigreward.engine.packing import plan_batches


def flags(n: int, ends: list[int] = ()) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(ends)] = True
    return out


def test_short_text_is_one_chunk_even_with_periods() -> None:
    assert chunk_spans(flags(510, [3, 100])) == [(0, 510)]
    assert chunk_spans(flags(7, [6])) == [(0, 7)]


def test_empty_text_has_no_chunk() -> None:
    assert chunk_spans(flags(0)) == []


def test_cut_at_last_period_inside_the_window() -> None:
    # 600 tokens, chunk-end tokens at 100 and 400 (both in the scanned window 1..510): the
    # chunk ends at the last one, 400 included, so it holds tokens 0..400 (401 tokens).
    assert chunk_spans(flags(600, [100, 400])) == [(0, 401), (401, 600)]


def test_chunk_end_token_at_the_window_end_is_included() -> None:
    # The window's end token (position 510, the 511th) is scanned first: a chunk of 511.
    assert chunk_spans(flags(600, [510])) == [(0, 511), (511, 600)]
    assert chunk_spans(flags(600, [509])) == [(0, 510), (510, 600)]


def test_chunk_end_token_at_the_chunk_start_is_not_scanned() -> None:
    # The scan stops before the chunk's first token, so a period there cuts nothing.
    assert chunk_spans(flags(600, [0])) == [(0, 511), (511, 600)]
    assert chunk_spans(flags(600, [511])) == [(0, 511), (511, 600)]


def test_no_period_cuts_after_511_tokens() -> None:
    assert chunk_spans(flags(511)) == [(0, 511)]
    assert chunk_spans(flags(512)) == [(0, 511), (511, 512)]
    assert chunk_spans(flags(1020)) == [(0, 511), (511, 1020)]


def test_1200_tokens_make_three_chunks() -> None:
    # no chunk-end token: 511 + 511 + 178
    assert chunk_spans(flags(1200)) == [(0, 511), (511, 1022), (1022, 1200)]
    # a period at 300 shortens the first chunk; the window restarts after it
    assert chunk_spans(flags(1200, [300])) == [(0, 301), (301, 812), (812, 1200)]


def test_every_chunk_fits_the_window_and_they_tile_the_text() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 509, 510, 511, 512, 1500, 5000):
        f = rng.random(n) < 0.01
        spans = chunk_spans(f)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert all(0 < e - s <= MAX_CHUNK_TOKENS + 1 for s, e in spans)


def test_boundary_at_period_on_a_real_tokenizer(bert_engine) -> None:
    tok = bert_engine._tokenizer
    # "the ." is 2 tokens: 150 of them = 300 tokens, then 300 tokens without a period.
    text = "the . " * 150 + "the " * 300
    ids = tok.ids([text])[0]
    assert ids.shape[0] == 600
    spans = chunk_spans(tok.tables.chunk_end[ids])
    assert spans == [(0, 300), (300, 600)]


def test_boundary_at_line_break_on_a_real_tokenizer(bert_engine) -> None:
    tok = bert_engine._tokenizer
    text = "the " * 299 + "\n" + "the " * 300
    ids = tok.ids([text])[0]
    assert tok.tokens(ids[299:300]) == ["\n"]
    assert chunk_spans(tok.tables.chunk_end[ids]) == [(0, 300), (300, 600)]


def test_only_literal_period_tokens_end_chunks(xlmr_engine) -> None:
    # "▁." (a period with the word-start marker) is not the literal ".": no chunk end.
    tok = xlmr_engine._tokenizer
    ids = tok.ids(["add the numbers . now 3.5 done."])[0]
    tokens = tok.tokens(ids)
    ends = [t for t, e in zip(tokens, tok.tables.chunk_end[ids], strict=True) if e]
    assert ends and all(t in (".", "\n") for t in ends)
    assert all(not e for t, e in zip(tokens, tok.tables.chunk_end[ids], strict=True) if t == "▁.")


def test_511_tokens_without_period_are_one_chunk(minilm_engine) -> None:
    # 511 one-token words: one chunk whose input is CLS + 511 tokens (no SEP); 512: two chunks.
    d = minilm_engine.inspect_texts(["the " * 510 + "end"], 0.5)[0]
    assert d.chunk_units == [511]
    d = minilm_engine.inspect_texts(["the " * 511 + "end"], 0.5)[0]
    assert d.chunk_units == [511, 1]
    assert d.values[-1] == 1.0  # alone in its chunk: max == min gives 1.0


def test_plan_batches_respects_the_budget_and_covers_every_chunk() -> None:
    lengths = np.array([510, 3, 200, 511, 17, 1, 300, 299])
    batches = plan_batches(lengths, 1100)
    seen = np.sort(np.concatenate(batches))
    assert seen.tolist() == list(range(lengths.shape[0]))
    for b in batches:
        assert b.shape[0] * min(lengths[b].max() + 2, 512) <= 1100
        assert lengths[b].max() >= lengths[b].min()
    # longest first: one 512-wide batch of two chunks, then the rest by length
    assert sorted(lengths[batches[0]].tolist()) == [510, 511]


@pytest.mark.parametrize("forward_tokens", [512, 1024, 4096])
def test_results_do_not_depend_on_the_forward_size(minilm_dir, forward_tokens) -> None:
    from sigreward.engine import SignificanceEngine

    texts = ["Short one.", "A slightly longer text, with a comma. " * 9, "x " * 700, ""]
    small = SignificanceEngine(str(minilm_dir), device="cpu")
    small.forward_tokens = forward_tokens
    big = SignificanceEngine(str(minilm_dir), device="cpu", max_batch_tokens=65536)
    big.forward_tokens = 65536  # every chunk in one forward
    a = small.inspect_texts(texts, 0.5)
    b = big.inspect_texts(texts, 0.5)
    for x, y in zip(a, b, strict=True):
        assert x.units == y.units
        assert (x.significant, x.insignificant) == (y.significant, y.insignificant)
        np.testing.assert_allclose(x.values, y.values, atol=1e-5)


def test_cpu_forwards_are_capped(minilm_engine) -> None:
    from sigreward.engine.engine import CPU_FORWARD_TOKENS

    assert minilm_engine.max_batch_tokens == 16384
    assert minilm_engine.forward_tokens == CPU_FORWARD_TOKENS


def test_layout_offsets_are_consistent(bert_engine) -> None:
    tok = bert_engine._tokenizer
    texts = ["", "one two three.", "word " * 1200, "[SEP]"]
    lay = layout_chunks(model_input_chunks(tok, texts), tok.tables)
    assert lay.cu_samples.tolist()[:3] == [0, 0, 1]
    assert lay.cu_samples[-1] == lay.n_chunks
    assert lay.cu_segments[-1] == lay.cu_words.shape[0] - 1
    assert lay.cu_words[-1] == lay.in_word.sum()
