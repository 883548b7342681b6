"""HTTP fixes: metric labels of early answers, HEAD probes, the JSON content type (415), the
access log's error field, the k gauge and late requests, reward_params on the paper's reward."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from sigreward.settings import Settings
from tests.api.conftest import run_id, values_sample
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

KEY = {"Authorization": "Bearer key-one"}


def _post_raw(
    server: ServerProcess, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, object]:
    """POST exactly these headers (urllib would add a form Content-Type of its own)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _count(metrics: str, endpoint: str, status: int) -> float:
    pattern = (
        rf'^sigreward_requests_total{{endpoint="{re.escape(endpoint)}",status="{status}"}} (\S+)$'
    )
    match = re.search(pattern, metrics, re.M)
    return float(match.group(1)) if match else 0.0


def test_early_answers_are_counted_under_their_route(server_factory: ServerFactory) -> None:
    server = server_factory(args=["--api-key", "key-one", "--max-body-bytes", "2000"])
    body = {"run_id": run_id(), "step": 0, "samples": [values_sample()]}
    assert server.request("POST", "/v1/rewards", body)[0] == 401
    assert server.request("GET", "/v1/runs/some-run")[0] == 401
    # 413 from Content-Length, before the body is read.
    big = json.dumps({"run_id": "x", "step": 0, "samples": [{"response": "a" * 5000}]}).encode()
    status, _ = server.request(
        "POST", "/v1/rewards", big, headers={**KEY, "Content-Type": "application/json"}
    )
    assert status == 413
    assert server.request("DELETE", "/v1/info", headers=KEY)[0] == 405
    assert server.request("GET", "/no/such/path", headers=KEY)[0] == 404
    # Requests are counted just after their answers are sent: wait until all five are.
    answered = (
        ("/v1/rewards", 401),
        ("/v1/runs/{run_id}", 401),
        ("/v1/rewards", 413),
        ("/v1/info", 405),
        ("unmatched", 404),
    )
    metrics = wait_until(
        lambda: server.request("GET", "/metrics", headers=KEY)[1],
        lambda text: all(_count(text, endpoint, status) >= 1 for endpoint, status in answered),
        what="the five answers counted in /metrics",
    )
    assert _count(metrics, "/v1/rewards", 401) == 1, metrics
    assert _count(metrics, "/v1/runs/{run_id}", 401) == 1, metrics
    assert _count(metrics, "/v1/rewards", 413) == 1, metrics
    assert _count(metrics, "/v1/info", 405) == 1, metrics
    assert _count(metrics, "unmatched", 404) == 1, metrics
    assert _count(metrics, "unmatched", 401) == 0, metrics


def test_not_ready_answers_are_counted_under_their_route_and_head_probes(
    tmp_path: Path,
) -> None:
    from sigreward.api.app import create_app

    # Without entering the lifespan the app never becomes ready: 503 before routing.
    client = TestClient(create_app(Settings(data_dir=tmp_path)))
    response = client.post("/v1/rewards", json={"run_id": "x", "step": 0, "samples": []})
    assert response.status_code == 503
    assert client.head("/readyz").status_code == 503
    assert client.head("/livez").status_code == 200
    metrics = client.get("/metrics").text
    assert _count(metrics, "/v1/rewards", 503) == 1, metrics
    assert _count(metrics, "unmatched", 503) == 0, metrics


def test_head_on_probes(values_server: ServerProcess) -> None:
    for path in ("/livez", "/readyz"):
        status, headers, body = values_server.request_full("HEAD", path)
        assert status == 200, path
        assert body is None
    # HEAD stays out of the schema (GET documents the probes).
    schema = values_server.request("GET", "/openapi.json")[1]
    assert set(schema["paths"]["/livez"]) == {"get"}


