"""Hardening against hostile inputs: no accepted request may break a run, labels are
verified whole or refused, a step cannot jump arbitrarily far ahead, and bodies that are not
JSON answer ``invalid_json``. Every test runs against a real server process."""

from __future__ import annotations

import gzip
import json

from sigreward.api.jsonbody import SMALL_BODY_BYTES
from tests.api.conftest import run_id, values_sample
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerProcess

JSON = {"Content-Type": "application/json"}


def _rewards(server: ServerProcess, rid: str, step: int, samples: list) -> tuple[int, dict]:
    return server.request("POST", "/v1/rewards", {"run_id": rid, "step": step, "samples": samples})


def _run_still_works(server: ServerProcess, rid: str, step: int) -> None:
    status, answer = _rewards(server, rid, step, [values_sample(0.5)])
    assert status == 200, answer
    status, answer = server.request("POST", f"/v1/runs/{rid}/steps/{step}/finish")
    assert status == 200, answer
    status, answer = server.request("GET", f"/v1/runs/{rid}")
    assert status == 200, answer


# -- item 1: finite numbers whose sums or slope overflow ---------------------------------
def test_huge_scores_are_refused_and_never_poison_the_run(values_server: ServerProcess) -> None:
    rid = run_id("huge")
    status, error = _rewards(
        values_server, rid, 0, [values_sample(1.7e308), values_sample(1.7e308)]
    )
    assert status == 422, error
    assert_envelope(error, param="samples[0].score", contains="score")
    _run_still_works(values_server, rid, 1)


def test_many_large_scores_in_one_step_are_refused(values_server: ServerProcess) -> None:
    rid = run_id("many")
    status, error = _rewards(values_server, rid, 0, [values_sample(1e306)] * 60)
    assert status == 422, error
    assert error["error"]["param"].endswith(".score")
    _run_still_works(values_server, rid, 1)


def test_the_slope_fit_cannot_overflow(values_server: ServerProcess) -> None:
    rid = run_id("slope")
    status, _ = values_server.request(
        "PUT", f"/v1/runs/{rid}", {"slope_start_step": 0, "slope_period": 3}
    )
    assert status == 201
    for step in range(3):
        status, answer = _rewards(values_server, rid, step, [values_sample(1e308 * (-1) ** step)])
        assert status in (200, 422), answer
    _run_still_works(values_server, rid, 3)


def test_huge_reference_counts_and_tiny_references_cannot_overflow(
    values_server: ServerProcess,
) -> None:
    rid = run_id("refs")
    big = {"significant": 1.7e308, "insignificant": 1.7e308}
    status, error = _rewards(values_server, rid, 0, [values_sample(reference=big)] * 2)
    assert status == 422, error
    assert error["error"]["param"].startswith("samples[0].reference")
    # A wrong answer against a vanishing reference: k * r_S must stay finite.
    tiny = {"significant": 1e-300, "insignificant": 1e-300}
    wrong = values_sample(reference=tiny)
    wrong["correct"] = False
    wrong["significance"] = [1.0] * 50 + [0.0] * 50
    for step in (0, 1):
        status, answer = _rewards(values_server, rid, step, [wrong] * 8)
        assert status in (200, 422), answer
    _run_still_works(values_server, rid, 2)


def test_run_options_are_bounded(values_server: ServerProcess) -> None:
    for field, value in (
        ("lambda_w_e", 1e308),
        ("lambda_c", 1e300),
        ("slope_threshold", -1e308),
        ("k_max", 1e308),
    ):
        status, error = values_server.request("PUT", f"/v1/runs/{run_id('opt')}", {field: value})
        assert status == 422, (field, error)
        assert_envelope(error, param=field)


def test_huge_token_counts_are_refused(values_server: ServerProcess) -> None:
    rid = run_id("tok")
    assert values_server.request("PUT", f"/v1/runs/{rid}", {"reward": "kimi"})[0] == 201
    sample = {"num_tokens": 10**400, "correct": True, "prompt_id": "p"}
    status, error = _rewards(values_server, rid, 0, [sample, {**sample, "num_tokens": 1}])
    assert status == 422, error
    assert_envelope(error, param="samples[0].num_tokens")
    good = [{**sample, "num_tokens": 5}, {**sample, "num_tokens": 9}]
    assert _rewards(values_server, rid, 0, good)[0] == 200


