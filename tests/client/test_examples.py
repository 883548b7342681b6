"""The example loop runs against a live server, in values and classifier mode, in < 1 min."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from tests.client.fixtures import CLIENT_SRC
from tests.support.server import ServerProcess

TOY_LOOP = CLIENT_SRC / "examples" / "toy_loop.py"


def _run_example(server: ServerProcess, *extra: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(CLIENT_SRC)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(TOY_LOOP), "--url", server.base_url, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 60
    return done.stdout


def _check(output: str, steps: int) -> None:
    lines = [line for line in output.splitlines() if line.startswith("step ")]
    assert len(lines) == steps
    for line in lines:
        assert re.search(r"k=-?\d+\.\d+ mean_reward=-?\d+\.\d+", line), line
    history = [line for line in output.splitlines() if line.startswith("history step")]
    assert len(history) == steps
    assert all("samples=16" in line for line in history)


def test_toy_loop_values_mode(values_server: ServerProcess) -> None:
    output = _run_example(values_server, "--steps", "5")
    assert "values mode" in output
    _check(output, 5)


def test_toy_loop_classifier_mode(classifier_server: ServerProcess) -> None:
    output = _run_example(classifier_server, "--classifier", "--steps", "3")
    assert "classifier mode" in output
    _check(output, 3)


def test_toy_loop_refuses_a_mode_the_server_lacks(values_server: ServerProcess) -> None:
    env = {**os.environ, "PYTHONPATH": str(CLIENT_SRC)}
    done = subprocess.run(
        [sys.executable, str(TOY_LOOP), "--url", values_server.base_url, "--classifier"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not classifier" in done.stderr


def test_trainer_examples_are_well_formed() -> None:
    import py_compile

    import yaml

    examples = CLIENT_SRC / "examples"
    py_compile.compile(str(examples / "trl_grpo.py"), doraise=True)
    done = subprocess.run(["bash", "-n", str(examples / "openrlhf_train.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((examples / "verl_reward.yaml").read_text())
    assert config["reward"]["custom_reward_function"]["name"] == "compute_score_async"
