"""Loading checkpoints: clear errors naming the path, 2 labels only, device/dtype settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sigreward.engine import ModelLoadError, NoModelError, SignificanceEngine


def test_missing_directory_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as err:
        SignificanceEngine(str(missing), device="cpu")
    assert str(missing) in str(err.value)
    assert err.value.path == str(missing)
    assert "no such directory" in err.value.reason


def test_directory_without_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as err:
        SignificanceEngine(str(tmp_path / "empty"), device="cpu")
    assert str(tmp_path / "empty") in str(err.value)


def test_corrupt_weights(tmp_path: Path, tiny_bert_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError) as err:
        SignificanceEngine(str(broken), device="cpu")
    assert "model failed to load" in str(err.value)


def test_hub_id_offline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "sigreward-tests/definitely-not-cached-model"
    with pytest.raises(ModelLoadError) as err:
        SignificanceEngine(name, device="cpu")
    assert name in str(err.value)
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_three_labels_are_rejected(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer, BertForTokenClassification

    three = tmp_path / "three"
    model = BertForTokenClassification.from_pretrained(
        str(tiny_bert_dir), num_labels=3, ignore_mismatched_sizes=True
    )
    model.save_pretrained(str(three))
    AutoTokenizer.from_pretrained(str(tiny_bert_dir)).save_pretrained(str(three))
    with pytest.raises(ModelLoadError) as err:
        SignificanceEngine(str(three), device="cpu")
    assert "2 labels" in str(err.value) and "got 3" in str(err.value)


def test_engine_attributes(bert_engine: SignificanceEngine, tiny_bert_dir: Path) -> None:
    assert bert_engine.has_model
    assert bert_engine.model_name == str(tiny_bert_dir)
    assert (bert_engine.device, bert_engine.dtype, bert_engine.kernel_backend) == (
        "cpu",
        "fp32",
        "torch",
    )


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="dtype"):
        SignificanceEngine(None, device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="device"):
        SignificanceEngine(None, device="tpu")
    with pytest.raises(ValueError, match="max_batch_tokens"):
        SignificanceEngine(None, device="cpu", max_batch_tokens=100)


def test_without_a_model_values_work_and_texts_fail() -> None:
    engine = SignificanceEngine(None, device="cpu")
    assert not engine.has_model and engine.model_name is None
    engine.warmup()
    assert engine.count_values([[1.0, 2.0]], 0.5)[0].total == 2
    with pytest.raises(NoModelError):
        engine.count_texts(["hello"], 0.5)
    with pytest.raises(NoModelError):
        engine.count_tokens(["hello"])


def test_bf16_on_cpu_is_an_option(tiny_bert_dir: Path) -> None:
    engine = SignificanceEngine(str(tiny_bert_dir), device="cpu", dtype="bf16")
    assert engine.dtype == "bf16"
    counts = engine.count_texts(["one two three four five."], 0.5)
    assert counts[0].total == 6