# -- item 8: a step far ahead of the run ---------------------------------------------------
def test_a_step_far_ahead_is_refused_and_later_steps_count(values_server: ServerProcess) -> None:
    rid = run_id("jump")
    assert _rewards(values_server, rid, 0, [values_sample(0.5)])[0] == 200
    status, error = _rewards(values_server, rid, 2**62, [values_sample(0.5)])
    assert status == 422, error
    assert_envelope(error, param="step", contains="max_step_jump")
    status, error = values_server.request("POST", f"/v1/runs/{rid}/steps/{2**62}/finish")
    assert status == 422, error
    assert_envelope(error, param="step", contains="max_step_jump")
    status, answer = _rewards(values_server, rid, 1, [values_sample(0.5)])
    assert status == 200 and answer["schedule"]["late"] is False, answer


def test_the_step_jump_bound_is_a_run_option(values_server: ServerProcess) -> None:
    rid = run_id("jump2")
    status, run = values_server.request("PUT", f"/v1/runs/{rid}", {"max_step_jump": 5})
    assert status == 201 and run["config"]["max_step_jump"] == 5, run
    # The first request of a run may start anywhere within the bound from step 0.
    assert _rewards(values_server, rid, 5, [values_sample()])[0] == 200
    assert _rewards(values_server, rid, 10, [values_sample()])[0] == 200
    status, error = _rewards(values_server, rid, 16, [values_sample()])
    assert status == 422 and error["error"]["param"] == "step", error
    status, error = values_server.request("PUT", f"/v1/runs/{run_id()}", {"max_step_jump": 0})
    assert status == 422 and error["error"]["param"] == "max_step_jump", error


# -- item 4: labels longer than the verifier reads ------------------------------------------
def test_a_long_label_is_verified_whole_or_refused(values_server: ServerProcess) -> None:
    rid = run_id("label")
    digits = "7" * 1500
    sample = {"response": "The answer is \\boxed{" + digits + "}", "label": digits}
    status, answer = values_server.request(
        "PUT", f"/v1/runs/{rid}", {"reward": "dapo", "reward_params": {"max_tokens": 100}}
    )
    assert status == 201, answer
    status, answer = _rewards(values_server, rid, 0, [{**sample, "num_tokens": 5}])
    if status == 200:
        assert answer["samples"][0]["correct"] is True, answer
    else:
        assert status == 422, answer
        assert_envelope(answer, param="samples[0].label", contains="characters")
    # A wrong long answer is never recorded as right, nor a right one as wrong.
    wrong = {**sample, "response": "\\boxed{" + "7" * 1499 + "8}", "num_tokens": 5}
    status, answer = _rewards(values_server, rid, 1, [wrong])
    if status == 200:
        assert answer["samples"][0]["correct"] is False, answer
    else:
        assert status == 422 and answer["error"]["param"] == "samples[0].label"


# -- item 10: bodies that are not JSON, and one rule for lone surrogates --------------------
def test_gzip_and_deeply_nested_bodies_are_invalid_json(values_server: ServerProcess) -> None:
    body = json.dumps({"run_id": run_id(), "step": 0, "samples": [values_sample()]}).encode()
    for raw in (gzip.compress(body), b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}"):
        status, error = values_server.request("POST", "/v1/rewards", raw, headers=JSON)
        assert status == 400, (raw[:20], error)
        assert_envelope(error)
        assert error["error"]["type"] == "invalid_json", error
    nested = b'{"run_id": "x", "step": 0, "samples": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    status, error = values_server.request("POST", "/v1/rewards", nested, headers=JSON)
    assert status == 400 and error["error"]["type"] == "invalid_json", error


def test_large_nested_openrlhf_body_is_invalid_json(classifier_server: ServerProcess) -> None:
    # /get_reward parses its bodies off the event loop like the other JSON routes, large ones
    # included: those the middleware leaves to the route (padded past SMALL_BODY_BYTES).
    pad = b" " * (SMALL_BODY_BYTES + 1)
    nested = b'{"query": [' + b"[" * 5000 + b"]" * 5000 + b"]" + pad + b"}"
    status, error = classifier_server.request(
        "POST", "/get_reward?run_id=x&step=0", nested, headers=JSON
    )
    assert status == 400 and error["error"]["type"] == "invalid_json", error


def test_lone_surrogates_follow_one_rule_in_every_text_field(values_server: ServerProcess) -> None:
    rid = run_id("sur")
    for field in ("id", "prompt_id", "label", "response"):
        sample = values_sample()
        if field == "label":
            sample.pop("correct")
            sample["response"] = "4"
        sample[field] = "ok\ud800"
        raw = json.dumps({"run_id": rid, "step": 0, "samples": [sample]}).encode()
        assert b"\\ud800" in raw
        status, error = values_server.request("POST", "/v1/rewards", raw, headers=JSON)
        assert status == 422, (field, error)
        assert_envelope(error, param=f"samples[0].{field}", contains="surrogate")
