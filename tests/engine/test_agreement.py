"""The engine equals a plain one-response-at-a-time computation of method.md section 1.

The reference below is deliberately naive: Python loops, one forward per chunk with its own
CLS/SEP and no padding, softmax(logits)[1], words built token by token, mean, min-max per
chunk, strict threshold. It shares no code with service/engine.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from service.engine import SignificanceEngine

THRESHOLD = 0.5


def reference_inspect(model_dir: Path, texts: list[str], threshold: float):
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
    vocab = tokenizer.get_vocab()
    sentencepiece = sum(t.startswith("▁") for t in vocab) > sum(t.startswith("##") for t in vocab)
    marker = "▁" if sentencepiece else "##"
    special = set(tokenizer.all_special_tokens) - {tokenizer.unk_token}
    cls = tokenizer.cls_token_id
    sep = tokenizer.sep_token_id
    results = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        chunks = []
        start = 0
        while len(tokens) - start > 510:
            end = start + 510
            for j in range(start + 509, start - 1, -1):
                body = tokens[j][len(marker) :] if tokens[j].startswith(marker) else tokens[j]
                if body in (".", "\n") and tokens[j] not in special:
                    end = j + 1
                    break
            chunks.append((start, end))
            start = end
        if start < len(tokens):
            chunks.append((start, len(tokens)))
        units, values, sig, ins = [], [], 0, 0
        for s, e in chunks:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([[cls, *ids[s:e], sep]])).logits[0]
            keep = torch.softmax(logits.double(), dim=-1)[:, 1].tolist()[1:-1]
            words: list[list[float]] = []
            texts_of_words: list[str] = []
            open_word = False
            for j in range(s, e):
                t = tokens[j]
                if t in special:
                    open_word = False
                    continue
                starts = t.startswith("▁") if sentencepiece else not t.startswith("##")
                piece = t[len(marker) :] if t.startswith(marker) else t
                if starts or not open_word:
                    words.append([keep[j - s]])
                    texts_of_words.append(piece)
                    open_word = True
                else:
                    words[-1].append(keep[j - s])
                    texts_of_words[-1] += piece
            if not words:
                continue
            means = [sum(w) / len(w) for w in words]
            lo, hi = min(means), max(means)
            for m, wt in zip(means, texts_of_words, strict=True):
                v = (m - lo) / (hi - lo) if hi > lo else 1.0
                units.append(wt)
                values.append(v)
                if v < threshold:
                    ins += 1
                else:
                    sig += 1
        results.append((units, values, sig, ins))
    return results


def texts_for_agreement() -> list[str]:
    rng = np.random.default_rng(7)
    words = (
        "the model reads every word and marks what matters for the final answer we add "
        "numbers carry one check result again wait that is not right recompute sum digits "
        "carefully unbelievable tokenization significance probability 17 25 42 x"
    ).split()

    def prose(n: int, period_every: int | None) -> str:
        out = []
        for i in range(n):
            out.append(str(rng.choice(words)))
            if period_every and (i + 1) % period_every == 0:
                out[-1] += "."
        return " ".join(out)

    return [
        "First, we add the two numbers. Then we carry the one.\nSo the answer is 42.",
        "",
        "Hmm",
        "same same same same",
        prose(800, 23),  # > 1 chunk, cut at periods
        prose(1300, None),  # > 2 chunks, cut at 510 (and words split across chunks)
        "Line one\nline two\n" * 120,  # line breaks
        "Special [SEP] and </s> tokens, unknown ☃ symbols, café, naïve, 3.14159.",
        prose(600, 5) + "\n" + prose(300, None),
    ]


@pytest.mark.parametrize("model_fixture", ["minilm_dir", "tiny_xlmr_dir", "tiny_bert_dir"])
def test_engine_matches_plain_reference(model_fixture: str, request) -> None:
    model_dir = request.getfixturevalue(model_fixture)
    texts = texts_for_agreement()
    engine = SignificanceEngine(str(model_dir), device="cpu", max_batch_tokens=4096)
    got = engine.inspect_texts(texts, THRESHOLD)
    counts = engine.count_texts(texts, THRESHOLD)
    want = reference_inspect(model_dir, texts, THRESHOLD)
    assert any(len(w[0]) > 510 for w in want)  # some texts really span several chunks
    for i, (g, c, (units, values, sig, ins)) in enumerate(zip(got, counts, want, strict=True)):
        assert (g.significant, g.insignificant) == (sig, ins), f"text {i}"
        assert (c.significant, c.insignificant) == (float(sig), float(ins)), f"text {i}"
        assert g.units == units, f"text {i}"
        np.testing.assert_allclose(g.values, values, atol=1e-5, err_msg=f"text {i}")
        assert all(math.isfinite(v) for v in g.values)
