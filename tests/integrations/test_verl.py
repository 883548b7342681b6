"""verl: its real DataProto and reward managers call sigreward_client.verl against a live server.

verl pins ``transformers<5.11``, so it lives in its own environment (it must not downgrade the
project's). The driver runs there as a subprocess: ``$SIGREWARD_VERL_PYTHON``, else
``/tmp/venv-verl/bin/python``, else this interpreter when it can import verl. Build one with
the commands in requirements-integrations.txt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.client.fixtures import CLIENT_SRC
from tests.support.server import ServerProcess

from sigreward_client import RewardClient  # isort: skip
from tests.integrations import verl_cases as data

DRIVER = Path(__file__).with_name("verl_driver.py")


def _verl_python() -> str | None:
    candidates = [os.environ.get("SIGREWARD_VERL_PYTHON"), "/tmp/venv-verl/bin/python"]
    for candidate in candidates:
        if candidate and shutil.which(candidate):
            return candidate
    try:
        import verl  # noqa: F401

        return sys.executable
    except ImportError:
        return None


VERL_PYTHON = _verl_python()
pytestmark = pytest.mark.skipif(
    VERL_PYTHON is None,
    reason="no Python with verl: set SIGREWARD_VERL_PYTHON (see requirements-integrations.txt)",
)


def _drive(case: str, server: ServerProcess, run_id: str, **env: str) -> dict[str, Any]:
    assert VERL_PYTHON is not None
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("SIGREWARD_") and k != "PYTHONPATH"
    }
    full_env.update(
        PYTHONPATH=str(CLIENT_SRC),
        SIGREWARD_URL=server.base_url,
        SIGREWARD_RUN_ID=run_id,
        VERL_USE_EXTERNAL_PLUGINS="none",
        RAY_DISABLE_IMPORT_WARNING="1",
        HF_HUB_OFFLINE="1",
        **env,
    )
    done = subprocess.run(
        [VERL_PYTHON, str(DRIVER), case],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(DRIVER.parent),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _run(server: ServerProcess, reference: str) -> RewardClient:
    client = RewardClient(server.base_url, f"verl-{uuid.uuid4().hex[:8]}")
    client.configure(significance="classifier", reference=reference)
    return client


def _direct(client: RewardClient, step: int) -> Any:
    """The same samples straight through the SDK, as one request."""
    return client.score(
        step,
        [
            {
                "prompt_id": str(data.INDEX[i]),
                "response": data.RESPONSES[i],
                "label": data.TRUTHS[i],
            }
            for i in range(len(data.RESPONSES))
        ],
    )


EXPECTED_ACC = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]


def _check_extras(result: dict[str, Any]) -> None:
    extra = result["extra"]
    assert extra["acc"] == EXPECTED_ACC
    for reward, acc, length_reward in zip(
        result["rewards"], extra["acc"], extra["sigreward_length_reward"], strict=True
    ):
        assert reward == pytest.approx(acc + length_reward, rel=1e-6)


def test_naive_reward_manager_per_sample(classifier_server: ServerProcess) -> None:
    client = _run(classifier_server, "first_seen")
    result = _drive(
        "legacy", classifier_server, client.run_id, DRIVER_MANAGER="naive", DRIVER_STEP="4"
    )
    _check_extras(result)
    # The reward tensor is float32; the extras keep the server's float64.
    assert result["rewards"] == pytest.approx(result["extra"]["score"], rel=1e-6)
    history = client.finish_step(4).schedule.history
    assert [(h.step, h.samples) for h in history] == [(4, 6)]


def test_batch_reward_manager_one_request(classifier_server: ServerProcess) -> None:
    client = _run(classifier_server, "group")
    result = _drive(
        "legacy", classifier_server, client.run_id, DRIVER_MANAGER="batch", DRIVER_STEP="2"
    )
    _check_extras(result)
    # Group references use the request's groups: equal only if the batch went as one request.
    expected = _direct(_run(classifier_server, "group"), 2).rewards
    assert result["rewards"] == pytest.approx(expected, rel=1e-6)
    assert [(h.step, h.samples) for h in client.finish_step(2).schedule.history] == [(2, 6)]


def test_reward_loop_async_function_is_micro_batched(classifier_server: ServerProcess) -> None:
    client = _run(classifier_server, "group")
    result = _drive("reward_loop", classifier_server, client.run_id, DRIVER_STEP="1")
    _check_extras(result)
    assert result["rewards"] == _direct(_run(classifier_server, "group"), 1).rewards
    assert [(h.step, h.samples) for h in client.finish_step(1).schedule.history] == [(1, 6)]


def _drive_many(case: str, server: ServerProcess, run_id: str, workers: int, **env: str) -> None:
    """``workers`` driver processes at once, as verl's reward workers score one step."""
    assert VERL_PYTHON is not None
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("SIGREWARD_") and k != "PYTHONPATH"
    }
    full_env.update(
        PYTHONPATH=str(CLIENT_SRC),
        SIGREWARD_URL=server.base_url,
        SIGREWARD_RUN_ID=run_id,
        VERL_USE_EXTERNAL_PLUGINS="none",
        HF_HUB_OFFLINE="1",
        **env,
    )
    processes = [
        subprocess.Popen(
            [VERL_PYTHON, str(DRIVER), case],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(DRIVER.parent),
        )
        for _ in range(workers)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-4000:]
        assert "RESULT " in out


