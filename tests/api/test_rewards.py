"""POST /v1/rewards over a real server in values mode: rewards, references, dedupe, steps,
baselines, labels, validation (422 naming sample index and field), limits (413), headers."""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest

from sigreward.domain.results import Counts
from sigreward.reward.baselines import BaselineSample, baseline_rewards
from sigreward.reward.significance import SignificanceRewardParams, significance_length_reward
from tests.api.conftest import run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerProcess

K0 = 5.0 / (math.pi / 2)


def post(server: ServerProcess, body: Any, **headers: str) -> tuple[int, Any]:
    return server.request("POST", "/v1/rewards", body, headers=headers or None)


def values_sample(values: list[float], correct: bool, **extra: Any) -> dict[str, Any]:
    return {"significance": values, "correct": correct, **extra}


def test_given_reference_rewards_match_the_formula(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significant": 3, "insignificant": 4}
    samples = [
        # normalised [0, 1, .21, .47]: 1 significant, 3 insignificant
        values_sample([0.1, 2.0, 0.5, 1.0], True, id="a", reference=ref),
        values_sample([0.1, 2.0, 0.5, 1.0], False, id="b", reference=ref, score=0.25),
        # the reference given as values: [0, .5, 1] -> 2 significant, 1 insignificant
        values_sample(
            [5.0, 0.0, 1.0, 1.0, 0.0], False, id="c", reference={"significance": [0, 1, 2]}
        ),
        # a reference without insignificant units: the degenerate rule fires
        values_sample([0.0, 1.0], True, id="d", reference={"significant": 2, "insignificant": 0}),
    ]
    status, body = post(values_server, {"run_id": rid, "step": 3, "samples": samples})
    assert status == 200, body
    assert body["run_id"] == rid and body["step"] == 3
    assert body["schedule"] == {
        "k": pytest.approx(K0),
        "dynamic": False,
        "low_slope_count": 0,
        "late": False,
    }
    params = SignificanceRewardParams()
    expected_counts = [Counts(1, 3), Counts(1, 3), Counts(1, 4), Counts(1, 1)]
    refs = [Counts(3, 4), Counts(3, 4), Counts(2, 1), Counts(2, 0)]
    scores = [1.0, 0.25, 0.0, 1.0]
    for i, out in enumerate(body["samples"]):
        correct = samples[i]["correct"]
        length_reward, degenerate = significance_length_reward(
            correct, expected_counts[i], refs[i], K0, params
        )
        assert out["id"] == samples[i]["id"]
        assert (out["significant"], out["insignificant"]) == (
            expected_counts[i].significant,
            expected_counts[i].insignificant,
        )
        assert (out["reference_significant"], out["reference_insignificant"]) == (
            refs[i].significant,
            refs[i].insignificant,
        )
        assert out["length_reward"] == pytest.approx(length_reward)
        assert out["reward"] == pytest.approx(scores[i] + length_reward)
        assert body["rewards"][i] == pytest.approx(scores[i] + length_reward)
        assert body["length_rewards"][i] == pytest.approx(length_reward)
        assert out["degenerate_reference"] is degenerate
    assert body["samples"][3]["degenerate_reference"] is True


def test_run_created_with_defaults_by_rewards(values_server: ServerProcess) -> None:
    rid = run_id()
    sample = values_sample([1, 2], True, reference={"significant": 1, "insignificant": 1})
    status, _ = post(values_server, {"run_id": rid, "step": 0, "samples": [sample]})
    assert status == 200
    status, run = values_server.request("GET", f"/v1/runs/{rid}")
    assert status == 200
    assert run["config"]["significance"] == "values" and run["config"]["reference"] == "given"


def test_first_seen_pins_and_group_uses_the_request(values_server: ServerProcess) -> None:
    rid = run_id()
    values_server.request("PUT", f"/v1/runs/{rid}", {"reference": "first_seen"})
    first = [
        values_sample([0, 1, 1, 1], True, prompt_id="p"),  # 3 significant, 1 insignificant
        values_sample([0, 0, 0, 1], True, prompt_id="p"),  # 1 significant, 3 insignificant
    ]
    status, body = post(values_server, {"run_id": rid, "step": 0, "samples": first})
    assert status == 200, body
    for out in body["samples"]:
        assert (out["reference_significant"], out["reference_insignificant"]) == (2.0, 2.0)
    later = [values_sample([0, 1], False, prompt_id="p")]
    status, body = post(values_server, {"run_id": rid, "step": 1, "samples": later})
    assert (
        body["samples"][0]["reference_significant"],
        body["samples"][0]["reference_insignificant"],
    ) == (2.0, 2.0)

    gid = run_id()
    values_server.request("PUT", f"/v1/runs/{gid}", {"reference": "group"})
    for samples in (first, later):
        status, body = post(values_server, {"run_id": gid, "step": 0, "samples": samples})
        assert status == 200
    # The group reference of the last request is its own single sample.
    assert (
        body["samples"][0]["reference_significant"],
        body["samples"][0]["reference_insignificant"],
    ) == (1.0, 1.0)
    # Missing prompt_id in these modes is a 422 naming the sample.
    status, error = post(
        values_server, {"run_id": gid, "step": 1, "samples": [later[0], values_sample([1], True)]}
    )
    assert status == 422
    assert_envelope(error, param="samples[1].prompt_id")


def test_retries_are_not_counted_twice(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significant": 1, "insignificant": 1}
    a = values_sample([0, 1, 2], True, id="a", reference=ref)
    b = values_sample([0, 1, 2], False, id="b", reference=ref)
    status, first = post(values_server, {"run_id": rid, "step": 0, "samples": [a, b]})
    assert status == 200
    status, retry = post(values_server, {"run_id": rid, "step": 0, "samples": [a, b]})
    assert status == 200
    assert [s["duplicate"] for s in retry["samples"]] == [True, True]
    assert retry["rewards"] == first["rewards"]
    no_id = values_sample([0, 1, 2], True, reference=ref)
    post(values_server, {"run_id": rid, "step": 0, "samples": [no_id, no_id]})
    status, run = values_server.request("POST", f"/v1/runs/{rid}/steps/0/finish")
    entry = run["schedule"]["history"][0]
    assert entry["samples"] == 4  # a, b and the two samples without id
    assert entry["score"] == pytest.approx(3 / 4)


def test_steps_finish_implicitly_and_late_requests(values_server: ServerProcess) -> None:
    rid = run_id()
    values_server.request("PUT", f"/v1/runs/{rid}", {"slope_start_step": 0, "slope_period": 2})
    ref = {"significant": 1, "insignificant": 1}
    scores = {0: [True, False], 2: [True, True], 5: [False, False]}
    bodies = {}
    for step, outcomes in scores.items():
        samples = [values_sample([0, 1], c, reference=ref) for c in outcomes]
        status, bodies[step] = post(
            values_server, {"run_id": rid, "step": step, "samples": samples}
        )
        assert status == 200 and bodies[step]["schedule"]["late"] is False
    status, run = values_server.request("GET", f"/v1/runs/{rid}")
    history = run["schedule"]["history"]
    assert [(h["step"], h["score"]) for h in history] == [(0, 0.5), (2, 1.0)]
    assert run["schedule"]["dynamic"] is True  # a slope was taken at step 2
    assert bodies[5]["schedule"]["k"] == pytest.approx(history[-1]["k_after"])
    # Step 2 is below the highest step seen: late, answered with step 2's k, no history change.
    samples = [values_sample([0, 1], False, reference=ref)]
    status, late = post(values_server, {"run_id": rid, "step": 2, "samples": samples})
    assert late["schedule"]["late"] is True
    assert late["schedule"]["k"] == pytest.approx(bodies[2]["schedule"]["k"])
    assert values_server.request("GET", f"/v1/runs/{rid}")[1]["schedule"]["history"] == history


@pytest.mark.parametrize(
    ("reward", "params", "extra"),
    [
        ("kimi", {}, {}),
        ("cosine", {"max_tokens": 1000}, {}),
        ("dapo", {"max_tokens": 1000, "cache_tokens": 200}, {}),
        ("l1_exact", {}, {"target_tokens": 500}),
        ("l1_max", {"alpha": 0.001}, {"target_tokens": 500}),
        ("arora_zanette", {}, {}),
        ("truncation", {"max_tokens": 700}, {}),
    ],
)
def test_baselines(values_server: ServerProcess, reward: str, params: dict, extra: dict) -> None:
    rid = run_id()
    status, run = values_server.request(
        "PUT", f"/v1/runs/{rid}", {"reward": reward, "reward_params": params}
    )
    assert status == 201, run
    lengths = [
        (120, True, "p1"),
        (900, True, "p1"),
        (640, False, "p1"),
        (300, True, "p2"),
        (1100, False, "p2"),
    ]
    samples = [{"num_tokens": n, "correct": c, "prompt_id": p, **extra} for n, c, p in lengths]
    status, body = post(values_server, {"run_id": rid, "step": 0, "samples": samples})
    assert status == 200, body
    expected = baseline_rewards(
        reward,
        [
            BaselineSample(1.0 if c else 0.0, c, n, p, extra.get("target_tokens"))
            for n, c, p in lengths
        ],
        run["config"]["reward_params"],
    )
    assert body["rewards"] == pytest.approx(expected)
    assert body["length_rewards"] == pytest.approx(
        [r - (1.0 if c else 0.0) for r, (_, c, _) in zip(expected, lengths, strict=True)]
    )
    # What the baseline needs is required, by sample index.
    broken = [dict(samples[0]), dict(samples[1])]
    del broken[1]["num_tokens"]
    status, error = post(values_server, {"run_id": rid, "step": 1, "samples": broken})
    assert status == 422
    assert_envelope(error, param="samples[1].num_tokens")
    if extra:
        del broken[0]["target_tokens"]
        status, error = post(values_server, {"run_id": rid, "step": 1, "samples": broken[:1]})
        assert status == 422
        assert_envelope(error, param="samples[0].target_tokens")


def test_labels_are_verified(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significant": 1, "insignificant": 1}
    samples = [
        values_sample(
            [0, 1], None, label="42", response="So the answer is $\\boxed{42}$.", reference=ref
        ),
        values_sample(
            [0, 1], None, label="42", response="So the answer is $\\boxed{41}$.", reference=ref
        ),
        values_sample([0, 1], None, label="7", response="\ufffd\x00 garbage \x07", reference=ref),
    ]
    for s in samples:
        del s["correct"]
    status, body = post(values_server, {"run_id": rid, "step": 0, "samples": samples})
    assert status == 200, body
    assert [s["correct"] for s in body["samples"]] == [True, False, False]
    # A label needs the response it is checked against.
    del samples[1]["response"]
    status, error = post(values_server, {"run_id": rid, "step": 0, "samples": samples})
    assert status == 422
    assert_envelope(error, param="samples[1].response")


def test_sample_validation_names_index_and_field(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significant": 1, "insignificant": 1}
    good = values_sample([0, 1], True, reference=ref)
    cases: list[tuple[Any, str]] = [
        ([good, good, good, {"significance": [1], "reference": ref}], "samples[3].correct"),
        ([good, values_sample([0, 1], True)], "samples[1].reference"),
        ([good, {"correct": True, "reference": ref}], "samples[1].significance"),
        ([{**good, "correct": "yes"}], "samples[0].correct"),
        ([{**good, "significance": [0, "x"]}], "samples[0].significance[1]"),
        ([{**good, "num_tokens": -1}], "samples[0].num_tokens"),
        ([{**good, "reference": {"significant": 1}}], "samples[0].reference"),
        (
            [{**good, "reference": {"significant": 1, "insignificant": 1, "significance": [1]}}],
            "samples[0].reference",
        ),
        ([{**good, "unknown": 1}], "samples[0].unknown"),
        ([], "samples"),
    ]
    for samples, param in cases:
        status, error = post(values_server, {"run_id": rid, "step": 0, "samples": samples})
        assert status == 422, (param, error)
        err = assert_envelope(error, param=param)
        assert param in err["message"]
    for body, param in [
        ({"run_id": rid, "step": -1, "samples": [good]}, "step"),
        ({"run_id": "no spaces", "step": 0, "samples": [good]}, "run_id"),
        ({"run_id": rid, "samples": [good]}, "step"),
        ({"run_id": rid, "step": 0, "samples": [good], "extra": 1}, "extra"),
    ]:
        status, error = post(values_server, body)
        assert status == 422, (body, error)
        assert_envelope(error, param=param)
    # Reference values need values mode's own form: a reference text is refused here.
    status, error = post(
        values_server,
        {"run_id": rid, "step": 0, "samples": [{**good, "reference": {"response": "x"}}]},
    )
    assert status == 422
    assert_envelope(error, param="samples[0].reference.response")
    # None of that created the run.
    assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422(values_server: ServerProcess, token: str) -> None:
    rid = run_id()
    ref = '"reference": {"significant": 1, "insignificant": 1}'
    raw = (
        f'{{"run_id": "{rid}", "step": 0, "samples": [{{"correct": true, "significance": [1, 2], '
        f'{ref}}}, {{"correct": true, "significance": [1, {token}], {ref}}}]}}'
    )
    status, error = post(values_server, raw.encode(), **{"Content-Type": "application/json"})
    assert status == 422
    assert_envelope(error, param="samples[1].significance[1]", contains=token)
    raw_score = raw.replace(
        '"correct": true, "significance": [1, 2]',
        f'"correct": true, "score": {token}, "significance": [1, 2]',
    )
    raw_score = raw_score.replace(f"[1, {token}]", "[1, 3]")
    status, error = post(values_server, raw_score.encode(), **{"Content-Type": "application/json"})
    assert status == 422
    assert_envelope(error, param="samples[0].score")
    assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404


def test_malformed_json_and_wrong_shapes(values_server: ServerProcess) -> None:
    json_header = {"Content-Type": "application/json"}
    status, error = post(values_server, b'{"run_id": "x", "step": ', **json_header)
    assert status == 400
    assert error["error"]["type"] == "invalid_json"
    status, error = post(values_server, b"[1, 2, 3]", **json_header)
    assert status == 422
    assert_envelope(error)
    status, error = post(values_server, b"", **json_header)
    assert status == 422
    assert_envelope(error)
    # Text that is valid JSON only inside a string: NaN in a string is just text.
    rid = run_id()
    body = {
        "run_id": rid,
        "step": 0,
        "samples": [
            values_sample(
                [1, 2], True, id="NaN Infinity", reference={"significant": 1, "insignificant": 1}
            )
        ],
    }
    status, ok = post(values_server, body)
    assert status == 200 and ok["samples"][0]["id"] == "NaN Infinity"


def test_limits_answer_413(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significant": 1, "insignificant": 1}
    good = values_sample([0, 1], True, reference=ref)
    status, error = post(values_server, {"run_id": rid, "step": 0, "samples": [good] * 65})
    assert status == 413
    assert_envelope(error, param="samples", contains="64")
    assert error["error"]["type"] == "payload_too_large"
    status, error = post(
        values_server,
        {"run_id": rid, "step": 0, "samples": [good, {**good, "response": "x" * 4001}]},
    )
    assert status == 413
    assert_envelope(error, param="samples[1].response")
    status, error = post(
        values_server,
        {"run_id": rid, "step": 0, "samples": [{**good, "significance": [0.5] * 4001}]},
    )
    assert status == 413
    assert_envelope(error, param="samples[0].significance")
    assert post(values_server, {"run_id": rid, "step": 0, "samples": [good] * 64})[0] == 200


def _raw_http(server: ServerProcess, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request by hand (the server may answer and close before the body is sent)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # refused early: the answer is already waiting
        data = b""
        while True:
            try:
                part = sock.recv(65536)
            except OSError:
                break
            if not part:
                break
            data += part
    return data


def test_body_bytes_limit_before_reading(values_server: ServerProcess) -> None:
    # Declared too large: refused from the headers, without waiting for the body.
    head = (
        b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    answer = _raw_http(values_server, head, [])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer
    # Chunked with no length: refused once the streamed bytes pass the limit.
    head = (
        b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 50_000
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = _raw_http(values_server, head, [chunk] * 8 + [b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert values_server.request("GET", "/livez")[0] == 200


def test_request_id_and_timing_headers(values_server: ServerProcess) -> None:
    rid = run_id()
    sample = values_sample([0, 1], True, reference={"significant": 1, "insignificant": 1})
    status, headers, _ = values_server.request_full(
        "POST",
        "/v1/rewards",
        {"run_id": rid, "step": 0, "samples": [sample]},
        {"X-Request-Id": "trace-123"},
    )
    assert status == 200
    assert headers["x-request-id"] == "trace-123"
    for name in ("x-process-time-ms", "x-queue-time-ms", "x-inference-time-ms"):
        assert float(headers[name]) >= 0.0
    status, headers, body = values_server.request_full("GET", "/v1/runs/none-such")
    assert status == 404
    assert len(headers["x-request-id"]) == 32 and "x-process-time-ms" in headers
    status, headers, body = values_server.request_full("GET", "/nowhere")
    assert status == 404
    assert_envelope(body, param=None)
    status, headers, body = values_server.request_full("PATCH", "/v1/rewards")
    assert status == 405
    assert body["error"]["type"] == "method_not_allowed"
