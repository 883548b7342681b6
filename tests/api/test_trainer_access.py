"""What OpenRLHF needs from /get_reward: a key in the URL (never logged or echoed), a clear 404
for a run that was never created, a warning log line for every refused request, and resent
requests answered instead of counted (live server, tiny classifier)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sigreward.api.url_key import redact, take_url_key
from tests.api.conftest import run_id
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

KEY = "sk-url-3f9c2a7d"
WRONG = "sk-wrong-81b4e6"


def _body(i: int = 0) -> dict[str, Any]:
    return {
        "query": [f"Q{i}: 2 + {i}? so the answer is \\boxed{{{2 + i}}}</s>"],
        "prompts": [f"Q{i}: 2 + {i}?"],
        "labels": [str(2 + i)],
    }


def _create(server: ServerProcess, rid: str, headers: dict[str, str], **config: Any) -> None:
    body = {"significance": "classifier", "reference": "first_seen", **config}
    status, answer = server.request("PUT", f"/v1/runs/{rid}", body, headers=headers)
    assert status == 201, answer


def _log_lines(server: ServerProcess, logger: str) -> list[dict[str, Any]]:
    return [record for record in server.log_records() if record.get("logger") == logger]


def test_take_url_key_and_redact() -> None:
    assert take_url_key("/get_reward", b"run_id=r&key=abc&step=2") == (b"abc", b"run_id=r&step=2")
    assert take_url_key("/get_reward", b"run_id=r") == (None, b"run_id=r")
    assert take_url_key("/v1/rewards", b"key=abc") == (None, b"key=abc")  # only on /get_reward
    assert take_url_key("/get_reward", b"key=a%2Bb") == (b"a+b", b"")
    assert redact("http://h/get_reward?run_id=r&key=abc&step=1") == (
        "http://h/get_reward?run_id=r&key=REDACTED&step=1"
    )
    assert redact("url=URL('http://h/get_reward?key=abc')") == (
        "url=URL('http://h/get_reward?key=REDACTED')"
    )


def test_url_key_is_accepted_on_get_reward_only_and_never_shown(
    server_factory: ServerFactory, tiny_model: Path
) -> None:
    server = server_factory(args=["--model", str(tiny_model), "--device", "cpu", "--api-key", KEY])
    auth = {"Authorization": f"Bearer {KEY}"}
    rid = run_id("orl-key")
    _create(server, rid, auth)
    status, answer = server.request("POST", f"/get_reward?run_id={rid}&step=0&key={KEY}", _body())
    assert status == 200, answer
    status, answer = server.request("POST", f"/get_reward?run_id={rid}&step=0&key={WRONG}", _body())
    assert status == 401 and "?key=<key>" in answer["error"]["message"]
    status, answer = server.request("POST", f"/get_reward?run_id={rid}&step=0", _body())
    assert status == 401
    # Elsewhere a key in the URL is not accepted (headers work there).
    status, _ = server.request("GET", f"/v1/runs/{rid}?key={KEY}")
    assert status == 401
    # A request refused after authentication does not echo the key either.
    status, answer = server.request("POST", f"/get_reward?run_id=bad%20id&key={KEY}", _body())
    assert status == 422 and answer["error"]["param"] == "run_id"
    assert KEY not in json.dumps(answer)
    status, metrics = server.request("GET", "/metrics", headers=auth)
    assert status == 200 and KEY not in metrics and WRONG not in metrics
    # Log lines are written just after the answer: wait for the last logged request's line.
    wait_until(
        lambda: [r for r in _log_lines(server, "sigreward.access") if r["status"] == 422],
        what="the access-log line of the 422 on run 'bad id'",
    )
    log = server.log()
    assert "/get_reward" in log and KEY not in log and WRONG not in log


def test_missing_run_is_a_clear_404_and_refusals_are_logged(
    classifier_server: ServerProcess,
) -> None:
    rid = run_id("orl-missing")
    status, answer = classifier_server.request("POST", f"/get_reward?run_id={rid}", _body())
    assert status == 404, answer
    message = answer["error"]["message"]
    assert f"create the run with PUT /v1/runs/{rid} and reference first_seen" in message
    assert answer["error"]["param"] == "run_id"
    status, run = classifier_server.request("GET", f"/v1/runs/{rid}")
    assert status == 404  # nothing was created on the way
    # A 422 on an existing run: the operator's log has the message and the run id.
    _create(classifier_server, rid, {})
    status, answer = classifier_server.request(
        "POST", f"/get_reward?run_id={rid}&step=0", {**_body(), "labels": [None]}
    )
    assert status == 422
    refused = wait_until(
        lambda: [
            r for r in _log_lines(classifier_server, "sigreward.refused") if r["run_id"] == rid
        ],
        lambda lines: len(lines) >= 3,
        what=f"three refused-request log lines of run {rid}",
    )
    # The 404 of /get_reward, the 404 of the GET above, the 422.
    assert [(r["level"], r["status"]) for r in refused] == [
        ("warning", 404),
        ("warning", 404),
        ("warning", 422),
    ]
    assert "create the run with PUT" in refused[0]["message"]
    assert "labels[0]: required" in refused[2]["message"] and refused[2]["param"] == "labels[0]"


def test_a_resent_request_is_answered_not_counted(classifier_server: ServerProcess) -> None:
    rid = run_id("orl-retry")
    _create(classifier_server, rid, {}, samples_per_step=3)
    url = f"/get_reward?run_id={rid}"
    first = classifier_server.request("POST", url, _body(1))[1]
    time.sleep(1.0)  # as OpenRLHF before it resends a request whose answer it lost
    again = classifier_server.request("POST", url, _body(1))[1]
    assert again["rewards"] == first["rewards"]
    assert first["extra_logs"]["sigreward_suspected_retry"] == [0.0]
    assert again["extra_logs"]["sigreward_suspected_retry"] == [1.0]
    steps = [classifier_server.request("POST", url, _body(i))[1] for i in (2, 3)]
    # Without the check the resent copy would have pushed sample 3 into step 1.
    assert [a["extra_logs"]["sigreward_step"] for a in steps] == [[0.0], [0.0]]
    status, run = classifier_server.request("GET", f"/v1/runs/{rid}")
    assert run["suspected_retries"] == 1 and run["counted_samples"] == 3
    status, metrics = classifier_server.request("GET", "/metrics")
    assert "sigreward_suspected_retries_total" in metrics


def test_known_group_size_catches_resent_copies_at_any_time(
    classifier_server: ServerProcess,
) -> None:
    """samples_per_prompt = 1: a second request for a prompt whose group is full is a resent
    copy, however soon or late it comes (no timing involved)."""
    rid = run_id("orl-groups")
    _create(classifier_server, rid, {}, samples_per_step=2, samples_per_prompt=1)
    url = f"/get_reward?run_id={rid}"
    first = classifier_server.request("POST", url, _body(1))[1]
    again = classifier_server.request("POST", url, _body(1))[1]  # at once: no time rule
    assert again["extra_logs"]["sigreward_suspected_retry"] == [1.0]
    assert again["rewards"] == first["rewards"]
    steps = [classifier_server.request("POST", url, _body(i))[1] for i in (2, 3)]
    assert [a["extra_logs"]["sigreward_step"] for a in steps] == [[0.0], [1.0]]
    status, run = classifier_server.request("GET", f"/v1/runs/{rid}")
    assert run["suspected_retries"] == 1 and run["counted_samples"] == 3
    assert run["config"]["samples_per_prompt"] == 1


def test_window_zero_turns_the_check_off(server_factory: ServerFactory, tiny_model: Path) -> None:
    server = server_factory(
        args=["--model", str(tiny_model), "--device", "cpu", "--retry-window", "0"]
    )
    rid = run_id("orl-off")
    _create(server, rid, {}, samples_per_step=2)
    answers = [server.request("POST", f"/get_reward?run_id={rid}", _body(1))[1] for _ in range(2)]
    assert [a["extra_logs"]["sigreward_suspected_retry"] for a in answers] == [[0.0], [0.0]]
    status, run = server.request("GET", f"/v1/runs/{rid}")
    assert run["suspected_retries"] == 0 and run["counted_samples"] == 2


def test_step_less_v1_rewards_are_counted_by_the_server(values_server: ServerProcess) -> None:
    rid = run_id("counted")
    sample = {
        "significance": [1.0, 0.1],
        "correct": True,
        "reference": {"significant": 1, "insignificant": 1},
    }
    status, answer = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "samples": [sample]}
    )
    assert status == 422 and answer["error"]["param"] == "step"
    assert f"PUT /v1/runs/{rid}" in answer["error"]["message"]
    values_server.request("PUT", f"/v1/runs/{rid}", {"significance": "values"})
    status, answer = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "samples": [sample]}
    )
    assert status == 422 and answer["error"]["param"] == "step"
    rid = run_id("counted")
    values_server.request(
        "PUT", f"/v1/runs/{rid}", {"significance": "values", "samples_per_step": 2}
    )
    steps = []
    for _ in range(3):
        status, answer = values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "samples": [sample]}
        )
        assert status == 200, answer
        steps.append(answer["step"])
    assert steps == [0, 0, 1]
