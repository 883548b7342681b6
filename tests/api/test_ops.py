"""Operations endpoints, auth, CLI configuration and start-up errors."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sigreward.cli import _invalid_settings, build_parser, settings_from_args
from sigreward.settings import Settings
from tests.api.conftest import run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import REPO_ROOT, ServerFactory, ServerProcess, free_port
from tests.support.waiting import wait_until


def test_probes_and_info(values_server: ServerProcess) -> None:
    assert values_server.request("GET", "/livez") == (200, {"status": "ok"})
    assert values_server.request("GET", "/readyz") == (200, {"status": "ready"})
    status, info = values_server.request("GET", "/v1/info")
    assert status == 200
    assert info["version"] == "0.1.0"
    assert info["significance_modes"] == ["values"]
    assert info["model"] is None
    assert info["kernel_backend"] == "torch" and info["device"] == "cpu"
    assert info["store"] == "sqlite" and info["auth"] is False and info["ready"] is True
    assert info["limits"]["max_samples"] == 64
    assert info["limits"]["max_chars_per_response"] == 4000
    assert info["limits"]["max_body_bytes"] == 200000


def test_metrics(values_server: ServerProcess) -> None:
    rid = run_id()
    sample = {
        "significance": [0, 1],
        "correct": True,
        "reference": {"significant": 1, "insignificant": 1},
    }
    assert (
        values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": [sample]}
        )[0]
        == 200
    )
    values_server.request("GET", "/v1/runs/none-such")
    status, headers, text = values_server.request_full("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    # A request is counted just after its answer is sent: wait for the 404 to be counted.
    counted = (
        'sigreward_requests_total{endpoint="/v1/rewards",status="200"}',
        'sigreward_requests_total{endpoint="/v1/runs/{run_id}",status="404"}',
    )
    text = wait_until(
        lambda: values_server.request("GET", "/metrics")[1],
        lambda metrics: all(name in metrics for name in counted),
        what="both requests counted in /metrics",
    )
    for name in (
        "sigreward_request_duration_seconds_bucket",
        "sigreward_queue_depth",
        "sigreward_batch_size_bucket",
        "sigreward_batch_tokens_bucket",
        'sigreward_model_forward_seconds_count{kind="count_values"}',
        "sigreward_k_runaway_warnings_total",
        "sigreward_requests_in_flight",
    ):
        assert name in text, name
    assert f'sigreward_schedule_k{{run_id="{rid}"}} 3.18' in text


def _counter(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def test_k_runaway_is_counted(values_server: ServerProcess) -> None:
    before = _counter(
        values_server.request("GET", "/metrics")[1], "sigreward_k_runaway_warnings_total"
    )
    rid = run_id()
    values_server.request("PUT", f"/v1/runs/{rid}", {"slope_start_step": 2, "slope_period": 2})
    # A tiny first slope (step 2) sets a huge scale (docs/method.md#schedule-of-k): k runs away at step 3.
    for step, score in enumerate([0.5, 0.5, 0.51, 0.6, 0.6]):
        sample = {
            "significance": [0, 1],
            "correct": True,
            "score": score,
            "reference": {"significant": 1, "insignificant": 1},
        }
        status, _ = values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "step": step, "samples": [sample]}
        )
        assert status == 200
    status, run = values_server.request("GET", f"/v1/runs/{rid}")
    assert run["schedule"]["k"] > 4 * 5.0 / (math.pi / 2) and run["schedule"]["k_warning"] is True
    after = _counter(
        values_server.request("GET", "/metrics")[1], "sigreward_k_runaway_warnings_total"
    )
    assert after >= before + 1


def test_request_log_lines(values_server: ServerProcess) -> None:
    rid = run_id()
    secret = "private-response-text-" + rid
    sample = {
        "response": secret,
        "significance": [0, 1],
        "correct": True,
        "reference": {"significant": 1, "insignificant": 1},
    }
    values_server.request(
        "POST",
        "/v1/rewards",
        {"run_id": rid, "step": 0, "samples": [sample, sample]},
        headers={"X-Request-Id": rid},
    )
    # The access-log line is written just after the answer is sent: wait for it.
    lines = wait_until(
        lambda: [r for r in values_server.log_records() if rid in json.dumps(r)],
        what=f"the access-log line of request {rid}",
    )
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["logger"] == "sigreward.access" and line["request_id"] == rid
    assert (line["method"], line["path"], line["status"], line["run_id"], line["samples"]) == (
        "POST",
        "/v1/rewards",
        200,
        rid,
        2,
    )
    assert line["duration_ms"] >= 0
    assert secret not in values_server.log()  # no response text without --log-responses


def test_not_ready_answers_503(tmp_path: Path) -> None:
    from sigreward.api.app import create_app

    # Without entering the lifespan the app never becomes ready.
    client = TestClient(create_app(Settings(data_dir=tmp_path)))
    assert client.get("/livez").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["type"] == "unavailable"
    response = client.post("/v1/rewards", json={"run_id": "x", "step": 0, "samples": []})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert client.get("/v1/info").json()["ready"] is False


def test_schedule_k_gauge_cardinality_is_bounded() -> None:
    from sigreward.metrics import Metrics

    metrics = Metrics(max_run_gauges=3)
    for i in range(5):
        metrics.observe_k(f"run{i}", float(i))
    text = metrics.render().decode()
    assert 'run_id="run0"' not in text and 'run_id="run1"' not in text
    assert all(f'run_id="run{i}"' in text for i in (2, 3, 4))
    metrics.observe_k("run2", 9.0)  # refreshed: now the newest
    metrics.observe_k("run5", 1.0)
    text = metrics.render().decode()
    assert 'run_id="run3"' not in text and 'sigreward_schedule_k{run_id="run2"} 9.0' in text


def test_api_keys(server_factory: ServerFactory) -> None:
    server = server_factory(
        args=["--api-key", "key-one", "--api-key", "key-two", "--log-responses"]
    )
    for path in ("/livez", "/readyz"):
        assert server.request("GET", path)[0] == 200
    # /metrics names runs: it needs a key too (unless --metrics-open).
    assert server.request("GET", "/metrics")[0] == 401
    assert server.request("GET", "/metrics", headers={"Authorization": "Bearer key-one"})[0] == 200
    status, headers, error = server.request_full("GET", "/v1/info")
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert_envelope(error)
    assert error["error"]["type"] == "authentication_error"
    for auth in ("Bearer wrong", "key-one", "Basic a2V5LW9uZQ==", "Bearer "):
        assert server.request("GET", "/v1/info", headers={"Authorization": auth})[0] == 401, auth
    for key in ("key-one", "key-two"):
        status, info = server.request("GET", "/v1/info", headers={"Authorization": f"Bearer {key}"})
        assert status == 200 and info["auth"] is True
    rid = run_id()
    body = {
        "run_id": rid,
        "step": 0,
        "samples": [
            {
                "significance": [1],
                "correct": True,
                "reference": {"significant": 1, "insignificant": 1},
            }
        ],
    }
    assert server.request("POST", "/v1/rewards", body)[0] == 401
    assert (
        server.request("GET", f"/v1/runs/{rid}", headers={"Authorization": "Bearer key-two"})[0]
        == 404
    )
    assert (
        server.request("POST", "/v1/rewards", body, headers={"Authorization": "Bearer key-two"})[0]
        == 200
    )
    # The API's documentation is open, so a browser can show it; the schema documents the
    # bearer scheme the other operations need.
    status, schema = server.request("GET", "/openapi.json")
    assert status == 200, schema
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        status, headers, html = server.request_full("GET", page)
        assert status == 200 and headers["content-type"].startswith("text/html"), page


def _serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_settings_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIGREWARD_API_KEYS", "a, b")
    monkeypatch.setenv("SIGREWARD_MAX_SAMPLES", "7")
    monkeypatch.setenv("SIGREWARD_DATA_DIR", str(tmp_path))
    settings = settings_from_args(_serve_args())
    assert isinstance(settings, Settings)
    assert settings.api_keys == ["a", "b"] and settings.max_samples == 7
    assert settings.data_dir == tmp_path
    settings = settings_from_args(
        _serve_args(
            "--api-key", "c", "--max-samples", "9", "--drain-timeout", "2.5", "--log-responses"
        )
    )
    assert settings.api_keys == ["c"] and settings.max_samples == 9
    assert settings.drain_timeout_s == 2.5 and settings.log_responses is True
    monkeypatch.setenv("SIGREWARD_API_KEYS", '["x", "y"]')
    assert settings_from_args(_serve_args()).api_keys == ["x", "y"]


def _run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigreward", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )


def test_missing_or_broken_model_is_a_one_line_error(tmp_path: Path) -> None:
    port = str(free_port())
    missing = _run_cli(
        "serve", "--port", port, "--data-dir", str(tmp_path), "--model", "/no/such/model"
    )
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "/no/such/model" in lines[0], missing.stderr
    empty = tmp_path / "empty-model"
    empty.mkdir()
    broken = _run_cli("serve", "--port", port, "--data-dir", str(tmp_path), "--model", str(empty))
    assert broken.returncode != 0
    assert "Traceback" not in broken.stderr
    assert str(empty) in broken.stderr.strip().splitlines()[-1], broken.stderr


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    result = _run_cli("serve", "--port", str(free_port()), "--database-url", url)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sigreward: error: cannot open the database")


def test_a_bad_setting_is_named_by_its_flag_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGREWARD_API_KEYS", '["a",')
    with pytest.raises(ValidationError) as bad_keys:
        settings_from_args(_serve_args())
    assert _invalid_settings(bad_keys.value).startswith("--api-key / SIGREWARD_API_KEYS: ")
    monkeypatch.delenv("SIGREWARD_API_KEYS")
    with pytest.raises(ValidationError) as bad_size:
        settings_from_args(_serve_args("--max-samples", "-3"))
    assert _invalid_settings(bad_size.value).startswith("--max-samples / SIGREWARD_MAX_SAMPLES: ")


def test_report_subcommand_is_wired() -> None:
    args = build_parser().parse_args(["report", "some-run", "--out", "/tmp/x"])
    assert callable(args.func)


def test_unhandled_errors_are_a_500_envelope(tmp_path: Path) -> None:
    from sigreward.api.app import create_app

    app = create_app(Settings(data_dir=tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-Id": "r-1"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"type": "internal_error", "message": "internal server error", "param": None}
    }
    assert response.headers["x-request-id"] == "r-1"
