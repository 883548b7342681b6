"""Shared servers for the HTTP tests: real ``sigreward serve`` subprocesses on 127.0.0.1.

Starting a server costs a few seconds (torch and transformers imports), so the plain values
server and the tiny-classifier server are shared by the whole session; every test uses its own
run ids. Tests that kill, drain or reconfigure a server start their own via ``server_factory``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import cached_model
from tests.support.server import ServerProcess, server_factory, start_server

__all__ = ["server_factory"]

# Limits small enough to test 413 cheaply, large enough for every other test.
VALUES_LIMITS = [
    "--max-samples",
    "64",
    "--max-chars-per-response",
    "4000",
    "--max-body-bytes",
    "200000",
]
# The classifier server's queue holds one "big" request (see big_texts) but not two.
CLASSIFIER_QUEUE_TOKENS = 25_000


def run_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def values_sample(score: float | None = None, **extra: object) -> dict[str, object]:
    """A correct values-mode sample with a given reference (one unit of each kind)."""
    sample: dict[str, object] = {
        "significance": [0, 1],
        "correct": True,
        "reference": {"significant": 1, "insignificant": 1},
        **extra,
    }
    if score is not None:
        sample["score"] = score
    return sample


def big_texts(n: int = 20, chars: int = 2800) -> list[str]:
    """Texts whose estimated tokens (chars/3 each) make one request of about 19k tokens,
    a couple of seconds of tiny-BERT work on two shared CPU cores."""
    sentence = "Let me think about this problem step by step. First, we add 17 and 25. "
    text = (sentence * (chars // len(sentence) + 1))[:chars]
    return [text] * n


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_model("tiny_bert", tmp_path_factory.getbasetemp() / "models")


def _session_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, args: list[str]
) -> Iterator[ServerProcess]:
    server = start_server(args, data_dir=tmp_path_factory.mktemp(name))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def values_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No model: values mode and the baselines."""
    yield from _session_server(tmp_path_factory, "values", VALUES_LIMITS)


@pytest.fixture(scope="session")
def classifier_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[ServerProcess]:
    """The tiny random BERT classifier of tests/support/models.py."""
    yield from _session_server(
        tmp_path_factory,
        "classifier",
        [
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
            "--max-queue-tokens",
            str(CLASSIFIER_QUEUE_TOKENS),
            "--max-batch-tokens",
            "4096",
        ],
    )
