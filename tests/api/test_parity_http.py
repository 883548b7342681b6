"""The published LLMLingua-2 counts hold through HTTP: /v1/significance, /v1/rewards and
/get_reward on a real server, on tiny checkpoints built on the real XLM-R and mBERT tokenizers,
compared with llmlingua 0.2.2's own code run one text per call (bench/published_pipeline.py).
The web page draws what /v1/significance answers (tests/ui), so it shows these same words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.published_pipeline import PublishedCounts, PublishedPipeline, bare_word, count
from tests.api.conftest import run_id
from tests.support.models import cached_model
from tests.support.reasoning_texts import parity_texts
from tests.support.server import ServerProcess, start_server

THRESHOLD = 0.5
TOLERANCE = 1e-4
FAMILIES = {
    "tiny-xlm-roberta-large": "sentencepiece",
    "tiny-bert-base-multilingual-cased": "wordpiece",
}
TEXTS = parity_texts()[:11]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def checkpoint(request, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_model(request.param, tmp_path_factory.getbasetemp() / "models")


@pytest.fixture(scope="module")
def published(checkpoint: Path) -> list[PublishedCounts]:
    family = FAMILIES[checkpoint.name.rsplit("-seed", 1)[0]]
    pipeline = PublishedPipeline(checkpoint, family)
    return [count(pipeline.word_probs(t), THRESHOLD, TOLERANCE) for t in TEXTS]


@pytest.fixture(scope="module")
def published_words(checkpoint: Path) -> list[list[list[str]]]:
    family = FAMILIES[checkpoint.name.rsplit("-seed", 1)[0]]
    pipeline = PublishedPipeline(checkpoint, family)
    return [[[bare_word(w) for w in ch.words] for ch in pipeline.word_probs(t)] for t in TEXTS]


@pytest.fixture(scope="module")
def server(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(
        ["--model", str(checkpoint), "--device", "cpu"],
        data_dir=tmp_path_factory.mktemp("parity"),
    )
    try:
        yield srv
    finally:
        srv.stop()


def assert_same_counts(sig: float, ins: float, want: PublishedCounts, where: str) -> None:
    assert sig + ins == want.significant + want.insignificant, where
    assert abs(sig - want.significant) <= want.ambiguous, where


def test_info_says_the_exact_mode_runs(server: ServerProcess) -> None:
    status, info = server.request("GET", "/v1/info")
    assert status == 200
    assert (info["dtype"], info["exact"]) == ("fp32", True)


def test_significance_matches(server: ServerProcess, published, published_words) -> None:
    status, body = server.request("POST", "/v1/significance", {"texts": TEXTS}, timeout=300)
    assert status == 200, body
    for i, (res, want, words) in enumerate(
        zip(body["results"], published, published_words, strict=True)
    ):
        assert res["chunk_units"] == [len(w) for w in words], f"text {i}"
        assert [bare_word(u) for u in res["units"]] == [w for ch in words for w in ch]
        assert_same_counts(res["significant"], res["insignificant"], want, f"text {i}")


def test_rewards_match(server: ServerProcess, published) -> None:
    rid = run_id("parity")
    status, _ = server.request("PUT", f"/v1/runs/{rid}", {"significance": "classifier"})
    assert status == 201
    samples = [
        {
            "id": f"s{i}",
            "response": text,
            "correct": i % 2 == 0,
            "reference": {"significant": 10, "insignificant": 10},
        }
        for i, text in enumerate(TEXTS)
    ]
    status, body = server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": samples}, timeout=300
    )
    assert status == 200, body
    for i, (res, want) in enumerate(zip(body["samples"], published, strict=True)):
        assert_same_counts(res["significant"], res["insignificant"], want, f"text {i}")


def test_get_reward_matches(server: ServerProcess, published) -> None:
    rid = run_id("parity-orlhf")
    status, _ = server.request(
        "PUT", f"/v1/runs/{rid}", {"significance": "classifier", "reference": "first_seen"}
    )
    assert status == 201
    prompts = [f"Question {i}: what is 6 times 7? " for i in range(len(TEXTS))]
    body = {
        "query": [p + t for p, t in zip(prompts, TEXTS, strict=True)],
        "prompts": prompts,
        "labels": ["42"] * len(TEXTS),
    }
    status, out = server.request("POST", f"/get_reward?run_id={rid}&step=0", body, timeout=300)
    assert status == 200, out
    logs = out["extra_logs"]
    for i, want in enumerate(published):
        sig, ins = logs["sigreward_significant"][i], logs["sigreward_insignificant"][i]
        assert_same_counts(sig, ins, want, f"text {i}")
