"""Classifier mode over a real server with the tiny random BERT of tests/support/models.py:
rewards and inspection agree with the engine run in-process, and the bounded queue answers 429
under load and keeps serving."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from sigreward.engine import SignificanceEngine
from tests.api.conftest import CLASSIFIER_QUEUE_TOKENS, big_texts, run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

TEXTS = [
    "First, we add the two numbers. Then we carry the one and check the result again.",
    "Wait, that is not right.\nLet us recompute the sum of the digits carefully.",
    "Hmm, maybe I should double check: 17 plus 25 equals 42, so the answer is 42.",
    "odd \ufffd bytes \x00\x07 and\ttabs survive",
]


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> SignificanceEngine:
    return SignificanceEngine(str(tiny_model), device="cpu")


def test_info_and_default_mode(classifier_server: ServerProcess, tiny_model: Path) -> None:
    status, info = classifier_server.request("GET", "/v1/info")
    assert status == 200
    assert info["significance_modes"] == ["classifier", "values"]
    assert (
        info["model"]
        and Path(info["model"]).name == tiny_model.name
        or info["model"] == str(tiny_model)
    )
    assert info["kernel_backend"] == "torch"
    rid = run_id()
    status, run = classifier_server.request("PUT", f"/v1/runs/{rid}", {})
    assert status == 201 and run["config"]["significance"] == "classifier"


def test_classifier_rewards_match_the_engine(
    classifier_server: ServerProcess, engine: SignificanceEngine
) -> None:
    rid = run_id()
    threshold = 0.4
    classifier_server.request("PUT", f"/v1/runs/{rid}", {"significance_threshold": threshold})
    samples: list[dict[str, Any]] = [
        {
            "id": f"s{i}",
            "response": text,
            "correct": i % 2 == 0,
            "reference": {"response": TEXTS[0]},
        }
        for i, text in enumerate(TEXTS)
    ]
    samples[1]["reference"] = {"significant": 10, "insignificant": 5}
    status, body = classifier_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": samples}
    )
    assert status == 200, body
    expected = engine.count_texts(TEXTS, threshold)
    reference = engine.count_texts([TEXTS[0]], threshold)[0]
    for i, out in enumerate(body["samples"]):
        assert (out["significant"], out["insignificant"]) == (
            expected[i].significant,
            expected[i].insignificant,
        )
        if i != 1:
            assert (out["reference_significant"], out["reference_insignificant"]) == (
                reference.significant,
                reference.insignificant,
            )
    assert (
        body["samples"][1]["reference_significant"],
        body["samples"][1]["reference_insignificant"],
    ) == (10, 5)
    # Classifier runs need the text; a values reference does not fit them.
    status, error = classifier_server.request(
        "POST",
        "/v1/rewards",
        {
            "run_id": rid,
            "step": 1,
            "samples": [
                {
                    "correct": True,
                    "significance": [1.0],
                    "reference": {"significant": 1, "insignificant": 1},
                }
            ],
        },
    )
    assert status == 422
    assert_envelope(error, param="samples[0].response")
    status, error = classifier_server.request(
        "POST",
        "/v1/rewards",
        {
            "run_id": rid,
            "step": 1,
            "samples": [{"correct": True, "response": "x", "reference": {"significance": [1.0]}}],
        },
    )
    assert status == 422
    assert_envelope(error, param="samples[0].reference.significance")


def test_values_runs_work_on_a_model_server(classifier_server: ServerProcess) -> None:
    rid = run_id()
    status, _ = classifier_server.request(
        "PUT", f"/v1/runs/{rid}", {"significance": "values", "reference": "group"}
    )
    assert status == 201
    samples = [{"prompt_id": "p", "significance": [0, 1, 2], "correct": True}] * 2
    status, body = classifier_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": samples}
    )
    assert status == 200 and body["samples"][0]["significant"] == 2


def test_significance_inspection(
    classifier_server: ServerProcess, values_server: ServerProcess, engine: SignificanceEngine
) -> None:
    status, body = classifier_server.request(
        "POST", "/v1/significance", {"texts": TEXTS, "significance_threshold": 0.3}
    )
    assert status == 200, body
    assert body["significance"] == "classifier" and body["significance_threshold"] == 0.3
    expected = engine.inspect_texts(TEXTS, 0.3)
    assert len(body["results"]) == len(TEXTS)
    for got, want in zip(body["results"], expected, strict=True):
        assert got["units"] == list(want.units)
        assert got["values"] == pytest.approx(list(want.values), abs=1e-6)
        assert all(0.0 <= v <= 1.0 for v in got["values"])
        assert (got["significant"], got["insignificant"]) == (want.significant, want.insignificant)
        assert got["significant"] + got["insignificant"] == len(got["units"])

    status, body = values_server.request("POST", "/v1/significance", {"values": [[0, 1, 2, 3]]})
    assert status == 200, body
    assert body["significance"] == "values" and body["significance_threshold"] == 0.5
    result = body["results"][0]
    assert result["values"] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert (result["significant"], result["insignificant"]) == (2, 2)
    # Texts need a model; exactly one input kind; finite threshold in (0, 1).
    status, error = values_server.request("POST", "/v1/significance", {"texts": ["a b"]})
    assert status == 422
    assert_envelope(error, param="texts")
    for bad in (
        {},
        {"texts": ["a"], "values": [[1]]},
        {"values": [[1]], "significance_threshold": 1.5},
        {"values": []},
    ):
        status, error = values_server.request("POST", "/v1/significance", bad)
        assert status == 422, bad
        assert_envelope(error)


def _queued_requests(server: ServerProcess) -> float:
    match = re.search(
        r"^sigreward_queue_requests (\S+)$", server.request("GET", "/metrics")[1], re.M
    )
    return float(match.group(1)) if match else 0.0


def test_overload_answers_429_then_recovers(classifier_server: ServerProcess) -> None:
    rid = run_id()
    classifier_server.request("PUT", f"/v1/runs/{rid}", {})
    texts = big_texts()
    body = {
        "run_id": rid,
        "step": 0,
        "samples": [
            {"response": t, "correct": True, "reference": {"significant": 5, "insignificant": 5}}
            for t in texts
        ],
    }
    results: list[tuple[int, dict[str, str], Any]] = []
    lock = threading.Lock()

    def fire() -> None:
        answer = classifier_server.request_full("POST", "/v1/rewards", body, timeout=120)
        with lock:
            results.append(answer)

    # The queue holds one big request but not two: once the first one is queued, the others
    # (sent together while it runs for seconds) find it full.
    threads = [threading.Thread(target=fire) for _ in range(4)]
    threads[0].start()
    wait_until(
        lambda: _queued_requests(classifier_server),
        lambda queued: queued >= 1 or not threads[0].is_alive(),
        interval=0.01,
        what="the first big request in the queue",
    )
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _, _ in results)
    assert 200 in statuses and 429 in statuses, statuses
    for status, headers, payload in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert_envelope(payload, param=None, contains="queue")
            assert payload["error"]["type"] == "queue_full"
    # A request larger than the whole queue can never be served: 413, not 429.
    huge = {**body, "samples": body["samples"] * 2}
    status, error = classifier_server.request("POST", "/v1/rewards", huge)
    assert status == 413
    assert_envelope(error, param="samples", contains=str(CLASSIFIER_QUEUE_TOKENS))
    # And the server still serves.
    small = {**body, "step": 1, "samples": body["samples"][:1]}
    status, ok = classifier_server.request("POST", "/v1/rewards", small)
    assert status == 200, ok
    status, text = classifier_server.request("GET", "/metrics")
    rejected = re.search(r"^sigreward_queue_rejections_total ([0-9.]+)$", text, re.M)
    assert rejected and float(rejected.group(1)) >= statuses.count(429)


def test_broken_text_is_accepted(
    classifier_server: ServerProcess, engine: SignificanceEngine
) -> None:
    """Policy output with U+FFFD and control characters is scored like any text; a lone
    surrogate (half a JSON surrogate pair) is not valid Unicode and is refused in every text
    field alike, naming the field."""
    rid = run_id()
    ref = '{"significant": 1, "insignificant": 1}'
    raw = (
        f'{{"run_id": "{rid}", "step": 0, "samples": [{{"response": "bad \\ufffd half '
        f'pair \\ud83d\\ude00 \\u0000\\u0007 end", "correct": true, "reference": {ref}}}]}}'
    ).encode()
    status, body = classifier_server.request(
        "POST", "/v1/rewards", raw, headers={"Content-Type": "application/json"}
    )
    assert status == 200, body
    expected = engine.count_texts(["bad \ufffd half pair \U0001f600 \x00\x07 end"], 0.5)[0]
    assert (body["samples"][0]["significant"], body["samples"][0]["insignificant"]) == (
        expected.significant,
        expected.insignificant,
    )
    raw = b'{"texts": ["lone \\ud800 surrogate"]}'
    status, error = classifier_server.request(
        "POST", "/v1/significance", raw, headers={"Content-Type": "application/json"}
    )
    assert status == 422, error
    assert_envelope(error, param="texts[0]", contains="surrogate")
    # Identifiers are not policy output: a broken one is refused, naming it.
    raw = f'{{"run_id": "{rid}", "step": 0, "samples": [{{"id": "\\ud800", "response": "x", "correct": true, "reference": {ref}}}]}}'.encode()
    status, error = classifier_server.request(
        "POST", "/v1/rewards", raw, headers={"Content-Type": "application/json"}
    )
    assert status == 422
    assert_envelope(error, param="samples[0].id")
