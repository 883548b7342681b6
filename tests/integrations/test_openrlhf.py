"""POST /get_reward (OpenRLHF --remote_rm_url) against a live server with a classifier."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sigreward.api.openrlhf import split_response, strip_trailing_special
from tests.client.fixtures import FaultProxy
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

PROMPT = "<|im_start|>user\nWhat is 40 + 2?<|im_end|>\n<|im_start|>assistant\n"


def _run(server: ServerProcess, **config: object) -> str:
    run_id = f"orl-{uuid.uuid4().hex[:8]}"
    body = {"significance": "classifier", "reference": "first_seen", **config}
    status, answer = server.request("PUT", f"/v1/runs/{run_id}", body)
    assert status == 201, answer
    return run_id


def test_strip_and_split() -> None:
    assert (
        strip_trailing_special("x \\boxed{42}<|im_end|><|endoftext|><pad><pad>") == "x \\boxed{42}"
    )
    assert strip_trailing_special("answer </s> \n") == "answer"
    assert strip_trailing_special("keeps </s> inside") == "keeps </s> inside"
    # 0.8 decodes the padded sequence: left padding before the prompt, EOS/pad after.
    assert split_response("<pad><pad>" + PROMPT + "so \\boxed{42}</s><pad>", PROMPT) == (
        "so \\boxed{42}",
        True,
    )
    assert split_response("Q: hi\nA: yes", "Q: hi\n") == ("A: yes", True)
    assert split_response("Q: hi A: yes", "Q: hi\n") == ("A: yes", True)  # seam whitespace
    assert split_response("unrelated text</s>", "Q: other") == ("unrelated text", False)
    assert split_response("text", None) == ("text", False)


def test_openrlhf_011_single_query(classifier_server: ServerProcess) -> None:
    """0.11 sends one query per request and reads rewards / scores / extra_logs lists."""
    run_id = _run(classifier_server)
    body = {
        "query": [PROMPT + "40 plus 2 is 42, so the answer is \\boxed{42}<|im_end|>"],
        "prompts": [PROMPT],
        "labels": ["42"],
    }
    status, answer = classifier_server.request("POST", f"/get_reward?run_id={run_id}&step=0", body)
    assert status == 200, answer
    assert set(answer) == {"rewards", "scores", "extra_logs"}
    assert answer["scores"] == [1.0]
    logs = answer["extra_logs"]
    assert logs["sigreward_correct"] == [1.0]
    assert answer["rewards"][0] == pytest.approx(1.0 + logs["sigreward_length_reward"][0])
    assert logs["sigreward_step"] == [0.0] and logs["sigreward_step_derived"] == [0.0]
    assert all(isinstance(v, list) and len(v) == 1 for v in logs.values())

    wrong = {**body, "query": [PROMPT + "so the answer is \\boxed{41}<|im_end|>"]}
    status, answer = classifier_server.request(
        "POST", f"/get_reward?run_id={run_id}&step=0&extra_logs=false", wrong
    )
    assert status == 200, answer
    assert set(answer) == {"rewards", "scores"}  # OpenRLHF 0.8 reads only "rewards"
    assert answer["scores"] == [0.0]


def test_openrlhf_08_batch_and_the_rewards_equal_the_v1_api(
    classifier_server: ServerProcess,
) -> None:
    """0.8 sends a batch; the rewards equal POST /v1/rewards on the extracted responses."""
    responses = [
        "we add 40 and 2 to get 42. \\boxed{42}",
        "hmm wait, let me think. 40 plus 2. \\boxed{42}",
        "the answer is \\boxed{41}",
        "so the result is 42",
    ]
    labels = ["42", "42", "42", "\\boxed{42}"]
    prompts = [PROMPT, PROMPT, "Q: 6*7?\n", "Q: 6*7?\n"]
    queries = [f"<pad>{p}{r}</s><pad><pad>" for p, r in zip(prompts, responses, strict=True)]
    run_id = _run(classifier_server)
    status, answer = classifier_server.request(
        "POST",
        f"/get_reward?run_id={run_id}&step=3",
        {"query": queries, "prompts": prompts, "labels": labels},
    )
    assert status == 200, answer
    assert answer["scores"] == [1.0, 1.0, 0.0, 1.0]
    assert answer["extra_logs"]["sigreward_prompt_found"] == [1.0] * 4

    from sigreward.api.openrlhf import prompt_id_of

    twin = _run(classifier_server)
    samples = [
        {"prompt_id": prompt_id_of(p), "response": r, "label": lab}
        for p, r, lab in zip(prompts, responses, labels, strict=True)
    ]
    status, raw = classifier_server.request(
        "POST", "/v1/rewards", {"run_id": twin, "step": 3, "samples": samples}
    )
    assert status == 200, raw
    assert answer["rewards"] == raw["rewards"]


def test_step_is_derived_from_samples_per_step(classifier_server: ServerProcess) -> None:
    run_id = _run(classifier_server, samples_per_step=2)
    steps = []
    for i in range(5):
        body = {
            "query": [f"Q{i}? A: \\boxed{{{i}}}</s>"],
            "prompts": [f"Q{i}? "],
            "labels": [str(i)],
        }
        status, answer = classifier_server.request("POST", f"/get_reward?run_id={run_id}", body)
        assert status == 200, answer
        assert answer["extra_logs"]["sigreward_step_derived"] == [1.0]
        steps.append(int(answer["extra_logs"]["sigreward_step"][0]))
    assert steps == [0, 0, 1, 1, 2]
    status, run = classifier_server.request("GET", f"/v1/runs/{run_id}")
    assert [(h["step"], h["samples"]) for h in run["schedule"]["history"]] == [(0, 2), (1, 2)]


def test_errors_name_the_field(classifier_server: ServerProcess) -> None:
    run_id = _run(classifier_server)
    cases = [
        ("", {"query": ["a"], "prompts": ["a"], "labels": ["1"]}, 422, "step"),
        ("&step=0", {"query": ["a"], "prompts": ["a", "b"], "labels": ["1"]}, 422, "prompts"),
        ("&step=0", {"query": ["a"], "prompts": ["a"]}, 422, "labels"),
        ("&step=0", {"query": ["a"], "prompts": ["a"], "labels": [None]}, 422, "labels[0]"),
        ("&step=0", {"query": [], "labels": []}, 422, "query"),
    ]
    for suffix, body, code, param in cases:
        status, answer = classifier_server.request(
            "POST", f"/get_reward?run_id={run_id}{suffix}", body
        )
        assert status == code, (suffix, body, answer)
        assert answer["error"]["param"] == param, answer
    status, answer = classifier_server.request(
        "POST", "/get_reward?run_id=bad%20id&step=0", {"query": ["a"], "labels": ["1"]}
    )
    assert status == 422 and answer["error"]["param"] == "run_id"


# -- OpenRLHF's own client code ----------------------------------------------------------------
# OpenRLHF pins its own torch/vLLM/DeepSpeed stack; only its reward client modules are needed
# here, installed with --no-deps into the verl environment (requirements-integrations.txt):
#   0.11: pip install --no-deps openrlhf==0.11.2  (into that environment)
#   0.8:  pip install --no-deps --target /tmp/openrlhf-0.8 openrlhf==0.8.0
DRIVER = Path(__file__).with_name("openrlhf_driver.py")
OPENRLHF_08 = Path(os.environ.get("SIGREWARD_OPENRLHF08_PATH", "/tmp/openrlhf-0.8"))


def _python_with(module: str, extra_path: Path | None = None) -> str | None:
    candidates = [
        os.environ.get("SIGREWARD_VERL_PYTHON"),
        "/tmp/venv-verl/bin/python",
        sys.executable,
    ]
    for python in candidates:
        if not python or not shutil.which(python):
            continue
        env = {**os.environ, "PYTHONPATH": str(extra_path) if extra_path else ""}
        probe = subprocess.run(
            [python, "-c", f"import {module}"], env=env, capture_output=True, timeout=120
        )
        if probe.returncode == 0:
            return python
    return None


def _drive(python: str, version: str, url: str, extra_path: Path | None, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path:
        env["PYTHONPATH"] = str(extra_path)
    done = subprocess.run(
        [python, str(DRIVER), version, url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_openrlhf_011_client_code(classifier_server: ServerProcess) -> None:
    python = _python_with("openrlhf.utils.agent")
    if python is None:
        pytest.skip("openrlhf 0.11 is not installed (see requirements-integrations.txt)")
    run_id = _run(classifier_server, samples_per_step=2)
    result = _drive(
        python, "0.11", f"{classifier_server.base_url}/get_reward?run_id={run_id}", None
    )
    assert "0.8" not in result["version"]
    first, second = result["answers"]
    assert first["scores"] == [1.0] and second["scores"] == [0.0]
    assert first["extra_logs"]["sigreward_step_derived"] == [1.0]
    assert first["reward"][0] == pytest.approx(
        1.0 + first["extra_logs"]["sigreward_length_reward"][0]
    )


def test_openrlhf_08_client_code(classifier_server: ServerProcess) -> None:
    python = _python_with("openrlhf.utils.remote_rm_utils", OPENRLHF_08)
    if python is None:
        pytest.skip(
            f"openrlhf 0.8 is not installed at {OPENRLHF_08} (see requirements-integrations.txt)"
        )
    run_id = _run(classifier_server)
    url = f"{classifier_server.base_url}/get_reward?run_id={run_id}&step=0&extra_logs=false"
    result = _drive(python, "0.8", url, OPENRLHF_08)
    assert str(OPENRLHF_08) in result["version"]
    assert result["shape"] == [2]
    status, run = classifier_server.request("POST", f"/v1/runs/{run_id}/steps/0/finish")
    assert status == 200 and run["schedule"]["history"][0]["samples"] == 2
    assert run["schedule"]["history"][0]["score"] == 0.5  # one right, one wrong


def test_numeric_labels_are_verified_as_text(classifier_server: ServerProcess) -> None:
    run_id = _run(classifier_server)
    body = {
        "query": ["Q? \\boxed{42}", "Q? \\boxed{0.5}"],
        "prompts": ["Q?", "Q?"],
        "labels": [42, 0.5],
    }
    status, answer = classifier_server.request("POST", f"/get_reward?run_id={run_id}&step=0", body)
    assert status == 200, answer
    assert answer["scores"] == [1.0, 1.0]


def _openrlhf_011() -> str:
    python = _python_with("openrlhf.utils.agent")
    if python is None:
        pytest.skip("openrlhf 0.11 is not installed (see requirements-integrations.txt)")
    return python


def test_openrlhf_011_with_the_key_in_the_url(
    server_factory: ServerFactory, tiny_bert_dir: Path
) -> None:
    """--remote_rm_url cannot carry headers: the key goes in the URL, on /get_reward only."""
    python = _openrlhf_011()
    key = "sk-openrlhf-5d1e"
    server = server_factory(
        args=["--model", str(tiny_bert_dir), "--device", "cpu", "--api-key", key]
    )
    run_id = f"orl-{uuid.uuid4().hex[:8]}"
    status, _ = server.request(
        "PUT",
        f"/v1/runs/{run_id}",
        {"significance": "classifier", "reference": "first_seen", "samples_per_step": 2},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert status == 201
    url = f"{server.base_url}/get_reward?run_id={run_id}"
    with_key = _drive(python, "0.11-sequence", f"{url}&key={key}", None, "2")["calls"]
    assert [c["extra_logs"]["sigreward_step"] for c in with_key] == [[0.0], [0.0]]
    assert all(c["rewards"] is not None for c in with_key)
    without = _drive(python, "0.11-sequence", url, None, "1")["calls"]
    assert "error" in without[0]  # OpenRLHF gives up after its 5 tries: reward None
    # Every refused try is logged just after its answer: wait for all five, then look.
    wait_until(
        lambda: [r for r in server.log_records() if r.get("logger") == "sigreward.refused"],
        lambda lines: len(lines) >= 5,
        what="five refused-request log lines",
    )
    assert key not in server.log()


def test_openrlhf_011_lost_answer_and_its_retry(classifier_server: ServerProcess) -> None:
    """The first answer is lost after the server stored it (a proxy 502/503): OpenRLHF resends
    the same body a second later; the server answers it from the first and the later samples
    keep their steps."""
    python = _openrlhf_011()
    run_id = _run(classifier_server, samples_per_step=2)

    def fault(n: int, method: str, path: str) -> str:
        return "forward_then_503" if method == "POST" and n == 0 else "forward"

    with FaultProxy(classifier_server.base_url, fault) as proxy:
        calls = _drive(
            python, "0.11-sequence", f"{proxy.base_url}/get_reward?run_id={run_id}", None, "3"
        )["calls"]
        posts = [a for m, _, a in proxy.seen if m == "POST"]
    assert posts == ["forward_then_503", "forward", "forward", "forward"]
    logs = [c["extra_logs"] for c in calls]
    assert [entry["sigreward_suspected_retry"] for entry in logs] == [[1.0], [0.0], [0.0]]
    assert [entry["sigreward_step"] for entry in logs] == [[0.0], [0.0], [1.0]]
    status, run = classifier_server.request("GET", f"/v1/runs/{run_id}")
    assert run["suspected_retries"] == 1 and run["counted_samples"] == 3


def test_openrlhf_011_missing_run(classifier_server: ServerProcess) -> None:
    """A run nobody created: OpenRLHF only logs "404, message='Not Found'" and keeps reward
    None; the server's log says what to do, with the run id."""
    python = _openrlhf_011()
    run_id = f"orl-missing-{uuid.uuid4().hex[:8]}"
    calls = _drive(
        python,
        "0.11-sequence",
        f"{classifier_server.base_url}/get_reward?run_id={run_id}",
        None,
        "1",
    )["calls"]
    assert "error" in calls[0]
    # A refused line is written just after its answer: wait for the fifth try's.
    refused = wait_until(
        lambda: [
            r
            for r in classifier_server.log_records()
            if r.get("logger") == "sigreward.refused" and run_id in json.dumps(r)
        ],
        lambda lines: len(lines) >= 5,
        what=f"five refused-request log lines of run {run_id}",
    )
    assert len(refused) == 5  # one line per try
    assert all(r["status"] == 404 and r["level"] == "warning" for r in refused)
    assert (
        f"create the run with PUT /v1/runs/{run_id} and reference first_seen"
        in refused[0]["message"]
    )