def test_a_body_without_the_json_content_type_is_415(values_server: ServerProcess) -> None:
    rid = run_id()
    raw = json.dumps({"run_id": rid, "step": 0, "samples": [values_sample()]}).encode()
    for headers, shown in (
        (
            {"Content-Type": "application/x-www-form-urlencoded"},
            "application/x-www-form-urlencoded",
        ),
        ({"Content-Type": "text/plain"}, "text/plain"),
        ({}, "no Content-Type was sent"),
    ):
        status, error = _post_raw(values_server, "/v1/rewards", raw, headers)
        assert status == 415, (headers, error)
        assert_envelope(error)
        assert error["error"]["type"] == "unsupported_media_type"
        assert "Content-Type: application/json" in error["error"]["message"]
        assert shown in error["error"]["message"]
    status, error = values_server.request(
        "PUT", f"/v1/runs/{rid}", b'{"lambda_c": 4}', headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and error["error"]["type"] == "unsupported_media_type"
    assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404  # nothing stored
    # JSON with a charset parameter, or a +json type, is JSON.
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        status, answer = values_server.request(
            "POST", "/v1/rewards", raw, headers={"Content-Type": content_type}
        )
        assert status == 200, (content_type, answer)


def _access_lines(server: ServerProcess, prefix: str, n: int) -> dict[str, dict[str, object]]:
    """The access-log lines whose request id starts with ``prefix`` (waits for ``n``: the line
    is written just after the answer is sent)."""
    return wait_until(
        lambda: {
            str(line["request_id"]): line
            for line in server.log_records()
            if line.get("logger") == "sigreward.access"
            and str(line.get("request_id")).startswith(prefix)
        },
        lambda lines: len(lines) >= n,
        what=f"{n} access-log lines of requests {prefix}*",
    )


def test_the_access_log_names_the_error_type(values_server: ServerProcess) -> None:
    rid = run_id("log")
    status, _ = values_server.request(
        "POST",
        "/v1/rewards",
        {"run_id": rid, "step": -1, "samples": [values_sample()]},
        headers={"X-Request-Id": rid + "-a"},
    )
    assert status == 422
    json_type = {"Content-Type": "application/json"}
    values_server.request(
        "POST", "/v1/rewards", b"{", headers={"X-Request-Id": rid + "-b", **json_type}
    )
    values_server.request("GET", "/v1/runs/" + rid, headers={"X-Request-Id": rid + "-c"})
    values_server.request("GET", "/v1/info", headers={"X-Request-Id": rid + "-d"})
    lines = _access_lines(values_server, rid, 4)
    assert lines[rid + "-a"]["status"] == 422
    assert lines[rid + "-a"]["error"] == "validation_error"
    assert lines[rid + "-b"]["status"] == 400 and lines[rid + "-b"]["error"] == "invalid_json"
    assert lines[rid + "-c"]["status"] == 404 and lines[rid + "-c"]["error"] == "not_found"
    assert lines[rid + "-d"]["status"] == 200 and "error" not in lines[rid + "-d"]


def _gauge(server: ServerProcess, rid: str) -> float:
    metrics = server.request("GET", "/metrics")[1]
    match = re.search(rf'^sigreward_schedule_k{{run_id="{rid}"}} (\S+)$', metrics, re.M)
    assert match, metrics
    return float(match.group(1))


def test_a_late_request_leaves_the_k_gauge_at_the_current_k(values_server: ServerProcess) -> None:
    rid = run_id("late")
    values_server.request("PUT", f"/v1/runs/{rid}", {"slope_start_step": 2, "slope_period": 2})
    for step, score in enumerate([0.5, 0.5, 0.51, 0.6, 0.6]):
        status, answer = values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "step": step, "samples": [values_sample(score)]}
        )
        assert status == 200, answer
    current = answer["schedule"]["k"]
    assert _gauge(values_server, rid) == current
    status, late = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": [values_sample()]}
    )
    assert status == 200 and late["schedule"]["late"] is True
    assert late["schedule"]["k"] != current  # the old step's k is answered ...
    assert _gauge(values_server, rid) == current  # ... but the gauge keeps the current k


def test_reward_params_on_the_significance_reward_are_refused(
    values_server: ServerProcess,
) -> None:
    for body in (
        {"reward_params": {"weight": 2.0}},
        {"reward": "significance", "reward_params": {"weight": 2.0}},
    ):
        rid = run_id("rp")
        status, error = values_server.request("PUT", f"/v1/runs/{rid}", body)
        assert status == 422, (body, error)
        assert_envelope(error, param="reward_params")
        assert "reward_params" in error["error"]["message"]
        assert "baseline" in error["error"]["message"]
        assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404
    # Empty params, and params of a baseline, stay fine.
    assert values_server.request("PUT", f"/v1/runs/{run_id()}", {"reward_params": {}})[0] == 201
    status, _ = values_server.request(
        "PUT", f"/v1/runs/{run_id()}", {"reward": "kimi", "reward_params": {"weight": 2.0}}
    )
    assert status == 201