@pytest.mark.parametrize("case", ["reward_loop", "counting"])
def test_two_reward_workers_without_a_step_count_on_the_server(
    classifier_server: ServerProcess, case: str
) -> None:
    """No global_steps: two reward processes (verl's default is 8) each score 6 samples; the
    server's per-run counter puts exactly samples_per_step = 6 in each step (a count per
    process, as before, put all 12 in step 0)."""
    client = RewardClient(classifier_server.base_url, f"verl-{uuid.uuid4().hex[:8]}")
    client.configure(significance="classifier", reference="first_seen", samples_per_step=6)
    _drive_many(case, classifier_server, client.run_id, 2, DRIVER_NO_STEP="1")
    view = client.finish_step(1)
    assert view.schedule is not None
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 6), (1, 6)]
    assert view.counted_samples == 12


def test_missing_step_source_is_a_clear_error(classifier_server: ServerProcess) -> None:
    client = _run(classifier_server, "first_seen")  # no samples_per_step
    with pytest.raises(AssertionError, match="samples_per_step"):
        _drive("counting", classifier_server, client.run_id)


def test_hook_through_verls_agent_loop(classifier_server: ServerProcess) -> None:
    """VERL_USE_EXTERNAL_MODULES=sigreward_client.verl_hook, then verl's AgentLoopWorker runs
    a training batch and a validation batch of step 3 (the step only in meta_info): the
    reward function gets the step through the hook, validation goes to its own run."""
    client = _run(classifier_server, "first_seen")  # no samples_per_step: the hook or nothing
    validation = RewardClient(classifier_server.base_url, client.run_id + "-validation")
    validation.configure(significance="classifier", reference="first_seen")
    result = _drive(
        "agent_loop",
        classifier_server,
        client.run_id,
        DRIVER_STEP="3",
        VERL_USE_EXTERNAL_MODULES="sigreward_client.verl_hook",
    )
    assert len(result["rewards"]) == 6 and len(result["validation_rewards"]) == 6
    assert "sigreward_k" in result["extra_keys"] and len(result["k"]) == 6
    assert [(h.step, h.samples) for h in client.finish_step(3).schedule.history] == [(3, 6)]
    assert [(h.step, h.samples) for h in validation.finish_step(3).schedule.history] == [(3, 6)]
    # The rewards are the server's: the same samples straight through the SDK.
    twin = _direct(_run(classifier_server, "first_seen"), 3)
    assert result["rewards"] == pytest.approx(twin.rewards, rel=1e-5)
    # Without the hook the step never reaches the reward function.
    bare = _run(classifier_server, "first_seen")
    with pytest.raises(AssertionError, match="samples_per_step"):
        _drive("agent_loop", classifier_server, bare.run_id, DRIVER_STEP="3")


def test_global_steps_hook() -> None:
    class Dummy:
        base_url = "http://127.0.0.1:9"

    server: Any = Dummy()
    result = _drive("hook", server, "unused")
    assert result["out"] == "done"
    assert result["extra_info"] == {"index": 3, "global_steps": 7, "validate": False}
    assert result["row_untouched"] is True


def test_global_steps_hook_from_the_environment() -> None:
    class Dummy:
        base_url = "http://127.0.0.1:9"

    server: Any = Dummy()
    assert _drive("hook_env", server, "unused")["installed"] is False
    hooked = _drive(
        "hook_env", server, "unused", VERL_USE_EXTERNAL_MODULES="sigreward_client.verl_hook"
    )
    assert hooked["installed"] is True


def test_example_config_loads_in_verl() -> None:
    class Dummy:
        base_url = "http://127.0.0.1:9"

    server: Any = Dummy()
    example = CLIENT_SRC / "examples" / "verl_reward.yaml"
    result = _drive("config", server, "unused", DRIVER_EXAMPLE_YAML=str(example))
    assert result == {
        "name": "compute_score_async",
        "module": "sigreward_client.verl",
        "coroutine": True,
    }
