"""The unpadded forward (GEMMs on attended positions only) against transformers' forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sigreward.engine import SignificanceEngine
from sigreward.engine.unpadded import UnpaddedEncoder
from tests.engine.test_pipeline import ragged_texts


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_xlmr_dir", "minilm_dir"])
def test_hidden_states_match_transformers(model: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoModelForTokenClassification

    m = AutoModelForTokenClassification.from_pretrained(str(request.getfixturevalue(model)))
    encoder = m.base_model.eval()
    unpadded = UnpaddedEncoder.build(encoder)
    assert unpadded is not None
    gen = torch.Generator().manual_seed(1)
    vocab = int(encoder.config.vocab_size)
    ids = torch.randint(5, vocab, (3, 40), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, 31:] = 0  # padding
    mask[1, 7:10] = 0  # masked inside the row, as literal [PAD] tokens are
    mask[2, 12:] = 0
    keep = mask.reshape(-1).nonzero().squeeze(1)
    with torch.inference_mode():
        want = encoder(input_ids=ids, attention_mask=mask)[0]
        got = unpadded(ids, mask, keep)
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)
    assert not got[~real].any()  # dropped positions are never computed


def test_counts_match_the_padded_forward(minilm_dir: Path) -> None:
    padded = SignificanceEngine(str(minilm_dir), device="cpu", max_batch_tokens=8192)
    unpad = SignificanceEngine(str(minilm_dir), device="cpu", max_batch_tokens=8192, unpad=True)
    assert unpad._classifier.unpadded and not padded._classifier.unpadded
    for e in (padded, unpad):
        e.forward_tokens = 8192  # CUDA-sized forwards: much padding
    texts = ragged_texts(seed=4, n=30)
    a = padded.inspect_texts(texts, 0.5)
    b = unpad.inspect_texts(texts, 0.5)
    assert unpad.counters.padded_fraction > 0.1  # the batches really were padded
    for x, y in zip(a, b, strict=True):
        assert x.units == y.units
        assert (x.significant, x.insignificant) == (y.significant, y.insignificant)
        np.testing.assert_allclose(x.values, y.values, atol=1e-5)


def test_other_structures_are_refused() -> None:
    from transformers import DistilBertConfig, DistilBertModel

    encoder = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2,
                                               hidden_dim=32))  # fmt: skip
    assert UnpaddedEncoder.build(encoder) is None


def test_bf16_build_passes_its_check(tiny_xlmr_dir: Path) -> None:
    """The check at build tolerates bf16 rounding (a failed check would drop the path)."""
    engine = SignificanceEngine(str(tiny_xlmr_dir), device="cpu", dtype="bf16", unpad=True)
    assert engine._classifier.unpadded
    texts = ragged_texts(seed=5, n=10)
    assert len(engine.count_texts(texts, 0.5)) == len(texts)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model", ["tiny_xlmr_dir", "minilm_dir"])
def test_counts_match_the_padded_forward_on_cuda_fp32(
    model: str, request: pytest.FixtureRequest
) -> None:
    """The exact (fp32) mode on a card: the unpadded forward must not move any word."""
    path = str(request.getfixturevalue(model))
    padded, unpad = (
        SignificanceEngine(path, device="cuda", dtype="fp32", max_batch_tokens=8192, unpad=u)
        for u in (False, True)
    )
    assert unpad._classifier.unpadded
    texts = ragged_texts(seed=6, n=60)
    try:
        a = padded.inspect_texts(texts, 0.5)
        b = unpad.inspect_texts(texts, 0.5)
    finally:
        padded.close()
        unpad.close()
    for x, y in zip(a, b, strict=True):
        assert (x.significant, x.insignificant) == (y.significant, y.insignificant)
        np.testing.assert_allclose(x.values, y.values, atol=1e-5)
