"""Session-scoped local checkpoints and engines for the engine tests (built once, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigreward.engine import SignificanceEngine
from tests.support.models import cached_model


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "engine-models"


@pytest.fixture(scope="session")
def tiny_bert_dir(model_root: Path) -> Path:
    return cached_model("tiny_bert", model_root)


@pytest.fixture(scope="session")
def tiny_xlmr_dir(model_root: Path) -> Path:
    return cached_model("tiny_xlmr", model_root)


@pytest.fixture(scope="session")
def minilm_dir(model_root: Path) -> Path:
    return cached_model("minilm", model_root)


@pytest.fixture(scope="session")
def bert_engine(tiny_bert_dir: Path) -> SignificanceEngine:
    return SignificanceEngine(str(tiny_bert_dir), device="cpu")


@pytest.fixture(scope="session")
def xlmr_engine(tiny_xlmr_dir: Path) -> SignificanceEngine:
    return SignificanceEngine(str(tiny_xlmr_dir), device="cpu")


@pytest.fixture(scope="session")
def minilm_engine(minilm_dir: Path) -> SignificanceEngine:
    return SignificanceEngine(str(minilm_dir), device="cpu")


@pytest.fixture(scope="session")
def real_xlmr_dir(model_root: Path) -> Path:
    """Tiny seeded classifier on the real XLM-R tokenizer (the paper's default checkpoint)."""
    return cached_model("tiny-xlm-roberta-large", model_root)


@pytest.fixture(scope="session")
def real_mbert_dir(model_root: Path) -> Path:
    """Tiny seeded classifier on the real mBERT tokenizer."""
    return cached_model("tiny-bert-base-multilingual-cased", model_root)
