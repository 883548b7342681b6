"""PUT / GET / DELETE /v1/runs/{run_id} and the explicit finish endpoint, over a real server."""

from __future__ import annotations

import math

from tests.api.conftest import run_id
from tests.support.server import ServerProcess


def assert_envelope(body: object, param: str | None = ..., contains: str = "") -> dict:  # type: ignore[assignment]
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "message", "param"}, error
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"]
    if param is not ...:
        assert error["param"] == param, error
    assert contains in error["message"], error
    return error


def test_put_creates_then_confirms_then_conflicts(values_server: ServerProcess) -> None:
    rid = run_id()
    body = {"reference": "first_seen", "lambda_c": 4.0, "slope_period": 5}
    status, created = values_server.request("PUT", f"/v1/runs/{rid}", body)
    assert status == 201, created
    assert created["run_id"] == rid
    config = created["config"]
    assert config["reference"] == "first_seen" and config["lambda_c"] == 4.0
    assert config["significance"] == "values"  # no model loaded
    assert config["slope_start_step"] == 50 and config["lambda_w_e"] == 5.0
    schedule = created["schedule"]
    assert math.isclose(schedule["k"], 5.0 / (math.pi / 2))
    assert schedule["dynamic"] is False and schedule["low_slope_count"] == 0
    assert schedule["last_finished_step"] is None and schedule["history"] == []

    status, same = values_server.request("PUT", f"/v1/runs/{rid}", body)
    assert status == 200 and same["config"] == config
    # A subset of the stored fields, equal: still 200.
    status, _ = values_server.request("PUT", f"/v1/runs/{rid}", {"lambda_c": 4.0})
    assert status == 200
    status, conflict = values_server.request("PUT", f"/v1/runs/{rid}", {"lambda_c": 3.0})
    assert status == 409
    assert_envelope(conflict, param="lambda_c", contains="lambda_c")
    assert conflict["error"]["type"] == "conflict"
    # The conflict changed nothing.
    status, got = values_server.request("GET", f"/v1/runs/{rid}")
    assert status == 200 and got["config"]["lambda_c"] == 4.0


def test_put_without_body_and_get(values_server: ServerProcess) -> None:
    rid = run_id()
    status, created = values_server.request("PUT", f"/v1/runs/{rid}")
    assert status == 201, created
    status, got = values_server.request("GET", f"/v1/runs/{rid}")
    assert status == 200
    assert set(got) == {"run_id", "config", "schedule", "counted_samples", "suspected_retries"}
    for key in ("k", "dynamic", "low_slope_count", "last_finished_step", "history"):
        assert key in got["schedule"]
    assert got["config"]["reference"] == "given" and got["config"]["reward"] == "significance"


def test_put_validation_errors_name_the_field(values_server: ServerProcess) -> None:
    rid = run_id()
    cases = [
        ({"slope_period": 0}, "slope_period"),
        ({"slope_start_step": -1}, "slope_start_step"),
        ({"significance_threshold": 1.0}, "significance_threshold"),
        ({"significance_threshold": 0}, "significance_threshold"),
        ({"lambda_c": -1}, "lambda_c"),
        ({"k_max": 0}, "k_max"),
        ({"reference": "nearest"}, "reference"),
        ({"reward": "length"}, "reward"),
        ({"bogus": 1}, "bogus"),
    ]
    for body, param in cases:
        status, error = values_server.request("PUT", f"/v1/runs/{rid}", body)
        assert status == 422, (body, error)
        assert_envelope(error, param=param)
        assert error["error"]["message"].startswith(param), error
    # Unknown baseline parameter, and a required one missing (truncation needs max_tokens).
    status, error = values_server.request(
        "PUT", f"/v1/runs/{rid}", {"reward": "dapo", "reward_params": {"alpha": 1}}
    )
    assert status == 422 and "alpha" in error["error"]["message"]
    status, error = values_server.request("PUT", f"/v1/runs/{rid}", {"reward": "truncation"})
    assert status == 422
    assert_envelope(error, param="reward_params.max_tokens")
    # Classifier significance needs a model; this server has none.
    status, error = values_server.request("PUT", f"/v1/runs/{rid}", {"significance": "classifier"})
    assert status == 422
    assert_envelope(error, param="significance", contains="--model")
    # None of the rejected PUTs created the run.
    status, error = values_server.request("GET", f"/v1/runs/{rid}")
    assert status == 404


