"""The fused oneDNN CPU encoder: same hidden states as transformers, used only where it applies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForTokenClassification, BertConfig, BertForTokenClassification

from sigreward.engine.cpu_encoder import OneDnnEncoder

CPU = torch.device("cpu")


def _load(model_dir: Path) -> torch.nn.Module:
    model = AutoModelForTokenClassification.from_pretrained(
        str(model_dir), dtype=torch.float32, attn_implementation="sdpa"
    )
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("model_fixture", ["minilm_dir", "tiny_xlmr_dir", "tiny_bert_dir"])
def test_matches_transformers_on_padded_batch(model_fixture: str, request) -> None:
    model = _load(request.getfixturevalue(model_fixture))
    encoder = model.base_model
    fast = OneDnnEncoder.build(encoder, CPU, torch.float32)
    assert fast is not None
    gen = torch.Generator().manual_seed(1)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(5, vocab, (3, 130), generator=gen)
    mask = torch.ones_like(ids)
    for row, n in ((1, 77), (2, 9)):
        mask[row, n:] = 0
        ids[row, n:] = int(model.config.pad_token_id)
    with torch.inference_mode():
        want = encoder(input_ids=ids, attention_mask=mask)[0]  # after build: views of the Q/K/V
        got = fast(ids, mask)
        unpadded = fast(ids[:1], None)
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(unpadded[0], want[0], atol=1e-5, rtol=0)


def test_engine_uses_it_on_cpu_fp32(minilm_engine) -> None:
    assert minilm_engine._classifier.onednn


def test_not_for_bf16(tiny_bert_dir: Path) -> None:
    model = _load(tiny_bert_dir).to(torch.bfloat16)
    assert OneDnnEncoder.build(model.base_model, CPU, torch.bfloat16) is None


@pytest.mark.parametrize(
    "change",
    [{"hidden_act": "gelu_new"}, {"hidden_act": "relu"}, {"is_decoder": True}],
    ids=["tanh-gelu", "relu", "decoder"],
)
def test_other_architectures_keep_transformers(change: dict) -> None:
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
        **change,
    )
    model = BertForTokenClassification(config).eval()
    assert OneDnnEncoder.build(model.base_model, CPU, torch.float32) is None


def test_a_forward_that_does_not_match_is_refused(tiny_bert_dir: Path) -> None:
    encoder = _load(tiny_bert_dir).base_model
    fast = OneDnnEncoder(encoder)
    assert fast._matches(encoder)
    # transformers now scales attention differently from what the fused encoder captured.
    encoder.encoder.layer[0].attention.self.scaling *= 2.0
    assert not fast._matches(encoder)
