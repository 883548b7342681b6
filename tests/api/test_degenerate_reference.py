"""The run option degenerate_reference over HTTP: the paper's rule by default, the floor on
request, and a 422 naming the option for anything else."""

from __future__ import annotations

import math

import pytest

from tests.api.conftest import run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerProcess

# Correct answer, 3 units of which 1 insignificant; the reference has no insignificant unit.
SAMPLE = {
    "id": "s0",
    "correct": True,
    "significance": [0.9, 0.1, 0.8],
    "reference": {"significant": 4, "insignificant": 0},
}


@pytest.mark.parametrize(
    ("rule", "length_reward"),
    [
        (None, 5.0),  # the paper: both ratios 0 -> 5 * cos(0)
        ("zero", 5.0),
        ("floor", 5 * math.cos(1.0)),  # I_ref taken as 1: r_I = 1 -> 5 * cos(1)
    ],
)
def test_rule_decides_the_reward_of_a_degenerate_reference(
    values_server: ServerProcess, rule: str | None, length_reward: float
) -> None:
    rid = run_id("degen")
    body = {"significance": "values"} | ({"degenerate_reference": rule} if rule else {})
    status, run = values_server.request("PUT", f"/v1/runs/{rid}", body)
    assert status == 201, run
    assert run["config"]["degenerate_reference"] == (rule or "zero")
    status, out = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": [SAMPLE]}
    )
    assert status == 200, out
    assert out["samples"][0]["length_reward"] == pytest.approx(length_reward)
    assert out["samples"][0]["degenerate_reference"] is True


def test_unknown_rule_is_refused_naming_the_option(values_server: ServerProcess) -> None:
    status, error = values_server.request(
        "PUT", f"/v1/runs/{run_id('degen')}", {"degenerate_reference": "one"}
    )
    assert status == 422
    assert_envelope(error, param="degenerate_reference")
