"""POST /get_reward without ?step=: concurrent requests fill each step exactly (the durable
sample counter), and --log-responses logs its response texts as for /v1/rewards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.api.conftest import run_id
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until


def _query(i: int) -> dict[str, Any]:
    return {
        "query": [f"Question {i}: 2 + {i}? Answer: so the answer is \\boxed{{{2 + i}}}.</s>"],
        "prompts": [f"Question {i}: 2 + {i}? Answer:"],
        "labels": [str(2 + i)],
    }


def _server(server_factory: ServerFactory, tiny_model: Path) -> ServerProcess:
    return server_factory(args=["--model", str(tiny_model), "--device", "cpu", "--log-responses"])


def test_concurrent_step_less_requests_fill_each_step_exactly(
    server_factory: ServerFactory, tiny_model: Path
) -> None:
    server = _server(server_factory, tiny_model)
    k, n = 4, 24
    rid = run_id("orl")
    status, _ = server.request(
        "PUT",
        f"/v1/runs/{rid}",
        {"significance": "classifier", "reference": "first_seen", "samples_per_step": k},
    )
    assert status == 201
    # Spawn the verifier helper first, on another run, so the timed requests overlap.
    server.request("PUT", "/v1/runs/warm", {"significance": "classifier", "reference": "group"})
    assert server.request("POST", "/get_reward?run_id=warm&step=0", _query(0), timeout=120)[0] in (
        200,
        422,
    )

    def one(i: int) -> tuple[int, dict[str, Any]]:
        return server.request("POST", f"/get_reward?run_id={rid}", _query(i), timeout=120)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, range(n)))
    assert all(status == 200 for status, _ in answers), answers
    steps = sorted(int(a["extra_logs"]["sigreward_step"][0]) for _, a in answers)
    assert steps == [i // k for i in range(n)]
    assert all(a["extra_logs"]["sigreward_late"] == [0.0] for _, a in answers)
    assert all(a["scores"] == [1.0] for _, a in answers)
    status, run = server.request("POST", f"/v1/runs/{rid}/steps/{n // k - 1}/finish")
    assert status == 200, run
    history = [(h["step"], h["samples"]) for h in run["schedule"]["history"]]
    assert history == [(s, k) for s in range(n // k)]


def test_log_responses_covers_get_reward(server_factory: ServerFactory, tiny_model: Path) -> None:
    server = _server(server_factory, tiny_model)
    rid = run_id("orl-log")
    server.request("PUT", f"/v1/runs/{rid}", {"significance": "classifier", "reference": "group"})
    status, answer = server.request(
        "POST", f"/get_reward?run_id={rid}&step=0", _query(7), headers={"X-Request-Id": rid}
    )
    assert status == 200, answer
    # The access-log line is written just after the answer is sent: wait for it.
    lines = wait_until(
        lambda: [
            line
            for line in server.log_records()
            if line.get("logger") == "sigreward.access" and line.get("request_id") == rid
        ],
        what=f"the access-log line of request {rid}",
    )
    assert len(lines) == 1, lines
    assert lines[0]["path"] == "/get_reward" and lines[0]["step"] == 0
    # The response text (the part after the prompt, without the EOS text), as for /v1/rewards.
    assert lines[0]["responses"] == ["so the answer is \\boxed{9}."]