def test_run_id_rules(values_server: ServerProcess) -> None:
    status, _ = values_server.request("PUT", "/v1/runs/" + "a" * 128)
    assert status == 201
    status, error = values_server.request("PUT", "/v1/runs/" + "a" * 129)
    assert status == 422
    assert_envelope(error, param="run_id")
    status, error = values_server.request("PUT", "/v1/runs/bad%21id")
    assert status == 422
    assert_envelope(error, param="run_id")
    status, _ = values_server.request("PUT", "/v1/runs/A.b_c-9")
    assert status in (200, 201)


def test_get_and_delete_unknown_run_are_404(values_server: ServerProcess) -> None:
    rid = run_id("missing")
    for method in ("GET", "DELETE"):
        status, error = values_server.request(method, f"/v1/runs/{rid}")
        assert status == 404
        assert_envelope(error, param="run_id", contains=rid)
        assert error["error"]["type"] == "not_found"
    status, error = values_server.request("POST", f"/v1/runs/{rid}/steps/3/finish")
    assert status == 404
    assert_envelope(error, param="run_id")


def test_delete_removes_everything(values_server: ServerProcess) -> None:
    rid = run_id()
    sample = {"id": "a", "prompt_id": "p", "significance": [0, 1, 2], "correct": True}
    assert values_server.request("PUT", f"/v1/runs/{rid}", {"reference": "first_seen"})[0] == 201
    status, first = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": [sample]}
    )
    assert status == 200, first
    status, body = values_server.request("DELETE", f"/v1/runs/{rid}")
    assert status == 204 and body is None
    assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404
    # Recreated from scratch: the pinned reference and the dedupe record are gone too.
    assert first["samples"][0]["reference_significant"] == 2.0
    other = {**sample, "significance": [0, 5, 5, 5, 5]}
    assert values_server.request("PUT", f"/v1/runs/{rid}", {"reference": "first_seen"})[0] == 201
    status, again = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": [other]}
    )
    assert status == 200
    assert again["samples"][0]["duplicate"] is False
    assert again["samples"][0]["reference_significant"] == 4.0


def test_finish_endpoint_and_late_requests(values_server: ServerProcess) -> None:
    rid = run_id()
    values_server.request("PUT", f"/v1/runs/{rid}", {})

    def post(step: int, correct: bool) -> dict:
        sample = {
            "significance": [0.0, 1.0, 0.2, 0.9],
            "correct": correct,
            "reference": {"significant": 2, "insignificant": 2},
        }
        status, body = values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "step": step, "samples": [sample, sample]}
        )
        assert status == 200, body
        return body

    post(0, True)
    post(1, False)  # finishes step 0 implicitly
    status, run = values_server.request("GET", f"/v1/runs/{rid}")
    assert [h["step"] for h in run["schedule"]["history"]] == [0]
    entry = run["schedule"]["history"][0]
    assert entry["score"] == 1.0 and entry["samples"] == 2 and "k_after" in entry
    status, finished = values_server.request("POST", f"/v1/runs/{rid}/steps/1/finish")
    assert status == 200
    assert set(finished) == {
        "run_id",
        "config",
        "schedule",
        "counted_samples",
        "suspected_retries",
    }
    assert [h["step"] for h in finished["schedule"]["history"]] == [0, 1]
    assert finished["schedule"]["history"][1]["score"] == 0.0
    assert finished["schedule"]["last_finished_step"] == 1
    # A request for a finished step is late: answered with that step's k, history unchanged.
    late = post(1, True)
    assert late["schedule"]["late"] is True
    assert math.isclose(late["schedule"]["k"], 5.0 / (math.pi / 2))
    status, after = values_server.request("GET", f"/v1/runs/{rid}")
    assert after["schedule"]["history"] == finished["schedule"]["history"]
    # Bad step values.
    status, error = values_server.request("POST", f"/v1/runs/{rid}/steps/-1/finish")
    assert status == 422
    assert_envelope(error, param="step")
    status, error = values_server.request("POST", f"/v1/runs/{rid}/steps/x/finish")
    assert status == 422
